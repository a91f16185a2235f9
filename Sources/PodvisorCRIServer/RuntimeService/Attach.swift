import GRPCCore
import PodvisorCRI
import PodvisorCore

extension RuntimeService {
    /// Validates the request and answers with a one-time URL of the streaming server; once connected, the
    /// client gets the container's output from this call on and feeds its stdin (Pod/RemoteCommands.swift).
    /// A created container may be attached to before it starts, as docker does.
    public func attach(request: Runtime_V1_AttachRequest, context: ServerContext) async throws -> Runtime_V1_AttachResponse {
        try await handle {
            let options = try Validate.streams(stdin: request.stdin, stdout: request.stdout, stderr: request.stderr, tty: request.tty)
            let (container, _) = try server.runningContainer(request.containerID, orCreated: true)
            guard request.tty == container.config.tty else {
                throw PodvisorError(.invalidArgument, "tty must match the container's (it was created with tty=\(container.config.tty))")
            }
            // Subscribed now, not when the client connects: a client that attaches before StartContainer
            // (docker's order, `podvisor run -i`) gets the output from its first byte.
            let output = server.attachments.subscribe(container.id)
            let url = server.streaming.register(.attach, options: options) { [server] streams in
                await server.serveAttach(container.id, output: output, streams)
            }
            return .with { $0.url = url }
        }
    }
}

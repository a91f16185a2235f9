import GRPCCore
import PodvisorCRI
import PodvisorCore

extension RuntimeService {
    /// Validates the request and answers with a one-time URL of the streaming server; the command starts
    /// when kubelet (or crictl, `podvisor exec -it`) connects to it (Pod/RemoteCommands.swift).
    public func exec(request: Runtime_V1_ExecRequest, context: ServerContext) async throws -> Runtime_V1_ExecResponse {
        try await handle {
            guard let command = request.cmd.first, !command.isEmpty else {
                throw PodvisorError(.invalidArgument, "cmd must not be empty")
            }
            let options = try Validate.streams(stdin: request.stdin, stdout: request.stdout, stderr: request.stderr, tty: request.tty)
            let (container, _) = try server.runningContainer(request.containerID)
            let url = server.streaming.register(.exec, options: options) { [server] streams in
                await server.serveExec(container.id, command: request.cmd, streams)
            }
            return .with { $0.url = url }
        }
    }
}

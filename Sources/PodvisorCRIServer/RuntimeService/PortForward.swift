import GRPCCore
import PodvisorCRI
import PodvisorCore

extension RuntimeService {
    /// Validates the request and answers with a one-time URL of the streaming server; every connection the
    /// client forwards then reaches the port inside the pod VM through the agent (Pod/PortForwards.swift).
    public func portForward(request: Runtime_V1_PortForwardRequest, context: ServerContext) async throws -> Runtime_V1_PortForwardResponse {
        try await handle {
            for port in request.port where !(1...65535).contains(port) {
                throw PodvisorError(.invalidArgument, "port \(port) is out of range")
            }
            let sandbox = try server.sandboxes.find(request.podSandboxID)
            _ = try server.readyPod(sandbox)
            let url = server.streaming.registerPortForward { [server] port, stream in
                await server.relay(sandbox.id, port: port, stream)
            }
            return .with { $0.url = url }
        }
    }
}

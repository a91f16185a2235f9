import GRPCCore
import PodvisorCRI
import PodvisorCore

extension RuntimeService {
    /// kubelet rotated the log (renamed it): write on in a new file at the same path.
    public func reopenContainerLog(
        request: Runtime_V1_ReopenContainerLogRequest, context: ServerContext
    ) async throws
        -> Runtime_V1_ReopenContainerLogResponse
    {
        try await handle {
            let container = try server.containers.find(request.containerID)
            guard container.state == .running else {
                throw PodvisorError(.failedPrecondition, "container \(container.id) is \(container.state.rawValue), not running")
            }
            try server.logs.withLock { $0[container.id] }?.reopen()
            return Runtime_V1_ReopenContainerLogResponse()
        }
    }
}

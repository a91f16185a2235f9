import Foundation
import GRPCCore
import PodvisorCRI
import PodvisorCore

extension RuntimeService {
    /// Stops the sandbox if needed, removes its containers and every host-side trace. Idempotent.
    public func removePodSandbox(
        request: Runtime_V1_RemovePodSandboxRequest, context: ServerContext
    ) async throws
        -> Runtime_V1_RemovePodSandboxResponse
    {
        try await handle {
            guard let sandbox = try server.existing(server.sandboxes, request.podSandboxID, "pod_sandbox_id") else {
                return Runtime_V1_RemovePodSandboxResponse()
            }
            try await server.locks.withLock(sandbox.id) {
                try await server.stopSandbox(sandbox.id)
                for container in server.containers.all where container.sandboxID == sandbox.id {
                    try await server.removeContainer(container)
                }
                try server.sandboxes.remove(sandbox.id)
            }
            server.heapTrimmer.schedule()
            return Runtime_V1_RemovePodSandboxResponse()
        }
    }
}

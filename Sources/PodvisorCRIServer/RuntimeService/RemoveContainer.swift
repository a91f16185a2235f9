import Foundation
import GRPCCore
import PodvisorCRI
import PodvisorCore
import PodvisorImages

extension RuntimeService {
    /// Kills the container if it still runs, then removes it from the guest and every host-side trace.
    /// Idempotent. Its log file stays: kubelet owns log files.
    public func removeContainer(
        request: Runtime_V1_RemoveContainerRequest, context: ServerContext
    ) async throws
        -> Runtime_V1_RemoveContainerResponse
    {
        try await handle {
            guard let container = try server.existing(server.containers, request.containerID, "container_id") else {
                return Runtime_V1_RemoveContainerResponse()
            }
            try await server.locks.withLock(container.id) {
                guard let current = server.containers.get(container.id) else { return }
                try await server.removeContainer(current)
            }
            return Runtime_V1_RemoveContainerResponse()
        }
    }
}

extension CRIServer {
    func removeContainer(_ container: ContainerRecord) async throws {
        if let pod = pod(container.sandboxID) {
            try await pod.removeContainer(container.id)
        } else {
            try runtime.removeContainer(id: container.id)
        }
        if container.state != .exited {
            containerExited(container.id, code: 137, at: Clock.nowNanoseconds(), reason: "Error", message: "removed while running")
        }
        try containers.remove(container.id)
        if let image = try? Digest(parsing: container.imageID) { await images.stopUsing(image) }
        publish(.containerDeletedEvent, container: container)
    }
}

import Foundation
import GRPCCore
import PodvisorCRI
import PodvisorCore
import PodvisorImages

extension RuntimeService {
    /// Kills the container if it still runs, then removes it from the guest and every host-side trace.
    /// Idempotent. Its log file stays: kubelet owns log files.
    public func removeContainer(request: Runtime_V1_RemoveContainerRequest, context: ServerContext) async throws
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
        let pod = pod(container.sandboxID)
        if let pod {
            do { try await pod.agent.removeContainer(container.id) } catch where error.code == .notFound {}
        }
        if container.state != .exited {
            containerExited(container.id, code: 137, at: Clock.nowNanoseconds(), reason: "Error", message: "removed while running")
        }
        await releaseHostSide(containerID: container.id, imageID: try Digest(parsing: container.imageID), pod: pod)
        try containers.remove(container.id)
        publish(.containerDeletedEvent, container: container)
    }
}

import Foundation
import GRPCCore
import PodvisorCRI
import PodvisorCore

extension RuntimeService {
    /// New cgroup limits for a created or running container, inside its VM (the VM's own size is fixed).
    public func updateContainerResources(
        request: Runtime_V1_UpdateContainerResourcesRequest, context: ServerContext
    ) async throws
        -> Runtime_V1_UpdateContainerResourcesResponse
    {
        try await handle {
            let id = try server.containers.find(request.containerID).id
            let resources = try ContainerSpecBuilder.resources(request.linux)
            try await server.locks.withLock(id) {
                let container = try server.containers.find(id)
                guard container.state == .created || container.state == .running else {
                    throw PodvisorError(.failedPrecondition, "container \(id) is \(container.state.rawValue): its resources can no longer change")
                }
                let pod = try server.readyPod(try server.sandboxes.find(container.sandboxID))
                try await pod.updateResources(id, resources)
                let data = try request.linux.serializedBytes() as [UInt8]
                try server.containers.update(id) { $0.resourcesData = Data(data) }
            }
            return Runtime_V1_UpdateContainerResourcesResponse()
        }
    }
}

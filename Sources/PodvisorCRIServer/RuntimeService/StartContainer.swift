import Foundation
import GRPCCore
import PodvisorCRI
import PodvisorCore

extension RuntimeService {
    /// Releases the container's process into exec; its output then flows to its log.
    public func startContainer(
        request: Runtime_V1_StartContainerRequest, context: ServerContext
    ) async throws
        -> Runtime_V1_StartContainerResponse
    {
        try await handle {
            let id = try server.containers.find(request.containerID).id
            try await server.locks.withLock(id) {
                let container = try server.containers.find(id)
                guard container.state == .created else {
                    throw PodvisorError(.failedPrecondition, "container \(id) is \(container.state.rawValue), not created")
                }
                let pod = try server.readyPod(try server.sandboxes.find(container.sandboxID))
                do throws(PodvisorError) {
                    try await pod.startContainer(id)
                } catch {
                    server.containerExited(id, code: 128, at: Clock.nowNanoseconds(), reason: "StartError", message: error.message)
                    throw error
                }
                guard
                    let running = try server.containers.update(
                        id,
                        {
                            $0.state = .running
                            $0.startedAt = Clock.nowNanoseconds()
                        })
                else { throw PodvisorError(.notFound, "container \(id) was removed") }
                server.follow(running, on: pod)
                if let sandbox = server.sandboxes.get(running.sandboxID) {
                    CRIMetrics.containerStarted(sinceSandboxCreated: .nanoseconds(running.startedAt - sandbox.createdAt))
                }
                server.log.debug("container \(id) started")
                server.publish(.containerStartedEvent, container: running)
            }
            return Runtime_V1_StartContainerResponse()
        }
    }
}

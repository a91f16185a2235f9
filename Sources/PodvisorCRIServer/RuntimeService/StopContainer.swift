import Foundation
import GRPCCore
import PodvisorCRI
import PodvisorCore
import PodvisorRuntime

extension RuntimeService {
    /// The stop signal (SIGTERM unless the config or the image names another), then SIGKILL once `timeout`
    /// seconds have passed. Idempotent: an unknown or exited
    /// container is not an error.
    public func stopContainer(
        request: Runtime_V1_StopContainerRequest, context: ServerContext
    ) async throws
        -> Runtime_V1_StopContainerResponse
    {
        try await handle {
            try Validate.timeoutSeconds(request.timeout, "timeout")
            guard let found = try server.existing(server.containers, request.containerID, "container_id") else {
                return Runtime_V1_StopContainerResponse()
            }
            try await server.locks.withLock(found.id) {
                guard let container = server.containers.get(found.id), container.state != .exited,
                    let sandbox = server.sandboxes.get(container.sandboxID), let pod = try? server.readyPod(sandbox)
                else { return }
                let exit = try await pod.stop(
                    ProcessRef(container: container.id), grace: .seconds(request.timeout), signal: container.stopSignal)
                // A started container's follower records the exit once its output is drained; a created one has none.
                if container.state == .running { await server.waitForExitRecord(container.id) }
                server.containerExited(container.id, code: exit.exitCode, at: Clock.nowNanoseconds(), reason: exit.oomKilled ? "OOMKilled" : "Error")
            }
            return Runtime_V1_StopContainerResponse()
        }
    }
}

extension CRIServer {
    /// Gives the container's follower up to 3 s to record the exit it has seen.
    func waitForExitRecord(_ id: String) async {
        for _ in 0..<150 where containers.get(id)?.state == .running {
            try? await Task.sleep(for: .milliseconds(20))
        }
    }
}

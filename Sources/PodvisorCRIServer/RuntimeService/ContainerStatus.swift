import GRPCCore
import PodvisorCRI

extension RuntimeService {
    public func containerStatus(
        request: Runtime_V1_ContainerStatusRequest, context: ServerContext
    ) async throws
        -> Runtime_V1_ContainerStatusResponse
    {
        try await handle {
            let container = try server.containers.find(request.containerID)
            return .with {
                $0.status = server.containerStatus(container)
                if request.verbose {
                    let process = container.process
                    $0.info = CRIServer.verboseInfo([
                        "sandboxID": container.sandboxID, "args": process.args, "env": process.env, "cwd": process.cwd,
                        "terminal": process.terminal, "writableLayer": server.runtime.writableLayer(containerID: container.id),
                        "privileged": container.config.linux.securityContext.privileged,
                    ])
                }
            }
        }
    }
}

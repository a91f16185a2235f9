import GRPCCore
import PodvisorCRI

extension RuntimeService {
    /// RuntimeReady while the VM host answers; NetworkReady is false until pod networking exists, with the
    /// reason saying so (kubelet then schedules only host-network-free pods… and reports the node NotReady).
    public func status(request: Runtime_V1_StatusRequest, context: ServerContext) async throws -> Runtime_V1_StatusResponse {
        let runtime = server.runtime.readiness()
        return .with {
            $0.status = .with {
                $0.conditions = [
                    .with {
                        $0.type = "RuntimeReady"
                        $0.status = runtime.ready
                        if !runtime.ready {
                            $0.reason = "RuntimeNotReady"
                            $0.message = runtime.message
                        }
                    },
                    .with {
                        $0.type = "NetworkReady"
                        $0.status = false
                        $0.reason = "NetworkPluginNotReady"
                        $0.message = "podvisor has no pod networking yet: pods get no IP (see Docs/limitations.md)"
                    },
                ]
            }
            $0.runtimeHandlers = [
                .with {
                    $0.name = ""
                    $0.features = .with { $0.recursiveReadOnlyMounts = true }
                },
                .with {
                    $0.name = server.config.runtimeHandler
                    $0.features = .with { $0.recursiveReadOnlyMounts = true }
                },
            ]
            if request.verbose {
                var info = server.runtime.hostInfo
                info["podCIDR"] = server.podCIDR.withLock { $0 }
                $0.info = CRIServer.verboseInfo(info)
            }
        }
    }
}

import GRPCCore
import PodvisorCRI

extension RuntimeService {
    /// RuntimeReady while the VM host answers; NetworkReady while the pod network's CNI configuration and its
    /// plugins are there (kubelet starts no pod but hostNetwork ones, and reports the node NotReady, until it
    /// is), with the reason naming what is missing.
    public func status(request: Runtime_V1_StatusRequest, context: ServerContext) async throws -> Runtime_V1_StatusResponse {
        let runtime = server.runtime.readiness()
        let network = server.runtime.networkReadiness()
        // containerd's health is its own condition: kubelet does not gate the node on it, VM pods keep working.
        let hostPods = await server.fromHostPods("Status") { try await $0.runtime.status(.init()).status.conditions }
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
                        $0.status = network.ready
                        $0.reason = network.reason
                        $0.message = network.message
                    },
                ]
                if let endpoint = server.hostPods?.endpoint {
                    let ready = hostPods?.allSatisfy(\.status) == true
                    $0.conditions.append(
                        .with {
                            $0.type = "HostPodsReady"
                            $0.status = ready
                            if !ready {
                                $0.reason = hostPods == nil ? "HostRuntimeUnavailable" : "HostRuntimeNotReady"
                                $0.message =
                                    hostPods.map { "containerd at \(endpoint): " + $0.filter { !$0.status }.map(\.message).joined(separator: "; ") }
                                    ?? "containerd's CRI at \(endpoint) does not answer"
                            }
                        })
                }
            }
            // User namespaces: the pod's own in the guest, its files idmapped on the host (Docs/architecture.md).
            let features = Runtime_V1_RuntimeHandlerFeatures.with {
                $0.recursiveReadOnlyMounts = true
                $0.userNamespaces = true
            }
            $0.runtimeHandlers = ["", server.config.runtimeHandler].map { name in
                .with {
                    $0.name = name
                    $0.features = features
                }
            }
            // ContainerStatus.user carries the identity the guest resolved; Strict leaves /etc/group out.
            $0.features = .with { $0.supplementalGroupsPolicy = true }
            if request.verbose {
                var info = server.runtime.hostInfo
                info["podCIDR"] = server.podCIDR.withLock { $0 }
                $0.info = CRIServer.verboseInfo(info)
            }
        }
    }
}

import GRPCCore
import PodvisorCRI
import PodvisorCore

extension RuntimeService {
    public func podSandboxStats(
        request: Runtime_V1_PodSandboxStatsRequest, context: ServerContext
    ) async throws
        -> Runtime_V1_PodSandboxStatsResponse
    {
        try await handle {
            let sandbox = try server.sandboxes.find(request.podSandboxID)
            let stats = await server.sandboxStats(sandbox)
            return .with { $0.stats = stats }
        }
    }
}

extension CRIServer {
    /// The pod's figures are the sum of its containers' (each container is a cgroup in the guest).
    func sandboxStats(_ sandbox: SandboxRecord) async -> Runtime_V1_PodSandboxStats {
        let config = sandbox.config
        var containerStats: [Runtime_V1_ContainerStats] = []
        var processes: UInt64 = 0
        for container in containers.all where container.sandboxID == sandbox.id && container.state == .running {
            let (stats, pids) = await stats(container)
            containerStats.append(stats)
            processes += pids
        }
        let now = Clock.nowNanoseconds()
        return .with {
            $0.attributes = .with {
                $0.id = sandbox.id
                $0.metadata = config.metadata
                $0.labels = config.labels
                $0.annotations = config.annotations
            }
            $0.linux = .with {
                $0.containers = containerStats
                $0.cpu = .with {
                    $0.timestamp = now
                    $0.usageCoreNanoSeconds = .with { $0.value = containerStats.reduce(0) { $0 + $1.cpu.usageCoreNanoSeconds.value } }
                }
                $0.memory = .with {
                    $0.timestamp = now
                    $0.workingSetBytes = .with { $0.value = containerStats.reduce(0) { $0 + $1.memory.workingSetBytes.value } }
                    $0.usageBytes = .with { $0.value = containerStats.reduce(0) { $0 + $1.memory.usageBytes.value } }
                }
                $0.process = .with {
                    $0.timestamp = now
                    $0.processCount = .with { $0.value = processes }
                }
            }
        }
    }
}

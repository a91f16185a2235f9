import Foundation
import GRPCCore
import PodvisorCRI
import PodvisorCore

extension RuntimeService {
    public func containerStats(
        request: Runtime_V1_ContainerStatsRequest, context: ServerContext
    ) async throws
        -> Runtime_V1_ContainerStatsResponse
    {
        try await handle {
            let container = try server.containers.find(request.containerID)
            let stats = await server.stats(container).stats
            return .with { $0.stats = stats }
        }
    }
}

extension CRIServer {
    /// cgroup figures from the agent for a created or running container (and its process count, which
    /// ContainerStats has no field for); the writable layer's usage from its upper directory on the host.
    func stats(_ container: ContainerRecord) async -> (stats: Runtime_V1_ContainerStats, pids: UInt64) {
        let config = container.config
        var stats = Runtime_V1_ContainerStats.with {
            $0.attributes = .with {
                $0.id = container.id
                $0.metadata = config.metadata
                $0.labels = config.labels
                $0.annotations = config.annotations
            }
            let upper = runtime.writableLayer(containerID: container.id)
            let usage = directoryUsage(upper)
            $0.writableLayer = .with {
                $0.timestamp = Clock.nowNanoseconds()
                $0.fsID = .with { $0.mountpoint = upper }
                $0.usedBytes = .with { $0.value = usage.bytes }
                $0.inodesUsed = .with { $0.value = usage.inodes }
            }
        }
        guard container.state == .running || container.state == .created, let pod = pod(container.sandboxID),
            let figures = try? await pod.usage(container.id)
        else { return (stats, 0) }
        stats.cpu = .with {
            $0.timestamp = figures.timestampNanoseconds
            $0.usageCoreNanoSeconds = .with { $0.value = figures.cpuNanoseconds }
        }
        stats.memory = .with {
            $0.timestamp = figures.timestampNanoseconds
            $0.workingSetBytes = .with { $0.value = figures.workingSetBytes }
            $0.usageBytes = .with { $0.value = figures.memoryBytes }
        }
        return (stats, figures.pids)
    }
}

import GRPCCore
import PodvisorCRI

extension RuntimeService {
    public func listContainerStats(
        request: Runtime_V1_ListContainerStatsRequest, context: ServerContext
    ) async throws
        -> Runtime_V1_ListContainerStatsResponse
    {
        let stats = await server.containerStatsList(request.filter) + server.hostContainerStats(request.filter)
        return .with { $0.stats = stats }
    }

    public func streamContainerStats(
        request: Runtime_V1_StreamContainerStatsRequest, response: RPCWriter<Runtime_V1_StreamContainerStatsResponse>,
        context: ServerContext
    ) async throws {
        for page in await (server.containerStatsList(request.filter) + server.hostContainerStats(request.filter)).pages() {
            try await response.write(.with { $0.containerStats = page })
        }
    }
}

extension CRIServer {
    /// Stats of containers that have not exited (kubelet's summary API wants the live ones).
    func containerStatsList(_ filter: Runtime_V1_ContainerStatsFilter) async -> [Runtime_V1_ContainerStats] {
        var result: [Runtime_V1_ContainerStats] = []
        for container in containers.all.sorted(by: { $0.createdAt < $1.createdAt })
        where container.state != .exited
            && (filter.id.isEmpty || container.id.hasPrefix(filter.id))
            && (filter.podSandboxID.isEmpty || container.sandboxID.hasPrefix(filter.podSandboxID))
            && matches(container.config.labels, selector: filter.labelSelector)
        {
            result.append(await stats(container).stats)
        }
        return result
    }
}

import GRPCCore
import PodvisorCRI

extension RuntimeService {
    public func listPodSandboxStats(
        request: Runtime_V1_ListPodSandboxStatsRequest, context: ServerContext
    ) async throws
        -> Runtime_V1_ListPodSandboxStatsResponse
    {
        let stats = await server.sandboxStatsList(request.filter) + server.hostSandboxStats(request.filter)
        return .with { $0.stats = stats }
    }

    public func streamPodSandboxStats(
        request: Runtime_V1_StreamPodSandboxStatsRequest, response: RPCWriter<Runtime_V1_StreamPodSandboxStatsResponse>,
        context: ServerContext
    ) async throws {
        for page in await (server.sandboxStatsList(request.filter) + server.hostSandboxStats(request.filter)).pages() {
            try await response.write(.with { $0.podSandboxStats = page })
        }
    }
}

extension CRIServer {
    /// Stats of ready sandboxes matching the id (prefix) and labels.
    func sandboxStatsList(_ filter: Runtime_V1_PodSandboxStatsFilter) async -> [Runtime_V1_PodSandboxStats] {
        var result: [Runtime_V1_PodSandboxStats] = []
        for sandbox in sandboxes.all.sorted(by: { $0.createdAt < $1.createdAt })
        where sandbox.state == .ready && (filter.id.isEmpty || sandbox.id.hasPrefix(filter.id))
            && matches(sandbox.config.labels, selector: filter.labelSelector)
        {
            result.append(await sandboxStats(sandbox))
        }
        return result
    }
}

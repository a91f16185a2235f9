import GRPCCore
import PodvisorCRI

extension RuntimeService {
    public func listPodSandbox(
        request: Runtime_V1_ListPodSandboxRequest, context: ServerContext
    ) async throws
        -> Runtime_V1_ListPodSandboxResponse
    {
        let items = await server.podSandboxes(request.filter)
        return .with { $0.items = items }
    }

    /// The same list in pages (kubelet's CRIListStreaming), for nodes with very many pods.
    public func streamPodSandboxes(
        request: Runtime_V1_StreamPodSandboxesRequest, response: RPCWriter<Runtime_V1_StreamPodSandboxesResponse>,
        context: ServerContext
    ) async throws {
        for page in await server.podSandboxes(request.filter).pages() {
            try await response.write(.with { $0.podSandboxes = page })
        }
    }
}

extension CRIServer {
    /// Filters: id (full or a unique prefix), state, labels; sorted by creation, oldest first. Host pods
    /// (containerd's) are among them.
    func podSandboxes(_ filter: Runtime_V1_PodSandboxFilter) async -> [Runtime_V1_PodSandbox] {
        let local = sandboxes.all
            .filter { filter.id.isEmpty || $0.id.hasPrefix(filter.id) }
            .map(podSandbox)
            .filter { !filter.hasState || $0.state == filter.state.state }
            .filter { matches($0.labels, selector: filter.labelSelector) }
        return (local + (await hostSandboxes(filter))).sorted { $0.createdAt < $1.createdAt }
    }
}

extension Array {
    /// Pages for the streaming list RPCs: small enough to stay far below gRPC's message size limit.
    func pages(of size: Int = 100) -> [[Element]] {
        stride(from: 0, to: count, by: size).map { Array(self[$0..<Swift.min($0 + size, count)]) }
    }
}

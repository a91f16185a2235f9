import GRPCCore
import PodvisorCRI

extension RuntimeService {
    public func listContainers(
        request: Runtime_V1_ListContainersRequest, context: ServerContext
    ) async throws
        -> Runtime_V1_ListContainersResponse
    {
        let containers = await server.containerList(request.filter)
        return .with { $0.containers = containers }
    }

    public func streamContainers(
        request: Runtime_V1_StreamContainersRequest, response: RPCWriter<Runtime_V1_StreamContainersResponse>, context: ServerContext
    ) async throws {
        for page in await server.containerList(request.filter).pages() {
            try await response.write(.with { $0.containers = page })
        }
    }
}

extension CRIServer {
    /// Filters: id and sandbox id (full or prefix), state, labels; oldest first. Host pods' containers
    /// (containerd's) are among them.
    func containerList(_ filter: Runtime_V1_ContainerFilter) async -> [Runtime_V1_Container] {
        let local = containers.all
            .filter { filter.id.isEmpty || $0.id.hasPrefix(filter.id) }
            .filter { filter.podSandboxID.isEmpty || $0.sandboxID.hasPrefix(filter.podSandboxID) }
            .map(container)
            .filter { !filter.hasState || $0.state == filter.state.state }
            .filter { matches($0.labels, selector: filter.labelSelector) }
        return (local + (await hostContainers(filter))).sorted { $0.createdAt < $1.createdAt }
    }
}

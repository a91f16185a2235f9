import GRPCCore
import PodvisorCRI

extension RuntimeService {
    /// Streams container lifecycle events (created, started, stopped, deleted) until the client goes away.
    public func getContainerEvents(
        request: Runtime_V1_GetEventsRequest, response: RPCWriter<Runtime_V1_ContainerEventResponse>, context: ServerContext
    ) async throws {
        let (id, events) = server.events.subscribe()
        defer { server.events.unsubscribe(id) }
        for await event in events {
            try await response.write(event)
        }
    }
}

import GRPCCore
import PodvisorCRI

extension RuntimeService {
    /// Streams container lifecycle events (created, started, stopped, deleted) until the client goes away.
    public func getContainerEvents(
        request: Runtime_V1_GetEventsRequest, response: RPCWriter<Runtime_V1_ContainerEventResponse>, context: ServerContext
    ) async throws {
        let (id, events) = server.events.subscribe()
        defer { server.events.unsubscribe(id) }
        // A client that goes away ends the stream even while no event comes (kubelet restarting, crictl's
        // Ctrl-C): otherwise each one would keep a subscriber, and a task, for the life of podvisord.
        try await withRPCCancellationHandler {
            for await event in events {
                try await response.write(event)
            }
        } onCancelRPC: { [events = server.events] in
            events.unsubscribe(id)
        }
    }
}

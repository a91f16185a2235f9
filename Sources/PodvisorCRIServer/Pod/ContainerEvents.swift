import Foundation
import PodvisorCRI
import Synchronization

/// Fan-out of container lifecycle events to every GetContainerEvents stream (kubelet's evented PLEG).
/// A slow subscriber loses old events rather than holding the runtime back.
final class ContainerEvents: Sendable {
    private let subscribers = Mutex<[UUID: AsyncStream<Runtime_V1_ContainerEventResponse>.Continuation]>([:])

    func publish(_ event: Runtime_V1_ContainerEventResponse) {
        for subscriber in subscribers.withLock({ Array($0.values) }) { subscriber.yield(event) }
    }

    func subscribe() -> (UUID, AsyncStream<Runtime_V1_ContainerEventResponse>) {
        let id = UUID()
        let (stream, continuation) = AsyncStream.makeStream(of: Runtime_V1_ContainerEventResponse.self, bufferingPolicy: .bufferingNewest(1024))
        subscribers.withLock { $0[id] = continuation }
        continuation.onTermination = { [weak self] _ in self?.unsubscribe(id) }
        return (id, stream)
    }

    func unsubscribe(_ id: UUID) {
        subscribers.withLock { $0.removeValue(forKey: id) }?.finish()
    }
}

import Foundation
import Synchronization

/// Fans a running container's output out to its attach sessions. The container's follower (which writes
/// the CRI log) publishes every chunk here after logging it; a session sees what is written after it attached.
final class ContainerAttachments: Sendable {
    struct Chunk: Sendable {
        let stream: ContainerLog.Stream
        let data: Data
    }

    private struct State {
        var subscribers: [String: [Int: AsyncStream<Chunk>.Continuation]] = [:]
        var nextID = 0
    }
    private let state = Mutex(State())

    /// The container's output from now on; ends when the container exits or the caller stops iterating.
    /// A subscriber that does not keep up (or never connects) loses the oldest chunks past a bound: the log
    /// has all of them.
    func subscribe(_ containerID: String) -> AsyncStream<Chunk> {
        let (stream, continuation) = AsyncStream.makeStream(of: Chunk.self, bufferingPolicy: .bufferingNewest(256))
        let id = state.withLock { state in
            defer { state.nextID += 1 }
            state.subscribers[containerID, default: [:]][state.nextID] = continuation
            return state.nextID
        }
        continuation.onTermination = { [weak self] _ in
            self?.state.withLock { _ = $0.subscribers[containerID]?.removeValue(forKey: id) }
        }
        return stream
    }

    func publish(_ containerID: String, _ stream: ContainerLog.Stream, _ data: Data) {
        let subscribers = state.withLock { $0.subscribers[containerID].map { Array($0.values) } ?? [] }
        for subscriber in subscribers { subscriber.yield(Chunk(stream: stream, data: data)) }
    }

    /// The container exited: every session ends.
    func finish(_ containerID: String) {
        let subscribers = state.withLock { $0.subscribers.removeValue(forKey: containerID).map { Array($0.values) } ?? [] }
        for subscriber in subscribers { subscriber.finish() }
    }
}

import NIOCore

/// The one writer of a connection: frames are queued by anyone and written by one task in queue order,
/// which is what stateful framing (SPDY's header compression) and interleaved streams need.
final class FrameWriter<Frame: Sendable>: Sendable {
    private struct Outgoing: Sendable {
        let frame: Frame
        let written: CheckedContinuation<Void, any Error>?
    }

    struct Closed: Error, CustomStringConvertible {
        public var description: String { "the streaming connection is closed" }
    }

    private let outgoing: AsyncStream<Outgoing>.Continuation
    private let queue: AsyncStream<Outgoing>

    init() {
        (queue, outgoing) = AsyncStream.makeStream(of: Outgoing.self)
    }

    /// Queues a frame without waiting for it.
    func enqueue(_ frame: Frame) {
        outgoing.yield(Outgoing(frame: frame, written: nil))
    }

    /// Queues a frame and waits until it is written (the caller's backpressure); throws once the connection is gone.
    func send(_ frame: Frame) async throws {
        try await withCheckedThrowingContinuation { (written: CheckedContinuation<Void, any Error>) in
            if case .terminated = outgoing.yield(Outgoing(frame: frame, written: written)) {
                written.resume(throwing: Closed())
            }
        }
    }

    /// Ends `run` once what is queued is written.
    func finish() { outgoing.finish() }

    /// Writes queued frames, each as `encode` turns it into what the channel takes, until `finish` or until
    /// the socket fails.
    func run<Written: Sendable>(_ outbound: NIOAsyncChannelOutboundWriter<Written>, _ encode: (Frame) -> Written) async {
        var failed = false
        for await item in queue {
            if !failed {
                do { try await outbound.write(encode(item.frame)) } catch { failed = true }
            }
            if failed { item.written?.resume(throwing: Closed()) } else { item.written?.resume() }
        }
    }
}

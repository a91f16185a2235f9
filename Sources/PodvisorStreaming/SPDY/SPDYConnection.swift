import NIOCore
import Synchronization

/// One SPDY/3.1 session over an upgraded connection, either side. One task reads frames (`run`), one task
/// writes them (`runWriter`), so header compression sees frames in wire order; everyone else enqueues.
///
/// Flow control is not enforced in either direction: the Kubernetes peers (spdystream) never send
/// WINDOW_UPDATE, and a sender that honoured SPDY's 64 KiB window would stall on them.
public final class SPDYConnection: Sendable {
    public enum Role: Sendable { case server, client }

    /// One stream: what the peer sends on it arrives in `data`, which ends at the peer's FIN, a reset
    /// or the end of the connection.
    public final class Stream: Sendable {
        public let id: UInt32
        public let headers: SPDYHeaders
        public let data: AsyncStream<[UInt8]>
        let continuation: AsyncStream<[UInt8]>.Continuation
        private let reset = Mutex(false)

        /// The peer ended the stream with RST_STREAM (abandoned it) rather than FIN (finished sending).
        public var wasReset: Bool { reset.withLock { $0 } }

        func markReset() { reset.withLock { $0 = true } }

        init(id: UInt32, headers: SPDYHeaders) {
            self.id = id
            self.headers = headers
            (data, continuation) = AsyncStream.makeStream(of: [UInt8].self)
        }
    }

    private struct State {
        var streams: [UInt32: Stream] = [:]
        /// Client streams are odd, server streams even.
        var nextStreamID: UInt32
    }

    private let role: Role
    private let state: Mutex<State>
    private let writer = FrameWriter<SPDYFrame>()
    /// Streams the peer opened, in order.
    public let incoming: AsyncStream<Stream>
    private let incomingContinuation: AsyncStream<Stream>.Continuation

    public init(role: Role) {
        self.role = role
        state = Mutex(State(nextStreamID: role == .client ? 1 : 2))
        (incoming, incomingContinuation) = AsyncStream.makeStream(of: Stream.self)
    }

    /// Reads frames until the peer closes the connection or breaks the protocol; then every stream ends.
    func run(_ reader: ByteReader) async {
        let decoder = SPDYFrameDecoder()
        decoder.feed(reader.takeBuffered())
        defer { endAllStreams() }
        do {
            while true {
                while let frame = try decoder.nextFrame() { handle(frame) }
                guard let bytes = try await reader.next() else { return }
                decoder.feed(bytes)
            }
        } catch {
            enqueue(.goAway(lastGoodStream: 0, status: SPDYFrame.protocolError))
        }
    }

    /// Writes queued frames until `finishWriting`, or until the socket fails.
    func runWriter(_ outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>) async {
        let encoder = SPDYFrameEncoder()
        await writer.run(outbound) { ByteBuffer(bytes: encoder.encode($0)) }
    }

    /// Ends the writer once what is queued is written.
    func finishWriting() { writer.finish() }

    private func handle(_ frame: SPDYFrame) {
        switch frame {
        case .synStream(let id, let fin, let headers):
            let stream = Stream(id: id, headers: headers)
            state.withLock { $0.streams[id] = stream }
            if fin { stream.continuation.finish() }
            // The Kubernetes client waits for each stream's reply before it opens the next.
            enqueue(.synReply(stream: id, fin: false, headers: [:]))
            incomingContinuation.yield(stream)
        case .data(let id, let fin, let payload):
            guard let stream = state.withLock({ $0.streams[id] }) else { return }
            if !payload.isEmpty { stream.continuation.yield(payload) }
            if fin { stream.continuation.finish() }
        case .rstStream(let id, _):
            let stream = state.withLock { $0.streams[id] }
            stream?.markReset()
            stream?.continuation.finish()
        case .headers(let id, true, _), .synReply(let id, true, _):
            state.withLock { $0.streams[id] }?.continuation.finish()
        case .ping(let id):
            // Pings from the peer (clients use odd ids, servers even) are echoed; our own are not sent.
            let peerParity: UInt32 = role == .server ? 1 : 0
            if id & 1 == peerParity { enqueue(.ping(id: id)) }
        case .synReply, .headers, .goAway, .windowUpdate, .ignored:
            break
        }
    }

    private func endAllStreams() {
        let streams = state.withLock { $0.streams.values }
        for stream in streams { stream.continuation.finish() }
        incomingContinuation.finish()
    }

    private func enqueue(_ frame: SPDYFrame) { writer.enqueue(frame) }

    /// Queues a frame and waits until it is written (the caller's backpressure); throws once the connection is gone.
    public func send(_ frame: SPDYFrame) async throws { try await writer.send(frame) }

    /// Sends bytes on a stream in frames of at most 32 KiB.
    public func send(_ bytes: [UInt8], on stream: UInt32) async throws {
        var offset = 0
        while offset < bytes.count {
            let end = min(bytes.count, offset + 32 * 1024)
            try await send(.data(stream: stream, fin: false, payload: Array(bytes[offset..<end])))
            offset = end
        }
    }

    /// Half-closes our side of a stream.
    public func finish(_ stream: UInt32) async {
        try? await send(.data(stream: stream, fin: true, payload: []))
    }

    /// Opens a stream (the client side of Kubernetes streaming opens them all).
    public func open(_ headers: SPDYHeaders) async throws -> Stream {
        let stream = state.withLock { state in
            let stream = Stream(id: state.nextStreamID, headers: headers)
            state.streams[stream.id] = stream
            state.nextStreamID += 2
            return stream
        }
        try await send(.synStream(stream: stream.id, fin: false, headers: headers))
        return stream
    }
}

/// Reads an inbound NIO byte stream; bytes read past an HTTP head are handed back for the next reader.
/// Used by one task at a time.
final class ByteReader: @unchecked Sendable {
    private var iterator: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator
    private var buffered: [UInt8] = []

    init(_ inbound: NIOAsyncChannelInboundStream<ByteBuffer>) {
        iterator = inbound.makeAsyncIterator()
    }

    /// The next bytes off the wire; nil at the end of the connection.
    func next() async throws -> [UInt8]? {
        if !buffered.isEmpty { return takeBuffered() }
        guard let buffer = try await iterator.next() else { return nil }
        return Array(buffer.readableBytesView)
    }

    func putBack(_ bytes: [UInt8]) { buffered = bytes + buffered }

    /// Reads to the end of the connection and keeps nothing: for when handlers after it take the bytes.
    func drain() async {
        while (try? await iterator.next()) != nil {}
    }

    func takeBuffered() -> [UInt8] {
        defer { buffered = [] }
        return buffered
    }

    /// Reads up to the blank line that ends an HTTP/1.1 head; what follows it stays buffered.
    func readHead(limit: Int = 16 * 1024) async throws -> [UInt8]? {
        var head: [UInt8] = []
        let terminator: [UInt8] = Array("\r\n\r\n".utf8)
        while true {
            if let end = head.firstRange(of: terminator)?.upperBound {
                putBack(Array(head[end...]))
                return Array(head[..<end])
            }
            guard head.count <= limit, let bytes = try await next() else { return nil }
            head += bytes
        }
    }
}

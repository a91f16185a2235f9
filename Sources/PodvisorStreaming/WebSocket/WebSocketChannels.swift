import NIOCore
import NIOWebSocket
import Synchronization

/// The server side of Kubernetes' remote command protocol over WebSocket: one connection, every message
/// binary with a first byte that names the channel (stdin 0, stdout 1, stderr 2, error 3, resize 4), and in
/// v5 a message `[255, channel]` that closes the client's side of a channel (stdin's end). RFC 6455 itself
/// (the handshake's accept key, framing, masking, fragments) is NIOWebSocket's, in the connection's pipeline.
final class WebSocketChannels: Sendable {
    typealias Connection = NIOAsyncChannel<WebSocketFrame, WebSocketFrame>

    static let closeSignal: UInt8 = 255
    /// The largest message accepted from a peer, in one frame or in fragments (Kubernetes clients send stdin
    /// in small pieces).
    static let maxMessage = 16 << 20

    /// Answers handshakes the server has already accepted, and puts NIOWebSocket's handlers after the
    /// connection's byte stream: frames over the limit, and fragments out of order or too many (fragments of
    /// 4 KiB, gorilla/websocket's and so client-go's, can fill a message), fail the inbound stream.
    static let upgrader = NIOTypedWebSocketServerUpgrader<Connection>(
        maxFrameSize: maxMessage, enableAutomaticErrorHandling: false,
        shouldUpgrade: { channel, _ in channel.eventLoop.makeSucceededFuture([:]) },
        upgradePipelineHandler: { channel, _ in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(
                    NIOWebSocketFrameAggregator(
                        minNonFinalFragmentSize: 0, maxAccumulatedFrameCount: maxMessage / 4096, maxAccumulatedFrameSize: maxMessage))
                return try Connection(wrappingChannelSynchronously: channel)
            }
        })

    let stdin: AsyncStream<[UInt8]>
    let resize: AsyncStream<[UInt8]>
    private let stdinContinuation: AsyncStream<[UInt8]>.Continuation
    private let resizeContinuation: AsyncStream<[UInt8]>.Continuation
    private let writer = FrameWriter<WebSocketFrame>()
    private let closeSent = Mutex(false)

    init() {
        (stdin, stdinContinuation) = AsyncStream.makeStream(of: [UInt8].self)
        (resize, resizeContinuation) = AsyncStream.makeStream(of: [UInt8].self)
    }

    static func channel(_ type: StreamType) -> UInt8 {
        switch type {
        case .stdin: 0
        case .stdout: 1
        case .stderr: 2
        case .error: 3
        case .resize: 4
        }
    }

    /// Reads messages until the client closes the connection (or sends a close frame, which is answered).
    func run(_ messages: NIOAsyncChannelInboundStream<WebSocketFrame>) async {
        defer {
            stdinContinuation.finish()
            resizeContinuation.finish()
        }
        do {
            for try await frame in messages {
                switch frame.opcode {
                // No extension was negotiated, so reserved bits and opcodes are the peer's error (NIO's decoder
                // leaves them to the endpoint).
                case _ where !frame.reservedBits.isEmpty: return close(.protocolError)
                case .ping: writer.enqueue(WebSocketFrame(fin: true, opcode: .pong, data: frame.unmaskedData))
                case .pong: break
                case .binary, .text: deliver(frame.unmaskedData)
                case .connectionClose: return close(.normalClosure)
                default: return close(.protocolError)
                }
            }
        } catch {
            close(.protocolError)
        }
    }

    private func deliver(_ message: ByteBuffer) {
        var data = message
        guard let channel = data.readInteger(as: UInt8.self) else { return }
        switch channel {
        case Self.channel(.stdin): if data.readableBytes > 0 { stdinContinuation.yield(Array(data.readableBytesView)) }
        case Self.channel(.resize): resizeContinuation.yield(Array(data.readableBytesView))
        case Self.closeSignal where data.readableBytesView.first == Self.channel(.stdin): stdinContinuation.finish()
        default: break
        }
    }

    func runWriter(_ outbound: NIOAsyncChannelOutboundWriter<WebSocketFrame>) async {
        await writer.run(outbound) { $0 }
    }

    /// Sends bytes on a channel in messages of at most 32 KiB; returns once they are written.
    func send(_ bytes: [UInt8], on type: StreamType) async throws {
        var offset = 0
        repeat {
            let end = min(bytes.count, offset + 32 * 1024)
            var message = ByteBuffer(integer: Self.channel(type))
            message.writeBytes(bytes[offset..<end])
            try await writer.send(WebSocketFrame(fin: true, opcode: .binary, data: message))
            offset = end
        } while offset < bytes.count
    }

    /// Sends the close frame (once) and ends the writer: nothing may follow a close frame.
    func close(_ code: WebSocketErrorCode = .normalClosure) {
        let first = closeSent.withLock { sent in
            defer { sent = true }
            return !sent
        }
        guard first else { return }
        writer.enqueue(WebSocketFrame(fin: true, opcode: .connectionClose, data: ByteBuffer(integer: UInt16(webSocketErrorCode: code))))
        writer.finish()
    }
}

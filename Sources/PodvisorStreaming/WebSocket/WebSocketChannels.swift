import NIOCore
import Synchronization

/// The server side of Kubernetes' remote command protocol over WebSocket: one connection, every message
/// a binary frame whose first byte is the channel (stdin 0, stdout 1, stderr 2, error 3, resize 4), and in
/// v5 a message `[255, channel]` that closes the client's side of a channel (stdin's end).
final class WebSocketChannels: Sendable {
    static let closeSignal: UInt8 = 255

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

    /// Reads frames until the client closes the connection (or sends a close frame, which is answered).
    func run(_ reader: ByteReader) async {
        let decoder = WebSocketFrameDecoder()
        decoder.feed(reader.takeBuffered())
        defer {
            stdinContinuation.finish()
            resizeContinuation.finish()
        }
        var message: [UInt8] = []
        do {
            while true {
                while let frame = try decoder.nextFrame() {
                    switch frame.opcode {
                    case .ping: writer.enqueue(WebSocketFrame(opcode: .pong, payload: frame.payload))
                    case .pong: break
                    case .close:
                        sendClose(WebSocketFrame.normalClosure)
                        return
                    case .binary, .text, .continuation:
                        message += frame.payload
                        guard message.count <= WebSocketFrame.maxPayload else { throw WebSocketError.protocolError("message too large") }
                        if frame.fin {
                            deliver(message)
                            message = []
                        }
                    }
                }
                guard let bytes = try await reader.next() else { return }
                decoder.feed(bytes)
            }
        } catch {
            sendClose(1002)
        }
    }

    private func deliver(_ message: [UInt8]) {
        guard let channel = message.first else { return }
        let data = Array(message.dropFirst())
        switch channel {
        case Self.channel(.stdin): if !data.isEmpty { stdinContinuation.yield(data) }
        case Self.channel(.resize): resizeContinuation.yield(data)
        case Self.closeSignal where data.first == Self.channel(.stdin): stdinContinuation.finish()
        default: break
        }
    }

    func runWriter(_ outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>) async {
        await writer.run(outbound) { ByteBuffer(bytes: $0.encoded()) }
    }

    /// Sends bytes on a channel in messages of at most 32 KiB; returns once they are written.
    func send(_ bytes: [UInt8], on type: StreamType) async throws {
        var offset = 0
        repeat {
            let end = min(bytes.count, offset + 32 * 1024)
            try await writer.send(WebSocketFrame(opcode: .binary, payload: [Self.channel(type)] + bytes[offset..<end]))
            offset = end
        } while offset < bytes.count
    }

    /// Sends the close frame (once) and ends the writer.
    func close() {
        sendClose(WebSocketFrame.normalClosure)
        writer.finish()
    }

    private func sendClose(_ code: UInt16) {
        let first = closeSent.withLock { sent in
            defer { sent = true }
            return !sent
        }
        if first { writer.enqueue(.close(code)) }
    }
}

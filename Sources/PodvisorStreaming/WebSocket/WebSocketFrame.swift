import Crypto
import Foundation

/// RFC 6455 frames, as Kubernetes' WebSocket streaming (`crictl --transport websocket`, v5.channel.k8s.io)
/// uses them: binary messages whose first byte names the channel, pings to be answered with pongs, and a
/// close frame at the end.
struct WebSocketFrame: Equatable, Sendable {
    enum Opcode: UInt8 {
        case continuation = 0, text = 1, binary = 2, close = 8, ping = 9, pong = 10

        var isControl: Bool { rawValue >= 8 }
    }

    var fin = true
    var opcode: Opcode
    var payload: [UInt8]

    /// The largest message accepted from a peer (Kubernetes clients send stdin in small pieces).
    static let maxPayload = 16 << 20
    static let normalClosure: UInt16 = 1000

    /// The answer to a handshake's Sec-WebSocket-Key (RFC 6455 §4.2.2).
    static func accept(key: String) -> String {
        let digest = Insecure.SHA1.hash(data: Data((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").utf8))
        return Data(digest).base64EncodedString()
    }

    static func close(_ code: UInt16 = normalClosure) -> WebSocketFrame {
        WebSocketFrame(opcode: .close, payload: [UInt8(code >> 8), UInt8(code & 0xff)])
    }

    /// Clients mask what they send (`mask`: 4 bytes); servers do not.
    func encoded(mask: [UInt8]? = nil) -> [UInt8] {
        var out: [UInt8] = [(fin ? 0x80 : 0) | opcode.rawValue]
        let maskBit: UInt8 = mask == nil ? 0 : 0x80
        switch payload.count {
        case ..<126: out.append(maskBit | UInt8(payload.count))
        case ..<65536: out += [maskBit | 126, UInt8(payload.count >> 8), UInt8(payload.count & 0xff)]
        default:
            out.append(maskBit | 127)
            out += (0..<8).reversed().map { UInt8((UInt64(payload.count) >> (8 * UInt64($0))) & 0xff) }
        }
        guard let mask else { return out + payload }
        return out + mask + payload.enumerated().map { $0.element ^ mask[$0.offset % 4] }
    }
}

enum WebSocketError: Error, Equatable, CustomStringConvertible {
    case protocolError(String)

    var description: String {
        switch self {
        case .protocolError(let what): "WebSocket protocol error: \(what)"
        }
    }
}

/// Turns a connection's bytes into frames (masked or not).
final class WebSocketFrameDecoder {
    private var input: [UInt8] = []

    func feed(_ bytes: [UInt8]) { input += bytes }

    func nextFrame() throws(WebSocketError) -> WebSocketFrame? {
        guard input.count >= 2 else { return nil }
        guard input[0] & 0x70 == 0 else { throw .protocolError("reserved bits set") }
        let fin = input[0] & 0x80 != 0
        guard let opcode = WebSocketFrame.Opcode(rawValue: input[0] & 0x0f) else {
            throw .protocolError("unknown opcode \(input[0] & 0x0f)")
        }
        let masked = input[1] & 0x80 != 0
        var length = Int(input[1] & 0x7f)
        var offset = 2
        if length == 126 {
            guard input.count >= 4 else { return nil }
            length = Int(input[2]) << 8 | Int(input[3])
            offset = 4
        } else if length == 127 {
            guard input.count >= 10 else { return nil }
            let long = input[2..<10].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            guard long <= UInt64(WebSocketFrame.maxPayload) else { throw .protocolError("a \(long)-byte frame") }
            length = Int(long)
            offset = 10
        }
        guard length <= WebSocketFrame.maxPayload else { throw .protocolError("a \(length)-byte frame") }
        if opcode.isControl && (length > 125 || !fin) { throw .protocolError("malformed control frame") }
        let mask = masked ? Array(input[offset..<min(offset + 4, input.count)]) : []
        if masked { offset += 4 }
        guard input.count >= offset + length else { return nil }
        var payload = Array(input[offset..<(offset + length)])
        if masked { for i in payload.indices { payload[i] ^= mask[i % 4] } }
        input.removeFirst(offset + length)
        return WebSocketFrame(fin: fin, opcode: opcode, payload: payload)
    }
}

/// SPDY/3.1 frames, the transport Kubernetes' streaming (exec, attach, port-forward) still runs on between
/// kubelet, crictl, critest and a CRI runtime's streaming server: several byte streams over one upgraded
/// HTTP/1.1 connection. Only what those peers use is modelled; other control frames are skipped.
public enum SPDYFrame: Equatable, Sendable {
    case data(stream: UInt32, fin: Bool, payload: [UInt8])
    case synStream(stream: UInt32, fin: Bool, headers: SPDYHeaders)
    case synReply(stream: UInt32, fin: Bool, headers: SPDYHeaders)
    case rstStream(stream: UInt32, status: UInt32)
    case ping(id: UInt32)
    case goAway(lastGoodStream: UInt32, status: UInt32)
    case headers(stream: UInt32, fin: Bool, headers: SPDYHeaders)
    /// Peers of the Kubernetes kind neither send nor honour window updates; they are read and ignored.
    case windowUpdate(stream: UInt32, delta: UInt32)
    /// SETTINGS and frame types this implementation has no use for.
    case ignored(type: UInt16)

    static let version: UInt16 = 3

    enum ControlType: UInt16 {
        case synStream = 1, synReply = 2, rstStream = 3, settings = 4, ping = 6, goAway = 7, headers = 8, windowUpdate = 9
    }

    static let flagFin: UInt8 = 0x01
    /// The GOAWAY status for a peer that broke the protocol.
    static let protocolError: UInt32 = 1
}

/// Header names are lowercase; a name may carry several values (sent NUL-separated).
public typealias SPDYHeaders = [String: [String]]

public enum SPDYFramingError: Error, Equatable, CustomStringConvertible {
    case unsupportedVersion(UInt16)
    case malformed(String)
    case compression(String)

    public var description: String {
        switch self {
        case .unsupportedVersion(let v): "SPDY version \(v) is not supported (3 is)"
        case .malformed(let what): "malformed SPDY frame: \(what)"
        case .compression(let what): what
        }
    }
}

/// Turns a connection's bytes into frames. Header blocks share one zlib stream per direction, so a
/// connection has one decoder, fed in order by its reader, and one encoder, used in order by its writer.
final class SPDYFrameDecoder {
    private var input: [UInt8] = []
    private var position = 0
    private let decompressor = SPDYHeaderDecompressor()

    func feed(_ bytes: [UInt8]) {
        if position > 0 && position == input.count {
            input.removeAll(keepingCapacity: true)
            position = 0
        }
        input += bytes
    }

    /// The next complete frame, nil until more bytes arrive.
    func nextFrame() throws(SPDYFramingError) -> SPDYFrame? {
        guard input.count - position >= 8 else { return nil }
        let word0 = readUInt32(at: position)
        let flags = input[position + 4]
        let length = Int(readUInt32(at: position + 4) & 0x00ff_ffff)
        guard input.count - position >= 8 + length else { return nil }
        let body = Array(input[(position + 8)..<(position + 8 + length)])
        position += 8 + length
        if position > 1 << 20 {
            input.removeSubrange(0..<position)
            position = 0
        }
        guard word0 & 0x8000_0000 != 0 else {
            return .data(stream: word0 & 0x7fff_ffff, fin: flags & SPDYFrame.flagFin != 0, payload: body)
        }
        let version = UInt16((word0 >> 16) & 0x7fff)
        guard version == SPDYFrame.version else { throw .unsupportedVersion(version) }
        let fin = flags & SPDYFrame.flagFin != 0
        guard let type = SPDYFrame.ControlType(rawValue: UInt16(word0 & 0xffff)) else { return .ignored(type: UInt16(word0 & 0xffff)) }
        func need(_ n: Int) throws(SPDYFramingError) {
            if body.count < n { throw .malformed("\(type) frame of \(body.count) bytes") }
        }
        func word(_ offset: Int) -> UInt32 {
            UInt32(body[offset]) << 24 | UInt32(body[offset + 1]) << 16 | UInt32(body[offset + 2]) << 8 | UInt32(body[offset + 3])
        }
        switch type {
        case .synStream:
            try need(10)
            return .synStream(stream: word(0) & 0x7fff_ffff, fin: fin, headers: try headerBlock(Array(body[10...])))
        case .synReply:
            try need(4)
            return .synReply(stream: word(0) & 0x7fff_ffff, fin: fin, headers: try headerBlock(Array(body[4...])))
        case .headers:
            try need(4)
            return .headers(stream: word(0) & 0x7fff_ffff, fin: fin, headers: try headerBlock(Array(body[4...])))
        case .rstStream:
            try need(8)
            return .rstStream(stream: word(0) & 0x7fff_ffff, status: word(4))
        case .ping:
            try need(4)
            return .ping(id: word(0))
        case .goAway:
            try need(8)
            return .goAway(lastGoodStream: word(0) & 0x7fff_ffff, status: word(4))
        case .windowUpdate:
            try need(8)
            return .windowUpdate(stream: word(0) & 0x7fff_ffff, delta: word(4) & 0x7fff_ffff)
        case .settings:
            return .ignored(type: type.rawValue)
        }
    }

    private func readUInt32(at offset: Int) -> UInt32 {
        UInt32(input[offset]) << 24 | UInt32(input[offset + 1]) << 16 | UInt32(input[offset + 2]) << 8 | UInt32(input[offset + 3])
    }

    private func headerBlock(_ compressed: [UInt8]) throws(SPDYFramingError) -> SPDYHeaders {
        let block: [UInt8]
        do { block = try decompressor.decompress(compressed) } catch { throw .compression(error.description) }
        return try SPDYFrameEncoder.parseHeaderBlock(block)
    }
}

/// Turns frames into a connection's bytes (see SPDYFrameDecoder).
final class SPDYFrameEncoder {
    private let compressor = SPDYHeaderCompressor()

    func encode(_ frame: SPDYFrame) -> [UInt8] {
        switch frame {
        case .data(let stream, let fin, let payload):
            var out: [UInt8] = []
            out.reserveCapacity(8 + payload.count)
            out.appendBigEndian(stream & 0x7fff_ffff)
            out.appendBigEndian(UInt32(fin ? SPDYFrame.flagFin : 0) << 24 | UInt32(payload.count))
            return out + payload
        case .synStream(let stream, let fin, let headers):
            // Associated-to stream 0, priority 0, slot 0.
            var body: [UInt8] = []
            body.appendBigEndian(stream)
            body.appendBigEndian(0)
            body += [0, 0]
            return control(.synStream, fin: fin, body + compressor.compress(Self.headerBlock(headers)))
        case .synReply(let stream, let fin, let headers):
            var body: [UInt8] = []
            body.appendBigEndian(stream)
            return control(.synReply, fin: fin, body + compressor.compress(Self.headerBlock(headers)))
        case .headers(let stream, let fin, let headers):
            var body: [UInt8] = []
            body.appendBigEndian(stream)
            return control(.headers, fin: fin, body + compressor.compress(Self.headerBlock(headers)))
        case .rstStream(let stream, let status):
            return control(.rstStream, fin: false, words(stream, status))
        case .ping(let id):
            return control(.ping, fin: false, words(id))
        case .goAway(let lastGood, let status):
            return control(.goAway, fin: false, words(lastGood, status))
        case .windowUpdate(let stream, let delta):
            return control(.windowUpdate, fin: false, words(stream, delta))
        case .ignored:
            return []
        }
    }

    private func words(_ values: UInt32...) -> [UInt8] {
        var out: [UInt8] = []
        for value in values { out.appendBigEndian(value) }
        return out
    }

    private func control(_ type: SPDYFrame.ControlType, fin: Bool, _ body: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.appendBigEndian(0x8000_0000 | UInt32(SPDYFrame.version) << 16 | UInt32(type.rawValue))
        out.appendBigEndian(UInt32(fin ? SPDYFrame.flagFin : 0) << 24 | UInt32(body.count))
        return out + body
    }

    /// Uncompressed header block: a count, then length-prefixed names and NUL-joined values.
    static func headerBlock(_ headers: SPDYHeaders) -> [UInt8] {
        var out: [UInt8] = []
        out.appendBigEndian(UInt32(headers.count))
        for (name, values) in headers.sorted(by: { $0.key < $1.key }) {
            let name = Array(name.lowercased().utf8)
            let value = Array(values.joined(separator: "\0").utf8)
            out.appendBigEndian(UInt32(name.count))
            out += name
            out.appendBigEndian(UInt32(value.count))
            out += value
        }
        return out
    }

    static func parseHeaderBlock(_ block: [UInt8]) throws(SPDYFramingError) -> SPDYHeaders {
        var offset = 0
        func next() throws(SPDYFramingError) -> [UInt8] {
            guard block.count - offset >= 4 else { throw .malformed("header block truncated") }
            let n = Int(UInt32(block[offset]) << 24 | UInt32(block[offset + 1]) << 16 | UInt32(block[offset + 2]) << 8 | UInt32(block[offset + 3]))
            offset += 4
            guard block.count - offset >= n else { throw .malformed("header block truncated") }
            defer { offset += n }
            return Array(block[offset..<(offset + n)])
        }
        guard block.count >= 4 else { throw .malformed("header block truncated") }
        let count = Int(UInt32(block[0]) << 24 | UInt32(block[1]) << 16 | UInt32(block[2]) << 8 | UInt32(block[3]))
        offset = 4
        var headers = SPDYHeaders()
        for _ in 0..<count {
            let name = String(decoding: try next(), as: UTF8.self).lowercased()
            let values = String(decoding: try next(), as: UTF8.self).split(separator: "\0", omittingEmptySubsequences: false).map(String.init)
            headers[name, default: []] += values
        }
        return headers
    }
}

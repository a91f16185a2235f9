/// One ttrpc frame: a 10-byte big-endian header (payload length u32, stream id u32, type u8, flags u8)
/// followed by the payload. See containerd/ttrpc PROTOCOL.md.
public struct TTRPCFrame: Sendable, Equatable {
    public enum Kind: UInt8, Sendable {
        case request = 1
        case response = 2
        case data = 3
    }

    /// Flags of data frames (and of requests that open a stream).
    public struct Flags: OptionSet, Sendable, Equatable {
        public let rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }
        public static let remoteClosed = Flags(rawValue: 0x1)
        public static let remoteOpen = Flags(rawValue: 0x2)
        public static let noData = Flags(rawValue: 0x4)
    }

    public static let headerLength = 10
    /// ttrpc's default ceiling; a frame announcing more is refused before its payload is read.
    public static let maxPayloadLength = 4 << 20

    public var streamID: UInt32
    public var kind: Kind
    public var flags: Flags
    public var payload: [UInt8]

    public init(streamID: UInt32, kind: Kind, flags: Flags = [], payload: [UInt8]) {
        self.streamID = streamID
        self.kind = kind
        self.flags = flags
        self.payload = payload
    }

    public func encoded() throws(TTRPCFramingError) -> [UInt8] {
        guard payload.count <= Self.maxPayloadLength else { throw .oversized(payload.count) }
        var bytes = [UInt8]()
        bytes.reserveCapacity(Self.headerLength + payload.count)
        bytes.appendBigEndian(UInt32(payload.count))
        bytes.appendBigEndian(streamID)
        bytes.append(kind.rawValue)
        bytes.append(flags.rawValue)
        bytes.append(contentsOf: payload)
        return bytes
    }
}

public enum TTRPCFramingError: Error, Equatable, CustomStringConvertible {
    case oversized(Int)
    case unknownKind(UInt8)
    case zeroStreamID
    /// The stream ended inside a frame.
    case truncated(bufferedBytes: Int)

    public var description: String {
        switch self {
        case .oversized(let n): "frame of \(n) bytes exceeds the \(TTRPCFrame.maxPayloadLength)-byte limit"
        case .unknownKind(let k): "unknown ttrpc frame type \(k)"
        case .zeroStreamID: "ttrpc frame with stream id 0"
        case .truncated(let n): "connection closed inside a frame (\(n) bytes buffered)"
        }
    }
}

/// Incremental decoder: feed it whatever a read returned, take out every complete frame.
/// A malformed header is reported as soon as its 10 bytes are in, before any payload is buffered.
public struct TTRPCFrameDecoder: Sendable {
    private var buffer: [UInt8] = []
    private var start = 0

    public init() {}

    public var bufferedByteCount: Int { buffer.count - start }

    public mutating func feed<Bytes: Collection>(_ bytes: Bytes) where Bytes.Element == UInt8 {
        if start > 0 && start == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            start = 0
        }
        buffer.append(contentsOf: bytes)
    }

    public mutating func nextFrame() throws(TTRPCFramingError) -> TTRPCFrame? {
        guard bufferedByteCount >= TTRPCFrame.headerLength else { return nil }
        let length = Int(buffer.readBigEndianUInt32(at: start))
        let streamID = buffer.readBigEndianUInt32(at: start + 4)
        let rawKind = buffer[start + 8]
        let flags = TTRPCFrame.Flags(rawValue: buffer[start + 9])
        guard length <= TTRPCFrame.maxPayloadLength else { throw .oversized(length) }
        guard let kind = TTRPCFrame.Kind(rawValue: rawKind) else { throw .unknownKind(rawKind) }
        guard streamID != 0 else { throw .zeroStreamID }
        guard bufferedByteCount >= TTRPCFrame.headerLength + length else { return nil }
        let payloadStart = start + TTRPCFrame.headerLength
        let payload = Array(buffer[payloadStart..<payloadStart + length])
        start = payloadStart + length
        // Compact once the consumed prefix dominates, so long-lived connections stay small.
        if start > 64 * 1024 && start * 2 > buffer.count {
            buffer.removeFirst(start)
            start = 0
        }
        return TTRPCFrame(streamID: streamID, kind: kind, flags: flags, payload: payload)
    }

    /// Call at end of stream: a partial frame left over is an error.
    public func finish() throws(TTRPCFramingError) {
        if bufferedByteCount > 0 { throw .truncated(bufferedBytes: bufferedByteCount) }
    }
}

extension [UInt8] {
    mutating func appendBigEndian(_ value: UInt32) {
        append(UInt8(truncatingIfNeeded: value >> 24))
        append(UInt8(truncatingIfNeeded: value >> 16))
        append(UInt8(truncatingIfNeeded: value >> 8))
        append(UInt8(truncatingIfNeeded: value))
    }

    func readBigEndianUInt32(at index: Int) -> UInt32 {
        UInt32(self[index]) << 24 | UInt32(self[index + 1]) << 16 | UInt32(self[index + 2]) << 8 | UInt32(self[index + 3])
    }
}

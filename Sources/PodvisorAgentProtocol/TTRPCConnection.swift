import Synchronization

/// Frames over a byte stream: one reader, any number of writers.
public final class TTRPCConnection: Sendable {
    public let stream: FileDescriptorStream
    private let decoder = Mutex(TTRPCFrameDecoder())
    private let writeLock = Mutex(())

    public init(stream: FileDescriptorStream) {
        self.stream = stream
    }

    public enum ConnectionError: Error, CustomStringConvertible {
        case framing(TTRPCFramingError)
        case system(SystemError)

        public var description: String {
            switch self {
            case .framing(let e): e.description
            case .system(let e): e.description
            }
        }
    }

    /// The next complete frame, or nil at a clean end of stream. Only one thread may call this.
    public func receive() throws(ConnectionError) -> TTRPCFrame? {
        while true {
            let next: Result<TTRPCFrame?, TTRPCFramingError> = decoder.withLock { d in
                Result { () throws(TTRPCFramingError) in try d.nextFrame() }
            }
            switch next {
            case .failure(let e): throw .framing(e)
            case .success(.some(let frame)): return frame
            case .success(.none): break
            }
            let bytes: [UInt8]
            do { bytes = try stream.read() } catch { throw .system(error) }
            if bytes.isEmpty {
                do { try decoder.withLock { d throws(TTRPCFramingError) in try d.finish() } } catch { throw .framing(error) }
                return nil
            }
            decoder.withLock { $0.feed(bytes) }
        }
    }

    public func send(_ frame: TTRPCFrame) throws(ConnectionError) {
        let bytes: [UInt8]
        do { bytes = try frame.encoded() } catch { throw .framing(error) }
        do { try writeLock.withLock { _ throws(SystemError) in try stream.write(bytes) } } catch { throw .system(error) }
    }
}

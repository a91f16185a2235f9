#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A failed system call, with its errno.
public struct SystemError: Error, Sendable, Equatable, CustomStringConvertible {
    public var operation: String
    public var errno: Int32

    public init(_ operation: String, errno: Int32) {
        self.operation = operation
        self.errno = errno
    }

    /// Captures the calling thread's errno.
    public static func last(_ operation: String) -> SystemError {
        SystemError(operation, errno: Glibc.errno)
    }

    public var description: String { "\(operation): \(String(cString: strerror(errno))) (errno \(errno))" }
}

/// Blocking reads and writes on a connected socket or character device.
/// One thread reads; writers must serialise themselves (TTRPCConnection does).
public final class FileDescriptorStream: @unchecked Sendable {
    public let fd: Int32
    /// Sockets are written with send(MSG_NOSIGNAL): a peer that went away fails the write with EPIPE
    /// instead of killing the process with SIGPIPE. Character devices (virtio-serial ports) take write(2).
    private let isSocket: Bool

    /// Closes the descriptor when the last reference goes: request threads still answering on a connection
    /// keep it alive, so its number cannot be reused under them.
    private let closesOnDeinit: Bool

    public init(fd: Int32, closesOnDeinit: Bool = false) {
        self.fd = fd
        self.closesOnDeinit = closesOnDeinit
        var status = stat()
        isSocket = fstat(fd, &status) == 0 && status.st_mode & S_IFMT == S_IFSOCK
    }

    /// Returns what one read(2) delivered; empty at end of stream.
    public func read(upTo count: Int = 64 * 1024) throws(SystemError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        while true {
            let n = bytes.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, count) }
            if n >= 0 {
                bytes.removeSubrange(n...)
                return bytes
            }
            if Glibc.errno != EINTR { throw .last("read") }
        }
    }

    public func write(_ bytes: [UInt8]) throws(SystemError) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { raw in
                let start = raw.baseAddress! + offset
                return isSocket
                    ? Glibc.send(fd, start, bytes.count - offset, Int32(MSG_NOSIGNAL))
                    : Glibc.write(fd, start, bytes.count - offset)
            }
            if n < 0 {
                if Glibc.errno == EINTR { continue }
                throw .last("write")
            }
            offset += n
        }
    }

    deinit {
        if closesOnDeinit { _ = Glibc.close(fd) }
    }

    /// Wakes a blocked reader (sockets only) without releasing the descriptor number.
    public func shutdown() {
        _ = Glibc.shutdown(fd, Int32(SHUT_RDWR))
    }

    public func close() {
        _ = Glibc.close(fd)
    }
}

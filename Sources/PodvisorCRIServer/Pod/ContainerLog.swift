import Foundation
import PodvisorCore
import Synchronization

/// A container's log file in the CRI format kubelet reads (`<RFC3339Nano> <stream> <F|P> <text>\n`):
/// one line per line of output, "P" for a piece of a line longer than `maxLine` that continues in the next.
/// Both streams share the file; ReopenContainerLog (after kubelet rotated it) reopens it at the same path.
final class ContainerLog: Sendable {
    enum Stream: String {
        case stdout, stderr
    }

    static let maxLine = 16 * 1024

    let path: String
    private struct State {
        var fd: Int32
        var partial: [Stream: Data] = [:]
    }
    private let state: Mutex<State>

    init(path: String) throws(PodvisorError) {
        self.path = path
        state = Mutex(State(fd: try Self.open(path)))
    }

    private static func open(_ path: String) throws(PodvisorError) -> Int32 {
        let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw PodvisorError(.internalError, "cannot open log \(path): errno \(errno)") }
        return fd
    }

    /// Appends output of one stream; complete lines are written at once, a trailing piece waits for its end.
    func write(_ data: Data, stream: Stream) {
        state.withLock { s in
            var pending = (s.partial[stream] ?? Data()) + data
            var out = Data()
            while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                out += Self.line(pending[pending.startIndex..<newline], stream: stream, partial: false)
                pending = Data(pending[(newline + 1)...])
            }
            while pending.count > Self.maxLine {
                out += Self.line(pending.prefix(Self.maxLine), stream: stream, partial: true)
                pending = Data(pending.dropFirst(Self.maxLine))
            }
            s.partial[stream] = pending
            Self.writeAll(s.fd, out)
        }
    }

    /// The stream ended: a last line without newline is still a full line.
    func finish(_ stream: Stream) {
        state.withLock { s in
            guard let rest = s.partial.removeValue(forKey: stream), !rest.isEmpty else { return }
            Self.writeAll(s.fd, Self.line(rest, stream: stream, partial: false))
        }
    }

    func reopen() throws(PodvisorError) {
        let fd = try Self.open(path)
        state.withLock { s in
            Glibc.close(s.fd)
            s.fd = fd
        }
    }

    func close() {
        state.withLock { s in
            guard s.fd >= 0 else { return }
            Glibc.close(s.fd)
            s.fd = -1
        }
    }

    static func line(_ text: Data, stream: Stream, partial: Bool) -> Data {
        Data("\(Clock.rfc3339Nano(Clock.nowNanoseconds())) \(stream.rawValue) \(partial ? "P" : "F") ".utf8) + text + Data([0x0a])
    }

    private static func writeAll(_ fd: Int32, _ data: Data) {
        guard fd >= 0, !data.isEmpty else { return }
        data.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let n = Glibc.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                if n < 0 && errno == EINTR { continue }
                // A full disk loses log lines, never the container.
                guard n > 0 else { return }
                offset += n
            }
        }
    }
}

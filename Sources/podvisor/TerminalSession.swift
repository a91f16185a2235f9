import Foundation
import PodvisorStreaming
import Synchronization

/// Connects this process's stdin, stdout, stderr and terminal to an Exec or Attach URL, as `kubectl exec
/// -it` does: with a terminal, the local one goes raw (keys, Ctrl-C included, reach the container) and
/// follows window size changes; without one, stdin is copied until it ends.
enum TerminalSession {
    static func run(url: String, stdin: Bool, tty: Bool) async throws -> RemoteCommandResult {
        let raw = tty && isatty(STDIN_FILENO) == 1 ? RawTerminal() : nil
        defer { raw?.restore() }
        let io = RemoteCommandClient.IO(
            stdin: stdin ? readStandardInput() : nil,
            resizes: tty ? windowSizes() : nil,
            stdout: { write(STDOUT_FILENO, $0) },
            stderr: { write(STDERR_FILENO, $0) })
        return try await RemoteCommandClient.run(url: url, tty: tty, io: io)
    }

    /// The session's end as podvisor's exit status: the command's own, or the runtime failure code with
    /// the reason on stderr.
    static func exitCode(_ result: RemoteCommandResult) -> Int32 {
        switch result {
        case .success: return 0
        case .exitCode(let code): return code
        case .failure(let message):
            write(STDERR_FILENO, Array("podvisor: \(message)\n".utf8))
            return ExitCodes.runtimeFailure
        }
    }

    private static func write(_ fd: Int32, _ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, bytes.count - offset) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return }
            offset += n
        }
    }

    /// stdin, read on a thread of its own (a blocking read must not hold a task thread); ends at EOF.
    private static func readStandardInput() -> AsyncStream<[UInt8]> {
        let (stream, continuation) = AsyncStream.makeStream(of: [UInt8].self)
        Thread.detachNewThread {
            var buffer = [UInt8](repeating: 0, count: 32 * 1024)
            while true {
                let n = buffer.withUnsafeMutableBytes { Glibc.read(STDIN_FILENO, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { break }
                if case .terminated = continuation.yield(Array(buffer[..<n])) { return }
            }
            continuation.finish()
        }
        return stream
    }

    /// The terminal's size now and after every SIGWINCH.
    private static func windowSizes() -> AsyncStream<TerminalSize> {
        let (stream, continuation) = AsyncStream.makeStream(of: TerminalSize.self)
        func current() -> TerminalSize? {
            var size = winsize()
            guard ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 else { return nil }
            return TerminalSize(width: size.ws_col, height: size.ws_row)
        }
        if let size = current() { continuation.yield(size) }
        // Dispatch sources are thread-safe but not marked Sendable.
        final class Watch: @unchecked Sendable {
            let source = DispatchSource.makeSignalSource(signal: SIGWINCH, queue: .global())
        }
        let watch = Watch()
        watch.source.setEventHandler { if let size = current() { continuation.yield(size) } }
        watch.source.resume()
        continuation.onTermination = { _ in watch.source.cancel() }
        return stream
    }
}

/// The local terminal in raw mode until `restore`.
final class RawTerminal: Sendable {
    private let saved: Mutex<termios?>

    init() {
        var original = termios()
        guard tcgetattr(STDIN_FILENO, &original) == 0 else {
            saved = Mutex(nil)
            return
        }
        var raw = original
        cfmakeraw(&raw)
        tcsetattr(STDIN_FILENO, TCSANOW, &raw)
        saved = Mutex(original)
    }

    func restore() {
        guard var original = saved.withLock({ state -> termios? in
            defer { state = nil }
            return state
        }) else { return }
        tcsetattr(STDIN_FILENO, TCSANOW, &original)
    }
}

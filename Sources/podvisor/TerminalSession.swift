import Foundation
import PodvisorAgentProtocol
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
            stdout: { try? standardOutput.write($0) },
            stderr: { try? standardError.write($0) })
        return try await RemoteCommandClient.run(url: url, tty: tty, io: io)
    }

    /// Waits for a session, cancelling it (which closes its connection) once `limit` has passed; `cut` says
    /// whether the limit ended it.
    static func wait(
        _ session: Task<RemoteCommandResult, any Error>, atMost limit: Duration
    ) async
        -> (result: Result<RemoteCommandResult, any Error>, cut: Bool)
    {
        let timer = Task {
            try await Task.sleep(for: limit)
            session.cancel()
        }
        let result = await session.result
        timer.cancel()
        if case .success = await timer.result { return (result, true) }
        return (result, false)
    }

    /// The session's end as podvisor's exit status: the command's own, or the runtime failure code with
    /// the reason on stderr.
    static func exitCode(_ result: RemoteCommandResult) -> Int32 {
        switch result {
        case .success: return 0
        case .exitCode(let code): return code
        case .failure(let message):
            try? standardError.write(Array("podvisor: \(message)\n".utf8))
            return ExitCodes.runtimeFailure
        }
    }

    private static let standardOutput = FileDescriptorStream(fd: STDOUT_FILENO)
    private static let standardError = FileDescriptorStream(fd: STDERR_FILENO)

    /// stdin, read on a thread of its own (a blocking read must not hold a task thread); ends at EOF.
    private static func readStandardInput() -> AsyncStream<[UInt8]> {
        let (stream, continuation) = AsyncStream.makeStream(of: [UInt8].self)
        Thread.detachNewThread {
            let input = FileDescriptorStream(fd: STDIN_FILENO)
            while let bytes = try? input.read(upTo: 32 * 1024), !bytes.isEmpty {
                if case .terminated = continuation.yield(bytes) { return }
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
        guard
            var original = saved.withLock({ state -> termios? in
                defer { state = nil }
                return state
            })
        else { return }
        tcsetattr(STDIN_FILENO, TCSANOW, &original)
    }
}

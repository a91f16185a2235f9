import Foundation
import Synchronization

/// Kubernetes' remote command protocol (exec and attach over SPDY, "channel.k8s.io"): the client opens
/// one SPDY stream per role (named by its `streamType` header), the server copies the process's output to
/// stdout/stderr, its input from stdin, window sizes from resize, and ends with a status on the error stream.
public struct RemoteCommandOptions: Sendable, Equatable {
    public var stdin: Bool
    public var stdout: Bool
    public var stderr: Bool
    public var tty: Bool

    public init(stdin: Bool, stdout: Bool, stderr: Bool, tty: Bool) {
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self.tty = tty
    }
}

/// A terminal's size, as the resize stream carries it: JSON objects `{"Width":80,"Height":24}`.
public struct TerminalSize: Sendable, Equatable, Codable {
    public var width: UInt16
    public var height: UInt16

    public init(width: UInt16, height: UInt16) {
        self.width = width
        self.height = height
    }

    enum CodingKeys: String, CodingKey {
        case width = "Width"
        case height = "Height"
    }
}

/// How a remote command ended, as the error stream reports it.
public enum RemoteCommandResult: Sendable, Equatable {
    case success
    case exitCode(Int32)
    /// The command could not run, or the stream failed; the message goes to the client.
    case failure(String)
}

enum StreamType: String, CaseIterable {
    case error, stdin, stdout, stderr, resize

    static let header = "streamtype"
}

/// The protocol versions served, best first. v1 (no error stream semantics) is not offered; v5 differs from
/// v4 only over WebSocket.
enum RemoteCommandProtocol: String, CaseIterable {
    case v4 = "v4.channel.k8s.io"
    case v3 = "v3.channel.k8s.io"
    case v2 = "v2.channel.k8s.io"

    static let header = "x-stream-protocol-version"
    static let acceptedHeader = "x-accepted-stream-protocol-versions"

    /// The first protocol of the client's list that is served (the client lists its preference first).
    static func negotiate(_ offered: [String]) -> RemoteCommandProtocol? {
        offered.lazy.compactMap { RemoteCommandProtocol(rawValue: $0) }.first
    }

    /// The streams a client opens for these options: v3 added resize for terminals; with a terminal,
    /// stderr is part of stdout.
    func expectedStreams(_ options: RemoteCommandOptions) -> Set<StreamType> {
        var types: Set<StreamType> = [.error]
        if options.stdin { types.insert(.stdin) }
        if options.stdout { types.insert(.stdout) }
        if options.stderr && !options.tty { types.insert(.stderr) }
        if options.tty && self != .v2 { types.insert(.resize) }
        return types
    }

    /// What the error stream carries: v4 a metav1.Status in JSON (success included), v2 and v3 a message
    /// on failure only.
    func statusMessage(_ result: RemoteCommandResult) -> [UInt8] {
        let status: Status
        switch result {
        case .success:
            guard self == .v4 else { return [] }
            status = Status(status: "Success")
        case .exitCode(let code):
            let message = "command terminated with non-zero exit code: exit status \(code)"
            guard self == .v4 else { return Array(message.utf8) }
            status = Status(
                status: "Failure", message: message, reason: "NonZeroExitCode",
                details: .init(causes: [.init(reason: "ExitCode", message: "\(code)")]))
        case .failure(let message):
            guard self == .v4 else { return Array(message.utf8) }
            status = Status(status: "Failure", message: message, reason: "InternalError")
        }
        return Array((try? JSONEncoder().encode(status)) ?? Data())
    }

    /// The client's reading of the error stream.
    func result(from message: [UInt8]) -> RemoteCommandResult {
        guard !message.isEmpty else { return .success }
        let text = String(decoding: message, as: UTF8.self)
        guard self == .v4 else {
            if let code = Self.exitCode(in: text) { return .exitCode(code) }
            return .failure(text)
        }
        guard let status = try? JSONDecoder().decode(Status.self, from: Data(message)) else { return .failure(text) }
        if status.status == "Success" { return .success }
        if status.reason == "NonZeroExitCode",
            let cause = status.details?.causes?.first(where: { $0.reason == "ExitCode" }), let code = Int32(cause.message ?? "")
        {
            return .exitCode(code)
        }
        return .failure(status.message ?? text)
    }

    private static func exitCode(in text: String) -> Int32? {
        guard let range = text.range(of: "non-zero exit code: exit status ") else { return nil }
        return Int32(text[range.upperBound...].prefix { $0.isNumber })
    }

    /// The subset of metav1.Status the protocol uses.
    struct Status: Codable {
        struct Details: Codable {
            struct Cause: Codable {
                var reason: String?
                var message: String?
            }
            var causes: [Cause]?
        }
        var metadata: [String: String] = [:]
        var status: String
        var message: String?
        var reason: String?
        var details: Details?
    }
}

/// Splits the resize stream into window sizes; a message may arrive in pieces.
struct TerminalSizeDecoder {
    private var buffer: [UInt8] = []

    mutating func feed(_ bytes: [UInt8]) -> [TerminalSize] {
        buffer += bytes
        var sizes: [TerminalSize] = []
        // A size object has no nested objects: each ends at its first closing brace.
        while let end = buffer.firstIndex(of: UInt8(ascii: "}")) {
            let object = Array(buffer[...end])
            buffer.removeSubrange(...end)
            if let size = try? JSONDecoder().decode(TerminalSize.self, from: Data(object.drop { $0 != UInt8(ascii: "{") })) {
                sizes.append(size)
            }
        }
        return sizes
    }
}

/// One remote command's streams, as its handler sees them, whichever transport carries them.
public final class RemoteCommandStreams: Sendable {
    public let options: RemoteCommandOptions
    /// The client's input, ending when the client closes it (empty without stdin).
    public let stdin: AsyncStream<[UInt8]>
    /// Window size changes (empty without a terminal).
    public let resizes: AsyncStream<TerminalSize>
    private let output: @Sendable (StreamType, [UInt8]) async -> Void
    private let disconnected: Event

    /// `output` sends to the client and returns once written; it drops what cannot be sent (the client left).
    init(
        options: RemoteCommandOptions, stdin: AsyncStream<[UInt8]>?, resize: AsyncStream<[UInt8]>?,
        output: @escaping @Sendable (StreamType, [UInt8]) async -> Void, disconnected: Event
    ) {
        self.options = options
        self.output = output
        self.disconnected = disconnected
        self.stdin = options.stdin ? stdin ?? AsyncStream { $0.finish() } : AsyncStream { $0.finish() }
        guard options.tty, let resize else {
            resizes = AsyncStream { $0.finish() }
            return
        }
        let (sizes, continuation) = AsyncStream.makeStream(of: TerminalSize.self)
        resizes = sizes
        Task {
            var decoder = TerminalSizeDecoder()
            for await bytes in resize {
                for size in decoder.feed(bytes) { continuation.yield(size) }
            }
            continuation.finish()
        }
    }

    /// Sends output to the client; returns once it is written, so a slow client slows the copy. Output for
    /// a stream the client did not ask for, or after it left, is dropped.
    public func writeStdout(_ bytes: [UInt8]) async {
        guard options.stdout else { return }
        await output(.stdout, bytes)
    }

    public func writeStderr(_ bytes: [UInt8]) async {
        // With a terminal there is no stderr stream: the terminal merged it into stdout already.
        guard options.stderr && !options.tty else { return }
        await output(.stderr, bytes)
    }

    /// Returns when the client has closed the connection.
    public func waitForDisconnect() async { await disconnected.wait() }
}

/// A one-time signal any number of tasks can wait for; waiting ends early when the waiting task is cancelled.
final class Event: Sendable {
    private struct State {
        var fired = false
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
        var nextID = 0
    }
    private let state = Mutex(State())

    var isFired: Bool { state.withLock { $0.fired } }

    func fire() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            guard !state.fired else { return [] }
            state.fired = true
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    func wait() async {
        let id = state.withLock { state in
            defer { state.nextID += 1 }
            return state.nextID
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { state -> Bool in
                    if state.fired || Task.isCancelled { return true }
                    state.waiters[id] = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?.resume()
        }
    }

    /// Waits at most `timeout`; true if the event fired.
    func wait(timeout: Duration) async -> Bool {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.wait() }
            group.addTask { try? await Task.sleep(for: timeout) }
            await group.next()
            group.cancelAll()
        }
        return isFired
    }
}

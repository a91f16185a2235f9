import Foundation
import Logging
import Synchronization

/// podvisor's swift-log backend: one line per event on stderr, as text for people and journald (which adds
/// the time) or as JSON lines for log shippers (`log_format = "json"`). Metadata (pod, container, CRI
/// method) follows the message as `key=value` pairs, or as fields of the JSON object.
public struct LogOutput: LogHandler {
    public enum Format: String, Sendable, CaseIterable {
        case text, json
    }

    /// Installs the handler for the whole process; a process can do this once (later calls are ignored, so
    /// tests that open several servers in one process keep working).
    public static func bootstrap(program: String, format: Format) {
        bootstrapped.withLock { done in
            guard !done else { return }
            done = true
            LoggingSystem.bootstrap { label in LogOutput(program: program, label: label, format: format) }
        }
    }

    private static let bootstrapped = Mutex(false)
    /// Whole lines from many threads must not interleave.
    private static let output = Mutex(FileHandle.standardError)

    /// One level for the whole process, whichever logger sets it: podvisord's `log_level`, which SIGHUP
    /// reloads for every logger at once.
    public var logLevel: Logger.Level {
        get { Self.level.withLock { $0 } }
        set { Self.setLevel(newValue) }
    }
    private static let level = Mutex(Logger.Level.info)

    /// Sets the one level every logger of the process shares (what setting any logger's `logLevel` does).
    public static func setLevel(_ newLevel: Logger.Level) { level.withLock { $0 = newLevel } }
    public var metadata: Logger.Metadata = [:]
    private let program: String
    private let label: String
    private let format: Format

    public init(program: String, label: String, format: Format) {
        self.program = program
        self.label = label
        self.format = format
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let fields = metadata.merging(event.metadata ?? [:]) { $1 }
        let line: String
        switch format {
        case .text:
            let pairs = fields.sorted { $0.key < $1.key }.map { " \($0.key)=\($0.value)" }.joined()
            line = "\(program) \(event.level): \(event.message)\(pairs)\n"
        case .json:
            var object: [String: String] = fields.mapValues { "\($0)" }
            object["time"] = Date().formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true))
            object["level"] = "\(event.level)"
            object["program"] = program
            object["logger"] = label
            object["msg"] = "\(event.message)"
            let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
            line = String(decoding: data, as: UTF8.self) + "\n"
        }
        Self.output.withLock { $0.write(Data(line.utf8)) }
    }
}

extension Logger {
    /// A logger at the configured level.
    public init(label: String, level: PodvisorConfig.LogLevel) {
        self.init(label: label)
        logLevel = level.swiftLog
    }
}

extension PodvisorConfig.LogLevel {
    public var swiftLog: Logger.Level {
        switch self {
        case .debug: .debug
        case .info: .info
        case .warning: .warning
        case .error: .error
        }
    }
}

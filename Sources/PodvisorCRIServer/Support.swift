import Foundation
import GRPCCore
import PodvisorCRI
import PodvisorCore
import PodvisorStreaming

/// PodvisorError codes as gRPC statuses: the CRI edge is where the one error type becomes a status.
extension RPCError {
    init(_ error: PodvisorError) {
        let code: RPCError.Code
        switch error.code {
        case .invalidArgument: code = .invalidArgument
        case .notFound: code = .notFound
        case .alreadyExists: code = .alreadyExists
        case .failedPrecondition: code = .failedPrecondition
        case .permissionDenied: code = .permissionDenied
        case .unsupported: code = .unimplemented
        case .timeout: code = .deadlineExceeded
        case .unavailable: code = .unavailable
        case .dataLoss: code = .dataLoss
        case .internalError: code = .internalError
        }
        self.init(code: code, message: error.cause.map { "\(error.message): \($0)" } ?? error.message)
    }
}

/// Runs one RPC's body: every error leaves as an RPCError with the status its code names.
func handle<T: Sendable>(_ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch let error as RPCError {
        throw error
    } catch let error as PodvisorError {
        throw RPCError(error)
    } catch is CancellationError {
        throw RPCError(code: .cancelled, message: "cancelled")
    } catch {
        throw RPCError(code: .internalError, message: "\(error)")
    }
}

enum Clock {
    /// CLOCK_REALTIME in nanoseconds: CRI's timestamps.
    static func nowNanoseconds() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }

    /// RFC 3339 with nanoseconds in UTC, as the CRI log format and kubelet expect.
    static func rfc3339Nano(_ nanoseconds: Int64) -> String {
        var seconds = time_t(nanoseconds / 1_000_000_000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        return String(
            format: "%04d-%02d-%02dT%02d:%02d:%02d.%09dZ", parts.tm_year + 1900, parts.tm_mon + 1, parts.tm_mday,
            parts.tm_hour, parts.tm_min, parts.tm_sec, Int(nanoseconds % 1_000_000_000))
    }
}

/// 64 hex digits, like containerd's ids.
func newObjectID() -> String {
    (0..<4).map { _ in
        let hex = String(UInt64.random(in: .min ... .max), radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }.joined()
}

/// Checks on request fields, each failing with InvalidArgument and a message naming the field.
enum Validate {
    static func required(_ value: String, _ field: String) throws(PodvisorError) {
        guard !value.isEmpty else { throw PodvisorError(.invalidArgument, "\(field) must not be empty") }
    }

    /// A kubelet-given name: no path separators or control characters, at most 253 bytes.
    static func name(_ value: String, _ field: String) throws(PodvisorError) {
        try required(value, field)
        guard value.utf8.count <= 253, !value.contains("/"), !value.unicodeScalars.contains(where: { $0.value < 0x20 || $0 == "\u{7f}" })
        else { throw PodvisorError(.invalidArgument, "\(field) \(PodvisorError.quote(value)) is not a valid name") }
    }

    /// An absolute path without `..` components, NUL or control characters.
    static func absolutePath(_ value: String, _ field: String) throws(PodvisorError) {
        guard value.hasPrefix("/"), value.utf8.count <= RequestLimits.maxPathBytes, !value.split(separator: "/").contains(".."),
            !value.unicodeScalars.contains(where: { $0.value < 0x20 })
        else { throw PodvisorError(.invalidArgument, "\(field) \(PodvisorError.quote(value)) must be an absolute path without \"..\"") }
    }

    /// A path relative to a directory that it must stay inside.
    static func relativePath(_ value: String, _ field: String) throws(PodvisorError) {
        guard !value.isEmpty, value.utf8.count <= RequestLimits.maxPathBytes, !value.hasPrefix("/"), !value.split(separator: "/").contains(".."),
            !value.unicodeScalars.contains(where: { $0.value < 0x20 })
        else { throw PodvisorError(.invalidArgument, "\(field) \(PodvisorError.quote(value)) must be a relative path that stays in its directory") }
    }

    /// Exec and Attach: something to stream, and no stderr beside a terminal (the terminal merges it into stdout).
    static func streams(stdin: Bool, stdout: Bool, stderr: Bool, tty: Bool) throws(PodvisorError) -> RemoteCommandOptions {
        guard stdin || stdout || stderr else { throw PodvisorError(.invalidArgument, "one of stdin, stdout or stderr must be set") }
        guard !(tty && stderr) else { throw PodvisorError(.invalidArgument, "tty and stderr cannot both be true") }
        return RemoteCommandOptions(stdin: stdin, stdout: stdout, stderr: stderr, tty: tty)
    }

    /// The largest VM podvisor sizes (1 TiB): anything above is a mistake, not a pod.
    static let maxVMMemoryMiB = 1 << 20

    /// Bytes as whole MiB, rounded up; at most `maxVMMemoryMiB`.
    static func mebibytes(_ bytes: Int64, _ field: String) throws(PodvisorError) -> Int {
        try nonNegative(bytes, field)
        let (whole, part) = bytes.quotientAndRemainder(dividingBy: 1 << 20)
        let mib = whole + (part > 0 ? 1 : 0)
        guard mib <= maxVMMemoryMiB else {
            throw PodvisorError(.invalidArgument, "\(field) must be at most \(maxVMMemoryMiB) MiB (got \(bytes) bytes)")
        }
        return Int(mib)
    }

    static func nonNegative(_ value: Int64, _ field: String) throws(PodvisorError) {
        guard value >= 0 else { throw PodvisorError(.invalidArgument, "\(field) must not be negative (got \(value))") }
    }

    /// An RFC 1123 host name of at most 64 bytes (the kernel's limit).
    static func hostname(_ value: String) throws(PodvisorError) {
        let allowed = value.unicodeScalars.allSatisfy { CharacterSet.alphanumerics.contains($0) && $0.isASCII || $0 == "-" || $0 == "." }
        guard !value.isEmpty, value.utf8.count <= 64, allowed else {
            throw PodvisorError(.invalidArgument, "hostname \(PodvisorError.quote(value)) must be 1-64 letters, digits, '-' or '.'")
        }
    }

    /// Known namespace modes, none of them the host's (NODE): a VM cannot share the host's namespaces.
    static func noHostNamespaces(_ options: Runtime_V1_NamespaceOption, _ who: String) throws(PodvisorError) {
        for (mode, what) in [(options.network, "network"), (options.pid, "PID"), (options.ipc, "IPC")] {
            try known(mode, Runtime_V1_NamespaceMode.allCases, "namespace_options.\(what.lowercased())")
            guard mode != .node else {
                throw PodvisorError(
                    .failedPrecondition,
                    "host \(what) namespace requested: \(who) cannot share the host's \(what) namespace; set [host_pods] endpoint "
                        + "to hand such pods to containerd (Docs/limitations.md)")
            }
        }
    }

    /// The pod's user namespace (userns mode POD, kubelet's hostUsers: false), nil for the guest's own (NODE,
    /// kubelet's value for every other pod). One uid and one gid range mapping container id 0, as kubelet
    /// allocates them; CONTAINER and TARGET have no meaning for a user namespace.
    static func userNamespace(_ options: Runtime_V1_NamespaceOption) throws(PodvisorError) -> UserNamespaceMapping? {
        guard options.hasUsernsOptions else { return nil }
        let userns = options.usernsOptions
        try known(userns.mode, Runtime_V1_NamespaceMode.allCases, "namespace_options.userns_options.mode")
        switch userns.mode {
        case .node:
            guard userns.uids.isEmpty, userns.gids.isEmpty else {
                throw PodvisorError(.invalidArgument, "namespace_options.userns_options: uid and gid mappings need mode POD, not NODE")
            }
            return nil
        case .pod:
            return UserNamespaceMapping(uids: try idMapping(userns.uids, "uids"), gids: try idMapping(userns.gids, "gids"))
        default: throw PodvisorError(.invalidArgument, "namespace_options.userns_options.mode must be NODE or POD, not \(userns.mode)")
        }
    }

    private static func idMapping(_ mappings: [Runtime_V1_IDMapping], _ field: String) throws(PodvisorError) -> IDMapping {
        let name = "namespace_options.userns_options.\(field)"
        guard mappings.count == 1, let only = mappings.first else {
            throw PodvisorError(.invalidArgument, "\(name) must hold exactly one mapping, not \(mappings.count)")
        }
        guard only.containerID == 0 else {
            throw PodvisorError(.invalidArgument, "\(name) must map container id 0 (its mapping starts at \(only.containerID))")
        }
        guard let mapping = IDMapping(containerID: only.containerID, hostID: only.hostID, length: only.length) else {
            throw PodvisorError(
                .invalidArgument, "\(name): \(only.length) ids from host id \(only.hostID) is empty or passes the last id (4294967294)")
        }
        return mapping
    }

    /// Enum fields outside the values the contract defines (a newer or broken client).
    static func known<E: RawRepresentable>(_ value: E, _ allowed: [E], _ field: String) throws(PodvisorError) where E.RawValue == Int {
        guard allowed.contains(where: { $0.rawValue == value.rawValue }) else {
            throw PodvisorError(.invalidArgument, "\(field) has an unknown value \(value.rawValue)")
        }
    }
}

/// kubelet's label selector: every key/value pair must be present.
func matches(_ labels: [String: String], selector: [String: String]) -> Bool {
    selector.allSatisfy { labels[$0.key] == $0.value }
}

/// Bytes and inodes under a directory, not following mounts (a writable layer's usage).
func directoryUsage(_ path: String) -> (bytes: UInt64, inodes: UInt64) {
    var root = stat()
    guard lstat(path, &root) == 0 else { return (0, 0) }
    var bytes: UInt64 = 0
    var inodes: UInt64 = 0
    func visit(_ path: String) {
        var info = stat()
        guard lstat(path, &info) == 0, info.st_dev == root.st_dev else { return }
        bytes += UInt64(info.st_blocks) * 512
        inodes += 1
        guard info.st_mode & S_IFMT == S_IFDIR else { return }
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? [] { visit("\(path)/\(entry)") }
    }
    visit(path)
    return (bytes, inodes)
}

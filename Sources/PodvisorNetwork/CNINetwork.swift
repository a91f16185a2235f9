import Foundation
import PodvisorCore
import Synchronization

// The pod network through CNI plugins, run the way libcni (containerd, CRI-O) runs them.
//
//   CNINetwork(confDir:binDirs:cacheDir:)
//   network.status() -> NetworkReadiness                       kubelet's NetworkReady condition; follows the conf dir
//   network.add(_ attachment:) async throws -> CNIResult       ADD of every plugin in order; undone whole on failure
//   network.check(containerID:) async throws                   CHECK against the cached configuration and result
//   network.delete(containerID:) async throws                  DEL in reverse order; idempotent
//   network.cachedAttachments() throws -> [CNICacheEntry]      for recovery: DEL those whose pod is gone
//
// Every ADD is recorded in the cache (CNICache) before its first plugin runs, so CHECK and DEL take the
// attachment, the configuration and the result from there: a restarted runtime DELs exactly what ADD did,
// whatever the conf dir holds by then, and an attachment the cache does not know was never added.

/// The runtime's NetworkReady condition.
public struct NetworkReadiness: Sendable, Equatable {
    public static let notReadyReason = "NetworkPluginNotReady"

    public var ready: Bool
    /// Empty when ready, else `NetworkPluginNotReady`.
    public var reason: String
    /// What is missing, in words (empty when ready).
    public var message: String

    static let isReady = NetworkReadiness(ready: true, reason: "", message: "")

    static func notReady(_ message: String) -> NetworkReadiness {
        NetworkReadiness(ready: false, reason: notReadyReason, message: message)
    }
}

public final class CNINetwork: Sendable {
    public let confDir: String
    public let binDirs: [String]
    public let cache: CNICache
    private let scanned = Mutex<Scan?>(nil)

    public init(confDir: String = CNIConfig.defaultConfDir, binDirs: [String] = CNIConfig.defaultBinDirs, cacheDir: String) {
        self.confDir = confDir
        self.binDirs = binDirs
        self.cache = CNICache(directory: cacheDir)
    }

    /// Ready once the conf dir holds a valid configuration whose every plugin is an executable in the bin dirs.
    /// Cheap to call every few seconds: the conf dir is read again only when it, a file in it or a plugin
    /// binary it names changed.
    public func status() -> NetworkReadiness {
        currentScan().readiness
    }

    /// The runtime capabilities (`portMappings`, `bandwidth`, `dns`) the current configuration's plugins declare.
    public var capabilities: Set<String> {
        currentScan().config?.plugins.reduce(into: Set<String>()) { $0.formUnion($1.capabilities) } ?? []
    }

    /// ADD: runs every plugin of the current configuration in order, each given the previous one's result;
    /// returns the last result. On any failure the whole list is DELeted, so nothing of the attachment
    /// remains (no lease, no interface, no cache entry) unless that DEL failed too: then the cache entry stays
    /// for a later `delete`, and the error says so.
    public func add(_ attachment: CNIAttachment) async throws(PodvisorError) -> CNIResult {
        try Self.validate(attachment.containerID)
        let scan = currentScan()
        guard let config = scan.config, scan.readiness.ready else {
            throw PodvisorError(.failedPrecondition, "pod network not ready: \(scan.readiness.message)")
        }
        if try cache.entry(attachment.containerID) != nil {
            throw PodvisorError(.alreadyExists, "sandbox \(attachment.containerID) is already attached to the pod network")
        }
        var entry = CNICacheEntry(attachment: attachment, config: config)
        try cache.write(entry)
        do {
            var result: CNIResult?
            for (plugin, path) in zip(config.plugins, scan.pluginPaths) {
                let invocation = CNIInvocation(
                    command: .add, config: config, plugin: plugin, attachment: attachment, binDirs: binDirs, prevResult: result)
                result = try CNIResult.parse(try await invocation.run(pluginPath: path), plugin: plugin.type)
            }
            entry.result = result
            try cache.write(entry)
            // A configuration has at least one plugin, so there is a result.
            return result!
        } catch {
            let failures = await runDel(config, attachment: attachment, prevResult: nil)
            guard failures.isEmpty else {
                var failed = error
                failed.message += "; undoing it failed too (kept for a later DEL): " + failures.joined(separator: "; ")
                throw failed
            }
            try? cache.remove(attachment.containerID)
            throw error
        }
    }

    /// CHECK: asks every plugin whether the attachment is still as ADD left it. Skipped when the configuration
    /// says `disableCheck`; spec versions before 0.4.0 have no CHECK.
    public func check(containerID: String) async throws(PodvisorError) {
        try Self.validate(containerID)
        guard let entry = try cache.entry(containerID), let result = entry.result else {
            throw PodvisorError(.notFound, "sandbox \(containerID) has no pod network attachment")
        }
        let config = try entry.networkConfig()
        guard config.hasCheckAndCachedResult else {
            throw PodvisorError(.unsupported, "CNI \(config.cniVersion) (network \"\(config.name)\") has no CHECK")
        }
        guard !config.disableCheck else { return }
        for plugin in config.plugins {
            let invocation = CNIInvocation(
                command: .check, config: config, plugin: plugin, attachment: entry.attachment, binDirs: binDirs, prevResult: result)
            _ = try await invocation.run(pluginPath: try pluginPath(plugin))
        }
    }

    /// DEL: runs every plugin in reverse order with the configuration and result ADD used, then forgets the
    /// attachment. An attachment the cache does not know (never added, or already deleted) is fine. When the
    /// netns is gone the plugins still run, with an empty CNI_NETNS, and release what lives outside it (the
    /// IP lease, iptables rules). Every plugin runs even when one fails; then the entry stays and the error
    /// lists the failures.
    public func delete(containerID: String) async throws(PodvisorError) {
        try Self.validate(containerID)
        guard let entry = try cache.entry(containerID) else { return }
        let config = try entry.networkConfig()
        var attachment = entry.attachment
        if !NetworkNamespace.isPinned(path: attachment.netnsPath) { attachment.netnsPath = "" }
        let failures = await runDel(
            config, attachment: attachment, prevResult: config.hasCheckAndCachedResult ? entry.result : nil)
        guard failures.isEmpty else {
            throw PodvisorError(.internalError, "CNI DEL of sandbox \(containerID) failed: " + failures.joined(separator: "; "))
        }
        try cache.remove(containerID)
    }

    /// Every attachment in the cache, finished or not.
    public func cachedAttachments() throws(PodvisorError) -> [CNICacheEntry] {
        try cache.entries()
    }

    /// Runs DEL of every plugin, last first; returns the failures.
    private func runDel(_ config: CNIConfig, attachment: CNIAttachment, prevResult: CNIResult?) async -> [String] {
        var failures: [String] = []
        for plugin in config.plugins.reversed() {
            let invocation = CNIInvocation(
                command: .del, config: config, plugin: plugin, attachment: attachment, binDirs: binDirs, prevResult: prevResult)
            do {
                _ = try await invocation.run(pluginPath: try pluginPath(plugin))
            } catch {
                failures.append(error.message)
            }
        }
        return failures
    }

    private func pluginPath(_ plugin: CNIPlugin) throws(PodvisorError) -> String {
        guard let path = CNIConfig.pluginPath(plugin.type, binDirs: binDirs) else {
            throw PodvisorError(.failedPrecondition, Self.missingPlugin(plugin.type, binDirs))
        }
        return path
    }

    static func missingPlugin(_ type: String, _ binDirs: [String]) -> String {
        "CNI plugin \"\(type)\" not found in [\(binDirs.joined(separator: ", "))]"
    }

    /// Container ids name cache files: no path separators, no hidden files.
    private static func validate(_ containerID: String) throws(PodvisorError) {
        let allowed = containerID.utf8.allSatisfy { byte in
            (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
                || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || byte == UInt8(ascii: "-")
                || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ".")
        }
        guard allowed, let first = containerID.first, first != ".", containerID.utf8.count <= 200 else {
            throw PodvisorError(.invalidArgument, "invalid container id \"\(containerID)\"")
        }
    }

    // MARK: - Scanning the conf dir

    /// One evaluation of the conf dir and the bin dirs, with what it depended on.
    struct Scan: Sendable {
        var readiness: NetworkReadiness
        var config: CNIConfig?
        /// The binary of each plugin of `config`, in order (complete only when ready).
        var pluginPaths: [String]
        /// Paths whose change can change the answer, and their state when it was made.
        var watched: [String]
        var stamps: [FileStamp]
        /// False when a watched file changed so recently that a further change could keep its timestamp.
        var reusable: Bool
        var scannedAt: Date
    }

    /// The scan `status()` last answered from.
    var lastScan: Scan? { scanned.withLock { $0 } }

    private func currentScan() -> Scan {
        scanned.withLock { cached in
            if let scan = cached, scan.reusable, scan.watched.map(FileStamp.init(path:)) == scan.stamps { return scan }
            let scan = Self.scan(confDir: confDir, binDirs: binDirs)
            cached = scan
            return scan
        }
    }

    static func scan(confDir: String, binDirs: [String]) -> Scan {
        let started = Date()
        let found = CNIConfig.load(confDir: confDir)
        // A new or removed file changes the directory's timestamp; an edited one its own.
        var watched = [confDir] + CNIConfig.candidateFiles(confDir).map { "\(confDir)/\($0)" }
        var readiness = NetworkReadiness.isReady
        var paths: [String] = []
        if let config = found.config {
            watched += config.plugins.flatMap { plugin in binDirs.map { "\($0)/\(plugin.type)" } }
            var missing: [String] = []
            for plugin in config.plugins {
                if let path = CNIConfig.pluginPath(plugin.type, binDirs: binDirs) { paths.append(path) } else { missing.append(plugin.type) }
            }
            if !missing.isEmpty {
                readiness = .notReady(
                    "network \"\(config.name)\" (\(confDir)/\(config.fileName)): "
                        + missing.map { missingPlugin($0, binDirs) }.joined(separator: "; "))
            }
        } else if found.skipped.isEmpty {
            readiness = .notReady("no CNI network config in \(confDir) (*.conflist, *.conf, *.json)")
        } else {
            readiness = .notReady("no valid CNI network config in \(confDir): " + found.skipped.joined(separator: "; "))
        }
        let stamps = watched.map(FileStamp.init(path:))
        // Timestamps are coarse (a clock tick): a file changed within the last two seconds may change again
        // without a new one, so such a scan is not reused.
        let reusable = stamps.allSatisfy { $0.modified < started.addingTimeInterval(-2) }
        return Scan(
            readiness: readiness, config: found.config, pluginPaths: paths, watched: watched, stamps: stamps, reusable: reusable,
            scannedAt: started)
    }

    /// What stat says about a path, enough to notice a change (or its appearing or vanishing).
    struct FileStamp: Sendable, Equatable {
        var exists: Bool
        var inode: UInt64
        var size: Int64
        var mode: UInt32
        var modified: Date

        init(path: String) {
            var info = stat()
            exists = stat(path, &info) == 0
            inode = UInt64(info.st_ino)
            size = Int64(info.st_size)
            mode = UInt32(info.st_mode)
            let changed = max(
                Double(info.st_mtim.tv_sec) + Double(info.st_mtim.tv_nsec) / 1e9,
                Double(info.st_ctim.tv_sec) + Double(info.st_ctim.tv_nsec) / 1e9)
            modified = exists ? Date(timeIntervalSince1970: changed) : .distantPast
        }
    }
}

extension CNIConfig {
    /// Spec 0.4.0 added CHECK and the cached result (`prevResult`) on DEL.
    var hasCheckAndCachedResult: Bool { !cniVersion.hasPrefix("0.3.") }
}

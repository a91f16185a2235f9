import Foundation
import PodvisorCore

// The attachment cache: one file per sandbox, `<cacheDir>/<containerID>.json`, written before ADD runs
// any plugin (the intent: attachment and configuration) and again with the result after it.
//
//   CNICache(directory:)
//   cache.write(_ entry:) throws         atomic, durable
//   cache.entry(_ containerID:) throws -> CNICacheEntry?
//   cache.remove(_ containerID:) throws   a missing entry is fine
//   cache.entries() throws -> [CNICacheEntry]
//
// A restarted runtime therefore DELs with the configuration and result ADD used, even after the conf dir
// changed or emptied, and finds every attachment (finished or not) whose pod is gone.

/// One attachment as ADD recorded it.
public struct CNICacheEntry: Codable, Sendable, Equatable {
    public var attachment: CNIAttachment
    /// Name of the configuration file ADD used (its extension tells the format).
    public var configFile: String
    /// The configuration file's exact content (configuration files are JSON, hence UTF-8).
    public var config: String
    /// nil until ADD completed: an entry without a result is an ADD that failed or was cut short.
    public var result: CNIResult?

    public init(attachment: CNIAttachment, config: CNIConfig, result: CNIResult? = nil) {
        self.attachment = attachment
        self.configFile = config.fileName
        self.config = String(decoding: config.bytes, as: UTF8.self)
        self.result = result
    }

    /// The configuration ADD used.
    public func networkConfig() throws(PodvisorError) -> CNIConfig {
        try CNIConfig.parse(Data(config.utf8), fileName: configFile)
    }
}

public struct CNICache: Sendable {
    public let directory: String

    public init(directory: String) {
        self.directory = directory
    }

    public func write(_ entry: CNICacheEntry) throws(PodvisorError) {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw PodvisorError(.internalError, "cannot create the CNI cache \(directory)", cause: error)
        }
        let data: Data
        do { data = try JSONEncoder().encode(entry) } catch {
            throw PodvisorError(.internalError, "cannot encode the CNI cache entry of \(entry.attachment.containerID)", cause: error)
        }
        try AtomicFile.write(data, to: path(entry.attachment.containerID))
    }

    public func entry(_ containerID: String) throws(PodvisorError) -> CNICacheEntry? {
        let path = path(containerID)
        guard let data = readFile(path) else {
            guard access(path, F_OK) != 0 else { throw PodvisorError(.internalError, "cannot read \(path)") }
            return nil
        }
        do { return try JSONDecoder().decode(CNICacheEntry.self, from: data) } catch {
            throw PodvisorError(.dataLoss, "CNI cache entry \(path) is unreadable", cause: error)
        }
    }

    public func remove(_ containerID: String) throws(PodvisorError) {
        guard unlink(path(containerID)) == 0 || errno == ENOENT else {
            throw PodvisorError(.internalError, "cannot remove \(path(containerID)): \(String(cString: strerror(errno)))")
        }
    }

    /// Every cached attachment, in container id order.
    public func entries() throws(PodvisorError) -> [CNICacheEntry] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        var entries: [CNICacheEntry] = []
        for name in names.filter({ $0.hasSuffix(".json") }).sorted() {
            // An entry removed meanwhile (a concurrent DEL) is simply not listed.
            if let entry = try entry(String(name.dropLast(".json".count))) { entries.append(entry) }
        }
        return entries
    }

    private func path(_ containerID: String) -> String { "\(directory)/\(containerID).json" }
}

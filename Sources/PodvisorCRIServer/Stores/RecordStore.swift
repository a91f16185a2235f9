import Foundation
import PodvisorCore
import Synchronization

/// A record the CRI server persists, one JSON file per object.
protocol StoredRecord: Codable, Sendable {
    var id: String { get }
}

/// One store per object kind (sandboxes, containers), as in containerd's CRI plugin: the records in memory,
/// each also written to `<directory>/<id>.json` before a change is visible. Writes are atomic (temporary
/// file, fsync, rename, fsync of the directory), so a crash leaves either the old or the new record.
final class RecordStore<Record: StoredRecord>: Sendable {
    let directory: String
    private let what: String
    private let records = Mutex<[String: Record]>([:])

    /// Loads every record under `directory`; leftovers of interrupted writes are removed.
    init(directory: String, what: String) throws(PodvisorError) {
        self.directory = directory
        self.what = what
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            var loaded: [String: Record] = [:]
            for file in try FileManager.default.contentsOfDirectory(atPath: directory) {
                let path = "\(directory)/\(file)"
                guard file.hasSuffix(".json") else {
                    try? FileManager.default.removeItem(atPath: path)
                    continue
                }
                guard let data = readFile(path) else { throw PodvisorError(.internalError, "cannot read \(path)") }
                let record = try JSONDecoder().decode(Record.self, from: data)
                loaded[record.id] = record
            }
            records.withLock { $0 = loaded }
        } catch {
            throw PodvisorError(.internalError, "cannot load \(what) records from \(directory)", cause: error)
        }
    }

    var all: [Record] { records.withLock { Array($0.values) } }

    func get(_ id: String) -> Record? { records.withLock { $0[id] } }

    /// The record that `idOrPrefix` names: its full id or a prefix that only one id starts with.
    func find(_ idOrPrefix: String) throws(PodvisorError) -> Record {
        guard !idOrPrefix.isEmpty else { throw PodvisorError(.invalidArgument, "\(what) id must not be empty") }
        let matches = records.withLock { all in
            all[idOrPrefix].map { [$0] } ?? all.values.filter { $0.id.hasPrefix(idOrPrefix) }
        }
        switch matches.count {
        case 1: return matches[0]
        case 0: throw PodvisorError(.notFound, "\(what) \(idOrPrefix) not found")
        default: throw PodvisorError(.invalidArgument, "\(what) id prefix \(idOrPrefix) is ambiguous")
        }
    }

    /// Persists `record` (new or replacing) and makes it visible.
    func put(_ record: Record) throws(PodvisorError) {
        try write(record)
        records.withLock { $0[record.id] = record }
    }

    /// Changes a record in place and persists it; returns the new value, or nil when it no longer exists.
    @discardableResult
    func update(_ id: String, _ change: (inout Record) -> Void) throws(PodvisorError) -> Record? {
        // One writer at a time per store keeps file and memory in the same order.
        try records.withLock { all throws(PodvisorError) -> Record? in
            guard var record = all[id] else { return nil }
            change(&record)
            try write(record)
            all[id] = record
            return record
        }
    }

    /// Under the same lock as `update`: an update racing the removal (a container's exit being recorded
    /// while it is removed) must not write the file back after it was unlinked.
    func remove(_ id: String) throws(PodvisorError) {
        try records.withLock { all throws(PodvisorError) in
            guard unlink(path(id)) == 0 || errno == ENOENT else {
                throw PodvisorError(.internalError, "cannot remove \(what) record \(path(id)): \(String(cString: strerror(errno)))")
            }
            all[id] = nil
        }
    }

    private func path(_ id: String) -> String { "\(directory)/\(id).json" }

    private func write(_ record: Record) throws(PodvisorError) {
        try AtomicFile.write(json: record, to: path(record.id))
    }
}

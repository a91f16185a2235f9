import Foundation
import PodvisorCore

/// Unpacked layers under `<root>/sha256/<layer digest hex>`, each a directory ready to be an overlayfs lower dir.
/// A layer is unpacked into `<root>/tmp/` and renamed into place whole; concurrent requests for one layer share
/// one unpack.
actor LayerStore {
    nonisolated let root: String
    private var inFlight: [Digest: Task<Void, any Error>] = [:]

    /// Leftovers in `tmp/` are unpacks of a process that died: removed.
    init(root: String) throws(PodvisorError) {
        self.root = root
        try FileSystem.createDirectory("\(root)/sha256")
        try FileSystem.remove("\(root)/tmp")
        try FileSystem.createDirectory("\(root)/tmp")
    }

    nonisolated func path(of layer: Digest) -> String { "\(root)/sha256/\(layer.hex)" }

    nonisolated func contains(_ layer: Digest) -> Bool { FileSystem.exists(path(of: layer)) }

    nonisolated func layers() -> [Digest] {
        FileSystem.entries("\(root)/sha256").compactMap { try? Digest(parsing: "sha256:\($0)") }
    }

    /// Unpacks the blob at `archive` as layer `layer` unless that is done or under way.
    func unpack(_ layer: Digest, archive: String) async throws {
        if contains(layer) { return }
        if let running = inFlight[layer] { return try await running.value }
        let temporary = "\(root)/tmp/\(layer.hex)-\(UUID().uuidString)"
        let finalPath = path(of: layer)
        let task = Task.detached {
            do {
                guard mkdir(temporary, 0o755) == 0 else { throw FileSystem.error("cannot create", temporary) }
                try await LayerUnpacker.unpack(archive: archive, into: temporary)
                try FileSystem.commitRename(temporary, to: finalPath)
            } catch {
                try? FileSystem.remove(temporary)
                throw error
            }
        }
        inFlight[layer] = task
        defer { inFlight[layer] = nil }
        try await task.value
    }

    func delete(_ layer: Digest) throws(PodvisorError) {
        // Renamed out of sight first: a crash half-way through the removal leaves no half layer visible.
        let doomed = "\(root)/tmp/\(layer.hex)-removing"
        guard rename(path(of: layer), doomed) == 0 || errno == ENOENT else { throw FileSystem.error("cannot remove", path(of: layer)) }
        try FileSystem.remove(doomed)
    }
}

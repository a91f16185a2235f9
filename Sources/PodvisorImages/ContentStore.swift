import Crypto
import Foundation
import PodvisorCore

/// Blobs addressed by digest under `<root>/blobs/sha256/<hex>`. A blob is streamed into `<root>/ingest/`, hashed
/// as it arrives, and renamed into place only when its digest and size match, so a crash or a corrupt download
/// never leaves a wrong blob visible. Concurrent fetches of one digest share a single download.
public actor ContentStore {
    public nonisolated let root: String
    private var inFlight: [Digest: Task<Void, any Error>] = [:]

    /// Opens (creating) the store. Leftovers in `ingest/` are partial downloads of a process that died: removed.
    public init(root: String) throws(PodvisorError) {
        self.root = root
        try FileSystem.createDirectory("\(root)/blobs/sha256")
        try FileSystem.remove("\(root)/ingest")
        try FileSystem.createDirectory("\(root)/ingest")
    }

    public nonisolated func path(of digest: Digest) -> String { "\(root)/blobs/sha256/\(digest.hex)" }

    public nonisolated func contains(_ digest: Digest) -> Bool { FileSystem.exists(path(of: digest)) }

    public nonisolated func data(of digest: Digest) throws(PodvisorError) -> Data {
        do { return try FileSystem.read(path(of: digest)) } catch {
            throw PodvisorError(.notFound, "blob \(digest) is not in the content store")
        }
    }

    /// Every blob present.
    public nonisolated func digests() -> [Digest] {
        FileSystem.entries("\(root)/blobs/sha256").compactMap { try? Digest(parsing: "sha256:\($0)") }
    }

    /// Stores bytes already in memory (manifests, configs) after checking them against `digest`.
    public func write(_ data: Data, digest: Digest) async throws {
        try await fetch(digest, size: Int64(data.count)) { writer in
            try data.withUnsafeBytes { try writer.write($0) }
        }
    }

    /// Makes `digest` present: returns at once when it is, joins a download of it already under way, or runs
    /// `source` to produce it. `source` may call `BlobWriter.restart()` to begin again (a retried request).
    public func fetch(
        _ digest: Digest, size: Int64?, from source: @escaping @Sendable (BlobWriter) async throws -> Void
    ) async throws {
        if contains(digest) { return }
        if let running = inFlight[digest] { return try await running.value }
        let finalPath = path(of: digest)
        let temporary = "\(root)/ingest/\(digest.hex)-\(UUID().uuidString)"
        let task = Task.detached {
            let writer = try BlobWriter(path: temporary, digest: digest, size: size)
            do {
                try await source(writer)
                try writer.commit(to: finalPath)
            } catch {
                writer.abandon()
                throw error
            }
        }
        inFlight[digest] = task
        defer { inFlight[digest] = nil }
        try await task.value
    }

    /// Removes a blob; a missing one is not an error.
    public func delete(_ digest: Digest) throws(PodvisorError) {
        try FileSystem.remove(path(of: digest))
    }
}

/// One blob being written: bytes are hashed and counted as they are appended, and the file becomes the blob only
/// through `commit`, which refuses content whose digest or size is not the expected one.
public final class BlobWriter {
    let path: String
    let digest: Digest
    let size: Int64?
    private var fd: Int32
    private var hasher = SHA256()
    public private(set) var written: Int64 = 0

    init(path: String, digest: Digest, size: Int64?) throws(PodvisorError) {
        self.path = path
        self.digest = digest
        self.size = size
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw FileSystem.error("cannot create", path) }
    }

    deinit { if fd >= 0 { close(fd) } }

    public func write(_ bytes: UnsafeRawBufferPointer) throws(PodvisorError) {
        if let size, written + Int64(bytes.count) > size {
            throw PodvisorError(.dataLoss, "blob \(digest) is larger than its declared \(size) bytes")
        }
        try FileSystem.writeAll(fd, bytes, path: path)
        hasher.update(bufferPointer: bytes)
        written += Int64(bytes.count)
    }

    /// Drops what was written so far (a download that starts over).
    public func restart() throws(PodvisorError) {
        guard ftruncate(fd, 0) == 0, lseek(fd, 0, SEEK_SET) == 0 else { throw FileSystem.error("cannot truncate", path) }
        hasher = SHA256()
        written = 0
    }

    func commit(to finalPath: String) throws(PodvisorError) {
        if let size, written != size {
            throw PodvisorError(.dataLoss, "blob \(digest) has \(written) bytes, expected \(size)")
        }
        let actual = Digest(hasher.finalize())
        guard actual == digest else {
            throw PodvisorError(.dataLoss, "content of blob \(digest) does not match its digest (got \(actual))")
        }
        guard fsync(fd) == 0 else { throw FileSystem.error("cannot fsync", path) }
        close(fd)
        fd = -1
        try FileSystem.commitRename(path, to: finalPath)
    }

    func abandon() {
        if fd >= 0 { close(fd) }
        fd = -1
        unlink(path)
    }
}

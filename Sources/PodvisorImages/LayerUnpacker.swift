import CArchive
import Foundation
import PodvisorCore

/// Unpacks one layer (tar, gzip or zstd: libarchive tells them apart) into a directory usable as an overlayfs
/// lower dir. OCI whiteouts become overlay whiteouts: `.wh.<name>` a 0/0 character device `<name>`,
/// `.wh..wh..opq` the `trusted.overlay.opaque=y` xattr on its directory. Ownership, modes (setuid included),
/// times, xattrs, hard links, symlinks and device nodes are kept. An entry whose path has `..`, is absolute,
/// or would be written through a symlink makes the whole layer fail.
enum LayerUnpacker {
    static let extractFlags: Int32 =
        ARCHIVE_EXTRACT_OWNER | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_TIME
        | ARCHIVE_EXTRACT_XATTR | ARCHIVE_EXTRACT_ACL
        | ARCHIVE_EXTRACT_SECURE_NODOTDOT | ARCHIVE_EXTRACT_SECURE_SYMLINKS | ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS

    /// Unpacks `archive` into the existing, empty `directory`, on a thread of its own.
    static func unpack(archive: String, into directory: String) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let thread = Thread {
                do throws(PodvisorError) {
                    try unpackOnThisThread(archive: archive, into: directory)
                    continuation.resume()
                } catch {
                    continuation.resume(throwing: error)
                }
            }
            thread.start()
        }
    }

    /// libarchive's security checks (and its deferred directory fix-ups) work on paths relative to the working
    /// directory, which is per process. This thread unshares its filesystem context first so that changing its
    /// working directory touches nobody else; the thread ends with the unpack, taking the context with it.
    private static func unpackOnThisThread(archive path: String, into directory: String) throws(PodvisorError) {
        guard podvisor_unshare_fs() == 0 else { throw FileSystem.error("cannot unshare the filesystem context for", directory) }
        guard chdir(directory) == 0 else { throw FileSystem.error("cannot enter", directory) }

        let reader = archive_read_new()
        defer { archive_read_free(reader) }
        archive_read_support_filter_all(reader)
        archive_read_support_format_tar(reader)
        guard archive_read_open_filename(reader, path, 1 << 20) == ARCHIVE_OK else {
            throw failure(.invalidArgument, "cannot open layer \(path)", reader)
        }
        let writer = archive_write_disk_new()
        defer { archive_write_free(writer) }
        archive_write_disk_set_options(writer, extractFlags)

        var entry: OpaquePointer?
        while true {
            let status = archive_read_next_header(reader, &entry)
            if status == ARCHIVE_EOF { break }
            guard status >= ARCHIVE_WARN, let entry else { throw failure(.invalidArgument, "layer \(path) is not a valid tar", reader) }
            let name = String(cString: archive_entry_pathname(entry))
            let (parent, base) = split(name)
            if base == ".wh..wh..opq" {
                try markOpaque(parent, entry: name)
                continue
            }
            if base.hasPrefix(".wh.") {
                // Written through libarchive like any entry, so the same path checks apply to it.
                archive_entry_set_pathname(entry, parent + String(base.dropFirst(4)))
                archive_entry_set_filetype(entry, UInt32(Glibc.S_IFCHR))
                archive_entry_set_rdev(entry, 0)
                archive_entry_set_perm(entry, 0)
                archive_entry_set_size(entry, 0)
                archive_entry_set_hardlink(entry, nil)
            }
            guard archive_write_header(writer, entry) >= ARCHIVE_WARN else {
                throw failure(.invalidArgument, "layer \(path): refused entry \(name)", writer)
            }
            if archive_entry_size(entry) > 0 { try copyData(reader, writer, entry: name) }
            guard archive_write_finish_entry(writer) >= ARCHIVE_WARN else {
                throw failure(.internalError, "layer \(path): cannot finish \(name)", writer)
            }
        }
        guard archive_write_close(writer) >= ARCHIVE_WARN else {
            throw failure(.internalError, "layer \(path): cannot finish unpacking", writer)
        }
    }

    private static func copyData(_ reader: OpaquePointer?, _ writer: OpaquePointer?, entry: String) throws(PodvisorError) {
        var buffer: UnsafeRawPointer?
        var size = 0
        var offset: Int64 = 0
        while true {
            let status = archive_read_data_block(reader, &buffer, &size, &offset)
            if status == ARCHIVE_EOF { return }
            guard status >= ARCHIVE_WARN else { throw failure(.invalidArgument, "cannot read \(entry)", reader) }
            guard archive_write_data_block(writer, buffer, size, offset) >= ARCHIVE_WARN else {
                throw failure(.internalError, "cannot write \(entry)", writer)
            }
        }
    }

    /// `a/b/.wh.c` → ("a/b/", ".wh.c"); `./x` keeps its `./`.
    static func split(_ name: String) -> (parent: String, base: String) {
        var trimmed = Substring(name)
        while trimmed.hasSuffix("/") { trimmed.removeLast() }
        guard let slash = trimmed.lastIndex(of: "/") else { return ("", String(trimmed)) }
        return (String(trimmed[...slash]), String(trimmed[trimmed.index(after: slash)...]))
    }

    /// Sets `trusted.overlay.opaque=y` on `directory` (relative to the working directory), creating it when the
    /// marker comes before the directory's own entry. Each component is opened with O_NOFOLLOW: a symlink in the
    /// path cannot lead outside the layer.
    private static func markOpaque(_ directory: String, entry: String) throws(PodvisorError) {
        var fd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw FileSystem.error("cannot open", ".") }
        defer { close(fd) }
        for component in directory.split(separator: "/") where component != "." {
            guard component != ".." else { throw PodvisorError(.invalidArgument, "refused entry \(entry): path contains '..'") }
            let name = String(component)
            if mkdirat(fd, name, 0o755) != 0 && errno != EEXIST { throw FileSystem.error("cannot create", name) }
            let next = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard next >= 0 else {
                throw PodvisorError(.invalidArgument, "refused entry \(entry): \(name) is not a directory (\(String(cString: strerror(errno))))")
            }
            close(fd)
            fd = next
        }
        guard fsetxattr(fd, "trusted.overlay.opaque", "y", 1, 0) == 0 else {
            throw FileSystem.error("cannot mark opaque", directory.isEmpty ? "/" : directory)
        }
    }

    private static func failure(_ code: PodvisorError.Code, _ what: String, _ archive: OpaquePointer?) -> PodvisorError {
        let message = archive_error_string(archive).map { String(cString: $0) } ?? "unknown libarchive error"
        return PodvisorError(code, "\(what): \(message)")
    }
}

import CArchive
import Foundation

/// Writes tar archives entry by entry with libarchive, hostile names included, for the unpacker's tests.
struct TarBuilder {
    enum Compression { case none, gzip, zstd }

    struct Entry {
        var path: String
        var type: UInt32 = UInt32(Glibc.S_IFREG)
        var mode: UInt32 = 0o644
        var uid: Int64 = 0
        var gid: Int64 = 0
        var content = Data()
        var symlink: String?
        var hardlink: String?
        var rdev: (major: UInt32, minor: UInt32) = (0, 0)
        var xattrs: [String: String] = [:]

        static func file(_ path: String, _ text: String = "", mode: UInt32 = 0o644, uid: Int64 = 0, gid: Int64 = 0) -> Entry {
            Entry(path: path, mode: mode, uid: uid, gid: gid, content: Data(text.utf8))
        }
        static func directory(_ path: String, mode: UInt32 = 0o755) -> Entry {
            Entry(path: path, type: UInt32(Glibc.S_IFDIR), mode: mode)
        }
        static func symlink(_ path: String, to target: String) -> Entry {
            Entry(path: path, type: UInt32(Glibc.S_IFLNK), mode: 0o777, symlink: target)
        }
        static func hardlink(_ path: String, to target: String) -> Entry {
            Entry(path: path, hardlink: target)
        }
    }

    static func write(_ entries: [Entry], to path: String, compression: Compression = .none) throws {
        let archive = archive_write_new()
        defer { archive_write_free(archive) }
        archive_write_set_format_pax_restricted(archive)
        switch compression {
        case .none: break
        case .gzip: archive_write_add_filter_gzip(archive)
        case .zstd: archive_write_add_filter_zstd(archive)
        }
        guard archive_write_open_filename(archive, path) == ARCHIVE_OK else { throw TarError(archive) }
        for item in entries {
            let entry = archive_entry_new()
            defer { archive_entry_free(entry) }
            archive_entry_set_pathname(entry, item.path)
            archive_entry_set_filetype(entry, item.type)
            archive_entry_set_perm(entry, item.mode)
            archive_entry_set_uid(entry, item.uid)
            archive_entry_set_gid(entry, item.gid)
            archive_entry_set_mtime(entry, 1_700_000_000, 0)
            if let target = item.symlink { archive_entry_set_symlink(entry, target) }
            if let target = item.hardlink { archive_entry_set_hardlink(entry, target) }
            archive_entry_set_rdevmajor(entry, dev_t(item.rdev.major))
            archive_entry_set_rdevminor(entry, dev_t(item.rdev.minor))
            for (name, value) in item.xattrs { archive_entry_xattr_add_entry(entry, name, value, value.utf8.count) }
            let size = item.hardlink == nil ? item.content.count : 0
            archive_entry_set_size(entry, Int64(size))
            guard archive_write_header(archive, entry) >= ARCHIVE_WARN else { throw TarError(archive) }
            if size > 0 {
                _ = item.content.withUnsafeBytes { archive_write_data(archive, $0.baseAddress, $0.count) }
            }
        }
        guard archive_write_close(archive) == ARCHIVE_OK else { throw TarError(archive) }
    }

    struct TarError: Error, CustomStringConvertible {
        var description: String
        init(_ archive: OpaquePointer?) { description = archive_error_string(archive).map { String(cString: $0) } ?? "?" }
    }
}

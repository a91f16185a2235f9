import Foundation
import PodvisorCore

/// The few POSIX file operations the image store needs to be crash-safe: a file or directory becomes visible
/// under its final name only complete and on disk (write a temporary, fsync, rename, fsync the directory).
enum FileSystem {
    static func error(_ what: String, _ path: String, errno code: Int32 = errno) -> PodvisorError {
        PodvisorError(.internalError, "\(what) \(path): \(String(cString: strerror(code)))")
    }

    static func createDirectory(_ path: String) throws(PodvisorError) {
        do { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
            throw PodvisorError(.internalError, "cannot create \(path)", cause: error)
        }
    }

    static func exists(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0
    }

    /// Removes a file or a whole tree; a missing path is not an error.
    static func remove(_ path: String) throws(PodvisorError) {
        guard exists(path) else { return }
        do { try FileManager.default.removeItem(atPath: path) } catch {
            throw PodvisorError(.internalError, "cannot remove \(path)", cause: error)
        }
    }

    static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, path: String) throws(PodvisorError) {
        var offset = 0
        while offset < bytes.count {
            let n = write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                throw error("cannot write", path)
            }
            offset += n
        }
    }

    static func fsyncPath(_ path: String, directory: Bool) throws(PodvisorError) {
        let fd = open(path, directory ? O_RDONLY | O_DIRECTORY : O_RDONLY)
        guard fd >= 0 else { throw error("cannot open", path) }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw error("cannot fsync", path) }
    }

    /// Renames into place and makes the rename itself durable.
    static func commitRename(_ from: String, to: String) throws(PodvisorError) {
        guard rename(from, to) == 0 else { throw error("cannot rename \(from) to", to) }
        try fsyncPath((to as NSString).deletingLastPathComponent, directory: true)
    }

    static func read(_ path: String) throws(PodvisorError) -> Data {
        guard let data = readFile(path) else {
            throw PodvisorError(.notFound, "cannot read \(path)")
        }
        return data
    }

    static func entries(_ directory: String) -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
    }
}

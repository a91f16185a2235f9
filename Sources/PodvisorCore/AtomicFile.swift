import Foundation

/// Crash-safe file replacement: a temporary beside the file, fsync, rename, fsync of the directory. A crash
/// leaves either the old content or the new, never a mix.
public enum AtomicFile {
    public static func write(_ data: Data, to path: String, mode: mode_t = 0o600) throws(PodvisorError) {
        let temporary = "\(path).tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard fd >= 0 else { throw PodvisorError(.internalError, "cannot create \(temporary): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let written = data.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        guard written == data.count, fsync(fd) == 0, rename(temporary, path) == 0 else {
            throw PodvisorError(.internalError, "cannot write \(path): \(String(cString: strerror(errno)))")
        }
        let directoryFD = open((path as NSString).deletingLastPathComponent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if directoryFD >= 0 {
            fsync(directoryFD)
            close(directoryFD)
        }
    }

    /// `value` as JSON, atomically.
    public static func write<T: Encodable>(json value: T, to path: String) throws(PodvisorError) {
        let data: Data
        do { data = try JSONEncoder().encode(value) } catch {
            throw PodvisorError(.internalError, "cannot encode \(path)", cause: error)
        }
        try write(data, to: path)
    }
}

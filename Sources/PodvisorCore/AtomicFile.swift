import Foundation

/// Crash-safe replacement of a file: a temporary beside it is written and fsynced, renamed over it, and the
/// directory fsynced, so after a crash the path holds the old or the new content, never a mix or nothing.
public enum AtomicFile {
    public static func write(_ data: Data, to path: String, mode: mode_t = 0o600) throws(PodvisorError) {
        let temporary = "\(path).tmp-\(UUID().uuidString)"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else { throw failure("cannot create", temporary) }
        var complete = false
        defer { if !complete { unlink(temporary) } }
        do {
            // The error is built (errno read) before this close runs.
            defer { close(fd) }
            var written = 0
            while written < data.count {
                let n = data.withUnsafeBytes { Foundation.write(fd, $0.baseAddress! + written, data.count - written) }
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { throw failure("cannot write", temporary) }
                written += n
            }
            guard fsync(fd) == 0 else { throw failure("cannot fsync", temporary) }
        }
        guard rename(temporary, path) == 0 else { throw failure("cannot rename \(temporary) to", path) }
        complete = true
        let directory = open((path as NSString).deletingLastPathComponent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard directory >= 0 else { return }
        defer { close(directory) }
        fsync(directory)
    }

    /// `value` as JSON, atomically.
    public static func write<T: Encodable>(json value: T, to path: String) throws(PodvisorError) {
        let data: Data
        do { data = try JSONEncoder().encode(value) } catch {
            throw PodvisorError(.internalError, "cannot encode \(path)", cause: error)
        }
        try write(data, to: path)
    }

    private static func failure(_ what: String, _ path: String) -> PodvisorError {
        PodvisorError(.internalError, "\(what) \(path): \(String(cString: strerror(errno)))")
    }
}

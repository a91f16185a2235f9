import Foundation
import PodvisorCore

/// Judges a host path a container asks to mount by what it resolves to, not by how it is spelled:
/// `<state>//`, `<state>/./x`, a symlink into the state directory and a directory above it (which
/// contains it) are all refused. The path is opened once (O_PATH) and both judged and mounted through that
/// descriptor, so swapping a symlink in after the check changes nothing.
enum HostPathGuard {
    struct Opened {
        /// `/proc/self/fd/N`: mounting this mounts exactly what was judged.
        let path: String
        /// What the descriptor resolves to.
        let resolved: String
        private let fd: Int32

        init(fd: Int32) {
            self.fd = fd
            path = "/proc/self/fd/\(fd)"
            resolved = HostPathGuard.resolve(path)
        }

        func close() { _ = Glibc.close(fd) }
    }

    /// The path's canonical form (symlinks, `.`, `..` and repeated slashes resolved); the path itself
    /// when it does not exist.
    static func resolve(_ path: String) -> String {
        guard let resolved = realpath(path, nil) else { return path }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// O_PATH (not exported by Glibc's Swift module): a descriptor that names the file without opening it.
    private static let openPathOnly: Int32 = 0o10_000_000

    static func open(_ path: String, protecting protected: [String]) throws(PodvisorError) -> Opened {
        let shown = PodvisorError.quote(path)
        // Judged as written first: a missing directory is created, and must not be created in our state.
        try check(URL(fileURLWithPath: path).standardizedFileURL.path, shown, protected)
        if access(path, F_OK) != 0 {
            do { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
                throw PodvisorError(.invalidArgument, "host path \(shown) does not exist and cannot be created: \(error.localizedDescription)")
            }
        }
        let fd = Glibc.open(path, openPathOnly | O_CLOEXEC)
        guard fd >= 0 else {
            throw PodvisorError(.invalidArgument, "host path \(shown) cannot be opened: \(String(cString: strerror(errno)))")
        }
        let opened = Opened(fd: fd)
        do throws(PodvisorError) { try check(opened.resolved, shown, protected) } catch {
            opened.close()
            throw error
        }
        return opened
    }

    private static func check(_ resolved: String, _ shown: String, _ protected: [String]) throws(PodvisorError) {
        for root in protected {
            let inside = resolved == root || resolved.hasPrefix(root.hasSuffix("/") ? root : root + "/")
            let above = resolved == "/" || root.hasPrefix(resolved + "/")
            guard !inside && !above else {
                throw PodvisorError(.invalidArgument, "host path \(shown) reaches podvisor's own state (\(root)); it cannot be mounted")
            }
        }
    }
}

import CLinuxSupport
import Foundation
import PodvisorCore

// A sandbox's network namespace, pinned by a bind mount of its nsfs file so it outlives the thread that made
// it; pinned under /run/netns by default, so operators reach it with `ip netns exec` / `ip -n`.
//
//   NetworkNamespace.create(name:directory:) throws -> NetworkNamespace
//   NetworkNamespace(name:directory:)                   the handle of one that may exist
//   namespace.path, namespace.isPinned
//   namespace.remove() throws                           unmount + unlink; idempotent
//   NetworkNamespace.isPinned(path:) -> Bool            also for a path the runtime kept (CNI_NETNS)

public struct NetworkNamespace: Sendable, Hashable {
    public static let defaultDirectory = "/run/netns"
    public let name: String
    public let directory: String

    public init(name: String, directory: String = NetworkNamespace.defaultDirectory) {
        self.name = name
        self.directory = directory
    }

    public var path: String { "\(directory)/\(name)" }

    public var isPinned: Bool { Self.isPinned(path: path) }

    /// Whether `path` is a live network namespace (a bind-mounted nsfs file), not a plain file left behind.
    public static func isPinned(path: String) -> Bool {
        pv_is_nsfs(path) == 1
    }

    /// Creates a new, empty network namespace (only a down `lo`) pinned at `directory/name`. The calling
    /// process's own namespace is never touched. A plain file left at the path by an interrupted create is
    /// replaced; a live namespace there is `alreadyExists`.
    public static func create(name: String, directory: String = defaultDirectory) throws(PodvisorError) -> NetworkNamespace {
        guard !name.isEmpty, !name.contains("/"), name != ".", name != ".." else {
            throw PodvisorError(.invalidArgument, "invalid network namespace name \"\(name)\"")
        }
        let namespace = NetworkNamespace(name: name, directory: directory)
        let path = namespace.path
        guard pv_netns_prepare_dir(directory) == 0 else { throw failure("cannot prepare \(directory) for network namespaces") }
        if isPinned(path: path) { throw PodvisorError(.alreadyExists, "network namespace \(path) already exists") }
        unlink(path)
        let fd = open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0)
        guard fd >= 0 else { throw failure("cannot create \(path)") }
        close(fd)
        guard pv_netns_create(path) == 0 else {
            let error = failure("cannot create network namespace \(path)")
            unlink(path)
            throw error
        }
        return namespace
    }

    /// Unpins and deletes the namespace; the kernel frees it once no process or interface holds it.
    /// Removing one that is already gone is fine.
    public func remove() throws(PodvisorError) {
        // Detach: a process still inside (a leftover nsenter) must not make the unmount fail.
        guard pv_umount_detach(path) == 0 || errno == EINVAL || errno == ENOENT else {
            throw Self.failure("cannot unmount \(path)")
        }
        guard unlink(path) == 0 || errno == ENOENT else { throw Self.failure("cannot remove \(path)") }
    }

    private static func failure(_ what: String) -> PodvisorError {
        PodvisorError(.internalError, "\(what): \(String(cString: strerror(errno)))")
    }
}

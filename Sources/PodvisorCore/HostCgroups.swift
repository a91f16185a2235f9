import Foundation

/// The host's cgroup file system: one v2 hierarchy, or a v1 hierarchy per controller.
public enum HostCgroups {
    public static let root = "/sys/fs/cgroup"
    /// cgroup v2: its root has `cgroup.controllers`.
    public static var unified: Bool { FileManager.default.fileExists(atPath: "\(root)/cgroup.controllers") }
}

import Foundation
import PodvisorCore
import PodvisorVMM

/// Placing a container's root filesystem and volumes into the VM's shared directory, below
/// `<share>/<container id>/`. Mounts made here reach the running guest through virtio-fs.
extension PodVM {
    /// Bind-mounts `directory` at `<share>/<containerID>/rootfs`; returns that path relative to the share,
    /// which is what the agent's CreateContainer takes.
    package func mountRootfs(containerID: String, from directory: String) throws(PodvisorError) -> String {
        try place(directory, at: "\(try Self.component(containerID, "container id"))/rootfs")
    }

    /// Bind-mounts a volume (directory or file) at `<share>/<containerID>/volumes/<name>`. A read-only volume
    /// is made read-only in a private staging mount *before* it appears under the share: a read-only remount
    /// made after that does not propagate to virtiofsd, and the guest could still write (measured here).
    /// `recursive`: mounts below the source are read-only too; otherwise they stay writable.
    package func mountVolume(
        containerID: String, name: String, from source: String, readonly: Bool, recursive: Bool = true
    )
        throws(PodvisorError) -> String
    {
        let relative = "\(try Self.component(containerID, "container id"))/volumes/\(try Self.component(name, "volume name"))"
        guard readonly else { return try place(source, at: relative) }
        let staging = "\(vm.configuration.runDirectory)/staging-\(containerID)-\(name)"
        defer {
            detachMount(staging)
            try? removeUnmountedDirectory(staging)
        }
        try bindMount(source, at: staging, recursive ? .readonlyRecursive : .readonlyTop)
        return try place(staging, at: relative)
    }

    /// Detaches everything mounted for the container and removes its directory. Detached, not unmounted:
    /// virtiofsd may still hold handles the guest used.
    package func unmountContainer(containerID: String) throws(PodvisorError) {
        let directory = "\(try sharedDirectory())/\(try Self.component(containerID, "container id"))"
        detachMounts(under: directory)
        try removeUnmountedDirectory(directory)
    }

    /// Read-write bind under the share (read-only sources arrive already read-only from a staging mount).
    private func place(_ source: String, at relative: String) throws(PodvisorError) -> String {
        try bindMount(source, at: "\(try sharedDirectory())/\(relative)")
        return relative
    }

    private static func component(_ value: String, _ what: String) throws(PodvisorError) -> String {
        guard !value.isEmpty, !value.contains("/"), value != ".", value != ".." else {
            throw PodvisorError(.invalidArgument, "\(what) \"\(value)\" cannot name a directory")
        }
        return value
    }

    private func sharedDirectory() throws(PodvisorError) -> String {
        guard let share = vm.sharedDirectory else {
            throw PodvisorError(.failedPrecondition, "VM \(vm.name) has no shared directory")
        }
        return share
    }
}

import Foundation
import PodvisorCore
import PodvisorVMM

/// Placing a container's root filesystem and volumes into the VM's shared directory, below
/// `<share>/<container id>/`, in the VM's own mount namespace: they reach the running guest through
/// virtio-fs, and the host never sees them.
extension PodVM {
    /// Bind-mounts `directory` at `<share>/<containerID>/rootfs`; returns that path relative to the share,
    /// which is what the agent's CreateContainer takes. `idmap` (a pod's user namespace): seen shifted.
    package func mountRootfs(containerID: String, from directory: String, idmap: UserNamespaceMapping? = nil) throws(PodvisorError) -> String {
        let relative = "\(try Self.component(containerID, "container id"))/rootfs"
        try vm.bind(directory, intoShareAt: relative, idmap: idmap)
        return relative
    }

    /// An overlay of image layers (top first) at `<share>/<containerID>/rootfs`, writes going to `upper`;
    /// returns that path relative to the share. `idmap` (a pod's user namespace): the layers seen shifted.
    package func mountRootfs(
        containerID: String, layers: [String], upper: String, work: String, idmap: UserNamespaceMapping? = nil
    ) throws(PodvisorError) -> String {
        let relative = "\(try Self.component(containerID, "container id"))/rootfs"
        try vm.mountOverlay(lower: layers, upper: upper, work: work, intoShareAt: relative, idmap: idmap)
        return relative
    }

    /// Bind-mounts a volume (directory or file) at `<share>/<containerID>/volumes/<name>`, read-only before
    /// the guest can see it when asked. `recursive`: mounts below the source are read-only too; otherwise
    /// they stay writable. `idmap` (a pod's user namespace): its files seen shifted, as containerd does.
    package func mountVolume(
        containerID: String, name: String, from source: String, readonly: Bool, recursive: Bool = true,
        idmap: UserNamespaceMapping? = nil
    )
        throws(PodvisorError) -> String
    {
        let relative = "\(try Self.component(containerID, "container id"))/volumes/\(try Self.component(name, "volume name"))"
        try vm.bind(source, intoShareAt: relative, readonly ? (recursive ? .readonlyRecursive : .readonlyTop) : .readWrite, idmap: idmap)
        return relative
    }

    /// Detaches everything mounted for the container and removes its directory. Detached, not unmounted:
    /// virtiofsd may still hold handles the guest used.
    package func unmountContainer(containerID: String) throws(PodvisorError) {
        let id = try Self.component(containerID, "container id")
        let volumes = ((try? FileManager.default.contentsOfDirectory(atPath: "\(try sharedDirectory())/\(id)/volumes")) ?? []).map { "volumes/\($0)" }
        try vm.removeFromShare(id, mountPoints: ["rootfs"] + volumes)
    }

    private func sharedDirectory() throws(PodvisorError) -> String {
        guard let share = vm.sharedDirectory else {
            throw PodvisorError(.failedPrecondition, "VM \(vm.name) has no shared directory")
        }
        return share
    }

    private static func component(_ value: String, _ what: String) throws(PodvisorError) -> String {
        guard !value.isEmpty, !value.contains("/"), value != ".", value != ".." else {
            throw PodvisorError(.invalidArgument, "\(what) \"\(value)\" cannot name a directory")
        }
        return value
    }
}

import CLinuxSupport
import Foundation
import PodvisorCore
import PodvisorVMM

/// Placing container root filesystems into the VM's shared directory. The seam where the image service
/// will hand over an overlay of unpacked layers; for now the rootfs is any host directory.
extension PodVM {
    /// Bind-mounts `directory` at `<share>/<containerID>/rootfs`; returns that path relative to the share,
    /// which is what CreateContainer takes. The mount reaches the running guest through virtio-fs.
    public func mountRootfs(containerID: String, from directory: String) throws(PodvisorError) -> String {
        let share = try sharedDirectory()
        let relative = "\(containerID)/rootfs"
        let target = "\(share)/\(relative)"
        guard !containerID.isEmpty, !containerID.contains("/"), containerID != "..", containerID != "." else {
            throw PodvisorError(.invalidArgument, "container id \"\(containerID)\" cannot name a directory")
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw PodvisorError(.notFound, "rootfs directory \(directory) does not exist")
        }
        do {
            try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
        } catch {
            throw PodvisorError(.internalError, "cannot create \(target)", cause: error)
        }
        guard pv_bind_mount(directory, target, 0) == 0 else {
            let code = errno
            try? FileManager.default.removeItem(atPath: "\(share)/\(containerID)")
            throw PodvisorError(.internalError, "cannot bind \(directory) on \(target): errno \(code)")
        }
        return relative
    }

    /// Detaches the container's rootfs from the share and removes its directory. Detached, not unmounted:
    /// virtiofsd may still hold handles the guest used.
    public func unmountRootfs(containerID: String) throws(PodvisorError) {
        let share = try sharedDirectory()
        let directory = "\(share)/\(containerID)"
        _ = pv_umount_detach("\(directory)/rootfs")
        try removeUnmountedDirectory(directory)
    }

    private func sharedDirectory() throws(PodvisorError) -> String {
        guard let share = vm.sharedDirectory else {
            throw PodvisorError(.failedPrecondition, "VM \(vm.name) has no shared directory")
        }
        return share
    }
}

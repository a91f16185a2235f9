import CLinuxSupport
import Foundation
import PodvisorCore
import PodvisorVMM

/// Placing a container's root filesystem and volumes into the VM's shared directory, below
/// `<share>/<container id>/`. The seam where the image service will hand over an overlay of unpacked layers;
/// for now the rootfs is any host directory. Mounts made here reach the running guest through virtio-fs.
extension PodVM {
    /// Bind-mounts `directory` at `<share>/<containerID>/rootfs`; returns that path relative to the share,
    /// which is what CreateContainer takes.
    public func mountRootfs(containerID: String, from directory: String) throws(PodvisorError) -> String {
        try place(directory, at: "\(try Self.component(containerID, "container id"))/rootfs")
    }

    /// Bind-mounts a volume (directory or file) at `<share>/<containerID>/volumes/<name>`. A read-only volume
    /// is made read-only in a private staging mount *before* it appears under the share: a read-only remount
    /// made after that does not propagate to virtiofsd, and the guest could still write (measured here).
    /// `recursive`: mounts below the source are read-only too; otherwise they stay writable.
    public func mountVolume(containerID: String, name: String, from source: String, readonly: Bool, recursive: Bool = true)
        throws(PodvisorError) -> String
    {
        let relative = "\(try Self.component(containerID, "container id"))/volumes/\(try Self.component(name, "volume name"))"
        guard readonly else { return try place(source, at: relative) }
        let staging = "\(vm.configuration.runDirectory)/staging-\(containerID)-\(name)"
        try Self.makeMountPoint(staging, like: source)
        defer {
            _ = pv_umount_detach(staging)
            try? removeUnmountedDirectory(staging)
        }
        guard pv_bind_mount(source, staging, Int32(recursive ? PV_READONLY_RECURSIVE : PV_READONLY_TOP)) == 0 else {
            throw PodvisorError(.internalError, "cannot bind \(source) read-only: errno \(errno)")
        }
        return try place(staging, at: relative)
    }

    /// Detaches everything mounted for the container and removes its directory. Detached, not unmounted:
    /// virtiofsd may still hold handles the guest used.
    public func unmountContainer(containerID: String) throws(PodvisorError) {
        let directory = "\(try sharedDirectory())/\(try Self.component(containerID, "container id"))"
        for mountPoint in mountPoints(under: directory) { _ = pv_umount_detach(mountPoint) }
        try removeUnmountedDirectory(directory)
    }

    /// Read-write bind under the share (read-only sources arrive already read-only from a staging mount).
    private func place(_ source: String, at relative: String) throws(PodvisorError) -> String {
        let target = "\(try sharedDirectory())/\(relative)"
        try Self.makeMountPoint(target, like: source)
        guard pv_bind_mount(source, target, Int32(PV_READWRITE)) == 0 else {
            throw PodvisorError(.internalError, "cannot bind \(source) on \(target): errno \(errno)")
        }
        return relative
    }

    /// An empty directory, or an empty file when `source` is a file (a bind needs the same kind).
    private static func makeMountPoint(_ path: String, like source: String) throws(PodvisorError) {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: source, isDirectory: &isDirectory) else {
            throw PodvisorError(.notFound, "\(source) does not exist")
        }
        do {
            if isDirectory.boolValue {
                try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            } else {
                try FileManager.default.createDirectory(
                    atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                guard FileManager.default.createFile(atPath: path, contents: nil) else {
                    throw PodvisorError(.internalError, "cannot create \(path)")
                }
            }
        } catch let error as PodvisorError {
            throw error
        } catch {
            throw PodvisorError(.internalError, "cannot create \(path)", cause: error)
        }
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

import CLinuxSupport
import Foundation
import PodvisorCore

/// The one host directory a VM sees through virtio-fs (tag `share`), served by Debian's C virtiofsd.
///
/// Recipe measured on these machines (brief §2): the directory is made a shared mount point of its own
/// *before* virtiofsd starts, so mounts added under it later (container rootfs, volumes) propagate into
/// virtiofsd's mount namespace and reach the guest; `announce_submounts` keeps their inode numbers apart.
/// Without it, the guest never sees those mounts and its writes land in the empty directories beneath.
struct SharedDirectory {
    static let tag = "share"

    let path: String
    let socket: String
    let virtiofsd: HelperProcess

    static func start(executable: String, runDirectory: String, qemuGroup: gid_t?) throws(PodvisorError) -> SharedDirectory {
        let path = "\(runDirectory)/share"
        guard mkdir(path, 0o755) == 0 || errno == EEXIST else {
            throw PodvisorError(.internalError, "cannot create \(path): errno \(errno)")
        }
        guard pv_make_shared_mountpoint(path) == 0 else {
            throw PodvisorError(.internalError, "cannot make \(path) a shared mount point: errno \(errno)")
        }
        let socket = socketPath(runDirectory)
        do {
            let virtiofsd = try HelperProcess.start(
                "virtiofsd", executable: executable,
                // xattr: file capabilities and overlay metadata must survive the trip into the guest.
                // --socket-group: virtiofsd sets its socket's mode itself, ignoring the umask; QEMU needs access.
                arguments: [
                    "--socket-path=\(socket)", "--socket-group=libvirt-qemu", "-o", "source=\(path)",
                    "-o", "announce_submounts", "-o", "xattr",
                ],
                directory: "\(runDirectory)/fs", socket: socket, qemuGroup: qemuGroup)
            return SharedDirectory(path: path, socket: socket, virtiofsd: virtiofsd)
        } catch {
            detachMount(path)
            throw error
        }
    }

    /// The share of a VM started by an earlier runtime process; its mount and virtiofsd outlived that process.
    static func adopt(runDirectory: String) throws(PodvisorError) -> SharedDirectory {
        SharedDirectory(
            path: "\(runDirectory)/share", socket: socketPath(runDirectory),
            virtiofsd: try HelperProcess.adopt("virtiofsd", directory: "\(runDirectory)/fs"))
    }

    /// Stops virtiofsd and detaches the share with everything mounted below it. The guest may still hold
    /// handles, so a plain umount would fail with EBUSY; a detached mount goes once the last user does.
    func stop() {
        virtiofsd.stop()
        Self.removePidFile(socket: socket)
        detachMount(path)
    }

    static func socketPath(_ runDirectory: String) -> String { "\(runDirectory)/fs/virtiofsd.sock" }

    /// Debian's C virtiofsd leaves `/run/virtiofsd/<socket path, '/' as '.'>.pid` behind when it is stopped:
    /// one file per VM ever started, unless whoever stops it removes it.
    static func removePidFile(socket: String) {
        unlink("/run/virtiofsd/\(socket.replacingOccurrences(of: "/", with: ".")).pid")
    }
}

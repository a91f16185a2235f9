import Foundation
import PodvisorCore

/// One vhost-device-vsock process: the hybrid-vsock backend of one VM (brief §2, probes.md).
/// QEMU connects to its vhost-user socket, the host to its `uds-path`; guest→host connections to port P
/// arrive on `<uds-path>_P`, which is why the directory's permissions matter (see HelperProcess).
struct VsockBackend {
    let helper: HelperProcess
    let vhostSocket: String
    let hostSocket: String

    /// It only moves bytes between sockets in its directory: it runs as QEMU's user where there is one.
    static func start(executable: String, directory: String, qemuUser: (uid: uid_t, gid: gid_t)?) throws(PodvisorError) -> VsockBackend {
        let helper = try HelperProcess.start(
            "vhost-device-vsock", executable: executable,
            arguments: ["--vm", "guest-cid=3,socket=\(vhostSocket(directory)),uds-path=\(hostSocket(directory))"],
            directory: directory, socket: vhostSocket(directory), qemuGroup: qemuUser?.gid, user: qemuUser)
        return VsockBackend(helper: helper, vhostSocket: vhostSocket(directory), hostSocket: hostSocket(directory))
    }

    /// The backend of a VM started by an earlier runtime process.
    static func adopt(directory: String) throws(PodvisorError) -> VsockBackend {
        VsockBackend(
            helper: try HelperProcess.adopt("vhost-device-vsock", directory: directory),
            vhostSocket: vhostSocket(directory), hostSocket: hostSocket(directory))
    }

    private static func vhostSocket(_ directory: String) -> String { "\(directory)/vhost.socket" }
    private static func hostSocket(_ directory: String) -> String { "\(directory)/vm.vsock" }
}

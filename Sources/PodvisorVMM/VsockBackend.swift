import Foundation
import PodvisorCore

/// One vhost-device-vsock process: the hybrid-vsock backend of one VM (brief §2, probes.md).
/// QEMU connects to its vhost-user socket, the host to its `uds-path`; guest→host connections to port P
/// arrive on `<uds-path>_P`, which is why the directory's permissions matter (see HelperProcess).
struct VsockBackend {
    let helper: HelperProcess
    let vhostSocket: String
    let hostSocket: String

    /// It only moves bytes between sockets in its directory: where QEMU has a user of its own, it runs as that
    /// user with no capabilities and no_new_privs, so a compromised backend gets no more than QEMU has.
    static func start(executable: String, directory: String, qemuUser: DomainSpec.QEMUUser?) throws(PodvisorError) -> VsockBackend {
        let unprivileged = qemuUser.map {
            [
                "/usr/bin/setpriv", "--reuid=\($0.uid)", "--regid=\($0.gid)", "--clear-groups", "--no-new-privs",
                "--bounding-set=-all", "--inh-caps=-all", "--",
            ]
        }
        let helper = try HelperProcess.start(
            "vhost-device-vsock", executable: executable,
            arguments: ["--vm", "guest-cid=3,socket=\(vhostSocket(directory)),uds-path=\(hostSocket(directory))"],
            directory: directory, socket: vhostSocket(directory), qemuGroup: qemuUser?.gid, wrapper: unprivileged ?? [])
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

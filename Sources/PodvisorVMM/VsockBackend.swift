import Foundation
import PodvisorCore

/// One vhost-device-vsock process: the hybrid-vsock backend of one VM (brief §2, probes.md).
/// QEMU connects to its vhost-user socket, the host to its `uds-path`; guest→host connections to port P
/// arrive on `<uds-path>_P`, which is why the directory's permissions matter (see HelperProcess).
struct VsockBackend {
    let helper: HelperProcess
    let vhostSocket: String
    let hostSocket: String

    static func start(executable: String, directory: String, qemuGroup: gid_t?) throws(PodvisorError) -> VsockBackend {
        let vhostSocket = "\(directory)/vhost.socket"
        let hostSocket = "\(directory)/vm.vsock"
        let helper = try HelperProcess.start(
            "vhost-device-vsock", executable: executable,
            arguments: ["--vm", "guest-cid=3,socket=\(vhostSocket),uds-path=\(hostSocket)"],
            directory: directory, socket: vhostSocket, qemuGroup: qemuGroup)
        return VsockBackend(helper: helper, vhostSocket: vhostSocket, hostSocket: hostSocket)
    }
}

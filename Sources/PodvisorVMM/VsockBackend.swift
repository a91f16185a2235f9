import Foundation
import PodvisorCore

/// One vhost-device-vsock process: the hybrid-vsock backend of one VM (brief §2, probes.md).
/// QEMU (user libvirt-qemu) connects to its vhost-user socket, the host to its `uds-path`.
final class VsockBackend: @unchecked Sendable {
    let directory: String
    let process: Process

    var vhostSocket: String { Self.vhostSocket(in: directory) }
    var hostSocket: String { Self.hostSocket(in: directory) }

    static func vhostSocket(in directory: String) -> String { "\(directory)/vhost.socket" }
    static func hostSocket(in directory: String) -> String { "\(directory)/vm.vsock" }

    /// Starts the backend and waits for its vhost-user socket; QEMU must find it listening.
    static func start(executable: String, directory: String, qemuGroup: gid_t?) throws(PodvisorError) -> VsockBackend {
        // setgid 2770 root:<qemu group>: every socket the backend creates (including guest→host `vm.vsock_<port>`
        // listeners made later) is reachable by QEMU, and by nobody else.
        guard mkdir(directory, 0o2770) == 0 || errno == EEXIST else {
            throw PodvisorError(.internalError, "cannot create \(directory): errno \(errno)")
        }
        if let qemuGroup { chown(directory, 0, qemuGroup) }
        chmod(directory, 0o2770)

        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        // umask 007 keeps the sockets group-writable; exec so that the pid we signal is the backend's.
        process.arguments = [
            "-c", "umask 007; exec \"$0\" --vm \"guest-cid=3,socket=$1,uds-path=$2\"",
            executable, vhostSocket(in: directory), hostSocket(in: directory),
        ]
        let logPath = "\(directory)/backend.log"
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = FileHandle(forWritingAtPath: logPath)
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        do { try process.run() } catch {
            throw PodvisorError(.unavailable, "cannot start \(executable)", cause: error)
        }
        let backend = VsockBackend(directory: directory, process: process)
        let deadline = Date().addingTimeInterval(5)
        while access(backend.vhostSocket, F_OK) != 0 {
            guard process.isRunning, Date() < deadline else {
                backend.stop()
                let output = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
                throw PodvisorError(.unavailable, "vhost-device-vsock did not come up: \(output.suffix(500))")
            }
            usleep(5_000)
        }
        return backend
    }

    private init(directory: String, process: Process) {
        self.directory = directory
        self.process = process
    }

    /// TERM, then KILL if it lingers; returns once the process is reaped.
    func stop() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGTERM)
        let deadline = Date().addingTimeInterval(1)
        while process.isRunning && Date() < deadline { usleep(5_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }
}

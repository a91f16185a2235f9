import Foundation
import PodvisorCore

/// A per-VM helper daemon (vsock backend, virtiofsd) that serves QEMU on a unix socket.
/// QEMU runs as libvirt-qemu, so the helper's directory is setgid `2770 root:libvirt-qemu` and the helper runs
/// with umask 007: every socket it creates, now or later, is reachable by QEMU and by nobody else.
final class HelperProcess: @unchecked Sendable {
    let name: String
    let process: Process
    let logPath: String

    /// Starts `executable` and waits until `socket` exists; QEMU must find it listening.
    static func start(
        _ name: String, executable: String, arguments: [String], directory: String, socket: String, qemuGroup: gid_t?
    ) throws(PodvisorError) -> HelperProcess {
        guard mkdir(directory, 0o2770) == 0 || errno == EEXIST else {
            throw PodvisorError(.internalError, "cannot create \(directory): errno \(errno)")
        }
        if let qemuGroup { chown(directory, 0, qemuGroup) }
        chmod(directory, 0o2770)

        let logPath = "\(directory)/\(name).log"
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = FileHandle(forWritingAtPath: logPath)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        // exec, so that the pid we signal is the helper's own.
        process.arguments = ["-c", "umask 007; exec \"$@\"", "sh", executable] + arguments
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        do { try process.run() } catch {
            throw PodvisorError(.unavailable, "cannot start \(name) (\(executable))", cause: error)
        }
        let helper = HelperProcess(name: name, process: process, logPath: logPath)
        let deadline = Date().addingTimeInterval(5)
        while access(socket, F_OK) != 0 {
            guard process.isRunning, Date() < deadline else {
                helper.stop()
                let output = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
                throw PodvisorError(.unavailable, "\(name) did not come up: \(output.suffix(500))")
            }
            usleep(5_000)
        }
        return helper
    }

    private init(name: String, process: Process, logPath: String) {
        self.name = name
        self.process = process
        self.logPath = logPath
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

import CLinuxSupport
import Foundation
import PodvisorCore

/// A per-VM helper daemon (vsock backend, virtiofsd) that serves QEMU on a unix socket.
/// QEMU runs as libvirt-qemu, so the helper's directory is setgid `2770 root:libvirt-qemu` and the helper runs
/// with umask 007: every socket it creates, now or later, is reachable by QEMU and by nobody else.
/// Its pid is written beside its log, so that a restarted runtime can adopt a VM whose helpers outlived it.
/// Spawned by `pv_spawn_daemon`, not Foundation's Process: that one hands on the spawning thread's signal mask
/// (SIGTERM blocked: every stop waited out its deadline and killed) and keeps the log open in this process.
final class HelperProcess: Sendable {
    let name: String
    let pid: pid_t
    /// false for a helper adopted from an earlier runtime process (not our child: we cannot wait for it).
    let isChild: Bool

    /// Starts `executable` (through `wrapper`, a command that ends by exec'ing the rest of its arguments, so
    /// the pid stays the helper's) and waits until `socket` exists; QEMU must find it listening.
    static func start(
        _ name: String, executable: String, arguments: [String], directory: String, socket: String, qemuGroup: gid_t?,
        wrapper: [String] = []
    ) throws(PodvisorError) -> HelperProcess {
        guard mkdir(directory, 0o2770) == 0 || errno == EEXIST else {
            throw PodvisorError(.internalError, "cannot create \(directory): errno \(errno)")
        }
        if let qemuGroup { chown(directory, 0, qemuGroup) }
        chmod(directory, 0o2770)

        let logPath = "\(directory)/\(name).log"
        let log = open(logPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o640)
        guard log >= 0 else { throw PodvisorError(.internalError, "cannot create \(logPath): errno \(errno)") }
        // exec, so that the pid we signal is the helper's own.
        let argv = ["/bin/sh", "-c", "umask 007; exec \"$@\"", "sh"] + wrapper + [executable] + arguments
        let pid = withCStrings(argv) { pv_spawn_daemon("/bin/sh", $0, log) }
        let spawnErrno = errno
        close(log)
        guard pid > 0 else {
            throw PodvisorError(
                .unavailable, "cannot start \(name) (\(executable))", cause: POSIXError(POSIXErrorCode(rawValue: spawnErrno) ?? .EIO))
        }
        let helper = HelperProcess(name: name, pid: pid, isChild: true)
        try? "\(helper.pid)".write(toFile: pidPath(name, directory), atomically: true, encoding: .utf8)
        let deadline = Date().addingTimeInterval(5)
        while access(socket, F_OK) != 0 {
            guard helper.isRunning, Date() < deadline else {
                helper.stop()
                let output = readTextFile(logPath) ?? ""
                throw PodvisorError(.unavailable, "\(name) did not come up: \(output.suffix(500))")
            }
            usleep(5_000)
        }
        return helper
    }

    /// The helper an earlier runtime process started in `directory`, if it still runs.
    static func adopt(_ name: String, directory: String) throws(PodvisorError) -> HelperProcess {
        guard let text = readTextFile(pidPath(name, directory)),
            let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)),
            let cmdline = readFile("/proc/\(pid)/cmdline"),
            String(decoding: cmdline, as: UTF8.self).contains(directory)
        else { throw PodvisorError(.unavailable, "\(name) of \(directory) no longer runs") }
        return HelperProcess(name: name, pid: pid, isChild: false)
    }

    private static func pidPath(_ name: String, _ directory: String) -> String { "\(directory)/\(name).pid" }

    private init(name: String, pid: pid_t, isChild: Bool) {
        self.name = name
        self.pid = pid
        self.isChild = isChild
    }

    /// A child of ours is reaped here once it has exited (nothing else waits for it); until then its pid
    /// cannot be reused, so signalling a running one never reaches another process.
    private var isRunning: Bool {
        if isChild {
            var status: Int32 = 0
            return waitpid(pid, &status, WNOHANG) == 0
        }
        // An adopted helper is reaped by init; until then it is a zombie, which is no longer running.
        guard let stat = readTextFile("/proc/\(pid)/stat"),
            let close = stat.lastIndex(of: ")")
        else { return false }
        return !stat[close...].hasPrefix(") Z")
    }

    /// TERM, then KILL if it lingers; returns once the process is gone (reaped, when it is our child).
    func stop() {
        guard isRunning else { return }
        kill(pid, SIGTERM)
        let deadline = Date().addingTimeInterval(1)
        while isRunning && Date() < deadline { usleep(5_000) }
        if isRunning { kill(pid, SIGKILL) }
        if isChild { while isRunning { usleep(1_000) } }
    }
}

/// `argv` as the NULL-terminated C array exec wants, valid inside `body`.
private func withCStrings<T>(_ argv: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> T) -> T {
    let pointers = argv.map { strdup($0) } + [nil]
    defer { pointers.forEach { free($0) } }
    return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
}

import CLinuxSupport
import Foundation

/// Learns at once when a process we did not spawn exits, through a pidfd.
///
/// Why not only libvirt's lifecycle events: libvirt emits STOPPED only after the dead QEMU has been reaped,
/// and QEMU (daemonized by libvirt) is reaped by whoever adopted it. Under an init that reaps lazily that
/// took 1.4 s here, and `virDomainDestroy` and failed starts wait for it too. So the VMM makes its process a
/// child subreaper (QEMU is then adopted by us) and reaps adopted QEMU processes itself on SIGCHLD.
enum ProcessExitWatch {
    /// Call once before starting domains.
    static let adoptOrphans: Void = {
        _ = pv_set_child_subreaper()
        let source = DispatchSource.makeSignalSource(signal: SIGCHLD, queue: .global())
        source.setEventHandler { reapAdoptedQEMU() }
        source.resume()
        sigchldSource = source
    }()

    nonisolated(unsafe) private static var sigchldSource: (any DispatchSourceSignal)?

    /// Reaps zombie QEMU processes that we adopted, and only those: every other child (libvirt's helpers,
    /// Foundation's processes) has an owner that waits for it by pid.
    static func reapAdoptedQEMU() {
        let me = getpid()
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = pid_t(entry), let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                  let open = stat.firstIndex(of: "("), let close = stat.lastIndex(of: ")")
            else { continue }
            // "pid (comm) state ppid …"; comm may contain spaces, hence the last ')'.
            let comm = stat[stat.index(after: open)..<close]
            let rest = stat[stat.index(close, offsetBy: 2)...].split(separator: " ")
            guard rest.count > 1, rest[0] == "Z", pid_t(rest[1]) == me, comm.hasPrefix("qemu-system") else { continue }
            var status: Int32 = 0
            _ = waitpid(pid, &status, WNOHANG)
        }
    }

    /// Calls `onExit` (on a watcher thread) as soon as `pid` exits, before anyone reaps it. A process already
    /// gone is left to libvirt's lifecycle events.
    static func watch(pid: pid_t, onExit: @escaping @Sendable () -> Void) {
        let pidfd = pv_pidfd_open(pid)
        guard pidfd >= 0 else { return }
        let thread = Thread {
            var pfd = pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0)
            while poll(&pfd, 1, -1) < 0 && errno == EINTR {}
            close(pidfd)
            onExit()
        }
        thread.name = "exit-watch-\(pid)"
        thread.start()
    }

    /// The QEMU process of a domain: libvirt starts it with `-name guest=<name>,…`.
    static func qemuPID(domain name: String) -> pid_t? {
        let wanted = "guest=\(name),"
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = pid_t(entry), let cmdline = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline")
            else { continue }
            if cmdline.split(separator: 0).contains(where: { String(decoding: $0, as: UTF8.self).hasPrefix(wanted) }) {
                return pid
            }
        }
        return nil
    }
}

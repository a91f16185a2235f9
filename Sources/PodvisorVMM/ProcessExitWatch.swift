import CLinuxSupport
import Foundation

/// Learns at once when a process we did not spawn exits, through a pidfd.
///
/// Why not only libvirt's lifecycle events: libvirt emits STOPPED only after the dead QEMU has been reaped,
/// and QEMU (daemonized by libvirt) is reaped by whoever adopted it. Under an init that reaps lazily that
/// took 1.4 s here, and `virDomainDestroy` waits for it too. So the VMM makes its process a child
/// subreaper (QEMU is then adopted by us) and reaps QEMU itself the moment its pidfd turns readable.
enum ProcessExitWatch {
    /// Call once before starting domains.
    static let adoptOrphans: Void = {
        _ = pv_set_child_subreaper()
    }()

    /// Calls `onExit` (on a watcher thread) when `pid` exits; false if the process is already gone.
    static func watch(pid: pid_t, onExit: @escaping @Sendable () -> Void) -> Bool {
        let pidfd = pv_pidfd_open(pid)
        guard pidfd >= 0 else { return false }
        let thread = Thread {
            var pfd = pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0)
            while poll(&pfd, 1, -1) < 0 && errno == EINTR {}
            _ = pv_pidfd_reap(pidfd)
            close(pidfd)
            onExit()
        }
        thread.name = "exit-watch-\(pid)"
        thread.start()
        return true
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

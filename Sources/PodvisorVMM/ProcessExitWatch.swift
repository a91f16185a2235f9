import CLibvirt
import CLinuxSupport
import Foundation
import PodvisorCore
import Synchronization

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

    /// Domain QEMUs we watch (adopted: nobody else waits for them), and when other QEMU zombies were first seen.
    private static let reaping = Mutex<(watched: Set<pid_t>, zombieSince: [pid_t: ContinuousClock.Instant])>(([], [:]))

    /// A QEMU zombie that is not a watched domain QEMU may be a child libvirt itself waits for (its capability
    /// probe runs `qemu -daemonize` and waits for the first process): reaping that one under libvirt fails its
    /// wait ("No child processes"). Such zombies are left alone this long; libvirt reaps its own at once.
    static let unwatchedGrace: Duration = .seconds(1)

    /// Reaps zombie QEMU processes that we adopted, and only those: every other child (libvirt's helpers,
    /// Foundation's processes) has an owner that waits for it by pid.
    static func reapAdoptedQEMU() {
        let me = getpid()
        let now = ContinuousClock.now
        var zombies: Set<pid_t> = []
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = pid_t(entry), let stat = readTextFile("/proc/\(entry)/stat"),
                let open = stat.firstIndex(of: "("), let close = stat.lastIndex(of: ")")
            else { continue }
            // "pid (comm) state ppid …"; comm may contain spaces, hence the last ')'.
            let comm = stat[stat.index(after: open)..<close]
            let rest = stat[stat.index(close, offsetBy: 2)...].split(separator: " ")
            guard rest.count > 1, rest[0] == "Z", pid_t(rest[1]) == me, comm.hasPrefix("qemu-system") else { continue }
            zombies.insert(pid)
        }
        let due = reaping.withLock { state -> [pid_t] in
            state.zombieSince = state.zombieSince.filter { zombies.contains($0.key) }
            var due: [pid_t] = []
            for pid in zombies {
                let since = state.zombieSince[pid] ?? now
                state.zombieSince[pid] = since
                if state.watched.contains(pid) || now - since >= unwatchedGrace { due.append(pid) }
            }
            return due
        }
        // The main thread shows Z as soon as it has exited, while QEMU's other threads may still be exiting:
        // waitpid then answers 0, and the pid stays watched until the SIGCHLD of the whole process. (It once
        // left the watch here, and that SIGCHLD's reap waited out the unwatched grace: a second per stop.)
        let gone = due.filter { pid in
            var status: Int32 = 0
            return waitpid(pid, &status, WNOHANG) != 0
        }
        let waiting = reaping.withLock { state -> Bool in
            for pid in gone {
                state.watched.remove(pid)
                state.zombieSince[pid] = nil
            }
            return !state.zombieSince.isEmpty
        }
        // No further SIGCHLD may come for a zombie waiting out its grace: look again once it has passed.
        if waiting { DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(1100)) { reapAdoptedQEMU() } }
    }

    /// Calls `onExit` as soon as `pid` exits, before anyone reaps it, on libvirt's event thread (as lifecycle
    /// events are): it must not block. Its pidfd is one more handle of that loop, not a thread per VM. A
    /// process already gone is left to libvirt's lifecycle events.
    static func watch(pid: pid_t, onExit: @escaping @Sendable () -> Void) {
        let pidfd = pv_pidfd_open(pid)
        guard pidfd >= 0 else { return }
        reaping.withLock { _ = $0.watched.insert(pid) }
        let watcher = Unmanaged.passRetained(Watcher(pidfd: pidfd, onExit: onExit)).toOpaque()
        let handle = virEventAddHandle(
            pidfd, Int32(VIR_EVENT_HANDLE_READABLE.rawValue),
            { handle, _, _, opaque in
                // Removed handles are not dispatched again; libvirt frees the watcher (and its pidfd) afterwards.
                virEventRemoveHandle(handle)
                opaque.map { Unmanaged<Watcher>.fromOpaque($0).takeUnretainedValue().onExit() }
            }, watcher, { opaque in opaque.map { Unmanaged<Watcher>.fromOpaque($0).release() } })
        if handle < 0 { Unmanaged<Watcher>.fromOpaque(watcher).release() }
    }

    /// What one watch holds until libvirt lets go of its handle.
    private final class Watcher: Sendable {
        let pidfd: Int32
        let onExit: @Sendable () -> Void
        init(pidfd: Int32, onExit: @escaping @Sendable () -> Void) {
            self.pidfd = pidfd
            self.onExit = onExit
        }
        deinit { close(pidfd) }
    }

    /// The QEMU process of a domain: libvirt starts it with `-name guest=<name>,…`.
    static func qemuPID(domain name: String) -> pid_t? {
        let wanted = "guest=\(name),"
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = pid_t(entry), let cmdline = readFile("/proc/\(entry)/cmdline")
            else { continue }
            if cmdline.split(separator: 0).contains(where: { String(decoding: $0, as: UTF8.self).hasPrefix(wanted) }) {
                return pid
            }
        }
        return nil
    }
}

import Foundation
import PodvisorVMM
import Synchronization

/// What a test process leaves must go when it exits, also after a failing test: servers it started (a
/// registry, a daemon), the VMs and helpers of its state directories, their mounts, its temporary folders.
/// Suites register here as they create things; one `atexit` handler undoes them, newest first.
public enum TestCleanup {
    private static let steps = Mutex<[@Sendable () -> Void]>([])
    private static let registered = Mutex(false)

    /// Runs `step` when the process exits.
    public static func atExit(_ step: @escaping @Sendable () -> Void) {
        steps.withLock { $0.append(step) }
        registered.withLock { done in
            guard !done else { return }
            done = true
            atexit {
                for step in TestCleanup.steps.withLock({ $0.reversed() }) { step() }
            }
        }
    }

    /// What test processes killed before their exit handlers ran (a crash, kill -9) left: every
    /// `<prefix><pid>…` whose process is gone goes through `remove` (default: deleted).
    public static func removeStale(prefix: String, _ remove: (String) -> Void = { try? FileManager.default.removeItem(atPath: $0) }) {
        let parent = (prefix as NSString).deletingLastPathComponent
        let name = (prefix as NSString).lastPathComponent
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: parent)) ?? [] where entry.hasPrefix(name) {
            guard let pid = Int32(entry.dropFirst(name.count).prefix { $0.isNumber }), pid != getpid() else { continue }
            if kill(pid, 0) != 0 && errno == ESRCH { remove("\(parent)/\(entry)") }
        }
    }

    /// Kills every process whose command line names `directory` (a daemon on it, QEMU and helpers of its
    /// VMs), detaches what is mounted below it, and removes it.
    public static func removeAtExit(_ directory: String) {
        atExit {
            for pid in HostState.processes(matching: directory) { kill(pid, SIGKILL) }
            // QEMU runs as libvirt-qemu and may take a moment to go after SIGKILL.
            for _ in 0..<50 where !HostState.processes(matching: directory).isEmpty { usleep(20_000) }
            HostState.detachMounts(under: directory)
            try? FileManager.default.removeItem(atPath: directory)
        }
    }
}

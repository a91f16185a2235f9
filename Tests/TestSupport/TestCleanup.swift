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

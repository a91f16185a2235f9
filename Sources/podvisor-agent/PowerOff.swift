#if canImport(Glibc)
import Glibc
#endif
import CLinuxSupport
import PodvisorAgentCore

enum PowerOff {
    /// Stops every other process (TERM, then KILL after a grace period), syncs, powers off.
    static func now(reason: String) -> Never {
        log("powering off: \(reason)")
        kill(-1, SIGTERM)
        let deadline = pv_monotonic_ns() + 2_000_000_000
        while pv_monotonic_ns() < deadline && hasOtherProcesses() { usleep(20_000) }
        kill(-1, SIGKILL)
        pv_poweroff()
        // reboot() only returns on failure; PID 1 must never exit.
        while true { pause() }
    }

    private static func hasOtherProcesses() -> Bool {
        GuestFiles.listDirectory("/proc").contains { name in
            guard let pid = Int32(name) else { return false }
            return pid != getpid() && GuestFiles.read("/proc/\(pid)/cmdline").map { !$0.isEmpty } ?? false
        }
    }
}

import Foundation
import PodvisorCore
import PodvisorVMM

/// What the host's process table and mount table say, for the integration suites' checks and clean-ups.
public enum HostState {
    /// Processes (other than this one) whose command line contains `needle`.
    public static func processes(matching needle: String) -> [Int32] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { entry in
            guard let pid = Int32(entry), pid != getpid(), let cmdline = processCommandLine(pid) else { return nil }
            return cmdline.contains(needle) ? pid : nil
        }
    }

    /// `pid`'s stat line (state, parent, session) and command line, for a failure message that tells whose it is.
    public static func describe(_ pid: Int32) -> String {
        let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? "gone"
        return "\(stat.prefix(80)) | \(processCommandLine(pid) ?? "")"
    }

    /// Detaches every mount below `path` that a killed run left; stacked mounts need one pass each.
    public static func detachMounts(under path: String) {
        for _ in 0..<5 {
            let mounts = mountPoints(under: path)
            if mounts.isEmpty { return }
            mounts.forEach { umount2($0, Int32(MNT_DETACH)) }
        }
    }
}

import Foundation
import PodvisorCore

/// The pod's cgroup on the host, as kubelet names it (`cgroup_parent`, sized with the RuntimeClass's
/// overhead): the VM's QEMU and helpers live there, as Kata's `sandbox_cgroup_only` puts them, so kubelet's
/// accounting, node-pressure eviction and the pod's host limits see the VM. cgroup v1 (a hierarchy per
/// controller, as on these hosts) and v2; kubelet's cgroupfs paths and systemd slice names.
struct PodCgroup: Sendable {
    /// The cgroup directories, one per v1 controller or the one of v2.
    let directories: [String]
    let parent: String

    static let root = HostCgroups.root
    /// v1 controllers whose limits and accounting kubelet uses (cpuset needs its own set-up: left alone).
    static let controllers = ["memory", "cpu", "cpuacct", "pids", "blkio"]

    init(parent: String) throws(PodvisorError) {
        self.parent = parent
        let relative = try Self.path(parent)
        if HostCgroups.unified {
            directories = ["\(Self.root)\(relative)"]
        } else {
            directories = Self.controllers.filter { FileManager.default.fileExists(atPath: "\(Self.root)/\($0)") }
                .map { "\(Self.root)/\($0)\(relative)" }
        }
    }

    /// cgroupfs paths as they are; a systemd slice (`kubepods-burstable-pod1.slice`) expanded into the path of
    /// its ancestors, as systemd lays them out.
    static func path(_ parent: String) throws(PodvisorError) -> String {
        guard !parent.split(separator: "/").contains(".."), !parent.contains("\0") else {
            throw PodvisorError(.invalidArgument, "cgroup_parent \(PodvisorError.quote(parent)) must not contain \"..\"")
        }
        guard parent.hasSuffix(".slice"), !parent.contains("/") else { return parent.hasPrefix("/") ? parent : "/" + parent }
        let parts = parent.dropLast(".slice".count).split(separator: "-")
        return (0..<parts.count).map { "/" + parts[0...$0].joined(separator: "-") + ".slice" }.joined()
    }

    /// Moves the processes (every thread) in; a v1 memory cgroup takes their charges along.
    func place(_ pids: [pid_t]) throws(PodvisorError) {
        for directory in directories {
            do { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) } catch {
                throw PodvisorError(.internalError, "cannot create cgroup \(directory)", cause: error)
            }
            // Deprecated in recent kernels (then absent): best effort.
            try? Data("3".utf8).write(to: URL(fileURLWithPath: "\(directory)/memory.move_charge_at_immigrate"))
            for pid in pids {
                guard (try? Data("\(pid)".utf8).write(to: URL(fileURLWithPath: "\(directory)/cgroup.procs"))) != nil else {
                    throw PodvisorError(.internalError, "cannot move process \(pid) into cgroup \(directory)")
                }
            }
        }
    }

    /// `place` for VMHost.boot, which calls it before the guest runs.
    var placement: @Sendable ([pid_t]) throws(PodvisorError) -> Void {
        { [self] (pids) throws(PodvisorError) in try place(pids) }
    }

    /// OOM kills the kernel counted in the pod's memory cgroup (v1 memory.oom_control, v2 memory.events).
    var oomKills: Int {
        for directory in directories where directory.contains("/memory/") || directories.count == 1 {
            for file in ["memory.events", "memory.oom_control"] {
                guard let text = readTextFile("\(directory)/\(file)") else { continue }
                let line = text.split(separator: "\n").first { $0.hasPrefix("oom_kill ") }
                if let count = line.flatMap({ Int($0.split(separator: " ").last ?? "") }) { return count }
            }
        }
        return 0
    }
}

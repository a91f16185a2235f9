#if canImport(Glibc)
import Glibc
#endif
import CLinuxSupport
import PodvisorAgentProtocol

/// cgroup v2 inside the guest: one cgroup per container under /sys/fs/cgroup/containers, with the cpu,
/// memory and pids controllers, for limits, statistics and OOM detection.
public enum Cgroups {
    static let root = "/sys/fs/cgroup"
    static let parent = "\(root)/containers"

    /// Enables the controllers down to the containers' parent; once at boot.
    public static func prepare() {
        mkdir(parent, 0o755)
        for directory in [root, parent] {
            if !GuestFiles.write("+cpu +memory +pids", to: "\(directory)/cgroup.subtree_control") {
                log("cannot enable cgroup controllers in \(directory): errno \(errno)")
            }
        }
    }

    static func path(of id: String) -> String { "\(parent)/\(id)" }

    /// A cgroup made ahead and renamed to the next container's (cgroupfs renames within a parent): making one,
    /// the controllers' state, was most of CreateContainer's 19–28 ms cgroup step under TCG. '+' is not in a
    /// container id.
    static let spare = "\(parent)/spare+"

    /// Makes the spare, if there is none, on a thread of its own: after boot and whenever one was used.
    public static func prepareSpare() {
        startDetachedThread { mkdir(spare, 0o755) }
    }

    /// Creates the container's cgroup with its limits; returns an open cgroup.procs for the child to join.
    static func create(_ id: String, _ resources: Podvisor_Agent_V1_Resources) throws(RPCError) -> Int32 {
        let directory = path(of: id)
        let renamed = rename(spare, directory) == 0
        guard renamed || mkdir(directory, 0o755) == 0 || errno == EEXIST else {
            throw RPCError(.internal, "cannot create cgroup \(directory): errno \(errno)")
        }
        if renamed { prepareSpare() }
        do {
            try apply(resources, to: id)
        } catch {
            rmdir(directory)
            throw error
        }
        let fd = open("\(directory)/cgroup.procs", O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else {
            rmdir(directory)
            throw RPCError(.internal, "cannot open \(directory)/cgroup.procs: errno \(errno)")
        }
        return fd
    }

    static func apply(_ r: Podvisor_Agent_V1_Resources, to id: String) throws(RPCError) {
        let directory = path(of: id)
        for (file, value) in try settings(r) where !GuestFiles.write(value, to: "\(directory)/\(file)") {
            throw RPCError(.invalidArgument, "cannot set \(file) to \(value): errno \(errno)")
        }
    }

    /// The cgroup files and values that express `r` (0 means no limit, or the kernel's default).
    static func settings(_ r: Podvisor_Agent_V1_Resources) throws(RPCError) -> [(file: String, value: String)] {
        guard r.memoryLimitBytes >= 0, r.cpuQuotaUs >= 0, r.cpuPeriodUs >= 0, r.pidsLimit >= 0, r.cpuWeight <= 10000 else {
            throw RPCError(.invalidArgument, "negative or out-of-range resource limit")
        }
        guard r.memoryLimitBytes == 0 || r.memoryLimitBytes >= 1 << 20 else {
            throw RPCError(.invalidArgument, "memory limit \(r.memoryLimitBytes) is below 1 MiB")
        }
        let period = r.cpuPeriodUs == 0 ? 100_000 : r.cpuPeriodUs
        return [
            ("memory.max", r.memoryLimitBytes == 0 ? "max" : String(r.memoryLimitBytes)),
            ("cpu.max", "\(r.cpuQuotaUs == 0 ? "max" : String(r.cpuQuotaUs)) \(period)"),
            ("cpu.weight", String(r.cpuWeight == 0 ? 100 : r.cpuWeight)),
            ("pids.max", r.pidsLimit == 0 ? "max" : String(r.pidsLimit)),
        ]
    }

    static func stats(_ id: String) -> Podvisor_Agent_V1_ContainerStatsResponse {
        let directory = path(of: id)
        let cpu = keyed("\(directory)/cpu.stat")
        let memoryStat = keyed("\(directory)/memory.stat")
        let memory = number("\(directory)/memory.current")
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return .with {
            $0.cpuUsageNs = (cpu["usage_usec"] ?? 0) * 1000
            $0.memoryUsageBytes = memory
            let inactive = memoryStat["inactive_file"] ?? 0
            $0.memoryWorkingSetBytes = memory > inactive ? memory - inactive : 0
            $0.pids = number("\(directory)/pids.current")
            $0.oomKills = oomKills(id)
            $0.timestampNs = Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
        }
    }

    static func oomKills(_ id: String) -> UInt64 {
        keyed("\(path(of: id))/memory.events")["oom_kill"] ?? 0
    }

    /// Called once every process of the container is reaped.
    static func remove(_ id: String) {
        if rmdir(path(of: id)) != 0 && errno != ENOENT { log("cannot remove cgroup of \(id): errno \(errno)") }
    }

    private static func number(_ file: String) -> UInt64 {
        UInt64(GuestFiles.read(file)?.trimmingSuffix("\n") ?? "") ?? 0
    }

    /// "key value" lines.
    private static func keyed(_ file: String) -> [String: UInt64] {
        var result: [String: UInt64] = [:]
        for line in (GuestFiles.read(file) ?? "").split(separator: "\n") {
            let parts = line.split(separator: " ")
            if parts.count == 2, let value = UInt64(parts[1]) { result[String(parts[0])] = value }
        }
        return result
    }
}

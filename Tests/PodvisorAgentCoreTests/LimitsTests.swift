import Glibc
import PodvisorAgentProtocol
import Testing

@testable import PodvisorAgentCore

/// What a request's limits and identifiers turn into, or why they are refused, before anything is created.
@Suite struct LimitsTests {
    @Test func cgroupValuesFromResources() throws {
        let defaults = try Cgroups.settings(Podvisor_Agent_V1_Resources())
        #expect(defaults.map { "\($0.file)=\($0.value)" } == ["memory.max=max", "cpu.max=max 100000", "cpu.weight=100", "pids.max=max"])
        let limited = try Cgroups.settings(
            .with {
                $0.memoryLimitBytes = 64 << 20
                $0.cpuQuotaUs = 50_000
                $0.cpuPeriodUs = 200_000
                $0.cpuWeight = 500
                $0.pidsLimit = 10
            })
        #expect(limited.map { "\($0.file)=\($0.value)" } == ["memory.max=67108864", "cpu.max=50000 200000", "cpu.weight=500", "pids.max=10"])
    }

    @Test func cgroupValuesOutOfRangeAreRefused() {
        for resources: Podvisor_Agent_V1_Resources in [
            .with { $0.memoryLimitBytes = -1 }, .with { $0.cpuWeight = 10_001 }, .with { $0.pidsLimit = -5 },
        ] {
            #expect(throws: RPCError(.invalidArgument, "negative or out-of-range resource limit")) { try Cgroups.settings(resources) }
        }
        #expect(throws: RPCError(.invalidArgument, "memory limit 4096 is below 1 MiB")) {
            try Cgroups.settings(.with { $0.memoryLimitBytes = 4096 })
        }
    }

    @Test func onlyNamespacedSysctls() throws {
        let accepted = try Containers.sysctls(["net.ipv4.ip_forward": "1", "kernel.shmmax": "65536", "fs.mqueue.msg_max": "20"])
        #expect(accepted.map(\.file) == ["/proc/sys/fs/mqueue/msg_max", "/proc/sys/kernel/shmmax", "/proc/sys/net/ipv4/ip_forward"])
        #expect(accepted.map(\.value) == ["20", "65536", "1"])
        for key in ["vm.swappiness", "kernel.panic", "fs.file-max", "net..ipv4", "NET.ipv4.ip_forward", "net/ipv4", ""] {
            let error = #expect(throws: RPCError.self) { try Containers.sysctls([key: "1"]) }
            #expect(error?.message == "sysctl \(key) is not a namespaced sysctl")
        }
    }

    @Test func idsAndContainerPaths() throws {
        try Containers.validate(id: "web-1.2_x", what: "container id")
        for id in ["", ".", "..", "a/b", "a b", String(repeating: "x", count: 129)] {
            #expect(throws: RPCError.self) { try Containers.validate(id: id, what: "container id") }
        }
        #expect(try Containers.containerPaths(["/proc/kcore", "/sys/firmware"], "masked path").count == 2)
        let escaping = #expect(throws: RPCError.self) { try Containers.containerPaths(["/etc/../../x"], "masked path") }
        #expect(escaping?.message == "masked path \"/etc/../../x\" must be absolute and stay inside the container")
        #expect(throws: RPCError.self) { try Containers.containerPaths(["relative"], "volume destination") }
    }

    @Test func exitStatuses() {
        #expect(Containers.exit(from: 0).code == 0)
        let failed = Containers.exit(from: 3 << 8)
        #expect(failed.code == 3 && failed.signal == 0)
        let killed = Containers.exit(from: SIGKILL)
        #expect(killed.code == 137 && killed.signal == SIGKILL)
        #expect(killed.finishedAtNs > 0)
    }

    @Test func capabilitiesByName() throws {
        // CAP_CHOWN 0, CAP_NET_ADMIN 12, CAP_SYS_ADMIN 21; prefix and case as people write them.
        #expect(try ProcessLimits.capabilityMask(["Cap_Chown", "CAP_NET_ADMIN", "sys_admin"]) == 1 << 0 | 1 << 12 | 1 << 21)
        #expect(try ProcessLimits.capabilityMask([]) == 0)
        #expect(throws: RPCError(.invalidArgument, "unknown capability CAP_TIME_TRAVEL")) {
            try ProcessLimits.capabilityMask(["CAP_TIME_TRAVEL"])
        }
    }

    @Test func rlimitsByName() throws {
        func limit(_ type: String, _ soft: UInt64, _ hard: UInt64) -> Podvisor_Agent_V1_Rlimit {
            .with {
                $0.type = type
                $0.soft = soft
                $0.hard = hard
            }
        }
        let limits = try ProcessLimits.rlimits([limit("RLIMIT_NOFILE", 1024, 4096), limit("rlimit_core", 0, 0)])
        #expect(limits.map(\.resource) == [7, 4])
        #expect(limits[0].soft == 1024 && limits[0].hard == 4096)
        #expect(throws: RPCError(.invalidArgument, "unknown rlimit RLIMIT_WISHES")) { try ProcessLimits.rlimits([limit("RLIMIT_WISHES", 1, 1)]) }
        #expect(throws: RPCError(.invalidArgument, "RLIMIT_NOFILE: soft limit 9 exceeds hard limit 8")) {
            try ProcessLimits.rlimits([limit("RLIMIT_NOFILE", 9, 8)])
        }
        #expect(throws: RPCError(.invalidArgument, "RLIMIT_NPROC given twice")) {
            try ProcessLimits.rlimits([limit("RLIMIT_NPROC", 1, 1), limit("RLIMIT_NPROC", 2, 2)])
        }
    }
}

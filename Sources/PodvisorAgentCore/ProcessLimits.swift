#if canImport(Glibc)
import Glibc
#endif
import CCap
import CContainerSpawn
import PodvisorAgentProtocol

/// Capability names and rlimits of a ProcessSpec, checked and converted before any process is created,
/// so a bad spec is refused with a clear error and nothing is left behind.
enum ProcessLimits {
    /// Bit mask of the named capabilities (libcap knows the names, "CAP_" prefix optional, any case).
    static func capabilityMask(_ names: [String]) throws(RPCError) -> UInt64 {
        var mask: UInt64 = 0
        for name in names {
            let bare = name.lowercased().hasPrefix("cap_") ? String(name.dropFirst(4)) : name
            var value = cap_value_t()
            guard cap_from_name("cap_" + bare.lowercased(), &value) == 0, value >= 0, value < 64 else {
                throw RPCError(.invalidArgument, "unknown capability \(name)")
            }
            mask |= 1 << UInt64(value)
        }
        return mask
    }

    private static let resources: [String: Int32] = [
        "RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3, "RLIMIT_CORE": 4,
        "RLIMIT_RSS": 5, "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7, "RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9,
        "RLIMIT_LOCKS": 10, "RLIMIT_SIGPENDING": 11, "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13,
        "RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
    ]

    static func rlimits(_ specs: [Podvisor_Agent_V1_Rlimit]) throws(RPCError) -> [pv_rlimit] {
        var seen = Set<Int32>()
        return try specs.map { spec throws(RPCError) -> pv_rlimit in
            guard let resource = resources[spec.type.uppercased()] else {
                throw RPCError(.invalidArgument, "unknown rlimit \(spec.type)")
            }
            guard spec.soft <= spec.hard else {
                throw RPCError(.invalidArgument, "\(spec.type): soft limit \(spec.soft) exceeds hard limit \(spec.hard)")
            }
            guard seen.insert(resource).inserted else { throw RPCError(.invalidArgument, "\(spec.type) given twice") }
            return pv_rlimit(resource: resource, soft: spec.soft, hard: spec.hard)
        }
    }
}

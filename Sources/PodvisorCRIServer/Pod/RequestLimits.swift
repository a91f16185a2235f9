import Foundation
import PodvisorCRI
import PodvisorCore

/// The limits every request meets before any of its numbers or sizes is used (Docs/security.md lists
/// them): a CRI client can send anything, and one bad number must never reach arithmetic that traps or a
/// host resource that fills up.
enum RequestLimits {
    /// Seconds in a timeout or grace period: 68 years, far beyond any real one and far from overflowing the
    /// nanosecond clocks they are converted to.
    static let maxTimeoutSeconds: Int64 = Int64(Int32.max)
    /// Largest uid or gid: the kernel's (uid_t is 32 bits, and 2^32-1 means "no id").
    static let maxID: Int64 = (1 << 32) - 2
    static let maxPathBytes = 4096
    static let maxMountsPerContainer = 128
    static let maxEnvironmentVariables = 4096
    static let maxLabelsAndAnnotations = 1024
    static let maxSysctls = 256
    static let maxPortMappings = 1024
    /// Container memory limit: 1 PiB (cgroup's memory.max takes anything; this only keeps it sane).
    static let maxMemoryBytes: Int64 = 1 << 50
    /// cpu.max's period bounds (the kernel's: 1 ms to 1 s) and the largest quota it stores.
    static let cpuPeriodRange: ClosedRange<Int64> = 1_000...1_000_000
    static let maxCPUQuota: Int64 = Int64(Int32.max) * 1000
}

extension Validate {
    static func timeoutSeconds(_ value: Int64, _ field: String) throws(PodvisorError) {
        guard (0...RequestLimits.maxTimeoutSeconds).contains(value) else {
            throw PodvisorError(.invalidArgument, "\(field) must be 0...\(RequestLimits.maxTimeoutSeconds) seconds (got \(value))")
        }
    }

    /// A uid or gid in the kernel's range.
    static func kernelID(_ value: Int64, _ field: String) throws(PodvisorError) -> UInt32 {
        guard (0...RequestLimits.maxID).contains(value) else {
            throw PodvisorError(.invalidArgument, "\(field) must be 0...\(RequestLimits.maxID) (got \(value))")
        }
        return UInt32(value)
    }

    static func count(_ count: Int, atMost limit: Int, _ field: String) throws(PodvisorError) {
        guard count <= limit else { throw PodvisorError(.invalidArgument, "\(field): at most \(limit) allowed (got \(count))") }
    }

    /// CRI container resources (a container's, or a pod's).
    static func resources(_ r: Runtime_V1_LinuxContainerResources, _ prefix: String) throws(PodvisorError) {
        try range(r.memoryLimitInBytes, 0...RequestLimits.maxMemoryBytes, "\(prefix).memory_limit_in_bytes")
        try range(r.memorySwapLimitInBytes, 0...RequestLimits.maxMemoryBytes, "\(prefix).memory_swap_limit_in_bytes")
        if r.cpuPeriod != 0 { try range(r.cpuPeriod, RequestLimits.cpuPeriodRange, "\(prefix).cpu_period") }
        // -1 is "no quota", as runc reads it.
        if r.cpuQuota != -1 { try range(r.cpuQuota, 0...RequestLimits.maxCPUQuota, "\(prefix).cpu_quota") }
        try range(r.cpuShares, 0...262_144, "\(prefix).cpu_shares")
        try range(r.oomScoreAdj, -1000...1000, "\(prefix).oom_score_adj")
        try count(r.unified.count, atMost: 64, "\(prefix).unified")
        for key in r.unified.keys { try cgroupKey(key, "\(prefix).unified") }
    }

    /// A cgroup v2 interface file name (`memory.high`, `io.weight`): `<controller>.<name>`, nothing that
    /// could name another file or directory.
    static func cgroupKey(_ key: String, _ field: String) throws(PodvisorError) {
        let parts = key.split(separator: ".", omittingEmptySubsequences: false)
        let valid =
            parts.count >= 2
            && parts.allSatisfy { part in
                !part.isEmpty && part.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "_" }
            }
        guard valid, !key.hasPrefix("cgroup.") else {
            throw PodvisorError(.invalidArgument, "\(field) key \(PodvisorError.quote(key)) is not a cgroup interface file of a controller")
        }
    }

    static func range(_ value: Int64, _ allowed: ClosedRange<Int64>, _ field: String) throws(PodvisorError) {
        guard allowed.contains(value) else {
            throw PodvisorError(.invalidArgument, "\(field) must be \(allowed.lowerBound)...\(allowed.upperBound) (got \(value))")
        }
    }

    /// Labels and annotations together, as kubelet bounds a pod's metadata.
    static func metadataMaps(_ labels: [String: String], _ annotations: [String: String]) throws(PodvisorError) {
        try count(labels.count + annotations.count, atMost: RequestLimits.maxLabelsAndAnnotations, "labels and annotations")
        for key in labels.keys { try required(key, "label key") }
    }
}

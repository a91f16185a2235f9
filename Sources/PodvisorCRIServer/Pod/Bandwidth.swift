import PodvisorCore

/// kubelet's traffic-shaping annotations on a pod, which containerd hands to the CNI bandwidth plugin.
enum Bandwidth {
    static let ingressAnnotation = "kubernetes.io/ingress-bandwidth"
    static let egressAnnotation = "kubernetes.io/egress-bandwidth"

    /// A Kubernetes quantity ("10M", "1Gi", "500k") in bits per second; nil when absent. Kubernetes bounds
    /// it to 1 Pbit/s, as here.
    static func bitsPerSecond(_ quantity: String?, _ field: String) throws(PodvisorError) -> UInt64? {
        guard let quantity else { return nil }
        let suffixes: [(String, UInt64)] = [
            ("Ki", 1 << 10), ("Mi", 1 << 20), ("Gi", 1 << 30), ("Ti", 1 << 40), ("Pi", 1 << 50),
            ("k", 1_000), ("M", 1_000_000), ("G", 1_000_000_000), ("T", 1_000_000_000_000), ("P", 1_000_000_000_000_000),
        ]
        let (digits, multiplier) = suffixes.first { quantity.hasSuffix($0.0) }.map { (String(quantity.dropLast($0.0.count)), $0.1) } ?? (quantity, 1)
        guard let value = UInt64(digits) else {
            throw PodvisorError(.invalidArgument, "annotation \(field): \(PodvisorError.quote(quantity)) is not a quantity")
        }
        let (bits, overflow) = value.multipliedReportingOverflow(by: multiplier)
        guard !overflow, bits > 0, bits <= 1_000_000_000_000_000 else {
            throw PodvisorError(.invalidArgument, "annotation \(field) must be between 1 bit/s and 1P (got \(PodvisorError.quote(quantity)))")
        }
        return bits
    }
}

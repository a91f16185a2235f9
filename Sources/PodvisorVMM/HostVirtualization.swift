#if canImport(Glibc)
import Glibc
#endif
import Foundation
import PodvisorCore

/// What the host offers for running guests; read once, passed to the pure choice below.
public struct HostVirtualization: Sendable, Equatable {
    public var kvmDeviceOpens: Bool
    /// /proc/cpuinfo lists vmx (Intel) or svm (AMD). Paravirtual KVM (PVM) hosts expose /dev/kvm without
    /// them, and ordinary guest kernels crash there.
    public var cpuHasVirtualizationExtensions: Bool

    public init(kvmDeviceOpens: Bool, cpuHasVirtualizationExtensions: Bool) {
        self.kvmDeviceOpens = kvmDeviceOpens
        self.cpuHasVirtualizationExtensions = cpuHasVirtualizationExtensions
    }

    public static func probe() -> HostVirtualization {
        let fd = open("/dev/kvm", O_RDWR | O_CLOEXEC)
        if fd >= 0 { close(fd) }
        let flags =
            readProcFile("/proc/cpuinfo")
            .split(separator: "\n").first { $0.hasPrefix("flags") }?
            .split(separator: " ") ?? []
        return HostVirtualization(
            kvmDeviceOpens: fd >= 0,
            cpuHasVirtualizationExtensions: flags.contains("vmx") || flags.contains("svm"))
    }

    /// The accelerator to use, and a warning when the automatic choice falls back to TCG.
    /// `wanted` nil means automatic.
    public func choose(_ wanted: Accelerator?) throws(PodvisorError) -> (Accelerator, warning: String?) {
        let kvmUsable = kvmDeviceOpens && cpuHasVirtualizationExtensions
        switch wanted {
        case .tcg:
            return (.tcg, nil)
        case .kvm:
            guard kvmUsable else { throw PodvisorError(.unsupported, "hypervisor = kvm, but \(kvmProblem)") }
            return (.kvm, nil)
        case nil:
            return kvmUsable ? (.kvm, nil) : (.tcg, "KVM unusable (\(kvmProblem)): guests run under TCG emulation, much slower")
        }
    }

    private var kvmProblem: String {
        if !kvmDeviceOpens { return "/dev/kvm cannot be opened" }
        if !cpuHasVirtualizationExtensions { return "the CPU lists neither vmx nor svm" }
        return "none"
    }
}

import Foundation
import PodvisorCore
import PodvisorVMM

/// What the host pays for pod VMs: the figures `podvisor bench` reports (and metrics will).
extension VMRuntime {
    /// Proportional set size in KiB of one sandbox's host processes: QEMU, and its helpers (virtiofsd, the
    /// vsock backend).
    public func hostMemory(sandboxID: String) -> (qemu: UInt64, helpers: UInt64) {
        let vmID = SandboxSpec.vmID(sandboxID)
        var qemu: UInt64 = 0, helpers: UInt64 = 0
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard Int32(entry) != nil, let raw = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline") else { continue }
            let cmdline = String(decoding: raw.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self)
            if cmdline.contains("guest=\(VMHost.domainPrefix)\(vmID),") {
                qemu += Self.pss(entry)
            } else if cmdline.contains("\(host.config.stateDirectory)/vm/\(vmID)/") {
                helpers += Self.pss(entry)
            }
        }
        return (qemu, helpers)
    }

    private static func pss(_ pid: String) -> UInt64 {
        let rollup = readProcFile("/proc/\(pid)/smaps_rollup")
        guard let line = rollup.split(separator: "\n").first(where: { $0.hasPrefix("Pss:") }) else { return 0 }
        return UInt64(line.split(separator: " ").dropFirst().first ?? "") ?? 0
    }
}

/// A VM booted with a baseline initramfs whose /init only prints `marker` and powers off: what a boot of
/// the same kernel costs with nothing of podvisor in it, the denominator of the boot benchmarks.
extension VMHost {
    public static let baselineMarker = "PODVISOR-BASELINE-READY"

    /// From the request until the marker is on the console; the VM is destroyed afterwards.
    public func bareBoot(id: String, initrd: String) async throws(PodvisorError) -> Duration {
        let clock = ContinuousClock()
        let start = clock.now
        let vm = try VirtualMachine.start(try vmConfiguration(id: id, initrd: initrd), on: connection)
        defer { try? vm.destroy() }
        let deadline = start + .seconds(120)
        while clock.now < deadline {
            if let console = FileManager.default.contents(atPath: vm.consoleLog),
                console.range(of: Data(Self.baselineMarker.utf8)) != nil
            {
                return start.duration(to: clock.now)
            }
            try? await Task.sleep(for: .milliseconds(5))
        }
        throw PodvisorError(.timeout, "baseline VM never printed \(Self.baselineMarker)")
    }
}

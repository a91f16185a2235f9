import Foundation
import PodvisorCore
import PodvisorVMM

/// What the host pays for pod VMs: the figures `podvisor bench` reports and metrics export.
extension VMRuntime {
    public func hostUsage() -> [String: SandboxHostUsage] {
        hostProcesses().mapValues { processes in
            SandboxHostUsage(
                pssBytes: Int((processes.qemu + processes.helpers).reduce(0) { $0 + Self.pssKiB($1) } * 1024),
                cpuSeconds: (processes.qemu + processes.helpers).reduce(0) { $0 + Self.cpuSeconds($1) })
        }
    }

    /// PSS in KiB of one sandbox's QEMU and of its helpers, apart.
    public func hostMemory(sandboxID: String) -> (qemu: UInt64, helpers: UInt64) {
        let processes = hostProcesses()[SandboxSpec.vmID(sandboxID)] ?? ([], [])
        return (processes.qemu.reduce(0) { $0 + Self.pssKiB($1) }, processes.helpers.reduce(0) { $0 + Self.pssKiB($1) })
    }

    /// Every pod VM's processes, by VM id, from one pass over /proc: QEMU names its domain
    /// (`guest=podvisor-<vm id>,`), helpers their run directory.
    private func hostProcesses() -> [String: (qemu: [String], helpers: [String])] {
        let runs = "\(host.config.stateDirectory)/vm/"
        var found: [String: (qemu: [String], helpers: [String])] = [:]
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = Int32(entry), let cmdline = processCommandLine(pid) else { continue }
            if let range = cmdline.range(of: "guest=\(VMHost.domainPrefix)") {
                let vmID = String(cmdline[range.upperBound...].prefix { $0 != "," })
                found[vmID, default: ([], [])].qemu.append(entry)
            } else if let range = cmdline.range(of: runs) {
                let vmID = String(cmdline[range.upperBound...].prefix { $0 != "/" })
                found[vmID, default: ([], [])].helpers.append(entry)
            }
        }
        return found
    }

    private static func pssKiB(_ pid: String) -> UInt64 {
        UInt64(procField("Pss", in: readProcFile("/proc/\(pid)/smaps_rollup")))
    }

    /// utime + stime of /proc/<pid>/stat (fields 14 and 15, after the parenthesised command).
    private static func cpuSeconds(_ pid: String) -> Double {
        let stat = readProcFile("/proc/\(pid)/stat")
        guard let close = stat.lastIndex(of: ")") else { return 0 }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }
}

/// A VM booted with a baseline initramfs whose /init only prints `marker` and powers off: what a boot of
/// the same kernel costs with nothing of podvisor in it, the denominator of the boot benchmarks.
extension VMHost {
    public static let baselineMarker = "PODVISOR-BASELINE-READY"

    /// From the request until the marker is on the console; the VM is destroyed afterwards. `kernel`: another
    /// than the configured one.
    public func bareBoot(id: String, initrd: String, kernel: String? = nil) async throws(PodvisorError) -> Duration {
        let clock = ContinuousClock()
        let start = clock.now
        let vm = try VirtualMachine.start(try vmConfiguration(id: id, kernel: kernel, root: .initramfs(initrd)), on: connection)
        defer { try? vm.destroy() }
        let deadline = start + .seconds(120)
        while clock.now < deadline {
            if let console = readFile(vm.consoleLog),
                console.range(of: Data(Self.baselineMarker.utf8)) != nil
            {
                return start.duration(to: clock.now)
            }
            try? await Task.sleep(for: .milliseconds(5))
        }
        throw PodvisorError(.timeout, "baseline VM never printed \(Self.baselineMarker)")
    }
}

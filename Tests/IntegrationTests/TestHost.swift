import Foundation
import PodvisorCore
import PodvisorRuntime
import Testing
import TestSupport

/// One VMHost for the whole test process, on the guest image that `make image` built.
/// The tests never skip: without an image or libvirt they fail and say why.
enum TestHost {

    static let shared: Result<VMHost, PodvisorError> = {
        var config = PodvisorConfig()
        config.kernelPath = GuestImage.kernel
        config.rootfsPath = GuestImage.rootfs
        // Short and fixed: unix socket paths are limited to 108 bytes, and libvirt's QEMU capability
        // cache under it survives between runs.
        config.stateDirectory = "/tmp/podvisor-test"
        config.bootTimeoutSeconds = 120
        return Result { () throws(PodvisorError) in
            TestCleanup.removeAtExit(config.stateDirectory)
            let host = try VMHost(config: config)
            // A test process killed earlier leaves its VMs running; libvirt finds them again on connect.
            for stale in try host.connection.domains() { try? stale.destroy() }
            return host
        }
    }()

    static func host() throws -> VMHost { try shared.get() }

    /// A fresh VM id per call, so names never collide across tests or runs.
    static func uniqueID(_ label: String) -> String {
        "\(label)-\(UUID().uuidString.prefix(8).lowercased())"
    }
}

/// What the host process table and filesystem say about one VM.
enum HostTraces {

    /// QEMU is started with `-name guest=<domain name>,…`.
    static func qemuProcesses(domain: String) -> [Int32] {
        HostState.processes(matching: "guest=\(domain),")
    }

    /// What QEMU's mappings whose smaps line names `mapping` hold, in KiB: resident, and of that anonymous
    /// (a private copy, not the file's or memfd's own pages).
    static func mapped(_ qemu: pid_t, _ mapping: String) -> (resident: Int, anonymous: Int) {
        var inMapping = false
        var (resident, anonymous) = (0, 0)
        for line in readProcFile("/proc/\(qemu)/smaps").split(separator: "\n") {
            let fields = line.split(whereSeparator: \.isWhitespace)
            if fields.first?.contains("-") == true {
                inMapping = line.contains(mapping)
            } else if inMapping, fields.count > 1, let kib = Int(fields[1]) {
                if fields[0] == "Rss:" { resident += kib }
                if fields[0] == "Anonymous:" { anonymous += kib }
            }
        }
        return (resident, anonymous)
    }

    /// Asserts that no QEMU, helper process, socket or file of the VM is left.
    static func expectNothingLeft(domain: String, runDirectory: String, host: VMHost, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(qemuProcesses(domain: domain).isEmpty, "QEMU still running", sourceLocation: sourceLocation)
        #expect(HostState.processes(matching: runDirectory).isEmpty, "helper process still running", sourceLocation: sourceLocation)
        #expect(!FileManager.default.fileExists(atPath: runDirectory), "run directory left", sourceLocation: sourceLocation)
        #expect(host.connection.lookupDomain(name: domain) == nil, "libvirt still knows the domain", sourceLocation: sourceLocation)
    }
}

import Foundation
import PodvisorCore
import Testing
import TestSupport

/// The pod VM's host helpers hold no more than they need: cases of ContainerTests, so they share its VM.
extension ContainerTests {
    /// `name: value` fields of /proc/<pid>/status.
    static func status(_ pid: Int32) -> [String: String] {
        let text = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        return Dictionary(
            text.split(separator: "\n").compactMap { line in
                line.firstIndex(of: ":").map { (String(line[..<$0]), line[line.index(after: $0)...].trimmingCharacters(in: .whitespaces)) }
            }, uniquingKeysWith: { first, _ in first })
    }

    static func command(_ pid: Int32) -> String {
        processCommandLine(pid) ?? ""
    }

    @Test func helpersRunConfined() throws {
        let helpers = HostState.processes(matching: pod.vm.configuration.runDirectory).filter { !Self.command($0).contains("qemu-system") }
        let qemuUID = try #require(getpwnam("libvirt-qemu")).pointee.pw_uid
        // vhost-device-vsock: QEMU's user, no capabilities, no way to gain any.
        let backend = try #require(helpers.first { Self.command($0).contains("vhost-device-vsock") })
        let backendStatus = Self.status(backend)
        #expect(backendStatus["Uid"]?.split(separator: "\t").allSatisfy { $0 == "\(qemuUID)" } == true, "\(backendStatus)")
        #expect(backendStatus["CapEff"] == "0000000000000000" && backendStatus["CapBnd"] == "0000000000000000", "\(backendStatus)")
        #expect(backendStatus["NoNewPrivs"] == "1")
        // virtiofsd serves files of every owner, so it stays root; the process that serves them is its own
        // sandbox: seccomp, and without CAP_SYS_ADMIN (bit 21).
        let servers = helpers.filter { Self.command($0).contains("virtiofsd") }.map(Self.status)
        let worker = try #require(servers.first { $0["Seccomp"] == "2" }, "\(servers)")
        let effective = try #require(UInt64(worker["CapEff"] ?? "", radix: 16))
        #expect(effective & (1 << 21) == 0, "\(worker)")
    }
}

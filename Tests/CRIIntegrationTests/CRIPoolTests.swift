import Foundation
import GRPCCore
import PodvisorCRI
import PodvisorVMM
import Testing
import TestSupport

/// podvisord with `[vm] pool_size = 1` on a pod network of its own (bridge pvpool0, 10.214.247.0/24): a pod
/// that fits takes the waiting VM, which waited at the lowest CPU weight, instead of booting one, and works as any pod (its network, hostname,
/// containers); the pool boots a replacement; a waiting VM that dies is replaced, never handed out; after
/// kill -9 of podvisord the waiting VM is destroyed as an orphan, with its netns and tap, as is what a member
/// that crashed before its VM existed left, and a new one boots; a pod of another shape boots its own. 6 VM boots.
@Suite(.serialized) struct CRIPoolTests {
    @Test func podsTakeAPreBootedVM() async throws {
        let d = try CRIDaemon(name: "pvpool", subnet: 247, vmConfig: "pool_size = 1")
        d.cleanUpAtExit()
        // Waiting VMs' netns and taps have no sandbox: gone with the daemon only if it stops cleanly.
        TestCleanup.atExit {
            for vm in Self.vmDirectories(d) + [Self.crashedMember] {
                try? TestRegistry.run("/sbin/ip", ["netns", "del", "podvisor-\(vm.prefix(16))"])
                try? TestRegistry.run("/sbin/ip", ["link", "del", Self.tap(vm)])
            }
        }
        try await d.start()
        let first = try await Self.waitingVM(d, not: [])
        // Its tap waits in its netns, which the claiming pod's CNI ADD uses.
        #expect(TestPodNetwork.leftovers(sandbox: first) == ["netns podvisor-\(first)"], "the tap is in the netns, not the host's namespace")
        try TestRegistry.run("/sbin/ip", ["-n", "podvisor-\(first)", "link", "show", "dev", Self.tap(first)])
        let pods = try d.cli(["pods"])
        #expect(pods.contains("pre-booted VMs: 1 ready, 0 booting of 1"), "\(pods)")
        #expect(Self.cpuWeight(vm: first) == 2, "a waiting VM only gets CPU time no pod wants")
        let pod = podConfig("pooled")
        let sandbox = try await d.run(pod)
        #expect(sandbox.hasPrefix(first), "the pod took the waiting VM \(first)")
        #expect(Self.cpuWeight(vm: first) == VirtualMachine.defaultCPUShares, "a claimed VM weighs as any pod's")
        let inspected = try await d.sandboxInfo(sandbox)
        #expect(inspected.contains("\"pooled\":true"), "\(inspected)")
        let second = try await Self.waitingVM(d, not: [first])

        // A pod of another shape (a 256 MiB limit plus the 128 MiB overhead: a 384 MiB guest) boots its own VM;
        // the waiting one stays in the pool.
        var large = podConfig("large")
        large.linux.resources.memoryLimitInBytes = 256 << 20
        let cold = try await d.run(large)
        let coldInfo = try await d.sandboxInfo(cold)
        #expect(!cold.hasPrefix(second) && coldInfo.contains("\"pooled\":false") && coldInfo.contains("\"memoryMiB\":384"), "\(coldInfo)")
        try await d.removePod(cold)
        #expect(try await Self.waitingVM(d, not: [first]) == second)

        // The pod works as a cold one: the host reaches its web server (eth0 carries the CNI interface's MAC
        // now), which serves the pod's hostname file.
        let image = try await TestImages.busybox(d)
        let container = try await d.create(
            sandbox, pod, containerConfig("web", image: image, ["/bin/sh", "-c", "exec httpd -f -p 8080 -h /etc"]))
        try await d.start(container)
        let ip = try await d.runtime.podSandboxStatus(.with { $0.podSandboxID = sandbox }).status.network.ip
        #expect(ip.hasPrefix("10.214.247."))
        #expect(try await HostNetwork.fetch("http://\(ip):8080/hostname") == "pooled\n", "host → pooled pod at \(ip)")
        // Under TCG the waiting VM rehearsed ConfigureNetwork on its loopback and a container: both succeeded,
        // lo is as it was, and the container left nothing in the VM's share.
        #expect(!FileManager.default.fileExists(atPath: "\(d.stateDirectory)/vm/\(first)/share/pool-rehearsal"))
        let lo = try await d.runtime.execSync(
            .with {
                $0.containerID = container; $0.cmd = ["/bin/sh", "-c", "cat /sys/class/net/lo/mtu; ip -o addr show dev lo"]; $0.timeout = 30
            })
        let loText = String(decoding: lo.stdout, as: UTF8.self)
        #expect(loText.hasPrefix("65536\n") && loText.contains("inet 127.0.0.1/8") && loText.contains("inet6 ::1/128"), "\(loText)")
        #expect(!(try String(contentsOfFile: d.logFile, encoding: .utf8)).contains("rehearsal failed"), "\(d.tail())")

        // A waiting VM that dies is replaced.
        for pid in PodTraces.qemu(sandbox: second) { kill(pid, SIGKILL) }
        let third = try await Self.waitingVM(d, not: [first, second])
        #expect(PodTraces.qemu(sandbox: second).isEmpty && TestPodNetwork.leftovers(sandbox: second).isEmpty)

        // kill -9: the pod is taken back, the waiting VM (no record owns it) destroyed, a new one booted. What
        // a member left that crashed with its tap in its netns and no VM yet goes too.
        d.kill9()
        let crashed = Self.crashedMember
        try FileManager.default.createDirectory(atPath: "\(d.stateDirectory)/pool/members", withIntermediateDirectories: true)
        #expect(FileManager.default.createFile(atPath: "\(d.stateDirectory)/pool/members/\(crashed)", contents: Data()))
        try TestRegistry.run("/sbin/ip", ["netns", "add", "podvisor-\(crashed.prefix(16))"])
        try TestRegistry.run("/sbin/ip", ["-n", "podvisor-\(crashed.prefix(16))", "tuntap", "add", "dev", Self.tap(crashed), "mode", "tap"])
        try await d.start()
        let fourth = try await Self.waitingVM(d, not: [first, second, third])
        #expect(PodTraces.qemu(sandbox: third).isEmpty, "the orphaned pool VM is destroyed")
        #expect(try await d.sandboxState(sandbox) == .sandboxReady)
        try await d.removePod(sandbox)
        PodTraces.expectNothingLeft(d, sandbox: sandbox, containers: [container])
        #expect(Self.vmDirectories(d) == [fourth], "only the waiting VM is left")
        #expect(TestPodNetwork.leftovers(sandbox: third).isEmpty, "recovery removed the orphan's netns and tap")
        #expect(TestPodNetwork.leftovers(sandbox: crashed).isEmpty, "recovery removed the crashed member's netns and tap")
        #expect(Self.members(d) == [fourth])

        // A clean shutdown takes the waiting VM and its tap along.
        #expect(d.terminate() == 0)
        #expect(PodTraces.qemu(sandbox: fourth).isEmpty && Self.vmDirectories(d).isEmpty)
        #expect(TestPodNetwork.leftovers(sandbox: fourth).isEmpty && Self.members(d).isEmpty)
    }

    /// A member id no boot makes (members' ids are random).
    static let crashedMember = String(repeating: "c0ffee", count: 10) + "c0ff"

    static func tap(_ vm: String) -> String { "pvt" + vm.prefix(12) }

    /// The pool members the daemon's state directory marks (`<state>/pool/members`), as VM ids.
    static func members(_ d: CRIDaemon) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "\(d.stateDirectory)/pool/members")) ?? []).map { String($0.prefix(16)) }.sorted()
    }

    /// The VM ids under the daemon's run directories.
    static func vmDirectories(_ d: CRIDaemon) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "\(d.stateDirectory)/vm")) ?? []).sorted()
    }

    /// The CPU weight libvirt gave the VM's cgroup: cgroup v1's cpu.shares, else v2's cpu.weight (QEMU's
    /// own threads sit in its `emulator` child).
    static func cpuWeight(vm: String) -> Int? {
        guard let pid = PodTraces.qemu(sandbox: vm).first,
            let text = try? String(contentsOfFile: "/proc/\(pid)/cgroup", encoding: .utf8)
        else { return nil }
        let entries = text.split(separator: "\n").map { $0.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false) }
        let file: String
        if let v1 = entries.first(where: { $0.count == 3 && $0[1].split(separator: ",").contains("cpu") }) {
            file = "/sys/fs/cgroup/\(v1[1])\(v1[2])/../cpu.shares"
        } else if let v2 = entries.first(where: { $0.count == 3 && $0[0] == "0" }) {
            file = "/sys/fs/cgroup\(v2[2])/../cpu.weight"
        } else {
            return nil
        }
        return (try? String(contentsOfFile: file, encoding: .utf8)).flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    /// Waits until the pool holds one ready VM none of `earlier`, and returns its VM id.
    static func waitingVM(_ d: CRIDaemon, not earlier: [String]) async throws -> String {
        let deadline = ContinuousClock.now + .seconds(240)
        while ContinuousClock.now < deadline {
            let info = try await d.runtime.status(.with { $0.verbose = true }).info["info"] ?? ""
            let fresh = vmDirectories(d).filter { !earlier.contains($0) && !PodTraces.qemu(sandbox: $0).isEmpty }
            if info.contains("\"pool\":\"1 ready"), fresh.count == 1 { return fresh[0] }
            try await Task.sleep(for: .milliseconds(200))
        }
        throw TestError("no pool VM became ready: \(d.tail())")
    }
}

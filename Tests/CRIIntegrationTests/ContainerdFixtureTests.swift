import Foundation
import GRPCCore
import PodvisorCRI
import PodvisorVMM
import Testing
import TestSupport

/// `TestContainerd`, the private containerd that podvisord's host pods (hostNetwork/hostPID/hostIPC) will
/// be forwarded to, proved on its own: a host pod runs and goes without a trace, survives a restart of
/// containerd, and a plain pod gets its address from the caller's CNI network. No podvisord here.
@Suite(.serialized) struct ContainerdFixtureTests {
    /// Pulls the fixture busybox (User 1002, only /bin/busybox and /bin/sh) through containerd's CRI from
    /// the tests' loopback registry (containerd speaks plain HTTP to loopback).
    static func busybox(_ containerd: TestContainerd) async throws -> String {
        let name = "\(try await TestImages.registry.value.address)/busybox:latest"
        _ = try await containerd.images.pullImage(.with { $0.image = .with { $0.image = name } })
        return name
    }

    static func hostNamespaces() -> Runtime_V1_NamespaceOption {
        .with {
            $0.network = .node
            $0.pid = .node
            $0.ipc = .node
        }
    }

    /// A pod in the host's network, PID and IPC namespaces, as kube-proxy's.
    static func hostPod(_ name: String, logDirectory: String) -> Runtime_V1_PodSandboxConfig {
        var config = podConfig(name, logDirectory: logDirectory)
        config.hostname = ""  // kubelet sets none for a host-network pod: it has the node's
        config.linux.securityContext.namespaceOptions = hostNamespaces()
        return config
    }

    static func hostContainer(_ name: String, image: String, _ command: [String]) -> Runtime_V1_ContainerConfig {
        var config = containerConfig(name, image: image, command, log: "\(name).log")
        config.linux.securityContext.namespaceOptions = hostNamespaces()
        return config
    }

    /// The tests' own files (CNI conf dirs, pod logs): removed at exit, or by a later run when this one was killed.
    static let scratch: String = {
        TestCleanup.removeStale(prefix: "/tmp/pvctd-")
        let directory = "/tmp/pvctd-\(getpid())"
        TestCleanup.removeAtExit(directory)
        return directory
    }()

    static func logDirectory(_ name: String) -> String { "\(scratch)/logs/\(name)" }

    /// The text of a CRI log file (each line "<time> <stream> <tag> <text>"), once it contains `marker`.
    static func log(_ path: String, until marker: String) async throws -> String {
        let deadline = ContinuousClock.now + .seconds(30)
        while true {
            let lines = ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n")
            let text = lines.map { $0.split(separator: " ", maxSplits: 3).dropFirst(3).joined() }.joined(separator: "\n")
            if text.contains(marker) || ContinuousClock.now > deadline { return text }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    /// Polls until `traces` is empty (a removed shim exits a moment after the call returns).
    static func gone(_ traces: () -> [String]) async throws -> [String] {
        for _ in 0..<100 {
            if traces().isEmpty { return [] }
            try await Task.sleep(for: .milliseconds(50))
        }
        return traces()
    }

    @Test func hostNetworkPodRunsAndLeavesNothing() async throws {
        let started = ContinuousClock.now
        let containerd = try await TestContainerd.start(cniConfDir: try Self.emptyConfDir())
        let startup = ContinuousClock.now - started
        let image = try await Self.busybox(containerd)
        let logs = Self.logDirectory("host")
        let pod = Self.hostPod("host", logDirectory: logs)
        let sandbox = try await containerd.runtime.runPodSandbox(.with { $0.config = pod }).podSandboxID
        let container = try await containerd.runtime.createContainer(
            .with {
                $0.podSandboxID = sandbox
                $0.sandboxConfig = pod
                $0.config = Self.hostContainer(
                    "probe", image: image,
                    [
                        "/bin/sh", "-c",
                        "/bin/busybox readlink /proc/self/ns/net; /bin/busybox readlink /proc/self/ns/pid; test -d /proc/\(getpid()) && echo sees-test-process; exec /bin/busybox sleep 3600",
                    ])
            }
        ).containerID
        _ = try await containerd.runtime.startContainer(.with { $0.containerID = container })

        let status = try await containerd.runtime.containerStatus(.with { $0.containerID = container }).status
        #expect(status.state == .containerRunning)
        let output = try await Self.log("\(logs)/probe.log", until: "sees-test-process")
        let hostNet = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/net")
        let hostPID = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/pid")
        #expect(output.contains(hostNet), "host network namespace \(hostNet); the container printed: \(output)")
        #expect(output.contains(hostPID), "host PID namespace \(hostPID); the container printed: \(output)")
        #expect(output.contains("sees-test-process"), "\(output)")

        // What runc and the shim have of the pod while it runs, to look for after removal.
        let pause = try #require(containerd.runcContainer(sandbox))
        let probe = try #require(containerd.runcContainer(container))
        #expect(TestContainerd.alive(pause.pid) && TestContainerd.alive(probe.pid))
        #expect(!probe.cgroupPaths.isEmpty)
        let shimSocket = try #require(pause.shimSocket)
        #expect(FileManager.default.fileExists(atPath: shimSocket))
        #expect(!containerd.traces(of: sandbox, as: pause).isEmpty)

        _ = try await containerd.runtime.stopPodSandbox(.with { $0.podSandboxID = sandbox })
        _ = try await containerd.runtime.removePodSandbox(.with { $0.podSandboxID = sandbox })
        #expect(try await containerd.runtime.listPodSandbox(Runtime_V1_ListPodSandboxRequest()).items.isEmpty)
        #expect(try await containerd.runtime.listContainers(Runtime_V1_ListContainersRequest()).containers.isEmpty)
        #expect(try await Self.gone { containerd.traces(of: sandbox, as: pause) } == [])
        #expect(try await Self.gone { containerd.traces(of: container, as: probe) } == [])
        #expect(containerd.runcContainers().isEmpty)

        await containerd.stop()
        #expect(containerd.leftovers() == [])
        print("containerd fixture: start (with the pause image's import) \(startup)")
    }

    @Test func restartOfContainerdKeepsRunningPod() async throws {
        let containerd = try await TestContainerd.start(cniConfDir: try Self.emptyConfDir())
        let image = try await Self.busybox(containerd)
        let pod = Self.hostPod("survivor", logDirectory: Self.logDirectory("survivor"))
        let sandbox = try await containerd.runtime.runPodSandbox(.with { $0.config = pod }).podSandboxID
        let container = try await containerd.runtime.createContainer(
            .with {
                $0.podSandboxID = sandbox
                $0.sandboxConfig = pod
                $0.config = Self.hostContainer("sleeper", image: image, ["/bin/busybox", "sleep", "3600"])
            }
        ).containerID
        _ = try await containerd.runtime.startContainer(.with { $0.containerID = container })
        let sleeper = try #require(containerd.runcContainer(container))
        let pause = try #require(containerd.runcContainer(sandbox))
        let shims = HostState.processes(matching: "-id \(sandbox) -address \(containerd.socket) ")
        #expect(shims.count == 1)
        let before = containerd.pid

        let restarting = ContinuousClock.now
        try await containerd.restart()
        let restart = ContinuousClock.now - restarting
        #expect(containerd.pid != before)
        let pods = try await containerd.runtime.listPodSandbox(Runtime_V1_ListPodSandboxRequest()).items
        #expect(pods.map(\.id) == [sandbox])
        #expect(pods.first?.state == .sandboxReady)
        let status = try await containerd.runtime.containerStatus(.with { $0.containerID = container }).status
        #expect(status.state == .containerRunning)
        #expect(TestContainerd.alive(sleeper.pid) && TestContainerd.alive(pause.pid), "the pod's processes outlive containerd")
        #expect(HostState.processes(matching: "-id \(sandbox) -address \(containerd.socket) ") == shims, "the same shim")
        // The new containerd reaches the running container through the old shim.
        let exec = try await containerd.runtime.execSync(
            .with {
                $0.containerID = container
                $0.cmd = ["/bin/busybox", "echo", "after-restart"]
                $0.timeout = 10
            })
        #expect(exec.exitCode == 0)
        #expect(String(decoding: exec.stdout, as: UTF8.self) == "after-restart\n")

        // Gone with the pod still running: kill() takes containerd, the shim, runc's containers, mounts, files.
        containerd.kill()
        #expect(containerd.leftovers() == [])
        #expect(try await Self.gone { containerd.traces(of: sandbox, as: pause) + containerd.traces(of: container, as: sleeper) } == [])
        print("containerd fixture: restart with a running pod \(restart)")
    }

    @Test func plainPodGetsAddressFromCallersNetwork() async throws {
        let network = try TestPodNetwork(directory: "\(Self.scratch)/net", bridge: "pvctd0", subnet: 249)
        TestCleanup.atExit { network.remove() }
        let containerd = try await TestContainerd.start(cniConfDir: network.confDir)
        let sandbox = try await containerd.runtime.runPodSandbox(.with { $0.config = podConfig("plain") }).podSandboxID
        let status = try await containerd.runtime.podSandboxStatus(.with { $0.podSandboxID = sandbox }).status
        #expect(status.network.ip.hasPrefix("10.214.249."), "\(status.network)")
        #expect(network.leases().count == 1)
        let pause = try #require(containerd.runcContainer(sandbox))
        let netns = "\(containerd.state)/io.containerd.grpc.v1.cri/netns"
        #expect(mountPoints(under: netns).count == 1, "the pod's network namespace, pinned under containerd's state")

        _ = try await containerd.runtime.stopPodSandbox(.with { $0.podSandboxID = sandbox })
        _ = try await containerd.runtime.removePodSandbox(.with { $0.podSandboxID = sandbox })
        #expect(network.leases().isEmpty, "CNI DEL released the address")
        #expect(mountPoints(under: netns).isEmpty)
        #expect(try await Self.gone { containerd.traces(of: sandbox, as: pause) } == [])
        await containerd.stop()
        #expect(containerd.leftovers() == [])
        network.remove()
    }

    /// A CNI conf dir with no network: host pods need none (NetworkReady stays false).
    static func emptyConfDir() throws -> String {
        let directory = "\(scratch)/empty"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        return directory
    }
}

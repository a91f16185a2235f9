import Foundation
import GRPCCore
import PodvisorCRI
import PodvisorVMM
import Testing
import TestSupport

/// podvisord with `[host_pods] endpoint` on a real containerd (TestContainerd: Configs/containerd with its
/// paths in a temporary directory, on podvisord's own pod network as in production), beside one VM pod for
/// the whole suite: pods that share the host's namespaces run in containerd, and kubelet's calls about them
/// reach it through podvisord, also across a restart of podvisord and while containerd is down.
@Suite(.serialized) struct HostPodsTests {
    final class Setup: Sendable {
        let containerd: TestContainerd
        let daemon: CRIDaemon
        /// The fixture busybox's reference.
        let image: String
        let vmPod: String
        let vmContainer: String

        init(containerd: TestContainerd, daemon: CRIDaemon, image: String, vmPod: String, vmContainer: String) {
            self.containerd = containerd
            self.daemon = daemon
            self.image = image
            self.vmPod = vmPod
            self.vmContainer = vmContainer
        }
    }

    /// Bridge pvhp0, 10.214.248.0/24, shared by podvisord and containerd. At exit (newest first): the VM pod's
    /// netns, podvisord with its VM, the state directory, the bridge and log, then containerd (its own step).
    static let setup = Task { () throws -> Setup in
        let name = "pvhp"
        let containerd = try TestContainerd(cniConfDir: TestPodNetwork.confDir(in: CRIDaemon.networkDirectory(name)))
        let daemon = try CRIDaemon(
            name: name, subnet: 248,
            extraConfig: """
                [host_pods]
                endpoint = "\(containerd.endpoint)"
                """)
        daemon.cleanUpAtExit()
        try await containerd.start()
        try await daemon.start()
        let image = try await TestImages.busybox(daemon)
        let pod = podConfig("vm")
        let vmPod = try await daemon.run(pod)
        let vmContainer = try await daemon.create(vmPod, pod, containerConfig("sleeper", image: image, ["/bin/busybox", "sleep", "3600"]))
        try await daemon.start(vmContainer)
        return Setup(containerd: containerd, daemon: daemon, image: image, vmPod: vmPod, vmContainer: vmContainer)
    }

    static func namespaces(network: Bool = false, pid: Bool = false) -> Runtime_V1_NamespaceOption {
        .with {
            $0.network = network ? .node : .pod
            $0.pid = pid ? .node : .container
        }
    }

    static func hostPodConfig(_ name: String, _ namespaces: Runtime_V1_NamespaceOption) -> Runtime_V1_PodSandboxConfig {
        var pod = podConfig(name)
        if namespaces.network == .node { pod.hostname = "" }  // kubelet sets none: the pod has the node's
        pod.linux.securityContext.namespaceOptions = namespaces
        return pod
    }

    /// A host pod as kubelet asks for it: its image pulled with the sandbox config (so containerd pulls it
    /// too) and the container created from the image ref PullImage answered.
    static func runHostPod(
        _ setup: Setup, _ name: String, _ namespaces: Runtime_V1_NamespaceOption
    ) async throws -> (pod: String, container: String) {
        let pod = hostPodConfig(name, namespaces)
        let imageRef = try await setup.daemon.images.pullImage(
            .with {
                $0.image = .with { $0.image = setup.image }
                $0.sandboxConfig = pod
            }
        ).imageRef
        let sandbox = try await setup.daemon.run(pod)
        var container = containerConfig("main", image: imageRef, ["/bin/busybox", "sleep", "3600"])
        container.linux.securityContext.namespaceOptions = namespaces
        let id = try await setup.daemon.create(sandbox, pod, container)
        try await setup.daemon.start(id)
        return (sandbox, id)
    }

    /// ExecSync through podvisord: the command's stdout (its exit code must be 0).
    static func exec(_ daemon: CRIDaemon, _ container: String, _ command: [String]) async throws -> String {
        let response = try await daemon.runtime.execSync(
            .with {
                $0.containerID = container
                $0.cmd = command
                $0.timeout = 30
            })
        #expect(response.exitCode == 0, "\(command): \(String(decoding: response.stderr, as: UTF8.self))")
        return String(decoding: response.stdout, as: UTF8.self)
    }

    /// Removes the pod through podvisord and checks that neither containerd nor podvisord's routes keep it.
    static func remove(_ setup: Setup, _ pod: String, container: String) async throws {
        let runc = setup.containerd.runcContainer(container)
        try await setup.daemon.removePod(pod)
        #expect(try await setup.containerd.runtime.listPodSandbox(.init()).items.map(\.id).contains(pod) == false)
        #expect(routes(setup.daemon).isEmpty, "podvisord's routes to containerd: \(routes(setup.daemon))")
        for _ in 0..<100 where !setup.containerd.traces(of: container, as: runc).isEmpty { try await Task.sleep(for: .milliseconds(50)) }
        #expect(setup.containerd.traces(of: container, as: runc) == [])
        #expect(setup.containerd.traces(of: pod) == [])
    }

    static func routes(_ daemon: CRIDaemon) -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: "\(daemon.stateDirectory)/cri/records/host-routes")) ?? []
    }

    static func link(_ path: String) throws -> String { try FileManager.default.destinationOfSymbolicLink(atPath: path) }

    @Test func hostNetworkPodRunsInContainerdOnTheHostsInterfaces() async throws {
        let setup = try await Self.setup.value
        let (pod, container) = try await Self.runHostPod(setup, "hostnet", Self.namespaces(network: true))
        #expect(PodTraces.qemu(sandbox: pod).isEmpty, "no VM for a host pod")
        #expect(try await setup.containerd.runtime.listPodSandbox(.init()).items.map(\.id) == [pod])
        #expect(try await setup.daemon.sandboxState(pod) == .sandboxReady)
        #expect(try await setup.daemon.status(container).state == .containerRunning)

        let netns = try await Self.exec(setup.daemon, container, ["/bin/busybox", "readlink", "/proc/self/ns/net"])
        #expect(netns == "\(try Self.link("/proc/self/ns/net"))\n")
        // sysfs mounted in the host's netns lists its links: the VM pod's bridge is one, seen nowhere else.
        let links = try await Self.exec(setup.daemon, container, ["/bin/busybox", "ls", "/sys/class/net"]).split(whereSeparator: \.isWhitespace)
        #expect(links.contains("\(setup.daemon.network.bridge)"), "\(links)")

        try await Self.remove(setup, pod, container: container)
    }

    @Test func hostPIDPodSeesHostProcessesOnPodvisordsNetwork() async throws {
        let setup = try await Self.setup.value
        let (pod, container) = try await Self.runHostPod(setup, "hostpid", Self.namespaces(pid: true))
        #expect(PodTraces.qemu(sandbox: pod).isEmpty)
        let pidns = try await Self.exec(setup.daemon, container, ["/bin/busybox", "readlink", "/proc/self/ns/pid"])
        #expect(pidns == "\(try Self.link("/proc/self/ns/pid"))\n")
        let seen = try await Self.exec(setup.daemon, container, ["/bin/sh", "-c", "test -d /proc/\(getpid()) && echo sees-test-process"])
        #expect(seen == "sees-test-process\n")
        // Its own network namespace, addressed by containerd from podvisord's CNI network.
        let status = try await setup.daemon.runtime.podSandboxStatus(.with { $0.podSandboxID = pod }).status
        #expect(status.network.ip.hasPrefix("10.214.\(setup.daemon.network.subnet)."), "\(status.network)")
        let netns = try await Self.exec(setup.daemon, container, ["/bin/busybox", "readlink", "/proc/self/ns/net"])
        #expect(netns != "\(try Self.link("/proc/self/ns/net"))\n")

        try await Self.remove(setup, pod, container: container)
        #expect(setup.daemon.network.leases().count == 1, "only the VM pod's address is left: \(setup.daemon.network.leases())")
    }

    @Test func listsHoldVMAndHostPods() async throws {
        let setup = try await Self.setup.value
        let (pod, container) = try await Self.runHostPod(setup, "listed", Self.namespaces(network: true, pid: true))
        let pods = try await setup.daemon.runtime.listPodSandbox(.init()).items
        #expect(Set(pods.map(\.id)) == [setup.vmPod, pod])
        #expect(pods.allSatisfy { $0.state == .sandboxReady })
        let containers = try await setup.daemon.runtime.listContainers(.init()).containers
        #expect(Set(containers.map(\.id)) == [setup.vmContainer, container])
        #expect(containers.allSatisfy { $0.state == .containerRunning })
        // Filters reach both sides.
        let filtered = try await setup.daemon.runtime.listContainers(.with { $0.filter = .with { $0.podSandboxID = pod } }).containers
        #expect(filtered.map(\.id) == [container])
        #expect(try await setup.containerd.runtime.listPodSandbox(.init()).items.map(\.id) == [pod], "containerd has no VM pod")

        try await Self.remove(setup, pod, container: container)
    }

    /// kubelet's IfNotPresent: ImageStatus finds the image in podvisord's store (a VM pod pulled it), so no
    /// PullImage reaches containerd, and CreateContainer names the image by podvisord's id.
    @Test func hostPodRunsImageOnlyPodvisordHad() async throws {
        let setup = try await Self.setup.value
        _ = try? await setup.containerd.images.removeImage(.with { $0.image = .with { $0.image = setup.image } })
        #expect(try await !setup.containerd.images.imageStatus(.with { $0.image = .with { $0.image = setup.image } }).hasImage)
        let imageRef = try await setup.daemon.images.imageStatus(.with { $0.image = .with { $0.image = setup.image } }).image.id
        let pod = Self.hostPodConfig("ifnotpresent", Self.namespaces(network: true))
        let sandbox = try await setup.daemon.run(pod)
        var config = containerConfig("main", image: imageRef, ["/bin/busybox", "sleep", "3600"])
        config.image.userSpecifiedImage = setup.image
        config.linux.securityContext.namespaceOptions = Self.namespaces(network: true)
        let container = try await setup.daemon.create(sandbox, pod, config)
        try await setup.daemon.start(container)
        #expect(try await Self.exec(setup.daemon, container, ["/bin/busybox", "echo", "ran"]) == "ran\n")
        #expect(try await setup.containerd.images.imageStatus(.with { $0.image = .with { $0.image = imageRef } }).hasImage)
        // Under its tag too: a container that names it so (critest's do) finds it in containerd.
        #expect(try await setup.containerd.images.imageStatus(.with { $0.image = .with { $0.image = setup.image } }).hasImage)
        try await Self.remove(setup, sandbox, container: container)
    }

    /// containerd's refusals reach the caller with their own status and message.
    @Test func containerdsErrorsPassThrough() async throws {
        let setup = try await Self.setup.value
        do {
            _ = try await setup.daemon.status("0123456789abcdef")  // no one's: podvisord asks containerd
            Issue.record("ContainerStatus of an unknown id succeeded")
        } catch let error as RPCError {
            #expect(error.code == .notFound, "\(error)")
            #expect(error.message.contains("0123456789abcdef"), "\(error.message)")
        }
        // Stop and Remove of ids nobody knows succeed, as the CRI asks (containerd 1.6 answers NotFound).
        let unknown = "0123456789abcdef"
        _ = try await setup.daemon.runtime.stopContainer(.with { $0.containerID = unknown })
        _ = try await setup.daemon.runtime.removeContainer(.with { $0.containerID = unknown })
        _ = try await setup.daemon.runtime.stopPodSandbox(.with { $0.podSandboxID = unknown })
        _ = try await setup.daemon.runtime.removePodSandbox(.with { $0.podSandboxID = unknown })
    }

    @Test func containerdDownFailsHostPodCallsOnly() async throws {
        let setup = try await Self.setup.value
        let (pod, container) = try await Self.runHostPod(setup, "orphaned", Self.namespaces(network: true))
        await setup.containerd.stopDaemon()

        for (what, call) in [
            ("ContainerStatus", { _ = try await setup.daemon.status(container) }),
            ("PodSandboxStatus", { _ = try await setup.daemon.sandboxState(pod) }),
            ("RunPodSandbox", { _ = try await setup.daemon.run(Self.hostPodConfig("refused", Self.namespaces(network: true))) }),
        ] as [(String, () async throws -> Void)] {
            do {
                try await call()
                Issue.record("\(what) succeeded with containerd down")
            } catch let error as RPCError {
                #expect(error.code == .unavailable, "\(what): \(error)")
                #expect(error.message.contains(setup.containerd.endpoint), "\(what): \(error.message)")
            }
        }
        let conditions = try await setup.daemon.runtime.status(.init()).status.conditions
        let hostPods = try #require(conditions.first { $0.type == "HostPodsReady" })
        #expect(!hostPods.status && hostPods.reason == "HostRuntimeUnavailable", "\(hostPods)")
        #expect(hostPods.message.contains(setup.containerd.endpoint), "\(hostPods.message)")
        #expect(conditions.first { $0.type == "RuntimeReady" }?.status == true)
        // The VM pod does not notice.
        #expect(try await setup.daemon.status(setup.vmContainer).state == .containerRunning)
        #expect(try await Self.exec(setup.daemon, setup.vmContainer, ["/bin/busybox", "echo", "vm"]) == "vm\n")
        #expect(try await setup.daemon.runtime.listPodSandbox(.init()).items.map(\.id) == [setup.vmPod])

        // containerd back: its shim kept the container, and podvisord reaches it again.
        try await setup.containerd.start()
        let deadline = ContinuousClock.now + .seconds(30)
        var state = try? await setup.daemon.status(container).state
        while state != .containerRunning && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(200))
            state = try? await setup.daemon.status(container).state
        }
        #expect(state == .containerRunning)
        try await Self.remove(setup, pod, container: container)
    }

    @Test func restartOfPodvisordKeepsHostPodReachable() async throws {
        let setup = try await Self.setup.value
        let (pod, container) = try await Self.runHostPod(setup, "kept", Self.namespaces(network: true))
        setup.daemon.kill9()
        try await setup.daemon.start()

        #expect(try await setup.daemon.sandboxState(pod) == .sandboxReady)
        #expect(try await setup.daemon.status(container).state == .containerRunning)
        #expect(try await Self.exec(setup.daemon, container, ["/bin/busybox", "echo", "after-restart"]) == "after-restart\n")
        _ = try await setup.daemon.runtime.stopContainer(.with { $0.containerID = container })
        #expect(try await setup.daemon.status(container).state == .containerExited)
        _ = try await setup.daemon.runtime.removeContainer(.with { $0.containerID = container })
        try await Self.remove(setup, pod, container: container)
        #expect(try await setup.daemon.status(setup.vmContainer).state == .containerRunning, "the VM pod survived too")
    }
}

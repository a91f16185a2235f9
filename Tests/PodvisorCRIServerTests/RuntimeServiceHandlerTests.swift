import Foundation
import GRPCCore
import PodvisorCRI
import PodvisorCore
import PodvisorRuntime
import Testing

@testable import PodvisorCRIServer

/// Each RuntimeService handler's validation, idempotence, state transitions and status codes, against the
/// fake sandbox runtime. The real-VM suites (CRIIntegrationTests) check the same paths end to end.
@Suite struct RuntimeServiceHandlerTests {
    @Test func runPodSandboxValidatesBeforeCreatingAnything() async throws {
        try await Harness.with { harness, cri in
            #expect(await statusCode { try await cri.runPod(Harness.podConfig("")) } == .invalidArgument)
            let hostNetwork = Harness.podConfig { $0.linux.securityContext.namespaceOptions.network = .node }
            #expect(await statusCode { try await cri.runPod(hostNetwork) } == .failedPrecondition)
            // User namespaces: one uid and one gid range from container id 0, NODE without mappings (critest's
            // refusals and the ends of the id space); anything else InvalidArgument before anything is made.
            for refused in [
                Self.userns(.pod, [(0, 1000, 100_000), (0, 2000, 100_000)]), Self.userns(.pod, [(1, 1000, 100_000)]),
                Self.userns(.pod, []), Self.userns(.pod, [(0, 1000, 0)]), Self.userns(.pod, [(0, UInt32.max - 10, 11)]),
                Self.userns(.node, [(0, 1000, 10)]), Self.userns(.container, []), Self.userns(.target, []),
            ] {
                #expect(await statusCode { try await cri.runPod(refused) } == .invalidArgument)
            }
            // Numbers at the edge of their type: refused with InvalidArgument, never a trap in the VM sizing.
            let hugeMemory = Harness.podConfig { $0.linux.resources.memoryLimitInBytes = .max }
            #expect(await statusCode { try await cri.runPod(hugeMemory) } == .invalidArgument)
            let hugeOverhead = Harness.podConfig {
                $0.linux.resources.memoryLimitInBytes = 1 << 20
                $0.linux.overhead.memoryLimitInBytes = .max
            }
            #expect(await statusCode { try await cri.runPod(hugeOverhead) } == .invalidArgument)
            let hugeQuota = Harness.podConfig {
                $0.linux.resources.cpuQuota = .max; $0.linux.resources.cpuPeriod = 100_000
            }
            #expect(await statusCode { try await cri.runPod(hugeQuota) } == .invalidArgument)
            let uid = Harness.podConfig { $0.linux.securityContext.runAsUser = .with { $0.value = 1 << 40 } }
            #expect(await statusCode { try await cri.runPod(uid) } == .invalidArgument)
            let unified = Harness.podConfig { $0.linux.resources.unified = ["../../cgroup.procs": "1"] }
            #expect(await statusCode { try await cri.runPod(unified) } == .invalidArgument)
            let listed = try await cri.listPodSandbox(.init()).items
            #expect(listed.isEmpty && harness.runtime.sandboxIDs().isEmpty)
        }
    }

    @Test func theVMSizeComesFromThePodsResources() async throws {
        try await Harness.with { harness, cri in
            _ = try await cri.runPod(
                Harness.podConfig {
                    $0.linux.resources.memoryLimitInBytes = 200 << 20
                    $0.linux.resources.cpuQuota = 4_000_000
                    $0.linux.resources.cpuPeriod = 1_000_000
                    // What kubelet sends for every pod that keeps the host's users: the guest's own namespace.
                    $0.linux.securityContext.namespaceOptions.usernsOptions.mode = .node
                })
            let spec = try #require(harness.runtime.state.withLock { $0.specs.first })
            #expect(spec.size.memoryMiB == 200 + harness.config.overheadMiB)
            #expect(spec.size.vcpus == min(4, ProcessInfo.processInfo.activeProcessorCount))
        }
    }

    @Test func networkReadinessAndThePodsAddresses() async throws {
        try await Harness.with { harness, cri in
            harness.runtime.state.withLock { $0.network = (false, "NetworkPluginNotReady", "no CNI network config in /x") }
            let conditions = try await cri.status(.init()).status.conditions
            let network = try #require(conditions.first { $0.type == "NetworkReady" })
            #expect(!network.status && network.reason == "NetworkPluginNotReady" && network.message == "no CNI network config in /x")
            let pod = try await cri.runPod()
            let status = try await cri.podSandboxStatus(.with { $0.podSandboxID = pod }).status.network
            #expect(status.ip == "10.0.0.2" && status.additionalIps.map(\.ip) == ["fd00::2"])
            let ingress = Harness.podConfig("shaped") { $0.annotations = ["kubernetes.io/ingress-bandwidth": "10M"] }
            _ = try await cri.runPod(ingress)
            #expect(harness.runtime.state.withLock { $0.specs.last?.bandwidth.ingress } == 10_000_000)
            let bad = Harness.podConfig("badly-shaped") { $0.annotations = ["kubernetes.io/egress-bandwidth": "lots"] }
            #expect(await statusCode { try await cri.runPod(bad) } == .invalidArgument)
            let port = Harness.podConfig("port") {
                $0.portMappings = [
                    .with {
                        $0.hostPort = 80; $0.containerPort = 70_000
                    }
                ]
            }
            #expect(await statusCode { try await cri.runPod(port) } == .invalidArgument)
        }
    }

    @Test func aDuplicateNameIsAlreadyExistsAndAFailedCreateLeavesNothing() async throws {
        try await Harness.with { harness, cri in
            _ = try await cri.runPod()
            #expect(await statusCode { try await cri.runPod() } == .alreadyExists)
            harness.runtime.state.withLock { $0.failNextCreate = PodvisorError(.unavailable, "no VM today") }
            let logs = "\(harness.directory)/logs/second"
            #expect(await statusCode { try await cri.runPod(Harness.podConfig("second") { $0.logDirectory = logs }) } == .unavailable)
            #expect(!FileManager.default.fileExists(atPath: logs), "a refused sandbox leaves its log directory behind")
            #expect(try await cri.listPodSandbox(.init()).items.count == 1)
        }
    }

    @Test func stopAndRemoveAreIdempotentAndLeaveNoTraces() async throws {
        try await Harness.with { harness, cri in
            let pod = try await cri.runPod()
            let container = try await cri.create(in: pod)
            _ = try await cri.startContainer(.with { $0.containerID = container })
            for _ in 0..<2 { _ = try await cri.stopPodSandbox(.with { $0.podSandboxID = pod }) }
            #expect(try await cri.podSandboxStatus(.with { $0.podSandboxID = pod }).status.state == .sandboxNotready)
            #expect(try await cri.state(of: container) == .containerExited)
            #expect(await statusCode { try await cri.create(Harness.containerConfig("late"), in: pod) } == .failedPrecondition)
            for _ in 0..<2 { _ = try await cri.removePodSandbox(.with { $0.podSandboxID = pod }) }
            _ = try await cri.stopPodSandbox(.with { $0.podSandboxID = String(repeating: "f", count: 64) })
            #expect(await statusCode { try await cri.stopPodSandbox(.with { $0.podSandboxID = "" }) } == .invalidArgument)
            #expect(try await cri.listContainers(.init()).containers.isEmpty)
            #expect(harness.runtime.sandboxIDs().isEmpty && harness.runtime.containerIDs().isEmpty)
        }
    }

    @Test func aUserNamespacePodGetsItsMappingAndItsContainersShareIt() async throws {
        try await Harness.with { harness, cri in
            let pod = try await cri.runPod(Self.userns(.pod, [(0, UInt32.max - 11, 11)]))
            let spec = try #require(harness.runtime.state.withLock { $0.specs.first })
            let last = try #require(IDMapping(containerID: 0, hostID: UInt32.max - 11, length: 11))
            #expect(spec.userNamespace == UserNamespaceMapping(uids: last, gids: last))
            let other = Self.userns(.pod, [(0, 1000, 11)]).linux.securityContext.namespaceOptions
            let elsewhere = Harness.containerConfig { $0.linux.securityContext.namespaceOptions = other }
            #expect(await statusCode { try await cri.create(elsewhere, in: pod) } == .invalidArgument)
            let same = Self.userns(.pod, [(0, UInt32.max - 11, 11)]).linux.securityContext.namespaceOptions
            _ = try await cri.create(Harness.containerConfig { $0.linux.securityContext.namespaceOptions = same }, in: pod)
            _ = try await cri.create(Harness.containerConfig("inherits"), in: pod)
            #expect(harness.runtime.containerIDs().count == 2)
        }
    }

    /// A pod asking for a user namespace with these (container id, host id, length) ranges for uids and gids.
    static func userns(_ mode: Runtime_V1_NamespaceMode, _ ranges: [(UInt32, UInt32, UInt32)]) -> Runtime_V1_PodSandboxConfig {
        Harness.podConfig {
            $0.linux.securityContext.namespaceOptions.usernsOptions = .with {
                $0.mode = mode
                $0.uids = ranges.map { range in
                    .with {
                        $0.containerID = range.0; $0.hostID = range.1; $0.length = range.2
                    }
                }
                $0.gids = $0.uids
            }
        }
    }

    @Test func createContainerRefusesWhatCannotWork() async throws {
        try await Harness.with { harness, cri in
            #expect(await statusCode { try await cri.create(in: "nope") } == .notFound)
            let pod = try await cri.runPod()
            let missing = Harness.containerConfig { $0.image.image = "fake.test/absent:1" }
            #expect(await statusCode { try await cri.create(missing, in: pod) } == .notFound)
            let uid = Harness.containerConfig { $0.linux.securityContext.runAsUser = .with { $0.value = 1 << 40 } }
            #expect(await statusCode { try await cri.create(uid, in: pod) } == .invalidArgument)
            let group = Harness.containerConfig { $0.linux.securityContext.supplementalGroups = [-1] }
            #expect(await statusCode { try await cri.create(group, in: pod) } == .invalidArgument)
            let unified = Harness.containerConfig { $0.linux.resources.unified = ["../../cgroup.procs": "1"] }
            #expect(await statusCode { try await cri.create(unified, in: pod) } == .invalidArgument)
            let device = Harness.containerConfig {
                $0.devices = [
                    .with {
                        $0.hostPath = "/dev/kvm"; $0.containerPath = "/dev/kvm"
                    }
                ]
            }
            #expect(await statusCode { try await cri.create(device, in: pod) } == .invalidArgument)
            let manyMounts = Harness.containerConfig {
                $0.mounts = (0...RequestLimits.maxMountsPerContainer).map { n in
                    .with {
                        $0.containerPath = "/m\(n)"; $0.hostPath = "/tmp"
                    }
                }
            }
            #expect(await statusCode { try await cri.create(manyMounts, in: pod) } == .invalidArgument)
            let longPath = Harness.containerConfig { $0.logPath = String(repeating: "a", count: 1 << 20) }
            let error = await #expect(throws: RPCError.self) { try await cri.create(longPath, in: pod) }
            #expect(error?.code == .invalidArgument && (error?.message.utf8.count ?? 0) < 500, "the message must not echo a megabyte")
            _ = try await cri.create(in: pod)
            #expect(await statusCode { try await cri.create(in: pod) } == .alreadyExists)
            #expect(try await cri.listContainers(.init()).containers.count == 1)
            #expect(harness.runtime.containerIDs().count == 1)
        }
    }

    @Test func containerLifecycleAndItsStatusCodes() async throws {
        try await Harness.with { _, cri in
            let pod = try await cri.runPod()
            let container = try await cri.create(in: pod)
            #expect(try await cri.state(of: container) == .containerCreated)
            #expect(
                await statusCode {
                    try await cri.execSync(
                        .with {
                            $0.containerID = container; $0.cmd = ["true"]
                        })
                } == .failedPrecondition)
            _ = try await cri.startContainer(.with { $0.containerID = container })
            #expect(await statusCode { try await cri.startContainer(.with { $0.containerID = container }) } == .failedPrecondition)
            #expect(await statusCode { try await cri.startContainer(.with { $0.containerID = "0123" }) } == .notFound)
            #expect(try await cri.state(of: container) == .containerRunning)

            let out = try await cri.execSync(
                .with {
                    $0.containerID = container; $0.cmd = ["echo"]; $0.timeout = 5
                })
            #expect(String(decoding: out.stdout, as: UTF8.self) == "hello\n" && out.exitCode == 0)
            #expect(
                await statusCode {
                    try await cri.execSync(
                        .with {
                            $0.containerID = container; $0.cmd = ["x"]; $0.timeout = .max
                        })
                }
                    == .invalidArgument)
            #expect(
                await statusCode {
                    try await cri.execSync(
                        .with {
                            $0.containerID = container; $0.cmd = []
                        })
                } == .invalidArgument)
            #expect(
                await statusCode {
                    try await cri.stopContainer(
                        .with {
                            $0.containerID = container; $0.timeout = .max
                        })
                } == .invalidArgument)
            #expect(
                await statusCode {
                    try await cri.updateContainerResources(
                        .with {
                            $0.containerID = container
                            $0.linux.unified = ["cgroup.procs": "1"]
                        })
                } == .invalidArgument)
            _ = try await cri.updateContainerResources(
                .with {
                    $0.containerID = container; $0.linux.memoryLimitInBytes = 64 << 20
                })

            _ = try await cri.stopContainer(
                .with {
                    $0.containerID = container; $0.timeout = 1
                })
            let status = try await cri.containerStatus(.with { $0.containerID = container }).status
            #expect(status.state == .containerExited && status.exitCode == 128 + SIGTERM)
            _ = try await cri.stopContainer(.with { $0.containerID = container })
            #expect(await statusCode { try await cri.updateContainerResources(.with { $0.containerID = container }) } == .failedPrecondition)
            #expect(
                await statusCode {
                    try await cri.portForward(
                        .with {
                            $0.podSandboxID = pod; $0.port = [70_000]
                        })
                } == .invalidArgument)
        }
    }

    @Test func aRemovedRunningContainerStaysRemovedAcrossARestart() async throws {
        try await Harness.with { harness, cri in
            let pod = try await cri.runPod()
            let container = try await cri.create(in: pod)
            _ = try await cri.startContainer(.with { $0.containerID = container })
            _ = try await cri.removeContainer(.with { $0.containerID = container })
            _ = try await cri.removeContainer(.with { $0.containerID = container })
            #expect(try await cri.listContainers(.init()).containers.isEmpty)
            let restarted = try await harness.open()
            try await harness.serve(restarted) { _, again in
                let containers = try await again.listContainers(.init()).containers
                let state = try await again.podSandboxStatus(.with { $0.podSandboxID = pod }).status.state
                #expect(containers.isEmpty && state == .sandboxReady)
            }
        }
    }

    @Test func aDeadVMMakesItsSandboxNotReadyAndItsContainersExited() async throws {
        try await Harness.with { harness, cri in
            let pod = try await cri.runPod()
            let container = try await cri.create(in: pod)
            _ = try await cri.startContainer(.with { $0.containerID = container })
            let sandbox = try #require(harness.runtime.state.withLock { $0.sandboxes[pod] })
            sandbox.die()
            for _ in 0..<200 where try await cri.podSandboxStatus(.with { $0.podSandboxID = pod }).status.state == .sandboxReady {
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(try await cri.podSandboxStatus(.with { $0.podSandboxID = pod }).status.state == .sandboxNotready)
            #expect(try await cri.state(of: container) == .containerExited)
            #expect(
                await statusCode {
                    try await cri.execSync(
                        .with {
                            $0.containerID = container; $0.cmd = ["true"]
                        })
                } == .failedPrecondition)
        }
    }

    @Test func aStopInterruptedByARestartIsFinishedNotReportedReady() async throws {
        try await Harness.with { harness, cri in
            let pod = try await cri.runPod()
            // What a kill -9 between StopPodSandbox's first durable step and its end leaves.
            let path = "\(harness.config.stateDirectory)/cri/records/sandboxes/\(pod).json"
            var record = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as! [String: Any]
            record["stopping"] = true
            try JSONSerialization.data(withJSONObject: record).write(to: URL(fileURLWithPath: path))
            let restarted = try await harness.open()
            try await harness.serve(restarted) { _, again in
                let status = try await again.podSandboxStatus(
                    .with {
                        $0.podSandboxID = pod; $0.verbose = true
                    })
                #expect(status.status.state == .sandboxNotready && status.info["info"]?.contains("StopPodSandbox") == true)
            }
            #expect(harness.runtime.sandboxIDs().isEmpty)
        }
    }

    @Test func recoveryRemovesWhatNoRecordOwns() async throws {
        try await Harness.with { harness, cri in
            _ = try await cri.runPod()
            // What a crash half-way through RunPodSandbox or CreateContainer leaves: host traces, no record.
            harness.runtime.state.withLock {
                $0.traces.insert(String(repeating: "a", count: 64))
                $0.containerTraces.insert(String(repeating: "b", count: 64))
            }
            let restarted = try await harness.open()
            try await harness.serve(restarted) { _, again in
                let sandboxes = try await again.listPodSandbox(.init()).items
                #expect(sandboxes.count == 1)
            }
            #expect(harness.runtime.sandboxIDs().count == 1 && harness.runtime.containerIDs().isEmpty)
        }
    }
}

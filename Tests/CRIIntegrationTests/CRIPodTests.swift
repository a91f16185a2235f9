import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import GRPCCore
import PodvisorCRI
import PodvisorStreaming
import TestSupport
import Synchronization
import Testing

extension CRITests {
    /// Pods in real VMs through podvisord's socket: 8 VM boots in all.
    @Suite struct Pods {
        /// One sandbox, two containers, logs, ExecSync, stats, filters, events, re-creation, log reopening,
        /// resource updates, then kill -9 of podvisord and recovery, then idempotent teardown leaving nothing.
        @Test func podLifecycle() async throws {
            let d = try await CRIDaemon.shared.value
            let r = d.runtime
            let image = try await TestImages.busybox(d)
            let logs = "/tmp/pvcri-logs-\(UUID().uuidString.prefix(8))"
            defer { try? FileManager.default.removeItem(atPath: logs) }
            var pod = podConfig("web", labels: ["app": "web"], logDirectory: logs)
            let hostPort = try TestRegistry.freePort()
            pod.portMappings = [
                .with {
                    $0.containerPort = 8080; $0.hostPort = Int32(hostPort)
                }
            ]
            pod.dnsConfig = .with {
                $0.servers = ["10.0.0.10"]
                $0.searches = ["svc.cluster.local"]
            }
            let events = EventLog()
            let subscription = Task {
                try await r.getContainerEvents(Runtime_V1_GetEventsRequest()) { response in
                    for try await event in response.messages { events.append(event) }
                }
            }
            defer { subscription.cancel() }

            let sandbox = try await d.run(pod)
            #expect(try await d.sandboxState(sandbox) == .sandboxReady)
            let c1 = try await d.create(
                sandbox, pod,
                containerConfig(
                    "server", image: image,
                    ["/bin/sh", "-c", "echo out1; echo err1 >&2; hostname; cat /etc/resolv.conf; while true; do echo tick; sleep 1; done"],
                    log: "server.log", labels: ["role": "server"]))
            let c2 = try await d.create(sandbox, pod, containerConfig("job", image: image, ["/bin/sh", "-c", "echo bye; exit 3"], log: "job.log"))
            #expect(try await d.status(c1).state == .containerCreated)
            try await d.start(c1)
            try await d.start(c2)

            let job = try await d.wait(c2, until: .containerExited)
            #expect(job.state == .containerExited && job.exitCode == 3 && job.reason == "Error")
            #expect(job.startedAt > 0 && job.finishedAt >= job.startedAt && job.createdAt <= job.startedAt)
            #expect(job.image.image == image && job.imageRef.contains("@sha256:") && job.imageID.hasPrefix("sha256:"))
            #expect(job.logPath == "\(logs)/job.log")
            await expectStatus(.failedPrecondition, "start of an exited container") { try await d.start(c2) }

            // Logs in the CRI format, both streams.
            let serverLog = try await waitForFile("\(logs)/server.log", containing: "svc.cluster.local")
            #expect(serverLog.contains(" stdout F out1\n") && serverLog.contains(" stderr F err1\n") && serverLog.contains(" stdout F web\n"))
            #expect(serverLog.contains(" stdout F nameserver 10.0.0.10\n"))
            let criLine = #/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z (stdout|stderr) [FP] .*$/#
            #expect(serverLog.split(separator: "\n").allSatisfy { (try? criLine.wholeMatch(in: String($0))) != nil })
            #expect(try await waitForFile("\(logs)/job.log", containing: "bye").contains(" stdout F bye\n"))

            // ExecSync: output, exit code, timeout.
            let exec = try await r.execSync(
                .with {
                    $0.containerID = c1
                    $0.cmd = ["/bin/sh", "-c", "echo o; echo e >&2; id -u; exit 7"]
                    $0.timeout = 60
                })
            #expect(String(decoding: exec.stdout, as: UTF8.self) == "o\n1002\n" && String(decoding: exec.stderr, as: UTF8.self) == "e\n")
            #expect(exec.exitCode == 7)
            await expectStatus(.deadlineExceeded, "exec past its timeout") {
                try await r.execSync(
                    .with {
                        $0.containerID = c1; $0.cmd = ["/bin/sh", "-c", "sleep 100"]; $0.timeout = 1
                    })
            }
            await expectStatus(.failedPrecondition, "exec in an exited container") {
                try await r.execSync(
                    .with {
                        $0.containerID = c2; $0.cmd = ["/bin/sh"]
                    })
            }

            // Stats and metrics.
            let stats = try await r.containerStats(.with { $0.containerID = c1 }).stats
            #expect(stats.cpu.usageCoreNanoSeconds.value > 0 && stats.memory.workingSetBytes.value > 0 && stats.writableLayer.hasFsID)
            #expect(try await r.listContainerStats(.with { $0.filter.podSandboxID = sandbox }).stats.map(\.attributes.id) == [c1])
            let podStats = try await r.podSandboxStats(.with { $0.podSandboxID = sandbox }).stats
            #expect(podStats.linux.containers.count == 1 && podStats.linux.process.processCount.value >= 2)
            #expect(try await r.listPodSandboxStats(Runtime_V1_ListPodSandboxStatsRequest()).stats.map(\.attributes.id) == [sandbox])
            #expect(try await r.listMetricDescriptors(Runtime_V1_ListMetricDescriptorsRequest()).descriptors.count == 3)
            let metrics = try await r.listPodSandboxMetrics(Runtime_V1_ListPodSandboxMetricsRequest()).podMetrics
            #expect(metrics.first?.containerMetrics.first?.metrics.first?.labelValues == ["server", "web", "test"])

            // Filters and id prefixes.
            func listed(_ filter: Runtime_V1_ContainerFilter) async throws -> [String] {
                try await r.listContainers(.with { $0.filter = filter }).containers.map(\.id)
            }
            #expect(try await listed(.with { $0.state.state = .containerRunning }) == [c1])
            #expect(try await listed(.with { $0.state.state = .containerExited }) == [c2])
            #expect(try await listed(.with { $0.labelSelector = ["role": "server"] }) == [c1])
            #expect(try await listed(.with { $0.podSandboxID = String(sandbox.prefix(12)) }) == [c1, c2])
            #expect(try await listed(.with { $0.id = String(c2.prefix(12)) }) == [c2])
            #expect(try await r.listPodSandbox(.with { $0.filter.labelSelector = ["app": "web"] }).items.map(\.id) == [sandbox])
            #expect(try await r.listPodSandbox(.with { $0.filter.state.state = .sandboxNotready }).items.isEmpty)
            let verbose = try await r.containerStatus(
                .with {
                    $0.containerID = String(c1.prefix(12)); $0.verbose = true
                })
            #expect(verbose.status.id == c1 && verbose.info["info"]?.contains("while true") == true)
            #expect(try await d.sandboxInfo(sandbox).contains("memoryMiB"))

            // Names are unique per sandbox and attempt; a container is re-created in the live sandbox.
            await expectStatus(.alreadyExists, "same name and attempt") {
                try await d.create(sandbox, pod, containerConfig("job", image: image, ["/bin/sh"]))
            }
            await expectStatus(.invalidArgument, "log path escaping the log directory") {
                try await d.create(sandbox, pod, containerConfig("escape", image: image, ["/bin/sh"], log: "../escape.log"))
            }
            // Mounts that reach podvisor's state, however they are spelled: refused after resolution.
            let link = "/tmp/pvcri-link-\(UUID().uuidString.prefix(8))"
            try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: d.stateDirectory)
            defer { unlink(link) }
            for hostPath in [
                "\(d.stateDirectory)/cri", "\(d.stateDirectory)//", "\(d.stateDirectory)/./cri", link, "\(link)/cri",
                (d.stateDirectory as NSString).deletingLastPathComponent, "/",
            ] {
                var inState = containerConfig("state", image: image, ["/bin/sh"])
                inState.mounts = [
                    .with {
                        $0.hostPath = hostPath; $0.containerPath = "/x"
                    }
                ]
                await expectStatus(.invalidArgument, "mount of podvisor's state as \(hostPath)") { try await d.create(sandbox, pod, inState) }
            }
            var recursiveRW = containerConfig("rro", image: image, ["/bin/sh"])
            recursiveRW.mounts = [
                .with {
                    $0.hostPath = logs; $0.containerPath = "/x"; $0.recursiveReadOnly = true
                }
            ]
            await expectStatus(.invalidArgument, "recursive read-only without readonly") { try await d.create(sandbox, pod, recursiveRW) }
            var groupOnly = containerConfig("group", image: image, ["/bin/sh"])
            groupOnly.linux.securityContext.runAsGroup = .with { $0.value = 1000 }
            await expectStatus(.invalidArgument, "run_as_group without a user") { try await d.create(sandbox, pod, groupOnly) }
            await expectStatus(.notFound, "image not pulled") {
                try await d.create(sandbox, pod, containerConfig("nope", image: "127.0.0.1:1/absent:1", ["/bin/sh"]))
            }
            _ = try await r.removeContainer(.with { $0.containerID = c2 })
            let c2b = try await d.create(
                sandbox, pod, containerConfig("job", image: image, ["/bin/sh", "-c", "echo again"], attempt: 1, log: "job-1.log"))
            try await d.start(c2b)
            let again = try await d.wait(c2b, until: .containerExited)
            #expect(again.exitCode == 0 && again.reason == "Completed")

            // Exec and Attach over the streaming server, with the protocol kubelet and crictl speak.
            let execURL = try await r.exec(
                .with {
                    $0.containerID = c1
                    $0.cmd = ["/bin/sh", "-c", "read x; echo got:$x; echo e >&2; exit 5"]
                    $0.stdin = true
                    $0.stdout = true
                    $0.stderr = true
                }
            ).url
            let piped = StreamOutput()
            #expect(try await RemoteCommandClient.run(url: execURL, tty: false, io: piped.io(stdin: ["h", "i\n"])) == .exitCode(5))
            #expect(piped.text == ("got:hi\n", "e\n"))
            let ttyURL = try await r.exec(
                .with {
                    $0.containerID = c1
                    $0.cmd = ["/bin/sh", "-c", "sleep 1; stty size"]
                    $0.tty = true
                    $0.stdout = true
                }
            ).url
            let terminal = StreamOutput()
            let sized = terminal.io(stdin: nil, resizes: [TerminalSize(width: 120, height: 40)])
            #expect(try await RemoteCommandClient.run(url: ttyURL, tty: true, io: sized) == .success)
            #expect(terminal.text.stdout == "40 120\r\n")
            await expectStatus(.failedPrecondition, "streaming exec in an exited container") {
                try await r.exec(
                    .with {
                        $0.containerID = c2b; $0.cmd = ["/bin/sh"]; $0.stdout = true
                    })
            }
            // Attach before the start (docker's order) sees all output; stdin_once closes stdin after the session.
            var echoConfig = containerConfig(
                "echo", image: image, ["/bin/sh", "-c", "echo ready; while read l; do echo \"echo:$l\"; done; echo done"])
            echoConfig.stdin = true
            echoConfig.stdinOnce = true
            let echo = try await d.create(sandbox, pod, echoConfig)
            let attachURL = try await r.attach(
                .with {
                    $0.containerID = echo; $0.stdin = true; $0.stdout = true; $0.stderr = true
                }
            ).url
            try await d.start(echo)
            let attached = StreamOutput()
            #expect(try await RemoteCommandClient.run(url: attachURL, tty: false, io: attached.io(stdin: ["a\nb\n"])) == .success)
            #expect(attached.text.stdout == "ready\necho:a\necho:b\ndone\n")
            #expect(try await d.wait(echo, until: .containerExited).exitCode == 0)

            // PortForward: connections reach a port inside the VM through the agent (no pod network needed).
            let web = try await d.create(
                sandbox, pod,
                containerConfig(
                    "web", image: image, ["/bin/sh", "-c", "exec httpd -f -p 8080 -h /etc"]))
            try await d.start(web)
            let forwardURL = try await r.portForward(
                .with {
                    $0.podSandboxID = sandbox; $0.port = [8080]
                }
            ).url
            let (page, refused) = try await PortForwardClient.withSession(url: forwardURL) { client -> (String, String?) in
                var page = ""
                // httpd may not listen yet when the first connection arrives.
                for _ in 0..<50 where !page.contains("kept") {
                    let answer = StreamOutput()
                    let io = answer.io(stdin: nil)
                    _ = try await client.forward(
                        port: 8080,
                        send: AsyncStream { c in
                            c.yield(Array("GET /kept HTTP/1.0\r\n\r\n".utf8))
                            c.finish()
                        }, receive: { io.stdout($0) })
                    page = answer.text.stdout
                    if !page.contains("kept") { try await Task.sleep(for: .milliseconds(200)) }
                }
                let refused = try await client.forward(port: 8081, send: AsyncStream { $0.finish() }, receive: { _ in })
                return (page, refused)
            }
            #expect(page.hasPrefix("HTTP/1.") && page.hasSuffix("kept\n"), "\(page)")
            // hostPort: portmap DNATs it to the pod's address on the pod network.
            let hostURL = URL(string: "http://127.0.0.1:\(hostPort)/kept")!
            #expect(String(decoding: try await URLSession.shared.data(from: hostURL).0, as: UTF8.self) == "kept\n")
            // The pod's containers reach each other on localhost, as in any Kubernetes pod.
            let neighbour = try await r.execSync(
                .with {
                    $0.containerID = c1; $0.cmd = ["/bin/sh", "-c", "wget -qO- http://127.0.0.1:8080/kept"]; $0.timeout = 60
                })
            #expect(String(decoding: neighbour.stdout, as: UTF8.self) == "kept\n", "\(neighbour)")
            #expect(refused?.contains("port 8081") == true, "\(refused ?? "no error")")

            // Events seen by a GetContainerEvents subscriber.
            let seen = events.snapshot()
            #expect(seen.contains { $0.containerID == c1 && $0.containerEventType == .containerStartedEvent })
            #expect(seen.contains { $0.containerID == c2 && $0.containerEventType == .containerStoppedEvent })
            #expect(seen.contains { $0.containerID == c2 && $0.containerEventType == .containerDeletedEvent })
            #expect(seen.first { $0.containerID == c1 }?.podSandboxStatus.id == sandbox)

            // Log rotation: kubelet renames the file, then asks for a new one.
            try FileManager.default.moveItem(atPath: "\(logs)/server.log", toPath: "\(logs)/server.log.1")
            _ = try await r.reopenContainerLog(.with { $0.containerID = c1 })
            #expect(try await waitForFile("\(logs)/server.log", containing: "tick").contains(" stdout F tick\n"))
            await expectStatus(.failedPrecondition, "reopen of an exited container's log") {
                try await r.reopenContainerLog(.with { $0.containerID = c2b })
            }

            _ = try await r.updateContainerResources(
                .with {
                    $0.containerID = c1
                    $0.linux = .with { $0.memoryLimitInBytes = 96 << 20 }
                })
            #expect(try await d.status(c1).resources.linux.memoryLimitInBytes == 96 << 20)

            // A container with a stop signal of its own (kept across the restart below).
            var gracefulConfig = containerConfig(
                "graceful", image: image, ["/bin/sh", "-c", "trap 'echo got usr1; exit 7' USR1; echo armed; while true; do sleep 1; done"],
                log: "graceful.log")
            gracefulConfig.stopSignal = .sigusr1
            let graceful = try await d.create(sandbox, pod, gracefulConfig)
            try await d.start(graceful)
            #expect(try await waitForFile("\(logs)/graceful.log", containing: "armed").contains("armed"))

            // kill -9 of podvisord: the pod, its running and its exited containers are all there afterwards.
            d.kill9()
            try await d.start()
            #expect(try await d.sandboxState(sandbox) == .sandboxReady)
            #expect(try await d.status(c1).state == .containerRunning)
            let exited = try await d.status(c2b)
            #expect(exited.state == .containerExited && exited.exitCode == 0 && exited.reason == "Completed")
            let alive = try await d.runtime.execSync(
                .with {
                    $0.containerID = c1; $0.cmd = ["/bin/sh", "-c", "echo alive"]; $0.timeout = 60
                })
            #expect(String(decoding: alive.stdout, as: UTF8.self) == "alive\n")

            // StopContainer: SIGTERM ends sh (not its PID namespace's init: the pod shares one).
            _ = try await d.runtime.stopContainer(
                .with {
                    $0.containerID = c1; $0.timeout = 10
                })
            let stopped = try await d.status(c1)
            #expect(stopped.state == .containerExited && stopped.exitCode == 143 && stopped.reason == "Error")
            _ = try await d.runtime.stopContainer(
                .with {
                    $0.containerID = c1; $0.timeout = 1
                })
            _ = try await d.runtime.stopContainer(
                .with {
                    $0.containerID = graceful; $0.timeout = 30
                })
            let trapped = try await d.status(graceful)
            #expect(trapped.exitCode == 7 && trapped.stopSignal == .sigusr1, "\(trapped)")

            try await d.removePod(sandbox)
            try await d.removePod(sandbox)
            await #expect(throws: (any Error).self, "the host port is closed with its pod") { try await URLSession.shared.data(from: hostURL) }
            await expectStatus(.notFound, "status of a removed sandbox") { try await d.runtime.podSandboxStatus(.with { $0.podSandboxID = sandbox }) }
            #expect(try await d.runtime.listContainers(Runtime_V1_ListContainersRequest()).containers.isEmpty)
            PodTraces.expectNothingLeft(d, sandbox: sandbox, containers: [c1, c2, c2b, echo, web, graceful])
        }

        /// SupplementalGroupsPolicy as kubelet passes it, and the identity ContainerStatus reports: Merge adds the
        /// groups of the image's /etc/group, Strict does not; a numeric uid takes its primary group from passwd.
        @Test func supplementalGroupsPolicyAndTheContainersUser() async throws {
            let d = try await CRIDaemon.shared.value
            let image = "\(try await TestImages.registry.value.address)/groups:latest"
            _ = try await d.images.pullImage(.with { $0.image = .with { $0.image = image } })
            let features = try await d.runtime.status(Runtime_V1_StatusRequest()).features
            #expect(features.supplementalGroupsPolicy)
            let pod = podConfig("groups")
            let sandbox = try await d.run(pod)
            func start(_ name: String, _ policy: Runtime_V1_SupplementalGroupsPolicy) async throws -> String {
                var config = containerConfig(name, image: image, ["/bin/sh", "-c", "sleep 600"])
                config.linux.securityContext.runAsUser = .with { $0.value = 1000 }
                config.linux.securityContext.supplementalGroups = [1234]
                config.linux.securityContext.supplementalGroupsPolicy = policy
                let id = try await d.create(sandbox, pod, config)
                try await d.start(id)
                return id
            }
            do {
                for (policy, groups) in [(Runtime_V1_SupplementalGroupsPolicy.merge, [Int64]([1000, 1234, 50000])), (.strict, [1000, 1234])] {
                    let id = try await start("\(policy)", policy)
                    let user = try await d.status(id).user.linux
                    #expect(user.uid == 1000 && user.gid == 1000 && user.supplementalGroups.sorted() == groups, "\(policy): \(user)")
                    let id_G = try await d.runtime.execSync(
                        .with {
                            $0.containerID = id; $0.cmd = ["/bin/sh", "-c", "id -G"]; $0.timeout = 30
                        })
                    #expect(String(decoding: id_G.stdout, as: UTF8.self) == groups.map(String.init).joined(separator: " ") + "\n", "\(policy)")
                }
            } catch {
                try? await d.removePod(sandbox)
                throw error
            }
            try await d.removePod(sandbox)
        }

        /// A pod in a user namespace (kubelet's hostUsers: false): its containers and execs see kubelet's mapping,
        /// and the image's, the pod's and a volume's files with the owners they have on the host's disk (the
        /// host idmaps them); a container with a PID namespace of its own too.
        @Test func aPodInAUserNamespace() async throws {
            let d = try await CRIDaemon.shared.value
            let handlers = try await d.runtime.status(Runtime_V1_StatusRequest()).runtimeHandlers
            #expect(!handlers.isEmpty && handlers.allSatisfy { $0.features.userNamespaces })
            let image = try await TestImages.busybox(d)
            let host: UInt32 = 196_608
            let volume = "/tmp/podvisor-userns-\(UUID().uuidString.prefix(8))"
            try FileManager.default.createDirectory(atPath: volume, withIntermediateDirectories: false)
            defer { try? FileManager.default.removeItem(atPath: volume) }
            FileManager.default.createFile(atPath: "\(volume)/theirs", contents: Data("x".utf8))
            #expect(chown("\(volume)/theirs", 7, 8) == 0)
            var pod = podConfig("userns")
            let mapping = Runtime_V1_IDMapping.with {
                $0.containerID = 0; $0.hostID = host; $0.length = 65536
            }
            pod.linux.securityContext.namespaceOptions.usernsOptions = .with {
                $0.mode = .pod; $0.uids = [mapping]; $0.gids = [mapping]
            }
            let sandbox = try await d.run(pod)
            do {
                func start(_ name: String, pid: Runtime_V1_NamespaceMode) async throws -> String {
                    var config = containerConfig(name, image: image, ["/bin/sh", "-c", "sleep 600"])
                    config.linux.securityContext.namespaceOptions = pod.linux.securityContext.namespaceOptions
                    config.linux.securityContext.namespaceOptions.pid = pid
                    config.linux.securityContext.runAsUser = .with { $0.value = 0 }
                    config.mounts = [
                        .with {
                            $0.containerPath = "/vol"; $0.hostPath = volume
                        }
                    ]
                    let id = try await d.create(sandbox, pod, config)
                    try await d.start(id)
                    return id
                }
                func run(_ id: String, _ script: String) async throws -> String {
                    let result = try await d.runtime.execSync(
                        .with {
                            $0.containerID = id; $0.cmd = ["/bin/sh", "-c", script]; $0.timeout = 30
                        })
                    #expect(result.exitCode == 0, "\(script): \(String(decoding: result.stderr, as: UTF8.self))")
                    return String(decoding: result.stdout, as: UTF8.self).split(whereSeparator: \.isWhitespace).joined(separator: " ")
                }
                let shared = try await start("shared", pid: .pod)
                let own = try await start("own-pid", pid: .container)
                for id in [shared, own] {
                    let maps = try await run(id, "cat /proc/self/uid_map /proc/self/gid_map; id -u")
                    #expect(maps == "0 \(host) 65536 0 \(host) 65536 0")
                    let owners = try await run(id, "stat -c %u:%g / /bin/busybox /etc/hosts /vol /vol/theirs")
                    #expect(owners == "0:0 0:0 0:0 0:0 7:8")
                }
                // The container's init is PID 1 of its own namespace, in the pod's user namespace.
                let pidOne = try await run(own, "cat /proc/1/uid_map; cat /proc/1/cmdline | tr '\\0' ' '")
                #expect(pidOne == "0 \(host) 65536 sleep 600")
                #expect(try await d.status(own).state == .containerRunning)
                // Writes: the rootfs's upper layer keeps the mapped ids; a volume, idmapped, the ids of the container
                // (as containerd's idmapped volumes: kubelet's files need no chown).
                let written = try await run(shared, "echo hi > /etc/written && touch /vol/made && stat -c %u:%g /etc/written /vol/made")
                #expect(written == "0:0 0:0")
                for (path, owner) in [("\(d.stateDirectory)/containers/\(shared)/upper/etc/written", host), ("\(volume)/made", 0)] {
                    let attributes = try FileManager.default.attributesOfItem(atPath: path)
                    let ids = [attributes[.ownerAccountID], attributes[.groupOwnerAccountID]].map { ($0 as? NSNumber)?.uint32Value }
                    #expect(ids == [owner, owner], "\(path)")
                }
            } catch {
                try? await d.removePod(sandbox)
                throw error
            }
            try await d.removePod(sandbox)
        }

        /// kubelet's pod cgroup holds the VM: QEMU and its helpers are placed in `cgroup_parent`, and the VM's
        /// memory is charged there (what kubelet's accounting and eviction read).
        @Test func thePodVMLivesInItsCgroupParent() async throws {
            let d = try await CRIDaemon.shared.value
            let parent = "/podvisor-test-\(UUID().uuidString.prefix(8).lowercased())"
            let unified = FileManager.default.fileExists(atPath: "/sys/fs/cgroup/cgroup.controllers")
            let memory = unified ? "/sys/fs/cgroup\(parent)" : "/sys/fs/cgroup/memory\(parent)"
            let directories = unified ? [memory] : ["memory", "cpu", "cpuacct", "pids", "blkio"].map { "/sys/fs/cgroup/\($0)\(parent)" }
            defer { for directory in directories { rmdir(directory) } }
            var pod = podConfig("cgroup")
            pod.linux.cgroupParent = parent
            let sandbox = try await d.run(pod)
            do {
                let processes = PodTraces.qemu(sandbox: sandbox) + HostState.processes(matching: "\(d.stateDirectory)/vm/\(sandbox.prefix(16))/")
                #expect(processes.count >= 3, "QEMU, virtiofsd and the vsock backend")
                for pid in processes {
                    let cgroups = (try? String(contentsOfFile: "/proc/\(pid)/cgroup", encoding: .utf8)) ?? ""
                    let line = cgroups.split(separator: "\n").first { unified ? $0.hasPrefix("0::") : $0.contains(":memory:") }
                    #expect(line?.hasSuffix(parent) == true, "process \(pid): \(cgroups.split(separator: "\n").joined(separator: " | "))")
                }
                let charged =
                    (try? String(contentsOfFile: "\(memory)/\(unified ? "memory.current" : "memory.usage_in_bytes")", encoding: .utf8))
                    .flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) } ?? 0
                #expect(charged > 32 << 20, "the VM's memory is charged to the pod's cgroup (\(charged) bytes)")

                // A VM that outgrows the pod's limit is OOM-killed by the host, and reported as such.
                let limit = unified ? "memory.max" : "memory.limit_in_bytes"
                try "\(charged + (24 << 20))".write(toFile: "\(memory)/\(limit)", atomically: false, encoding: .utf8)
                let image = try await TestImages.busybox(d)
                let filler = try await d.create(
                    sandbox, pod,
                    containerConfig("filler", image: image, ["/bin/sh", "-c", "dd if=/dev/zero of=/dev/shm/fill bs=1M count=150; sleep 600"]))
                try await d.start(filler)
                let status = try await d.wait(filler, until: .containerExited, seconds: 60)
                #expect(status.reason == "OOMKilled" && status.message.contains("OOM"), "\(status)")
                let sandboxStatus = try await d.runtime.podSandboxStatus(
                    .with {
                        $0.podSandboxID = sandbox; $0.verbose = true
                    })
                #expect(sandboxStatus.status.state == .sandboxNotready && sandboxStatus.info["info"]?.contains("OOM-killed") == true)
            } catch {
                try? await d.removePod(sandbox)
                throw error
            }
            try await d.removePod(sandbox)
        }

        /// QEMU killed behind podvisord's back: the sandbox turns NOTREADY and its container EXITED, with reasons.
        @Test func vmKilledFromOutside() async throws {
            let d = try await CRIDaemon.shared.value
            let image = try await TestImages.busybox(d)
            let pod = podConfig("doomed")
            let sandbox = try await d.run(pod)
            let container = try await d.create(sandbox, pod, containerConfig("sleeper", image: image, ["/bin/sh", "-c", "sleep 1000"]))
            try await d.start(container)
            let qemu = PodTraces.qemu(sandbox: sandbox)
            #expect(qemu.count == 1)
            qemu.forEach { kill($0, SIGKILL) }

            let status = try await d.wait(container, until: .containerExited, seconds: 20)
            #expect(status.state == .containerExited && status.reason == "Error" && status.message.contains("pod VM stopped"))
            let sandboxStatus = try await d.runtime.podSandboxStatus(
                .with {
                    $0.podSandboxID = sandbox; $0.verbose = true
                })
            #expect(sandboxStatus.status.state == .sandboxNotready && sandboxStatus.info["info"]?.contains("pod VM stopped") == true)
            await expectStatus(.failedPrecondition, "container in a NOTREADY sandbox") {
                try await d.create(sandbox, pod, containerConfig("late", image: image, ["/bin/sh"]))
            }
            try await d.removePod(sandbox)
            PodTraces.expectNothingLeft(d, sandbox: sandbox, containers: [container])
        }

        /// Five RunPodSandbox at once; then a restart that finds one VM without its record destroys that VM.
        @Test func concurrentSandboxesAndOrphanAfterRestart() async throws {
            let d = try await CRIDaemon.shared.value
            let ids = try await withThrowingTaskGroup(of: String.self) { group in
                for i in 0..<5 { group.addTask { try await d.run(podConfig("many-\(i)")) } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(Set(ids).count == 5)
            for id in ids { #expect(try await d.sandboxState(id) == .sandboxReady) }

            d.kill9()
            let orphan = ids[0]
            try FileManager.default.removeItem(atPath: "\(d.stateDirectory)/cri/records/sandboxes/\(orphan).json")
            try await d.start()
            #expect(PodTraces.qemu(sandbox: orphan).isEmpty)
            let listed = Set(try await d.runtime.listPodSandbox(Runtime_V1_ListPodSandboxRequest()).items.map(\.id))
            #expect(listed == Set(ids.dropFirst()))

            try await withThrowingTaskGroup(of: Void.self) { group in
                for id in ids.dropFirst() { group.addTask { try await d.removePod(id) } }
                try await group.waitForAll()
            }
            for id in ids { PodTraces.expectNothingLeft(d, sandbox: id, containers: []) }
        }
    }
}

/// GetContainerEvents messages as they arrive.
final class EventLog: Sendable {
    private let events = Mutex<[Runtime_V1_ContainerEventResponse]>([])
    func append(_ event: Runtime_V1_ContainerEventResponse) { events.withLock { $0.append(event) } }
    func snapshot() -> [Runtime_V1_ContainerEventResponse] { events.withLock { $0 } }
}

/// Polls a file until it contains `text` (container output reaches its log asynchronously).
func waitForFile(_ path: String, containing text: String, seconds: Int = 30) async throws -> String {
    let deadline = ContinuousClock.now + .seconds(seconds)
    while true {
        let content = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        if content.contains(text) || ContinuousClock.now > deadline { return content }
        try await Task.sleep(for: .milliseconds(100))
    }
}

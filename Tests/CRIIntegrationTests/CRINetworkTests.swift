import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import GRPCCore
import PodvisorCRI
import TestSupport
import Testing

extension CRITests {
    /// Pod networking through real CNI plugins (Debian's bridge, host-local, portmap) and real pod VMs: the
    /// daemon's own bridge pvcri0 on 10.214.250.0/24. 3 VM boots.
    @Suite struct Network {
        /// Two pods reach each other by IP both ways, the host reaches a pod and a host port (portmap's DNAT),
        /// a pod reaches the host, and the guest carries the CNI interface's address, routes, DNS and hosts.
        @Test func podsReachEachOtherAndTheHost() async throws {
            let d = try await CRIDaemon.shared.value
            let image = try await TestImages.busybox(d)
            let hostPort = try TestRegistry.freePort()
            var podA = podConfig("net-a")
            podA.portMappings = [
                .with {
                    $0.containerPort = 8080; $0.hostPort = Int32(hostPort)
                }
            ]
            podA.dnsConfig = .with {
                $0.servers = [d.network.gateway]
                $0.searches = ["pods.test"]
                $0.options = ["ndots:2"]
            }
            let podB = podConfig("net-b")
            let a = try await d.run(podA)
            let b = try await d.run(podB)
            // An error below must not leave pods for the next suites.
            do { try await Self.checkPods(d, image: image, a: (a, podA), b: (b, podB), hostPort: hostPort) } catch {
                try? await d.removePod(a)
                try? await d.removePod(b)
                throw error
            }
            try await d.removePod(a)
            try await d.removePod(b)
            #expect(d.network.leases().isEmpty, "leases left: \(d.network.leases())")
            PodTraces.expectNothingLeft(d, sandbox: a, containers: [])
            PodTraces.expectNothingLeft(d, sandbox: b, containers: [])
            let nodeIP = try #require(try await HostNetwork.nodeAddress())
            await #expect(throws: (any Error).self, "the host port goes with its pod") {
                try await HostNetwork.fetch("http://\(nodeIP):\(hostPort)/hostname")
            }
        }

        static func checkPods(
            _ d: CRIDaemon, image: String, a: (id: String, config: Runtime_V1_PodSandboxConfig), b: (id: String, config: Runtime_V1_PodSandboxConfig),
            hostPort: UInt16
        ) async throws {
            let (a, podA) = a, (b, podB) = b
            var ips: [String: String] = [:]
            for sandbox in [a, b] {
                let status = try await d.runtime.podSandboxStatus(.with { $0.podSandboxID = sandbox }).status
                #expect(status.network.ip.hasPrefix("10.214.\(d.network.subnet)."), "\(status.network)")
                ips[sandbox] = status.network.ip
            }
            let ipA = try #require(ips[a]), ipB = try #require(ips[b])
            #expect(ipA != ipB)
            #expect(Set(d.network.leases()) == [ipA, ipB])

            // Each pod serves its /etc, whose hostname file names the pod.
            func web(_ sandbox: String, _ pod: Runtime_V1_PodSandboxConfig) async throws -> String {
                let container = try await d.create(
                    sandbox, pod, containerConfig("web", image: image, ["/bin/sh", "-c", "exec httpd -f -p 8080 -h /etc"]))
                try await d.start(container)
                return container
            }
            let webA = try await web(a, podA)
            let webB = try await web(b, podB)
            func fetch(in container: String, _ url: String) async throws -> String {
                // httpd may not listen yet: a few tries.
                var answer = ""
                for _ in 0..<30 where answer.isEmpty {
                    // busybox's wget crashes with its own -T: the exec's timeout bounds a try instead.
                    let out = try? await d.runtime.execSync(
                        .with {
                            $0.containerID = container; $0.cmd = ["/bin/sh", "-c", "wget -qO- \(url)"]; $0.timeout = 5
                        })
                    answer = out.map { String(decoding: $0.stdout, as: UTF8.self) } ?? ""
                    if answer.isEmpty { try await Task.sleep(for: .milliseconds(200)) }
                }
                return answer
            }
            #expect(try await fetch(in: webB, "http://\(ipA):8080/hostname") == "net-a\n", "pod B → pod A")
            #expect(try await fetch(in: webA, "http://\(ipB):8080/hostname") == "net-b\n", "pod A → pod B")
            #expect(try await HostNetwork.fetch("http://\(ipA):8080/hostname") == "net-a\n", "host → pod A")
            #expect(try await HostNetwork.fetch("http://127.0.0.1:\(hostPort)/hostname") == "net-a\n", "host port on localhost (portmap)")
            let nodeIP = try #require(try await HostNetwork.nodeAddress(), "the host has no address to reach the host port on")
            #expect(try await HostNetwork.fetch("http://\(nodeIP):\(hostPort)/hostname") == "net-a\n", "host port on the node's address (portmap)")

            // A pod reaches the host: a listener on the bridge's gateway address.
            let served = try await HostNetwork.serveOnce(host: d.network.gateway, answer: "from-host") { port in
                try await fetch(in: webB, "http://\(d.network.gateway):\(port)/")
            }
            #expect(served == "from-host", "pod B → host")

            // What the guest made of the CNI result, and the files kubelet expects.
            let guest = try await d.runtime.execSync(
                .with {
                    $0.containerID = webA
                    $0.cmd = ["/bin/sh", "-c", "ip -o -4 addr show eth0; ip route; cat /etc/resolv.conf /etc/hosts"]
                    $0.timeout = 30
                })
            let said = String(decoding: guest.stdout, as: UTF8.self)
            #expect(said.contains("inet \(ipA)/24"), "\(said)")
            #expect(said.contains("default via \(d.network.gateway) dev eth0"), "\(said)")
            #expect(
                said.contains("nameserver \(d.network.gateway)") && said.contains("search pods.test") && said.contains("options ndots:2"), "\(said)")
            #expect(said.contains("\(ipA)\tnet-a"), "\(said)")

        }

        /// NetworkReady follows the conf dir; a plugin that fails makes RunPodSandbox fail with its message and
        /// leaves no VM, netns, tap, lease or attachment; with no network at all, RunPodSandbox says so.
        @Test func readinessFollowsTheConfigAndAFailingPluginLeavesNothing() async throws {
            let d = try await CRIDaemon.shared.value
            let config = "\(d.network.confDir)/10-test.conflist"
            let saved = try String(contentsOfFile: config, encoding: .utf8)
            defer { try? d.network.write(saved) }
            func networkReady() async throws -> Runtime_V1_RuntimeCondition? {
                try await d.runtime.status(Runtime_V1_StatusRequest()).status.conditions.first { $0.type == "NetworkReady" }
            }
            func waitForReady(_ ready: Bool) async throws -> Runtime_V1_RuntimeCondition? {
                for _ in 0..<100 {
                    let condition = try await networkReady()
                    if condition?.status == ready { return condition }
                    try await Task.sleep(for: .milliseconds(100))
                }
                return try await networkReady()
            }
            #expect(try await waitForReady(true)?.status == true)
            try FileManager.default.removeItem(atPath: config)
            let gone = try await waitForReady(false)
            #expect(
                gone?.status == false && gone?.reason == "NetworkPluginNotReady" && gone?.message.contains(d.network.confDir) == true,
                "\(String(describing: gone))")
            await expectStatus(.failedPrecondition, "a pod without a pod network") { try await d.run(podConfig("no-network")) }

            // tuning fails after bridge has handed out an address: the whole ADD is undone.
            try d.network.write(d.network.conflist(extra: [#"{"type": "tuning", "sysctl": {"net.no.such.key": "1"}}"#]))
            #expect(try await waitForReady(true)?.status == true)
            do {
                _ = try await d.run(podConfig("bad-plugin"))
                Issue.record("RunPodSandbox succeeded with a failing plugin")
            } catch let error as RPCError {
                #expect(error.message.contains("tuning") && error.message.contains("no/such/key"), "\(error.message)")
            }
            #expect(d.network.leases().isEmpty, "leases left: \(d.network.leases())")
            #expect(try FileManager.default.contentsOfDirectory(atPath: "\(d.stateDirectory)/network").isEmpty, "attachments left")
            #expect(try FileManager.default.contentsOfDirectory(atPath: "\(d.stateDirectory)/sandboxes").isEmpty, "sandbox directories left")
            #expect(HostState.processes(matching: "\(d.stateDirectory)/vm/").isEmpty, "QEMU or a helper of the failed sandbox runs")
            #expect(try await d.runtime.listPodSandbox(Runtime_V1_ListPodSandboxRequest()).items.isEmpty)
        }

        /// kill -9 of podvisord while RunPodSandbox is under way (the network is attached, the VM booting):
        /// after the restart nothing of that sandbox is left, and its lease is back.
        @Test func killDuringRunPodSandboxLeavesNothing() async throws {
            let d = try await CRIDaemon.shared.value
            let attachments = "\(d.stateDirectory)/network"
            let starting = Task { try await d.run(podConfig("interrupted")) }
            var attached: [String] = []
            for _ in 0..<300 where attached.isEmpty {
                attached = (try? FileManager.default.contentsOfDirectory(atPath: attachments)) ?? []
                try await Task.sleep(for: .milliseconds(20))
            }
            let id = try #require(attached.first.map { String($0.dropLast(".json".count)) }, "RunPodSandbox never reached the network")
            d.kill9()
            _ = await starting.result
            try await d.start()
            #expect(try await d.runtime.listPodSandbox(Runtime_V1_ListPodSandboxRequest()).items.isEmpty)
            #expect(d.network.leases().isEmpty, "leases left: \(d.network.leases())")
            #expect(try FileManager.default.contentsOfDirectory(atPath: attachments).isEmpty, "attachments left")
            PodTraces.expectNothingLeft(d, sandbox: id, containers: [])
        }
    }
}

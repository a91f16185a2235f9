import Foundation
import PodvisorCore
import Testing

@testable import PodvisorNetwork

/// Real plugins (Debian's containernetworking-plugins), real namespaces, a bridge of each test's own.
/// Serialized: the tests share the host's IPv4 forwarding setting, which each restores.
@Suite(.serialized, .enabled(if: realPluginsAvailable, "needs root and /usr/lib/cni/bridge (make deps installs it)"))
struct PodNetworkIntegrationTests {
    @Test func aNamespaceIsPinnedWithoutMovingTheCaller() async throws {
        try await PodNetworkFixture.with { fixture in
            let own = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/thread-self/ns/net")
            let namespace = try fixture.namespace("pin")
            #expect(namespace.isPinned)
            #expect(try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/thread-self/ns/net") == own)
            #expect(try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/net") == own)
            #expect(try await fixture.links(in: namespace) == ["lo"])
            #expect {
                try NetworkNamespace.create(name: "pin", directory: fixture.netnsDir)
            } throws: { error in
                (error as? PodvisorError)?.code == .alreadyExists
            }
            try namespace.remove()
            try namespace.remove()
            #expect(!namespace.isPinned)
            #expect(!FileManager.default.fileExists(atPath: namespace.path))
        }
    }

    @Test func addGivesEth0TheResultsAddressReachableFromTheHostAndDelTakesItBack() async throws {
        try await PodNetworkFixture.with { fixture in
            let network = fixture.network
            #expect(!network.status().ready)
            try fixture.writeConfig(fixture.conflist())
            #expect(network.status() == NetworkReadiness(ready: true, reason: "", message: ""))

            let namespace = try fixture.namespace("web")
            let hostPort = Int.random(in: 20000...29999)
            let attachment = fixture.attachment(namespace, portMappings: [.init(hostPort: hostPort, containerPort: 8080)])
            let result = try await network.add(attachment)
            let eth0 = try #require(result.sandboxInterface(named: "eth0"))
            #expect(eth0.sandbox == namespace.path)
            let ip = try #require(result.podIPs.first)
            #expect(ip.hasPrefix("10.213.\(fixture.subnet)."))
            #expect(result.ips.first?.gateway == fixture.address(1))
            #expect(try await fixture.links(in: namespace).sorted() == ["eth0", "lo"])
            #expect(try TapPlumbing.link("eth0", namespacePath: namespace.path).mac == eth0.mac)
            // What a pod VM takes over, read back over netlink: eth0's address and default route, not the
            // kernel's route of its subnet nor its link-local address; then routes and an IPv6 address that
            // no plugin reported come along too.
            let gateway = fixture.address(1)
            var pod = try PodInterface.read(namespacePath: namespace.path)
            #expect(pod.mac == eth0.mac && pod.mtu == 1500 && pod.addresses == ["\(ip)/24"], "\(pod)")
            #expect(pod.routes.map { "\($0.destination) \($0.gateway ?? "")" } == ["0.0.0.0/0 \(gateway)"], "\(pod)")
            for command in [
                ["addr", "add", "fd00:77::5/64", "dev", "eth0", "nodad"], ["route", "add", "192.0.2.7", "via", gateway, "dev", "eth0"],
                ["-6", "route", "add", "default", "via", "fd00:77::1", "dev", "eth0"],
            ] {
                try await HostProgram.check("nsenter", ["--net=\(namespace.path)", "ip"] + command)
            }
            pod = try PodInterface.read(namespacePath: namespace.path)
            #expect(pod.addresses.sorted() == ["\(ip)/24", "fd00:77::5/64"] && pod.ips == [ip, "fd00:77::5"], "\(pod)")
            #expect(
                Set(pod.routes.map { "\($0.destination) \($0.gateway ?? "")" })
                    == ["0.0.0.0/0 \(gateway)", "192.0.2.7/32 \(gateway)", "::/0 fd00:77::1"], "\(pod)")
            #expect(throws: PodvisorError.self) { try PodInterface.read("eth9", namespacePath: namespace.path) }
            let addresses = try await HostProgram.check("nsenter", ["--net=\(namespace.path)", "ip", "-o", "-4", "addr", "show"])
            #expect(addresses.contains("inet \(ip)/24"))
            #expect(addresses.contains("inet 127.0.0.1/8"))  // loopback brought lo up
            #expect(fixture.leases() == [ip])
            #expect(try network.cachedAttachments().map(\.result) == [result])

            // The pod itself, and through portmap's DNAT (runtimeConfig.portMappings) the host port.
            let answers = try await serve(in: namespace, port: 8080, to: [(ip, 8080), (fixture.address(1), hostPort)])
            #expect(answers == ["pod", "pod"])

            try await network.delete(containerID: attachment.containerID)
            #expect(fixture.leases().isEmpty)
            #expect(try network.cachedAttachments().isEmpty)
            #expect(try await fixture.links(in: namespace) == ["lo"])
            try await network.delete(containerID: attachment.containerID)

            try FileManager.default.removeItem(atPath: "\(fixture.confDir)/10-test.conflist")
            #expect(!network.status().ready)
        }
    }

    @Test func checkPassesOnAnIntactAttachmentAndFailsOnABrokenOne() async throws {
        try await PodNetworkFixture.with { fixture in
            // No portmap: 1.1.1's CHECK looks for ip6tables chains an IPv4-only pod never gets
            // (containernetworking/plugins#819).
            try fixture.writeConfig(fixture.conflist(portmap: false))
            let namespace = try fixture.namespace("checked")
            let attachment = fixture.attachment(namespace)
            _ = try await fixture.network.add(attachment)
            try await fixture.network.check(containerID: attachment.containerID)
            try await HostProgram.check("nsenter", ["--net=\(namespace.path)", "ip", "link", "del", "eth0"])
            await #expect {
                try await fixture.network.check(containerID: attachment.containerID)
            } throws: { error in
                (error as? PodvisorError)?.message.hasPrefix("CNI plugin \"bridge\" CHECK failed: ") == true
            }
            try await fixture.network.delete(containerID: attachment.containerID)
            #expect(fixture.leases().isEmpty)
            await #expect {
                try await fixture.network.check(containerID: attachment.containerID)
            } throws: { error in
                (error as? PodvisorError)?.code == .notFound
            }
        }
    }

    @Test func tenNamespacesGetTenAddressesAndGiveThemAllBack() async throws {
        try await PodNetworkFixture.with { fixture in
            try fixture.writeConfig(fixture.conflist())
            let attachments = try (0..<10).map { fixture.attachment(try fixture.namespace("pod\($0)")) }
            let network = fixture.network
            // Concurrently: host-local's lock keeps the addresses apart.
            let ips = try await withThrowingTaskGroup(of: String.self) { group in
                for attachment in attachments {
                    group.addTask { try await network.add(attachment).podIPs.first ?? "" }
                }
                return try await group.reduce(into: [String]()) { $0.append($1) }
            }
            #expect(Set(ips).count == 10)
            #expect(fixture.leases() == ips.sorted())
            for attachment in attachments {
                try await network.delete(containerID: attachment.containerID)
            }
            #expect(fixture.leases().isEmpty)
            #expect(try network.cachedAttachments().isEmpty)
        }
    }

    @Test func aRestartedRuntimeDeletesFromTheCacheAlone() async throws {
        try await PodNetworkFixture.with { fixture in
            try fixture.writeConfig(fixture.conflist())
            let attachment = fixture.attachment(try fixture.namespace("survivor"))
            _ = try await fixture.network.add(attachment)
            #expect(fixture.leases().count == 1)

            // The conf dir empties meanwhile (the CNI DaemonSet went away); a new runtime process starts.
            try FileManager.default.removeItem(atPath: "\(fixture.confDir)/10-test.conflist")
            let restarted = CNINetwork(confDir: fixture.confDir, binDirs: PodNetworkFixture.binDirs, cacheDir: fixture.cacheDir)
            #expect(!restarted.status().ready)
            #expect(try restarted.cachedAttachments().map(\.attachment) == [attachment])
            try await restarted.delete(containerID: attachment.containerID)
            #expect(fixture.leases().isEmpty)
            #expect(try restarted.cachedAttachments().isEmpty)
        }
    }

    @Test func delAfterTheNetnsIsGoneStillReleasesTheLease() async throws {
        try await PodNetworkFixture.with { fixture in
            try fixture.writeConfig(fixture.conflist())
            let namespace = try fixture.namespace("gone")
            let attachment = fixture.attachment(namespace)
            _ = try await fixture.network.add(attachment)
            try namespace.remove()
            try await fixture.network.delete(containerID: attachment.containerID)
            #expect(fixture.leases().isEmpty)
            #expect(try fixture.network.cachedAttachments().isEmpty)
            // The bridge has no port left: the veth goes with the namespace, once the kernel's namespace
            // cleanup (a work queue, later under load) has run.
            var ports = ""
            for _ in 0..<50 {
                ports = try await HostProgram.check("ip", ["-o", "link", "show", "master", fixture.bridge])
                if ports.isEmpty { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(ports.isEmpty)
        }
    }

    @Test func aPluginFailingPartWayUndoesTheWholeAdd() async throws {
        try await PodNetworkFixture.with { fixture in
            // tuning runs after bridge has made eth0 and taken a lease, then refuses an unknown sysctl.
            let tuning = #"{"type": "tuning", "sysctl": {"net.ipv4.conf.eth0.pvt_no_such_setting": "1"}}"#
            try fixture.writeConfig(fixture.conflist(extra: [tuning]))
            let namespace = try fixture.namespace("halfway")
            await #expect {
                try await fixture.network.add(fixture.attachment(namespace))
            } throws: { error in
                let message = (error as? PodvisorError)?.message ?? ""
                return message.hasPrefix("CNI plugin \"tuning\" ADD failed: ") && message.contains("pvt_no_such_setting")
            }
            #expect(fixture.leases().isEmpty)
            #expect(try await fixture.links(in: namespace) == ["lo"])
            #expect(try fixture.network.cachedAttachments().isEmpty)
        }
    }

    @Test func anExhaustedRangeFailsAddWithThePluginsMessageAndLeavesNothing() async throws {
        try await PodNetworkFixture.with { fixture in
            try fixture.writeConfig(fixture.conflist(rangeStart: 10, rangeEnd: 10))
            let first = fixture.attachment(try fixture.namespace("first"))
            _ = try await fixture.network.add(first)
            let secondNamespace = try fixture.namespace("second")
            await #expect {
                try await fixture.network.add(fixture.attachment(secondNamespace))
            } throws: { error in
                let message = (error as? PodvisorError)?.message ?? ""
                return message.hasPrefix("CNI plugin \"bridge\" ADD failed: ")
                    && message.contains("no IP addresses available in range set: \(fixture.address(10))-\(fixture.address(10))")
            }
            // bridge made eth0 before IPAM refused; the undo removed it.
            #expect(try await fixture.links(in: secondNamespace) == ["lo"])
            #expect(try fixture.network.cachedAttachments().map(\.attachment) == [first])
            #expect(fixture.leases() == [fixture.address(10)])
            try await fixture.network.delete(containerID: first.containerID)
            #expect(fixture.leases().isEmpty)
        }
    }

    @Test func aMissingPluginFailsAddBeforeAnyPluginRuns() async throws {
        try await PodNetworkFixture.with { fixture in
            try fixture.writeConfig(fixture.conflist(extra: [#"{"type": "pvt-no-such-plugin"}"#]))
            let missing = "CNI plugin \"pvt-no-such-plugin\" not found in [/usr/lib/cni]"
            #expect(fixture.network.status().message.hasSuffix(missing))
            let namespace = try fixture.namespace("nothing")
            await #expect {
                try await fixture.network.add(fixture.attachment(namespace))
            } throws: { error in
                let error = error as? PodvisorError
                return error?.code == .failedPrecondition && error?.message.hasSuffix(missing) == true
            }
            #expect(fixture.leases().isEmpty)
            #expect(try await fixture.links(in: namespace) == ["lo"])
            #expect(try fixture.network.cachedAttachments().isEmpty)
        }
    }

    @Test func aTapMovedIntoThePodIsMirroredOntoEth0() async throws {
        try await PodNetworkFixture.with { fixture in
            try fixture.writeConfig(fixture.conflist())
            let namespace = try fixture.namespace("vm")
            _ = try await fixture.network.add(fixture.attachment(namespace))
            let eth0 = try TapPlumbing.link("eth0", namespacePath: namespace.path)

            let tap = fixture.tapName(0)
            try await TapPlumbing.createTap(name: tap)
            let details = try await HostProgram.check("ip", ["-d", "link", "show", "dev", tap])
            #expect(details.contains("tun type tap") && details.contains("persist on"))

            try await TapPlumbing.move(tap: tap, namespacePath: namespace.path)
            try await TapPlumbing.mirror(tap: tap, namespacePath: namespace.path)
            #expect(try await fixture.links(in: namespace).sorted() == ["eth0", "lo", tap])
            #expect(try await HostProgram.run("ip", ["link", "show", "dev", tap]).status != 0)
            #expect(try TapPlumbing.link(tap, namespacePath: namespace.path).mtu == eth0.mtu)
            let up = try await HostProgram.check("nsenter", ["--net=\(namespace.path)", "ip", "-o", "link", "show", "dev", tap])
            #expect(up.contains(",UP"))
            for (from, to) in [("eth0", tap), (tap, "eth0")] {
                let filters = try await HostProgram.check(
                    "nsenter", ["--net=\(namespace.path)", "tc", "filter", "show", "dev", from, "ingress"])
                #expect(filters.contains("match 00000000/00000000 at 0"))
                #expect(filters.contains("mirred (Egress Redirect to device \(to))"))
            }
            // Doing it again (a runtime restarted half-way) finds the tap moved and replaces the filters, not stacks them.
            try await TapPlumbing.move(tap: tap, namespacePath: namespace.path)
            try await TapPlumbing.mirror(tap: tap, namespacePath: namespace.path, mtu: eth0.mtu)
            let filters = try await HostProgram.check("nsenter", ["--net=\(namespace.path)", "tc", "filter", "show", "dev", "eth0", "ingress"])
            #expect(filters.components(separatedBy: "Egress Redirect").count == 2)

            try await TapPlumbing.deleteTap(name: tap, namespacePath: namespace.path)
            try await TapPlumbing.deleteTap(name: tap, namespacePath: namespace.path)
            #expect(try await fixture.links(in: namespace).sorted() == ["eth0", "lo"])

            // A tap the VM never got (still in the root namespace) goes too.
            let unused = fixture.tapName(1)
            try await TapPlumbing.createTap(name: unused)
            try await TapPlumbing.deleteTap(name: unused, namespacePath: namespace.path)
            #expect(try await HostProgram.run("ip", ["link", "show", "dev", unused]).status != 0)

            await #expect(throws: PodvisorError.self) { try await TapPlumbing.createTap(name: "pvt-name-too-long") }
        }
    }
}

import Foundation
import Testing

@testable import PodvisorNetwork

@Suite struct CNIInvocationTests {
    static let config = try! CNIConfig.parse(
        Data(
            """
            {"cniVersion": "1.0.0", "name": "pods", "plugins": [
              {"type": "bridge", "bridge": "cni0", "runtimeConfig": {"stale": true}},
              {"type": "portmap", "capabilities": {"portMappings": true}, "snat": true},
              {"type": "bandwidth", "capabilities": {"bandwidth": true}},
              {"type": "dnsname", "capabilities": {"dns": true, "portMappings": true}}
            ]}
            """.utf8),
        fileName: "10-pods.conflist")

    static let attachment = CNIAttachment(
        containerID: "abc123", netnsPath: "/run/netns/pod-abc", podNamespace: "default", podName: "web",
        podUID: "6f1c-uid",
        portMappings: [.init(hostPort: 8080, containerPort: 80), .init(hostPort: 53, containerPort: 5353, protocol: .udp, hostIP: "127.0.0.1")],
        bandwidth: .init(ingressRate: 1_000_000, ingressBurst: 2_000_000, egressRate: 3_000_000, egressBurst: 4_000_000),
        dns: .init(servers: ["10.96.0.10"], searches: ["default.svc.cluster.local"], options: ["ndots:5"]))

    static func stdin(_ index: Int, prevResult: CNIResult? = nil) throws -> [String: JSONValue] {
        let invocation = CNIInvocation(
            command: .add, config: config, plugin: config.plugins[index], attachment: attachment, binDirs: ["/a", "/b"],
            prevResult: prevResult)
        return try #require(try JSONValue.parse(invocation.stdin, what: "stdin").objectValue)
    }

    @Test func cniArgsCarryThePodAsContainerdSetsThem() {
        #expect(
            Self.attachment.cniArgs
                == "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=abc123;K8S_POD_UID=6f1c-uid")
    }

    @Test func environmentFollowsTheSpec() {
        let invocation = CNIInvocation(
            command: .del, config: Self.config, plugin: Self.config.plugins[0], attachment: Self.attachment, binDirs: ["/a", "/b"])
        #expect(
            invocation.environment == [
                "CNI_COMMAND": "DEL", "CNI_CONTAINERID": "abc123", "CNI_NETNS": "/run/netns/pod-abc", "CNI_IFNAME": "eth0",
                "CNI_ARGS": Self.attachment.cniArgs, "CNI_PATH": "/a:/b",
            ])
    }

    @Test func stdinIsThePluginObjectWithNameVersionAndNoUndeclaredCapability() throws {
        let bridge = try Self.stdin(0)
        #expect(bridge["name"] == .string("pods"))
        #expect(bridge["cniVersion"] == .string("1.0.0"))
        #expect(bridge["bridge"] == .string("cni0"))
        #expect(bridge["prevResult"] == nil)
        // No capability declared: nothing of the runtime's, and a runtimeConfig of the file's own is dropped.
        #expect(bridge["runtimeConfig"] == nil)
    }

    @Test func runtimeConfigHoldsOnlyTheDeclaredCapabilities() throws {
        let portmap = try Self.stdin(1)
        #expect(portmap["snat"] == .bool(true))
        #expect(
            portmap["runtimeConfig"]
                == .object([
                    "portMappings": .array([
                        .object(["hostPort": .int(8080), "containerPort": .int(80), "protocol": .string("tcp")]),
                        .object(["hostPort": .int(53), "containerPort": .int(5353), "protocol": .string("udp"), "hostIP": .string("127.0.0.1")]),
                    ])
                ]))
        #expect(
            try Self.stdin(2)["runtimeConfig"]
                == .object([
                    "bandwidth": .object([
                        "ingressRate": .int(1_000_000), "ingressBurst": .int(2_000_000), "egressRate": .int(3_000_000),
                        "egressBurst": .int(4_000_000),
                    ])
                ]))
        let dns = try #require(try Self.stdin(3)["runtimeConfig"]?.objectValue)
        #expect(dns.keys.sorted() == ["dns", "portMappings"])
        #expect(
            dns["dns"]
                == .object([
                    "servers": .array([.string("10.96.0.10")]), "searches": .array([.string("default.svc.cluster.local")]),
                    "options": .array([.string("ndots:5")]),
                ]))
    }

    @Test func carriesThePreviousResultVerbatim() throws {
        let previous = try CNIResult.parse(Data(CNIResultTests.bridge10.utf8), plugin: "bridge")
        #expect(try Self.stdin(1, prevResult: previous)["prevResult"] == previous.raw)
    }

    @Test func aFailureQuotesThePluginsErrorObject() {
        let output = HostProgram.Output(
            status: 1,
            stdout: Data(#"{"cniVersion": "1.0.0", "code": 11, "msg": "no IP addresses available", "details": "range 10.0.0.1-10.0.0.1"}"#.utf8),
            stderr: "")
        #expect(CNIInvocation.failure(output) == "no IP addresses available (range 10.0.0.1-10.0.0.1) [code 11]")
        let crash = HostProgram.Output(status: 2, stdout: Data(), stderr: "panic: runtime error\n")
        #expect(CNIInvocation.failure(crash) == "exit status 2: panic: runtime error")
    }
}

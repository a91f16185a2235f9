import Foundation
import PodvisorCore
import Synchronization
import Testing

@testable import PodvisorNetwork

/// Integration tests need root and Debian's plugins (`make deps` installs them).
let realPluginsAvailable = getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/lib/cni/bridge")

/// A pod network of the test's own: a bridge `pvt<hex>` with its own 10.213.x.0/24, host-local leases, netns
/// pins, conf dir and cache all under one temporary directory. Never /etc/cni/net.d, /run/netns or podvisor0.
final class PodNetworkFixture: Sendable {
    static let binDirs = ["/usr/lib/cni"]

    let root: String
    let confDir: String
    let cacheDir: String
    let ipamDir: String
    let netnsDir: String
    let bridge: String
    let networkName: String
    let subnet: Int
    let network: CNINetwork
    private let namespaces = Mutex<[NetworkNamespace]>([])
    private let taps = Mutex<[String]>([])
    private let savedForwarding: String

    init() throws {
        let tag = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        root = NSTemporaryDirectory() + "pvnet-" + tag
        confDir = "\(root)/net.d"
        cacheDir = "\(root)/cache"
        ipamDir = "\(root)/ipam"
        netnsDir = "\(root)/netns"
        bridge = "pvt\(tag)"
        networkName = "pvt-\(tag)"
        subnet = Int.random(in: 0...255)
        try FileManager.default.createDirectory(atPath: confDir, withIntermediateDirectories: true)
        network = CNINetwork(confDir: confDir, binDirs: Self.binDirs, cacheDir: cacheDir)
        // The bridge plugin turns IPv4 forwarding on for a gateway bridge; the host gets its setting back.
        savedForwarding = (try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_forward", encoding: .utf8)) ?? "0\n"
    }

    /// Runs `body` with a fresh fixture and removes everything it made afterwards, also when `body` throws.
    static func with(_ body: (PodNetworkFixture) async throws -> Void) async throws {
        let fixture = try PodNetworkFixture()
        do {
            try await body(fixture)
        } catch {
            await fixture.tearDown()
            throw error
        }
        await fixture.tearDown()
    }

    func address(_ host: Int) -> String { "10.213.\(subnet).\(host)" }

    /// The test conflist: bridge (gateway, host-local leases in the fixture) → portmap → loopback, then `extra`.
    func conflist(rangeStart: Int = 10, rangeEnd: Int = 250, portmap: Bool = true, extra: [String] = []) -> String {
        var plugins = [
            """
            {"type": "bridge", "bridge": "\(bridge)", "isGateway": true, "ipMasq": false, "hairpinMode": true,
             "ipam": {"type": "host-local", "dataDir": "\(ipamDir)", "routes": [{"dst": "0.0.0.0/0"}],
                      "ranges": [[{"subnet": "\(address(0))/24", "rangeStart": "\(address(rangeStart))", "rangeEnd": "\(address(rangeEnd))"}]]}}
            """,
            #"{"type": "loopback"}"#,
        ]
        if portmap { plugins.insert(#"{"type": "portmap", "capabilities": {"portMappings": true}}"#, at: 1) }
        plugins += extra
        return #"{"cniVersion": "1.0.0", "name": "\#(networkName)", "plugins": [\#(plugins.joined(separator: ",\n"))]}"#
    }

    func writeConfig(_ text: String, file: String = "10-test.conflist") throws {
        try writeFile("\(confDir)/\(file)", text)
    }

    func namespace(_ name: String) throws -> NetworkNamespace {
        let namespace = try NetworkNamespace.create(name: name, directory: netnsDir)
        namespaces.withLock { $0.append(namespace) }
        return namespace
    }

    /// A tap name of the fixture's own (removed at tear-down wherever it ended up).
    func tapName(_ index: Int) -> String {
        let name = "\(bridge)t\(index)"
        taps.withLock { $0.append(name) }
        return name
    }

    func attachment(_ namespace: NetworkNamespace, portMappings: [CNIAttachment.PortMapping] = []) -> CNIAttachment {
        CNIAttachment(
            containerID: "\(networkName)-\(namespace.name)", netnsPath: namespace.path, podNamespace: "default",
            podName: namespace.name, podUID: UUID().uuidString.lowercased(), portMappings: portMappings)
    }

    /// host-local's lease files: one per address handed out (its `lock` and `last_reserved_ip.0` are not leases).
    func leases() -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "\(ipamDir)/\(networkName)")) ?? []
        return names.filter { $0.hasPrefix("10.213.") }.sorted()
    }

    /// The interfaces inside a namespace, by name.
    func links(in namespace: NetworkNamespace) async throws -> [String] {
        let output = try await HostProgram.check("nsenter", ["--net=\(namespace.path)", "ip", "-j", "link", "show"])
        return try JSONDecoder().decode([[String: JSONValue]].self, from: Data(output.utf8)).compactMap { $0["ifname"]?.stringValue }
    }

    /// Best effort, in the order that frees the most: DEL of whatever the cache still holds (leases, iptables
    /// chains), taps, namespaces, the bridge, the pin directory's mount, the files, the forwarding setting.
    func tearDown() async {
        for entry in (try? network.cachedAttachments()) ?? [] {
            try? await network.delete(containerID: entry.attachment.containerID)
        }
        for tap in taps.withLock({ $0 }) {
            try? await TapPlumbing.deleteTap(name: tap, namespacePath: nil)
        }
        for namespace in namespaces.withLock({ $0 }) {
            try? namespace.remove()
        }
        _ = try? await HostProgram.run("ip", ["link", "del", "dev", bridge])
        umount2(netnsDir, Int32(MNT_DETACH))
        try? FileManager.default.removeItem(atPath: root)
        try? savedForwarding.write(toFile: "/proc/sys/net/ipv4/ip_forward", atomically: false, encoding: .utf8)
    }
}

/// Serves "pod" on `port` inside `namespace` to `clients` TCP connections made from the host to `addresses`
/// (in order); returns what each connection read. The server exits after the last one (or 15 s), so nothing
/// outlives the call.
func serve(in namespace: NetworkNamespace, port: Int, to addresses: [(host: String, port: Int)]) async throws -> [String] {
    let server = """
        import socket
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", \(port)))
        s.listen(8)
        s.settimeout(15)
        for _ in range(\(addresses.count)):
            c, _ = s.accept()
            c.sendall(b"pod")
            c.close()
        """
    let serving = Task { try await HostProgram.run("nsenter", ["--net=\(namespace.path)", "python3", "-c", server]) }
    let client = """
        import socket, sys
        print(socket.create_connection((sys.argv[1], int(sys.argv[2])), 2).recv(16).decode())
        """
    var answers: [String] = []
    for (host, port) in addresses {
        // The server may still be starting: retry a refused connection for a few seconds.
        var answer = ""
        for _ in 0..<50 where answer.isEmpty {
            let output = try await HostProgram.run("python3", ["-c", client, host, "\(port)"])
            answer = output.status == 0 ? String(decoding: output.stdout, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) : ""
            if answer.isEmpty { try await Task.sleep(for: .milliseconds(100)) }
        }
        answers.append(answer)
    }
    _ = try await serving.value
    return answers
}

import Foundation

/// A pod network of a test suite's own for podvisord or the CLI: a CNI conf dir holding a bridge of its own
/// (never podvisor0 or the host's /etc/cni/net.d), with host-local leases kept beside it, so a suite's census
/// can look at exactly its own leases, and `remove` takes the bridge away again.
public struct TestPodNetwork: Sendable {
    public let confDir: String
    public let ipamDir: String
    public let bridge: String
    public let name: String
    /// The bridge's /24: `10.214.<subnet>.0/24`; the gateway is `.1`.
    public let subnet: Int

    public init(directory: String, bridge: String, subnet: Int) throws {
        confDir = Self.confDir(in: directory)
        ipamDir = "\(directory)/ipam"
        self.bridge = bridge
        name = "\(bridge)-net"
        self.subnet = subnet
        try FileManager.default.createDirectory(atPath: confDir, withIntermediateDirectories: true)
        try write(conflist())
    }

    /// Where a network made in `directory` keeps its conflist (for a runtime configured before it exists).
    public static func confDir(in directory: String) -> String { "\(directory)/net.d" }

    public var gateway: String { "10.214.\(subnet).1" }

    /// bridge (gateway, masquerade) → portmap → bandwidth → loopback, plus `extra` plugins.
    public func conflist(extra: [String] = []) -> String {
        let plugins =
            [
                """
                {"type": "bridge", "bridge": "\(bridge)", "isGateway": true, "ipMasq": true, "hairpinMode": true,
                 "ipam": {"type": "host-local", "dataDir": "\(ipamDir)", "routes": [{"dst": "0.0.0.0/0"}],
                          "ranges": [[{"subnet": "10.214.\(subnet).0/24"}]]}}
                """,
                #"{"type": "portmap", "capabilities": {"portMappings": true}}"#,
                #"{"type": "bandwidth", "capabilities": {"bandwidth": true}}"#,
                #"{"type": "loopback"}"#,
            ] + extra
        return #"{"cniVersion": "1.0.0", "name": "\#(name)", "plugins": [\#(plugins.joined(separator: ",\n"))]}"#
    }

    public func write(_ conflist: String, file: String = "10-test.conflist") throws {
        try conflist.write(toFile: "\(confDir)/\(file)", atomically: true, encoding: .utf8)
    }

    /// host-local's lease files: one per address handed out.
    public func leases() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "\(ipamDir)/\(name)")) ?? []).filter { $0.hasPrefix("10.214.") }
    }

    /// Removes the network namespace pins of the sandboxes a daemon's CNI cache (`<state>/network`) still
    /// records: they live in /run/netns, outside the state directory a test removes.
    public static func removeNamespaces(recordedIn stateDirectory: String) {
        for file in (try? FileManager.default.contentsOfDirectory(atPath: "\(stateDirectory)/network")) ?? [] where file.hasSuffix(".json") {
            let pin = "/run/netns/podvisor-\(file.dropLast(".json".count).prefix(16))"
            umount2(pin, Int32(MNT_DETACH))
            unlink(pin)
        }
    }

    /// Taps and network namespaces of a sandbox (podvisor names them after the first 16 hex digits of its id).
    public static func leftovers(sandbox id: String) -> [String] {
        let vmID = id.prefix(16)
        var found: [String] = []
        if FileManager.default.fileExists(atPath: "/run/netns/podvisor-\(vmID)") { found.append("netns podvisor-\(vmID)") }
        if FileManager.default.fileExists(atPath: "/sys/class/net/pvt\(vmID.prefix(12))") { found.append("tap pvt\(vmID.prefix(12))") }
        return found
    }

    /// Deletes the bridge the plugins made (the last pod's DEL leaves it, as it does for containerd).
    public func remove() {
        let ip = Process()
        ip.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        ip.arguments = ["link", "del", "dev", bridge]
        ip.standardError = FileHandle.nullDevice
        try? ip.run()
        ip.waitUntilExit()
    }
}

import CLinuxSupport
import Foundation
import Glibc
import PodvisorAgentProtocol
import Testing

@testable import PodvisorAgentCore

/// Requests are checked whole before anything changes.
@Suite struct GuestNetworkRequestTests {
    @Test func addressesAndPrefixes() throws {
        let v4 = try GuestNetwork.Prefix(cidr: "10.1.2.3/24", what: "address")
        #expect(v4.family == AF_INET && v4.bytes == [10, 1, 2, 3] && v4.length == 24)
        let v6 = try GuestNetwork.Prefix(cidr: "fd00::3/64", what: "address")
        #expect(v6.family == AF_INET6 && v6.bytes.first == 0xfd && v6.bytes.last == 3 && v6.length == 64)
        let gateway = try GuestNetwork.Prefix(address: "fe80::1", what: "gateway")
        #expect(gateway.length == 128)
        let refused: [(String, String)] = [
            ("10.1.2.3", "address \"10.1.2.3\" is not in CIDR notation"),
            ("10.1.2/24", "address \"10.1.2\" is not an IPv4 or IPv6 address"),
            ("10.1.2.3/33", "address \"10.1.2.3/33\": prefix length 33 exceeds 32"),
            ("fd00::3/129", "address \"fd00::3/129\": prefix length 129 exceeds 128"),
            ("10.1.2.3/-1", "address \"10.1.2.3/-1\" is not in CIDR notation"),
        ]
        for (cidr, message) in refused {
            #expect(throws: RPCError(.invalidArgument, message)) { try GuestNetwork.Prefix(cidr: cidr, what: "address") }
        }
    }

    @Test func interfacesAndRoutes() throws {
        let interface = try GuestNetwork.Interface(
            .with {
                $0.mac = "02:AB:00:00:00:01"
                $0.name = "eth0"
            })
        #expect(interface.mac == [2, 0xab, 0, 0, 0, 1] && interface.macText == "02:ab:00:00:00:01")
        for mac in ["02:ab:00:00:00", "02:ab:00:00:00:1", "02-ab-00-00-00-01", "02:ab:00:00:00:0g"] {
            #expect(throws: RPCError(.invalidArgument, "malformed MAC \"\(mac)\"")) { try GuestNetwork.Interface(.with { $0.mac = mac }) }
        }
        for name in ["eth/0", "eth 0", "eth:0", "..", "a-name-too-long0"] {
            #expect(throws: RPCError(.invalidArgument, "invalid interface name \"\(name)\"")) {
                try GuestNetwork.Interface(
                    .with {
                        $0.mac = "02:00:00:00:00:01"
                        $0.name = name
                    })
            }
        }
        #expect(throws: RPCError(.invalidArgument, "route 10.9.0.0/16: an on-link route needs an interface")) {
            try GuestNetwork.Route(.with { $0.destination = "10.9.0.0/16" })
        }
        #expect(throws: RPCError(.invalidArgument, "route ::/0 via 10.1.2.1: gateway and destination are of different address families")) {
            try GuestNetwork.Route(
                .with {
                    $0.destination = "::/0"
                    $0.gateway = "10.1.2.1"
                })
        }
    }
}

/// The real thing, as root: a veth in a network namespace of the test's own stands for the guest's NIC, and
/// `ip` checks what the agent's code made of it.
@Suite(.enabled(if: getuid() == 0 && FileManager.default.isExecutableFile(atPath: NetworkNamespace.ip), "needs root and iproute2"))
struct GuestNetworkTests {
    static let mac = "02:00:00:00:0a:01"

    /// A veth named pvnic0 with `mac` whose peer is up, so it has a carrier as a virtio NIC does.
    static func nic(in namespace: NetworkNamespace) throws {
        try namespace.ip("link", "add", "name", "pvnic0", "address", mac, "type", "veth", "peer", "name", "pvpeer0")
        try namespace.ip("link", "set", "pvpeer0", "up")
    }

    static let request = Podvisor_Agent_V1_ConfigureNetworkRequest.with {
        $0.interfaces = [
            .with {
                $0.mac = mac.uppercased()
                $0.name = "eth0"
                $0.mtu = 1400
                $0.addresses = ["10.1.2.3/24", "fd00::3/64"]
            }
        ]
        $0.routes = [
            .with {
                $0.destination = "0.0.0.0/0"
                $0.gateway = "10.1.2.1"
                $0.interfaceName = "eth0"
            },
            .with {
                $0.destination = "::/0"
                $0.gateway = "fd00::1"
                $0.interfaceName = "eth0"
            },
            .with {
                $0.destination = "10.9.0.0/16"
                $0.interfaceName = "eth0"
            },
            .with {
                $0.destination = "fd01::/64"
                $0.interfaceName = "eth0"
            },
            // No interface: the kernel picks the one that reaches the gateway.
            .with {
                $0.destination = "192.168.50.0/24"
                $0.gateway = "10.1.2.254"
            },
        ]
    }

    @Test func configuresNameMTUAddressesAndRoutes() async throws {
        try await NetworkNamespace.with { namespace in
            try Self.nic(in: namespace)
            try await namespace.run { try GuestNetwork.configure(Self.request) }
            // Again (a host retrying): the same state, no error.
            try await namespace.run { try GuestNetwork.configure(Self.request) }

            let link = try namespace.ip("-o", "link", "show", "eth0")
            #expect(link.contains("mtu 1400") && link.contains(",UP,") && link.contains("link/ether \(Self.mac)"))
            #expect(throws: (any Error).self) { try namespace.ip("link", "show", "pvnic0") }
            let addresses = try namespace.ip("-o", "addr", "show", "dev", "eth0")
            #expect(addresses.contains("inet 10.1.2.3/24 "))
            // Usable at once: no duplicate address detection, never "tentative".
            let v6 = addresses.split(separator: "\n").filter { $0.contains("inet6 fd00::3/64") }
            #expect(v6.count == 1 && v6.allSatisfy { $0.contains("nodad") && !$0.contains("tentative") })
            let v4Routes = try namespace.ip("route", "show")
            #expect(v4Routes.contains("default via 10.1.2.1 dev eth0"))
            #expect(v4Routes.contains("10.9.0.0/16 dev eth0 scope link"))
            #expect(v4Routes.contains("192.168.50.0/24 via 10.1.2.254 dev eth0"))
            let v6Routes = try namespace.ip("-6", "route", "show")
            #expect(v6Routes.contains("default via fd00::1 dev eth0"))
            #expect(v6Routes.contains("fd01::/64 dev eth0"))
        }
    }

    @Test func failuresNameTheirCause() async throws {
        try await NetworkNamespace.with { namespace in
            try Self.nic(in: namespace)
            func configure(_ change: (inout Podvisor_Agent_V1_ConfigureNetworkRequest) -> Void) async -> RPCError? {
                var request = Self.request
                change(&request)
                let changed = request
                return await #expect(throws: RPCError.self) { try await namespace.run { try GuestNetwork.configure(changed) } }
            }
            let unknown = await configure { $0.interfaces[0].mac = "02:00:00:00:0a:99" }
            #expect(unknown == RPCError(.invalidArgument, "no network interface has MAC 02:00:00:00:0a:99"))
            let badCIDR = await configure { $0.routes[2].destination = "10.9.0.0/40" }
            #expect(badCIDR == RPCError(.invalidArgument, "destination of route 10.9.0.0/40 dev eth0 \"10.9.0.0/40\": prefix length 40 exceeds 32"))
            // Neither changed anything: the checks come first.
            #expect(try namespace.ip("-o", "link", "show", "pvnic0").contains("mtu 1500"))
            // What the kernel refuses fails at its step, with the errno's text.
            let unreachable = await configure { $0.routes[4].gateway = "10.77.0.1" }
            #expect(unreachable == RPCError(.internal, "route 192.168.50.0/24 via 10.77.0.1: Network is unreachable"))
            let missing = await configure { $0.routes[2].interfaceName = "eth7" }
            #expect(missing == RPCError(.invalidArgument, "route 10.9.0.0/16 dev eth7: no interface named eth7"))
        }
    }
}

/// A network namespace of the test's own (`ip netns add pvtest-…`), deleted however the test ends.
struct NetworkNamespace: Sendable {
    static let ip = "/usr/sbin/ip"
    let name = "pvtest-\(UInt32.random(in: 0...UInt32.max))"

    static func with(_ body: (NetworkNamespace) async throws -> Void) async throws {
        let namespace = NetworkNamespace()
        _ = try run([ip, "netns", "add", namespace.name])
        defer { _ = try? run([ip, "netns", "delete", namespace.name]) }
        try await body(namespace)
    }

    /// `ip -n <name> …`; throws with its stderr when it fails.
    @discardableResult
    func ip(_ arguments: String...) throws -> String {
        try Self.run([Self.ip, "-n", name] + arguments)
    }

    /// Runs `body` on a thread of its own that entered the namespace: setns moves only the calling thread,
    /// and none of Swift's cooperative threads may ever be moved.
    func run(_ body: @escaping @Sendable () throws -> Void) async throws {
        let path = "/run/netns/\(name)"
        try await withCheckedThrowingContinuation { (done: CheckedContinuation<Void, any Error>) in
            Thread {
                let fd = open(path, O_RDONLY | O_CLOEXEC)
                defer { close(fd) }
                guard fd >= 0, pv_enter_network_namespace(fd) == 0 else {
                    return done.resume(throwing: POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO))
                }
                done.resume(with: Result { try body() })
            }.start()
        }
    }

    private static func run(_ command: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(filePath: command[0])
        process.arguments = Array(command.dropFirst())
        let output = Pipe(), errors = Pipe()
        (process.standardOutput, process.standardError) = (output, errors)
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let problem = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw CommandFailed(description: "\(command.joined(separator: " ")): \(problem)")
        }
        return text
    }

    struct CommandFailed: Error, CustomStringConvertible {
        var description: String
    }
}

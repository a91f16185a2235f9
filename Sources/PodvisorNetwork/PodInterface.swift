import Foundation
import PodvisorCore

/// What the CNI plugins made of the pod's interface inside its netns: the VM's guest takes it over, as Kata
/// reads a pod netns and replays it into its guest. Read from the netns rather than from the CNI result,
/// so routes and addresses a plugin set without reporting them (or that a later plugin changed) come along.
public struct PodInterface: Sendable, Equatable {
    public struct Route: Sendable, Equatable {
        /// CIDR; `0.0.0.0/0` or `::/0` for a default route.
        public var destination: String
        /// nil: on-link.
        public var gateway: String?
    }

    public var mac: String
    public var mtu: Int
    /// CIDR, global scope only (the guest makes its own link-local ones).
    public var addresses: [String]
    /// Without the kernel's own routes (those of an address's subnet): the guest's kernel adds them too.
    public var routes: [Route]

    /// The pod's addresses without prefix length, IPv4 first: PodSandboxStatus's ip and additional_ips.
    public var ips: [String] {
        let plain = addresses.map { String($0.prefix { $0 != "/" }) }
        return plain.filter { !$0.contains(":") } + plain.filter { $0.contains(":") }
    }

    public static func read(_ interface: String = "eth0", namespacePath: String) async throws(PodvisorError) -> PodInterface {
        struct Link: Decodable {
            struct Address: Decodable {
                var family: String
                var local: String
                var prefixlen: Int
                var scope: String?
            }
            var address: String
            var mtu: Int
            var addr_info: [Address]
        }
        struct RouteEntry: Decodable {
            var dst: String
            var gateway: String?
            var `protocol`: String?
        }
        let ip = { @Sendable (arguments: [String]) async throws(PodvisorError) -> Data in
            Data(try await HostProgram.check("nsenter", ["--net=\(namespacePath)", "ip", "-j"] + arguments).utf8)
        }
        // Three reads at once: each is two execs (nsenter, ip), and this is on the path of a start from the pool.
        let (linkJSON, (routes4, routes6)) = try await concurrently(
            { () async throws(PodvisorError) in try await ip(["addr", "show", "dev", interface]) },
            { () async throws(PodvisorError) in
                try await concurrently(
                    { () async throws(PodvisorError) in try await ip(["-4", "route", "show", "dev", interface]) },
                    { () async throws(PodvisorError) in try await ip(["-6", "route", "show", "dev", interface]) })
            })
        guard let link = try? JSONDecoder().decode([Link].self, from: linkJSON).first else {
            throw PodvisorError(
                .internalError, "unexpected `ip -j addr show` output for \(interface): \(String(decoding: linkJSON.prefix(200), as: UTF8.self))")
        }
        var routes: [Route] = []
        for (json, defaultDestination) in [(routes4, "0.0.0.0/0"), (routes6, "::/0")] {
            guard let entries = try? JSONDecoder().decode([RouteEntry].self, from: json) else {
                throw PodvisorError(.internalError, "unexpected `ip -j route show` output: \(String(decoding: json.prefix(200), as: UTF8.self))")
            }
            for entry in entries where entry.protocol != "kernel" && !entry.dst.hasPrefix("fe80:") && !entry.dst.hasPrefix("ff00:") {
                routes.append(Route(destination: entry.dst == "default" ? defaultDestination : Self.cidr(entry.dst), gateway: entry.gateway))
            }
        }
        return PodInterface(
            mac: link.address, mtu: link.mtu,
            addresses: link.addr_info.filter { $0.scope != "link" && $0.scope != "host" }.map { "\($0.local)/\($0.prefixlen)" },
            routes: routes)
    }

    /// `ip` prints a host route without its prefix length.
    private static func cidr(_ destination: String) -> String {
        destination.contains("/") ? destination : destination + (destination.contains(":") ? "/128" : "/32")
    }
}

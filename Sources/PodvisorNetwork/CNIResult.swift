import Foundation
import PodvisorCore

// The result of a CNI ADD (spec 1.x, 0.4.0 and 0.3.x share this shape; 0.3.x adds `ips[].version`, ignored).
//
//   CNIResult.parse(_ data: Data, plugin:) throws -> CNIResult
//   result.podIPs -> [String]              the sandbox's addresses without prefix length ("10.1.2.3")
//   result.sandboxInterface(named:) -> Interface?
//
// It encodes as the plugin's JSON exactly as read (`raw`), which is what the next plugin gets as `prevResult`
// and what the attachment cache keeps.

public struct CNIResult: Codable, Sendable, Equatable {
    public struct Interface: Codable, Sendable, Equatable {
        public var name: String
        public var mac: String?
        /// The netns path for interfaces inside the sandbox; absent for host-side ones (bridge, veth peer).
        public var sandbox: String?
        public var mtu: Int?
    }

    public struct IPConfig: Codable, Sendable, Equatable {
        /// CIDR notation: "10.1.2.3/24".
        public var address: String
        public var gateway: String?
        /// Index into `interfaces`.
        public var interface: Int?
    }

    public struct Route: Codable, Sendable, Equatable {
        public var dst: String
        public var gw: String?
    }

    public struct DNS: Codable, Sendable, Equatable {
        public var nameservers: [String]?
        public var domain: String?
        public var search: [String]?
        public var options: [String]?
    }

    public var cniVersion: String
    public var interfaces: [Interface]
    public var ips: [IPConfig]
    public var routes: [Route]
    public var dns: DNS?
    /// The result as the plugin wrote it.
    public var raw: JSONValue

    private struct Wire: Decodable {
        var cniVersion: String?
        var interfaces: [Interface]?
        var ips: [IPConfig]?
        var routes: [Route]?
        var dns: DNS?
    }

    /// Parses a plugin's ADD output; `plugin` names it in errors.
    public static func parse(_ data: Data, plugin: String) throws(PodvisorError) -> CNIResult {
        let raw = try JSONValue.parse(data, what: "result of CNI plugin \"\(plugin)\"")
        do {
            return try CNIResult(raw: raw)
        } catch {
            throw PodvisorError(.internalError, "result of CNI plugin \"\(plugin)\" is not a CNI result", cause: error)
        }
    }

    public init(from decoder: any Decoder) throws {
        try self.init(raw: try JSONValue(from: decoder))
    }

    public func encode(to encoder: any Encoder) throws {
        try raw.encode(to: encoder)
    }

    private init(raw: JSONValue) throws {
        let wire = try JSONDecoder().decode(Wire.self, from: raw.encoded())
        guard let version = wire.cniVersion, CNIConfig.supportedVersions.contains(version) else {
            // 0.1/0.2 results ("ip4": {…}) have another shape; no configuration podvisor accepts asks for them.
            throw PodvisorError(.unsupported, "result version \(wire.cniVersion ?? "(none)") is not supported")
        }
        cniVersion = version
        interfaces = wire.interfaces ?? []
        ips = wire.ips ?? []
        routes = wire.routes ?? []
        dns = wire.dns
        self.raw = raw
    }

    /// The interface named `name` inside the sandbox.
    public func sandboxInterface(named name: String) -> Interface? {
        interfaces.first { $0.name == name && !($0.sandbox ?? "").isEmpty }
    }

    /// The pod's addresses, without prefix length: those on interfaces inside the sandbox, and those the
    /// result ties to no interface (the index is optional in the spec).
    public var podIPs: [String] {
        ips.compactMap { ip in
            if let index = ip.interface {
                guard interfaces.indices.contains(index), !(interfaces[index].sandbox ?? "").isEmpty else { return nil }
            }
            return String(ip.address.prefix { $0 != "/" })
        }
    }
}

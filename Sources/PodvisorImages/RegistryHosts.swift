import Foundation
import PodvisorCore

/// One place a registry's API can be reached: a mirror from `hosts.toml` or the registry itself.
public struct RegistryEndpoint: Sendable, Equatable {
    public enum Capability: String, Sendable, CaseIterable {
        /// Fetch manifests by tag.
        case resolve
        /// Fetch content by digest.
        case pull
        case push
    }

    /// `scheme://host[:port]/path` up to and including `/v2` (unless the configuration overrides the path).
    public var baseURL: String
    public var capabilities: Set<Capability>
    /// Accept any server certificate (hosts.toml `skip_verify`).
    public var skipVerify = false
    /// Extra CA certificate files (PEM) to trust for this endpoint (hosts.toml `ca`).
    public var caFiles: [String] = []

    var isPlainHTTP: Bool { baseURL.hasPrefix("http://") }
}

/// Where to pull a registry's content from, the way containerd reads it: `<directory>/<registry>/hosts.toml`
/// (else `<directory>/_default/hosts.toml`) lists mirrors as `[host."<url>"]` tables, tried in order, then
/// `server`, the upstream. Without a file the registry itself is the only endpoint.
///
/// Plain HTTP is used for a loopback registry, one named in `insecureRegistries`, or an `http://` URL written
/// in a hosts.toml by the administrator; everything else is HTTPS.
public struct RegistryHosts: Sendable {
    /// Where podvisor looks for `<registry>/hosts.toml` unless configured otherwise (containerd: certs.d too).
    public static let defaultDirectory = "/etc/podvisor/certs.d"

    public var directory: String?
    /// Registries (`host` or `host:port`) reached over plain HTTP without a hosts.toml.
    public var insecureRegistries: Set<String>

    public init(directory: String? = nil, insecureRegistries: Set<String> = []) {
        self.directory = directory
        self.insecureRegistries = insecureRegistries
    }

    /// The endpoints for `reference`'s registry, mirrors first.
    public func endpoints(for reference: ImageReference) throws(PodvisorError) -> [RegistryEndpoint] {
        let upstream = defaultServer(for: reference)
        guard let directory else { return [RegistryEndpoint(baseURL: upstream + "/v2", capabilities: Self.all)] }
        for name in [reference.registry, "_default"] {
            let path = "\(directory)/\(name)/hosts.toml"
            guard let data = FileManager.default.contents(atPath: path) else { continue }
            do {
                return try Self.parse(String(decoding: data, as: UTF8.self), defaultServer: upstream)
            } catch {
                throw PodvisorError(error.code, "\(path): \(error.message)")
            }
        }
        return [RegistryEndpoint(baseURL: upstream + "/v2", capabilities: Self.all)]
    }

    private static let all = Set(RegistryEndpoint.Capability.allCases)

    private func defaultServer(for reference: ImageReference) -> String {
        let plain =
            Self.isLoopback(reference.registryHostname) || insecureRegistries.contains(reference.registry)
            || insecureRegistries.contains(reference.registryHostname)
        return "\(plain ? "http" : "https")://\(reference.apiHost)"
    }

    static func isLoopback(_ hostname: String) -> Bool {
        hostname == "localhost" || hostname == "::1" || hostname.hasPrefix("127.")
    }

    /// Parses one hosts.toml (containerd docs/hosts.md): `server`, and per `[host."url"]` `capabilities`,
    /// `skip_verify`, `ca` and `override_path`. Other keys are refused rather than silently ignored.
    static func parse(_ text: String, defaultServer: String) throws(PodvisorError) -> [RegistryEndpoint] {
        let document = try TOMLDocument(parsing: text)
        var endpoints: [RegistryEndpoint] = []
        var server = defaultServer + "/v2"
        for table in document.tables {
            switch table.path.count {
            case 0:
                for (key, value) in table.values {
                    guard key == "server" else { throw PodvisorError(.invalidArgument, "unknown key \(key)") }
                    server = try Self.baseURL(value.string(key), overridePath: false)
                }
            case 2 where table.path[0] == "host":
                endpoints.append(try Self.endpoint(url: table.path[1], table.values))
            default:
                throw PodvisorError(.invalidArgument, "unknown table [\(table.path.joined(separator: "."))]")
            }
        }
        endpoints.append(RegistryEndpoint(baseURL: server, capabilities: all))
        return endpoints
    }

    private static func endpoint(url: String, _ values: [String: TOMLValue]) throws(PodvisorError) -> RegistryEndpoint {
        var capabilities = all
        var skipVerify = false
        var caFiles: [String] = []
        var overridePath = false
        for (key, value) in values {
            switch key {
            case "capabilities":
                capabilities = []
                for name in try value.strings(key) {
                    guard let capability = RegistryEndpoint.Capability(rawValue: name) else {
                        throw PodvisorError(.invalidArgument, "unknown capability \(name) for \(url)")
                    }
                    capabilities.insert(capability)
                }
            case "skip_verify": skipVerify = try value.boolean(key)
            case "override_path": overridePath = try value.boolean(key)
            case "ca":
                if case .string(let file) = value { caFiles = [file] } else { caFiles = try value.strings(key) }
            default: throw PodvisorError(.invalidArgument, "unknown key \(key) for \(url)")
            }
        }
        return RegistryEndpoint(
            baseURL: try baseURL(url, overridePath: overridePath), capabilities: capabilities, skipVerify: skipVerify,
            caFiles: caFiles)
    }

    /// `http://h:5000` → `http://h:5000/v2`; a path is kept as written with `override_path`.
    private static func baseURL(_ url: String, overridePath: Bool) throws(PodvisorError) -> String {
        guard let components = URLComponents(string: url), let scheme = components.scheme,
            scheme == "http" || scheme == "https", components.host?.isEmpty == false
        else { throw PodvisorError(.invalidArgument, "\(url) is not an http:// or https:// URL") }
        var base = url
        while base.hasSuffix("/") { base.removeLast() }
        if overridePath || base.hasSuffix("/v2") { return base }
        return base + "/v2"
    }
}

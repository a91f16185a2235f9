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
    /// The certificate presented when the endpoint asks for one (hosts.toml `client`).
    public var clientCertificate: ClientCertificate?
    /// Sent with every request to this endpoint, a name's values in order (hosts.toml `[header]`).
    public var headers: [String: [String]] = [:]

    public struct ClientCertificate: Sendable, Equatable {
        /// PEM: the certificate and its chain.
        public var certificateFile: String
        /// PEM: the private key; the certificate file itself when containerd's pair names no key file.
        public var keyFile: String
    }

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
            guard let data = readFile(path) else { continue }
            do {
                return try Self.parse(String(decoding: data, as: UTF8.self), defaultServer: upstream, directory: "\(directory)/\(name)")
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

    /// Parses one hosts.toml (containerd's docs/hosts.md): `[host."url"]` mirrors in file order, then `server`. A
    /// mirror's table and the root (for `server`) take `capabilities`, `skip_verify`, `ca`, `client`,
    /// `override_path` and a `[header]` table; relative paths are relative to `directory`, the file's own, as in
    /// containerd. Other keys are refused with their line rather than silently ignored.
    static func parse(_ text: String, defaultServer: String, directory: String) throws(PodvisorError) -> [RegistryEndpoint] {
        var mirrors: [RegistryEndpoint] = []
        var server = defaultServer
        var serverOptions: [TOMLKey] = []
        for key in try TOMLDocument(parsing: text).keys {
            switch key.name {
            case "server": server = try url(key.string(), of: key)
            case "host":
                for host in try key.table() {
                    mirrors.append(try endpoint(url(host.path[1], of: host), options: host.table(), directory: directory))
                }
            default: serverOptions.append(key)
            }
        }
        return mirrors + [try endpoint(server, options: serverOptions, directory: directory)]
    }

    private static func url(_ url: String, of key: TOMLKey) throws(PodvisorError) -> String {
        guard let components = URLComponents(string: url), let scheme = components.scheme,
            scheme == "http" || scheme == "https", components.host?.isEmpty == false
        else { throw key.error("must be an http:// or https:// URL (not \(PodvisorError.quote(url)))") }
        return url
    }

    private static func endpoint(_ url: String, options: [TOMLKey], directory: String) throws(PodvisorError) -> RegistryEndpoint {
        var endpoint = RegistryEndpoint(baseURL: url, capabilities: all)
        var overridePath = false
        for key in options {
            switch key.path.last {
            case "capabilities":
                endpoint.capabilities = Set(
                    try key.strings().map { (name) throws(PodvisorError) in
                        guard let capability = RegistryEndpoint.Capability(rawValue: name) else {
                            throw key.error("has an unknown capability \(PodvisorError.quote(name)) (pull, resolve, push)")
                        }
                        return capability
                    })
            case "skip_verify": endpoint.skipVerify = try key.boolean()
            case "override_path": overridePath = try key.boolean()
            case "ca": endpoint.caFiles = try key.stringOrStrings().map { Self.path($0, in: directory) }
            case "client": endpoint.clientCertificate = try clientCertificate(key, directory: directory)
            case "header": endpoint.headers = try headers(key)
            default: throw PodvisorError(.invalidArgument, "line \(key.line): unknown key \(key.name)")
            }
        }
        endpoint.baseURL = baseURL(url, overridePath: overridePath)
        return endpoint
    }

    private static func path(_ path: String, in directory: String) -> String {
        path.hasPrefix("/") ? path : "\(directory)/\(path)"
    }

    /// containerd's three forms: a path, an array of paths, an array of [certificate, key] pairs; a path alone, or
    /// a pair whose key is "", holds the key too. NIOSSL presents one certificate chain, so one is allowed.
    private static func clientCertificate(
        _ key: TOMLKey, directory: String
    ) throws(PodvisorError)
        -> RegistryEndpoint.ClientCertificate?
    {
        let wrongForm = key.error("must be a path, an array of paths or an array of [certificate, key] pairs")
        let items: [TOMLValue]
        switch key.value {
        case .string: items = [key.value]
        case .array(let array): items = array
        default: throw wrongForm
        }
        let pairs = try items.map { (item) throws(PodvisorError) -> [String] in
            switch item {
            case .string(let file): return [file]
            case .array(let pair) where (1...2).contains(pair.count):
                return try pair.map { (file) throws(PodvisorError) in
                    guard case .string(let file) = file else { throw wrongForm }
                    return file
                }
            default: throw wrongForm
            }
        }
        guard pairs.count <= 1 else { throw key.error("names \(pairs.count) client certificates; podvisor presents one") }
        guard let pair = pairs.first else { return nil }
        let certificate = path(pair[0], in: directory)
        let keyFile = pair.count == 2 && !pair[1].isEmpty ? path(pair[1], in: directory) : certificate
        return RegistryEndpoint.ClientCertificate(certificateFile: certificate, keyFile: keyFile)
    }

    /// RFC 9110's token: what a header name is made of.
    private static let tokenCharacters = Set("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")

    /// `[header]`: each key a header name, its value a string or an array of strings (one header line each).
    private static func headers(_ key: TOMLKey) throws(PodvisorError) -> [String: [String]] {
        var headers: [String: [String]] = [:]
        for header in try key.table() {
            let name = header.path.last!
            guard !name.isEmpty, name.allSatisfy(Self.tokenCharacters.contains) else { throw header.error("is not an HTTP header name") }
            let values = try header.stringOrStrings()
            // A value that ended its line early would add a header of its own.
            guard values.allSatisfy({ !$0.unicodeScalars.contains { $0 == "\r" || $0 == "\n" || $0 == "\0" } }) else {
                throw header.error("must not hold a line break or NUL")
            }
            headers[name] = values
        }
        return headers
    }

    /// `http://h:5000` → `http://h:5000/v2`; a path is kept as written with `override_path`.
    private static func baseURL(_ url: String, overridePath: Bool) -> String {
        var base = url
        while base.hasSuffix("/") { base.removeLast() }
        if overridePath || base.hasSuffix("/v2") { return base }
        return base + "/v2"
    }
}

extension TOMLKey {
    /// A string or an array of strings: containerd takes either for `ca` and a header's value.
    fileprivate func stringOrStrings() throws(PodvisorError) -> [String] {
        if case .string(let string) = value { return [string] }
        guard case .array = value else { throw mismatch("a string or an array of strings") }
        return try strings()
    }
}

import Crypto
import Foundation
import NIOSSL
import PodvisorCore
import Testing

@testable import PodvisorImages

@Suite struct RegistryHostsTests {
    let directory = TemporaryDirectory()

    func write(_ registry: String, _ text: String) throws {
        try FileManager.default.createDirectory(atPath: "\(directory.path)/\(registry)", withIntermediateDirectories: true)
        try text.write(toFile: "\(directory.path)/\(registry)/hosts.toml", atomically: true, encoding: .utf8)
    }

    @Test func withoutConfigurationTheRegistryItself() throws {
        let hosts = RegistryHosts(directory: directory.path, insecureRegistries: ["insecure.example:5000"])
        #expect(try hosts.endpoints(for: ImageReference(parsing: "busybox")).map(\.baseURL) == ["https://registry-1.docker.io/v2"])
        #expect(try hosts.endpoints(for: ImageReference(parsing: "quay.io/a/b")).map(\.baseURL) == ["https://quay.io/v2"])
        // Plain HTTP only for loopback and configured insecure registries.
        #expect(try hosts.endpoints(for: ImageReference(parsing: "localhost:5000/a")).map(\.baseURL) == ["http://localhost:5000/v2"])
        #expect(try hosts.endpoints(for: ImageReference(parsing: "127.0.0.1:5000/a")).map(\.baseURL) == ["http://127.0.0.1:5000/v2"])
        #expect(try hosts.endpoints(for: ImageReference(parsing: "[::1]:5000/a")).map(\.baseURL) == ["http://[::1]:5000/v2"])
        #expect(try hosts.endpoints(for: ImageReference(parsing: "insecure.example:5000/a")).map(\.baseURL) == ["http://insecure.example:5000/v2"])
        #expect(try hosts.endpoints(for: ImageReference(parsing: "insecure.example/a")).map(\.baseURL) == ["https://insecure.example/v2"])
        #expect(try RegistryHosts().endpoints(for: ImageReference(parsing: "busybox")).first?.capabilities.count == 3)
    }

    @Test func mirrorsFirstInOrderThenServer() throws {
        try write(
            "registry.k8s.io",
            """
            server = "https://registry.k8s.io"

            [host."http://127.0.0.1:5000"]
              capabilities = ["pull", "resolve"]

            [host."https://mirror.example/custom/path"]
              capabilities = ["pull"]
              override_path = true
              skip_verify = true
              ca = "/etc/ca.pem"
            """)
        let endpoints = try RegistryHosts(directory: directory.path).endpoints(for: ImageReference(parsing: "registry.k8s.io/pause:3.10"))
        #expect(
            endpoints == [
                RegistryEndpoint(baseURL: "http://127.0.0.1:5000/v2", capabilities: [.pull, .resolve]),
                RegistryEndpoint(baseURL: "https://mirror.example/custom/path", capabilities: [.pull], skipVerify: true, caFiles: ["/etc/ca.pem"]),
                RegistryEndpoint(baseURL: "https://registry.k8s.io/v2", capabilities: [.pull, .resolve, .push]),
            ])
    }

    @Test func dockerHubAndDefaultDirectories() throws {
        try write("docker.io", "[host.\"http://127.0.0.1:5001/v2/\"]\n")
        try write("_default", "[host.\"http://127.0.0.1:5002\"]\n")
        let hosts = RegistryHosts(directory: directory.path)
        #expect(
            try hosts.endpoints(for: ImageReference(parsing: "busybox")).map(\.baseURL)
                == ["http://127.0.0.1:5001/v2", "https://registry-1.docker.io/v2"])
        #expect(
            try hosts.endpoints(for: ImageReference(parsing: "quay.io/x")).map(\.baseURL)
                == ["http://127.0.0.1:5002/v2", "https://quay.io/v2"])
    }

    /// Every key of containerd's format, written in TOML's other forms: inline tables, dotted keys, multi-line
    /// strings. Mirrors stay in file order (TOMLKit alone would list them sorted), whatever form names them.
    @Test func fullSyntaxInFileOrder() throws {
        try write(
            "quay.io",
            #"""
            server = "https://quay.io"
            ca = """
            [host."http://127.0.0.1:1"]
            root-ca.pem"""
            skip_verify = false
            capabilities = ["pull", "resolve"]
            header = { x-server = "upstream" }
            host."http://127.0.0.9".capabilities = ["pull"]
            host."http://127.0.0.2" = { capabilities = ["pull"], client = [["c.pem", ""]] }

            [host."https://b.example:5000"]
              ca = ["/etc/b-ca.pem", 'rel/b-ca.pem']
              client = "client.pem"
              skip_verify = true
              [host."https://b.example:5000".header]
                x-custom-1 = "one"
                x-custom-2 = ["a", "b"]

            [host."https://a.example/custom/v2/path"]
              override_path = true
              client = [["/etc/a.cert", "/etc/a.key"]]
              capabilities = ["resolve", "pull"]
            """#)
        let folder = "\(directory.path)/quay.io"
        let endpoints = try RegistryHosts(directory: directory.path).endpoints(for: ImageReference(parsing: "quay.io/a/b"))
        #expect(
            endpoints == [
                RegistryEndpoint(baseURL: "http://127.0.0.9/v2", capabilities: [.pull]),
                RegistryEndpoint(
                    baseURL: "http://127.0.0.2/v2", capabilities: [.pull],
                    clientCertificate: .init(certificateFile: "\(folder)/c.pem", keyFile: "\(folder)/c.pem")),
                RegistryEndpoint(
                    baseURL: "https://b.example:5000/v2", capabilities: [.pull, .resolve, .push], skipVerify: true,
                    caFiles: ["/etc/b-ca.pem", "\(folder)/rel/b-ca.pem"],
                    clientCertificate: .init(certificateFile: "\(folder)/client.pem", keyFile: "\(folder)/client.pem"),
                    headers: ["x-custom-1": ["one"], "x-custom-2": ["a", "b"]]),
                RegistryEndpoint(
                    baseURL: "https://a.example/custom/v2/path", capabilities: [.pull, .resolve],
                    clientCertificate: .init(certificateFile: "/etc/a.cert", keyFile: "/etc/a.key")),
                RegistryEndpoint(
                    baseURL: "https://quay.io/v2", capabilities: [.pull, .resolve], caFiles: ["\(folder)/[host.\"http://127.0.0.1:1\"]\nroot-ca.pem"],
                    headers: ["x-server": ["upstream"]]),
            ])
    }

    @Test(arguments: [
        #"client = "/c.pem""#, #"client = ["/c.pem"]"#, #"client = [["/c.pem"]]"#, #"client = [["/c.pem", ""]]"#,
    ])
    func clientCertificateWithItsKeyInOneFile(line: String) throws {
        let endpoints = try RegistryHosts.parse(line, defaultServer: "https://r", directory: "/d")
        #expect(endpoints.last?.clientCertificate == .init(certificateFile: "/c.pem", keyFile: "/c.pem"))
    }

    @Test(arguments: [
        ("[host.\"http://m\"]\ncapabilities = [\"fetch\"]", #"line 2: host."http://m".capabilities has an unknown capability "fetch""#),
        ("[host.\"http://m\"]\nheaders = 1", #"line 2: unknown key host."http://m".headers"#),
        ("proxy = 'http://p:8080'", "line 1: unknown key proxy"),
        ("[host.\"ftp://m\"]", #"line 1: host."ftp://m" must be an http:// or https:// URL (not "ftp://m")"#),
        ("[mirror]", "line 1: unknown key mirror"),
        ("host = 'http://m'", "line 1: host must be a table (not a string)"),
        ("[host]\n\"http://m\" = true", #"line 2: host."http://m" must be a table (not a boolean)"#),
        ("server = 1", "line 1: server must be a string (not an integer)"),
        ("\n\nserver = 'registry'", #"line 3: server must be an http:// or https:// URL (not "registry")"#),
        ("typo = \"x\"", "line 1: unknown key typo"),
        ("[host.\"http://m\"]\nskip_verify = \"yes\"", #"line 2: host."http://m".skip_verify must be true or false (not a string)"#),
        ("[host.\"http://m\"]\nca = 1979-05-27", #"line 2: host."http://m".ca must be a string or an array of strings (not a date)"#),
        ("ca = ['a', 2]", "line 1: ca must be an array of strings (not an array holding an integer)"),
        ("client = ['a.pem', 'b.pem']", "line 1: client names 2 client certificates; podvisor presents one"),
        ("client = [['a', 'b', 'c']]", "line 1: client must be a path, an array of paths or an array of [certificate, key] pairs"),
        ("client = true", "line 1: client must be a path, an array of paths or an array of [certificate, key] pairs"),
        ("[header]\n\"x y\" = 'v'", #"line 2: header."x y" is not an HTTP header name"#),
        ("[header]\nx = \"a\\r\\nInjected: 1\"", "line 2: header.x must not hold a line break or NUL"),
        ("header = 'x'", "line 1: header must be a table (not a string)"),
        ("[host.\"http://m\"]\n[host.\"http://m\"]", "line 2: "),
    ])
    func mistakesAreRefusedWithTheFileAndLine(text: String, message: String) throws {
        try write("quay.io", text)
        let error = #expect(throws: PodvisorError.self) {
            try RegistryHosts(directory: directory.path).endpoints(for: ImageReference(parsing: "quay.io/x"))
        }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.hasPrefix("\(directory.path)/quay.io/hosts.toml: \(message)") == true, "\(error?.message ?? "")")
    }

    /// `[header]` values reach the registry, a name with several values as several header lines.
    @Test func headersAreSentWithEveryRequest() async throws {
        let server = try OneRequestServer()
        try write(
            "registry.example",
            """
            server = "http://127.0.0.1:\(server.port)"
            [header]
            x-custom-1 = "one"
            x-custom-2 = ["a", "b"]
            """)
        var options = RegistryClient.Options()
        options.hosts = RegistryHosts(directory: directory.path)
        options.attempts = 1
        let image = try ImageReference(parsing: "registry.example/a:1")
        let error = await #expect(throws: PodvisorError.self) {
            try await RegistryClient(options: options).manifest(image, reference: "1", credentials: nil)
        }
        #expect(error?.code == .notFound)
        let head = await server.head.value.lowercased()
        #expect(head.contains("\r\nx-custom-1: one\r\n"))
        #expect(head.contains("\r\nx-custom-2: a\r\nx-custom-2: b\r\n"))
    }

    /// The `client` and `ca` files become the TLS configuration; one that cannot be loaded is the administrator's
    /// mistake, reported at once rather than retried as a network error.
    @Test func clientCertificateAndCAFilesMakeTheTLSConfiguration() throws {
        try FileManager.default.createDirectory(atPath: directory.path, withIntermediateDirectories: true)
        let pem = "\(directory.path)/client.pem"
        try (Self.certificatePEM + P256.Signing.PrivateKey().pemRepresentation).write(toFile: pem, atomically: true, encoding: .utf8)
        let endpoint = RegistryEndpoint(
            baseURL: "https://r/v2", capabilities: [.pull], caFiles: [pem],
            clientCertificate: .init(certificateFile: pem, keyFile: pem))
        let tls = try #require(try RegistryClient.tls(for: endpoint))
        #expect(tls.certificateChain.count == 1)
        #expect(tls.privateKey != nil)
        #expect(tls.certificateVerification == .fullVerification)
        #expect(try RegistryClient.tls(for: RegistryEndpoint(baseURL: "https://r/v2", capabilities: [.pull])) == nil)

        var missing = endpoint
        missing.clientCertificate?.keyFile = "\(directory.path)/no-such.key"
        let error = #expect(throws: PodvisorError.self) { try RegistryClient.tls(for: missing) }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message == "the ca or client files of https://r/v2 cannot be loaded")
    }

    /// A self-signed P-256 certificate. The test's key is made anew and does not match it: the configuration is
    /// only built, no handshake made.
    static let certificatePEM = """
        -----BEGIN CERTIFICATE-----
        MIIBlTCCATugAwIBAgIUCF7CMt+zXp3F7Tixxka1mhKMubswCgYIKoZIzj0EAwIw
        HzEdMBsGA1UEAwwUcG9kdmlzb3ItdGVzdC1jbGllbnQwIBcNMjYxMTMwMTUwOTQ5
        WhgPMjEyNjExMDYxNTA5NDlaMB8xHTAbBgNVBAMMFHBvZHZpc29yLXRlc3QtY2xp
        ZW50MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEBJxal62werJxQkdR5p9gEgtv
        43LOW10Cr8JHZylnNBOaPQBiyFJZhfTajSSRqUNVv018oCb1k6WgErKiDG4WxKNT
        MFEwHQYDVR0OBBYEFNg2OS7n3WsUmBiaII3A2I+bsGrMMB8GA1UdIwQYMBaAFNg2
        OS7n3WsUmBiaII3A2I+bsGrMMA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwID
        SAAwRQIgDqxMeNIfeA9xdkn7q0Q/r+WAlp20VDaf5FbJ0qwRSwgCIQCTvyCbtH0L
        HDpROIAyiMh9XDxbfrG5nDA280bjMJy0iw==
        -----END CERTIFICATE-----

        """
}

/// A registry stand-in on loopback: answers one request 404 and keeps the request's head.
private struct OneRequestServer {
    let port: Int
    let head: Task<String, Never>

    init() throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(listener, $0, length) == 0 && listen(listener, 1) == 0 && getsockname(listener, $0, &length) == 0
            }
        }
        guard listener >= 0, bound else { throw PodvisorError(.internalError, "cannot listen on loopback: errno \(errno)") }
        port = Int(UInt16(bigEndian: address.sin_port))
        head = Task.detached {
            let connection = accept(listener, nil, nil)
            defer {
                close(connection)
                close(listener)
            }
            var request: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 4096)
            while !request.suffix(4).elementsEqual("\r\n\r\n".utf8) {
                let count = read(connection, &buffer, buffer.count)
                guard count > 0 else { break }
                request += buffer[..<count]
            }
            let response = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            _ = response.withCString { write(connection, $0, strlen($0)) }
            return String(decoding: request, as: UTF8.self)
        }
    }
}

@Suite struct RegistryAuthTests {
    @Test func bearerChallenge() {
        let (scheme, parameters) = RegistryClient.parseChallenge(
            #"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#)
        #expect(scheme == "bearer")
        #expect(parameters == ["realm": "https://auth.example/token", "service": "registry.example", "scope": "repository:a/b:pull,push"])
    }

    @Test func basicChallengeAndOddSpacing() {
        #expect(RegistryClient.parseChallenge(#"Basic realm="podvisor test""#) == ("basic", ["realm": "podvisor test"]))
        #expect(RegistryClient.parseChallenge(#"  BEARER  realm = "r\"q" , service=svc"#) == ("bearer", ["realm": "r\"q", "service": "svc"]))
        #expect(RegistryClient.parseChallenge("") == ("", [:]))
    }

    @Test func credentialsFromCRIFields() {
        #expect(RegistryCredentials(username: "u", password: "p", auth: "", registryToken: "") == .basic(username: "u", password: "p"))
        #expect(
            RegistryCredentials(username: "", password: "", auth: Data("u:p:q".utf8).base64EncodedString(), registryToken: "")
                == .basic(username: "u", password: "p:q"))
        #expect(RegistryCredentials(username: "u", password: "p", auth: "", registryToken: "t") == .registryToken("t"))
        #expect(RegistryCredentials(username: "", password: "", auth: "", registryToken: "") == nil)
        #expect(RegistryCredentials(username: "", password: "", auth: "not base64!", registryToken: "") == nil)
    }
}

@Suite struct ImageMetadataTests {
    @Test(arguments: [
        ("1002", ImageUser.uid(1002)), ("www-data", .name("www-data")), ("1003:1004", .uid(1003)),
        ("www-data:1004", .name("www-data")), ("0", .uid(0)),
    ])
    func userFromConfig(text: String, expected: ImageUser) {
        #expect(ImageUser(configUser: text) == expected)
    }

    @Test func noUser() {
        #expect(ImageUser(configUser: nil) == nil)
        #expect(ImageUser(configUser: "") == nil)
        #expect(ImageUser(configUser: ":1004") == nil)
    }

    @Test func platformChoice() throws {
        func entry(_ os: String, _ arch: String, _ n: UInt8) -> Descriptor {
            Descriptor(
                mediaType: MediaType.ociManifest, digest: Digest.sha256(of: [n]), size: 1,
                platform: Platform(os: os, architecture: arch))
        }
        let reference = try ImageReference(parsing: "x")
        let entries = [entry("unknown", "unknown", 0), entry("linux", "arm64", 1), entry("linux", "amd64", 2), entry("linux", "amd64", 3)]
        #expect(try ImageStore.choose(.linuxAMD64, from: entries, of: reference).digest == Digest.sha256(of: [2]))
        let error = #expect(throws: PodvisorError.self) { try ImageStore.choose(.linuxAMD64, from: Array(entries.prefix(2)), of: reference) }
        #expect(error?.code == .notFound)
        #expect(error?.message.contains("offers: unknown/unknown, linux/arm64") == true)
    }
}

import Foundation
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

    @Test(arguments: [
        ("[host.\"http://m\"]\ncapabilities = [\"fetch\"]", "unknown capability fetch"),
        ("[host.\"http://m\"]\nheader = 1", "unknown key header"),
        ("[host.\"ftp://m\"]", "not an http:// or https:// URL"),
        ("[mirror]", "unknown table [mirror]"),
        ("server = 1", "server must be a string"),
        ("typo = \"x\"", "unknown key typo"),
        ("[host.\"http://m\"]\nskip_verify = \"yes\"", "skip_verify must be true or false"),
    ])
    func mistakesAreRefusedWithTheFile(text: String, message: String) throws {
        try write("quay.io", text)
        let error = #expect(throws: PodvisorError.self) {
            try RegistryHosts(directory: directory.path).endpoints(for: ImageReference(parsing: "quay.io/x"))
        }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.hasPrefix("\(directory.path)/quay.io/hosts.toml: ") == true)
        #expect(error?.message.contains(message) == true, "\(error?.message ?? "")")
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

import Foundation
import PodvisorCore
import Testing

@testable import PodvisorImages

@Suite struct ReferenceTests {
    static let hex = String(repeating: "ab", count: 32)

    @Test(arguments: [
        ("busybox", "docker.io/library/busybox:latest"),
        ("busybox:1.36", "docker.io/library/busybox:1.36"),
        ("library/busybox", "docker.io/library/busybox:latest"),
        ("docker.io/busybox", "docker.io/library/busybox:latest"),
        ("index.docker.io/library/busybox:1", "docker.io/library/busybox:1"),
        ("user/app", "docker.io/user/app:latest"),
        ("registry.k8s.io/pause:3.10", "registry.k8s.io/pause:3.10"),
        ("localhost/app", "localhost/app:latest"),
        ("localhost:5000/a/b/c:v1.0-rc_1", "localhost:5000/a/b/c:v1.0-rc_1"),
        ("127.0.0.1:5000/busybox", "127.0.0.1:5000/busybox:latest"),
        ("[::1]:5000/busybox:x", "[::1]:5000/busybox:x"),
        ("my-registry.example:443/team/my_app__x.y--z", "my-registry.example:443/team/my_app__x.y--z:latest"),
    ])
    func normalisation(text: String, expected: String) throws {
        #expect(try ImageReference(parsing: text).description == expected)
    }

    @Test func digestWithoutTagHasNoTag() throws {
        let reference = try ImageReference(parsing: "busybox@sha256:\(Self.hex)")
        #expect(reference.tag == nil)
        #expect(reference.digest?.hex == Self.hex)
        #expect(reference.manifestReference == "sha256:\(Self.hex)")
        #expect(reference.description == "docker.io/library/busybox@sha256:\(Self.hex)")
    }

    @Test func tagAndDigestKeepBothAndPinTheDigest() throws {
        let reference = try ImageReference(parsing: "localhost:5000/app:1@sha256:\(Self.hex)")
        #expect(reference.registry == "localhost:5000")
        #expect(reference.repository == "app")
        #expect(reference.tag == "1")
        #expect(reference.manifestReference == "sha256:\(Self.hex)")
    }

    @Test func partsAndHosts() throws {
        let hub = try ImageReference(parsing: "busybox")
        #expect(hub.registry == "docker.io")
        #expect(hub.repository == "library/busybox")
        #expect(hub.name == "docker.io/library/busybox")
        #expect(hub.apiHost == "registry-1.docker.io")
        #expect(hub.manifestReference == "latest")
        let local = try ImageReference(parsing: "[::1]:5000/x")
        #expect(local.apiHost == "[::1]:5000")
        #expect(local.registryHostname == "::1")
        #expect(try ImageReference(parsing: "127.0.0.1:5000/x").registryHostname == "127.0.0.1")
    }

    @Test(arguments: [
        ("", "empty"),
        ("Busybox", "lowercase"),
        ("docker.io/Library/busybox", "lowercase"),
        ("busybox:", "invalid tag"),
        ("busybox:-x", "invalid tag"),
        ("busybox:a b", "invalid tag"),
        ("busybox:\(String(repeating: "t", count: 129))", "invalid tag"),
        ("busybox@sha256:abc", "64 lowercase hex"),
        ("busybox@sha256:\(String(repeating: "AB", count: 32))", "64 lowercase hex"),
        ("busybox@", "expected algorithm:hex"),
        ("a//b", "path component \"\""),
        ("a/b/", "path component \"\""),
        ("/busybox", "path component \"\""),
        ("a/-b", "path component \"-b\""),
        ("a/b.", "path component \"b.\""),
        ("a/b..c", "path component \"b..c\""),
        ("a/b___c", "path component \"b___c\""),
        ("host:99999/x", "invalid registry"),
        ("host:/x", "invalid registry"),
        ("-host.io/x", "invalid registry"),
        ("[zz]:5000/x", "invalid registry"),
        ("host.io/\(String(repeating: "a", count: 250))", "longer than 255"),
    ])
    func invalidReferencesAreRefused(text: String, why: String) {
        let error = #expect(throws: PodvisorError.self) { try ImageReference(parsing: text) }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains(why) == true, "\(error?.message ?? "")")
    }

    @Test func otherDigestAlgorithmsAreUnsupportedNotMisread() {
        let error = #expect(throws: PodvisorError.self) {
            try ImageReference(parsing: "busybox@sha512:\(String(repeating: "ab", count: 64))")
        }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains("sha512") == true)
    }
}

@Suite struct DigestTests {
    @Test func sha256OfKnownInput() {
        #expect(
            Digest.sha256(of: Array("abc".utf8)).description
                == "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test func codableAsItsString() throws {
        let digest = Digest.sha256(of: [])
        let data = try JSONEncoder().encode([digest])
        #expect(String(decoding: data, as: UTF8.self) == "[\"\(digest)\"]")
        #expect(try JSONDecoder().decode([Digest].self, from: data) == [digest])
        #expect(throws: (any Error).self) { try JSONDecoder().decode([Digest].self, from: Data("[\"md5:00\"]".utf8)) }
    }
}

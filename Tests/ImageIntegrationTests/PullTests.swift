import TestSupport
import Foundation
import PodvisorCore
import PodvisorImages
import Testing

/// Pulls from a real docker-registry serving the fixture images (Fixtures/make-images.sh) into a fresh store.
@Suite struct PullTests {
    let root = "/tmp/podvisor-image-store-\(UUID().uuidString)"

    func withStore<T>(
        _ registry: TestRegistry, options: RegistryClient.Options = RegistryClient.Options(),
        _ body: (ImageStore) async throws -> T
    ) async throws -> T {
        defer { try? FileManager.default.removeItem(atPath: root) }
        return try await body(ImageStore(root: root, registry: RegistryClient(options: options)))
    }

    static func fileType(_ path: String) -> mode_t? {
        var info = stat()
        return lstat(path, &info) == 0 ? info.st_mode & S_IFMT : nil
    }

    @Test func pullByTagWithoutTagAndByDigestIsOneImage() async throws {
        let registry = try TestRegistry(storage: await FixtureImages.shared.storageDirectory())
        try await withStore(registry) { store in
            let tagged = try await store.pull("\(registry.address)/busybox:1.0")
            #expect(tagged.repoTags == ["\(registry.address)/busybox:1.0"])
            #expect(tagged.layers.count == 2)
            #expect(tagged.user == .uid(1002))
            #expect(tagged.size > 1_000_000)

            let latest = try await store.pull("\(registry.address)/busybox")
            #expect(latest.id == tagged.id)
            #expect(Set(latest.repoTags) == ["\(registry.address)/busybox:1.0", "\(registry.address)/busybox:latest"])

            let digest = try #require(latest.repoDigests.first?.split(separator: "@").last)
            let pinned = try await store.pull("\(registry.address)/busybox@\(digest)")
            #expect(pinned.id == tagged.id)
            #expect(pinned.repoDigests == ["\(registry.address)/busybox@\(digest)"])
            #expect(await store.list().count == 1)
            #expect(await store.image("\(registry.address)/busybox")?.id == tagged.id)
            #expect(await store.image(String(tagged.id.hex.prefix(12)))?.id == tagged.id)

            // Base layer: busybox, setuid kept; top layer: OCI whiteouts turned into overlay whiteouts.
            let lower = try await store.lowerDirectories(tagged.id)
            #expect(lower.count == 2)
            var info = stat()
            #expect(lstat("\(lower[1])/bin/busybox", &info) == 0 && info.st_mode & 0o7777 == 0o4755)
            #expect(Self.fileType("\(lower[1])/bin/sh") == S_IFLNK)
            #expect(Self.fileType("\(lower[0])/etc/removed") == S_IFCHR)
            #expect(Self.fileType("\(lower[0])/var/cache/old") == S_IFCHR)
            #expect(Self.fileType("\(lower[0])/etc/.wh.removed") == nil)
            #expect(try String(contentsOfFile: "\(lower[0])/var/cache/new", encoding: .utf8) == "new\n")
        }
    }

    @Test func oneImageFromTwoRegistriesHasBothNames() async throws {
        let storage = try await FixtureImages.shared.storageDirectory()
        let first = try TestRegistry(storage: storage)
        let second = try TestRegistry(storage: storage)
        try await withStore(first) { store in
            let a = try await store.pull("\(first.address)/busybox:1.0")
            let b = try await store.pull("\(second.address)/busybox:1.0")
            #expect(a.id == b.id)
            #expect(await store.list().count == 1)
            #expect(Set(b.repoTags) == ["\(first.address)/busybox:1.0", "\(second.address)/busybox:1.0"])
            #expect(b.repoDigests.count == 2)
        }
    }

    @Test func usernameFromConfig() async throws {
        let registry = try TestRegistry(storage: await FixtureImages.shared.storageDirectory())
        try await withStore(registry) { store in
            let image = try await store.pull("\(registry.address)/named-user")
            #expect(image.user == .name("www-data"))
        }
    }

    @Test func indexChoosesLinuxAMD64() async throws {
        let registry = try TestRegistry(storage: await FixtureImages.shared.storageDirectory())
        try await withStore(registry) { store in
            let image = try await store.pull("\(registry.address)/multi")
            #expect(image.manifests.count == 2)
            let lower = try await store.lowerDirectories(image.id)
            #expect(try String(contentsOfFile: "\(lower[0])/platform", encoding: .utf8) == "amd64\n")
        }
    }

    @Test func mirrorInHostsToml() async throws {
        let registry = try TestRegistry(storage: await FixtureImages.shared.storageDirectory())
        let hosts = "\(root)-hosts"
        defer { try? FileManager.default.removeItem(atPath: hosts) }
        try FileManager.default.createDirectory(atPath: "\(hosts)/registry.k8s.io", withIntermediateDirectories: true)
        try """
        server = "https://registry.k8s.io"

        [host."http://\(registry.address)"]
          capabilities = ["pull", "resolve"]
        """.write(toFile: "\(hosts)/registry.k8s.io/hosts.toml", atomically: true, encoding: .utf8)
        var options = RegistryClient.Options()
        options.hosts = RegistryHosts(directory: hosts)
        try await withStore(registry, options: options) { store in
            let image = try await store.pull("registry.k8s.io/pause:3.10")
            #expect(image.repoTags == ["registry.k8s.io/pause:3.10"])
            #expect(image.repoDigests.allSatisfy { $0.hasPrefix("registry.k8s.io/pause@sha256:") })
        }
    }

    @Test func unknownImageAndTagAreNotFound() async throws {
        let registry = try TestRegistry(storage: await FixtureImages.shared.storageDirectory())
        try await withStore(registry) { store in
            for name in ["\(registry.address)/no-such-image", "\(registry.address)/busybox:no-such-tag"] {
                let error = await #expect(throws: PodvisorError.self) { try await store.pull(name) }
                #expect(error?.code == .notFound, "\(name): \(String(describing: error))")
            }
        }
    }

    @Test func unreachableRegistryIsUnavailable() async throws {
        let port = try TestRegistry.freePort()
        var options = RegistryClient.Options()
        options.retryDelay = .milliseconds(10)
        defer { try? FileManager.default.removeItem(atPath: root) }
        let store = try ImageStore(root: root, registry: RegistryClient(options: options))
        let started = ContinuousClock.now
        let error = await #expect(throws: PodvisorError.self) { try await store.pull("127.0.0.1:\(port)/busybox") }
        #expect(error?.code == .unavailable, "\(String(describing: error))")
        #expect(error?.message.contains("unreachable") == true)
        // Three attempts with short waits between them, not the 60 s request timeout: a refused connection
        // fails fast. (A loose bound: the machine may be busy with VMs.)
        #expect(ContinuousClock.now - started < .seconds(30))
    }

    @Test func basicAuthRequiredRefusedAndAccepted() async throws {
        let registry = try TestRegistry(storage: await FixtureImages.shared.storageDirectory(), user: ("alice", "secret"))
        try await withStore(registry) { store in
            let image = "\(registry.address)/busybox"
            let anonymous = await #expect(throws: PodvisorError.self) { try await store.pull(image) }
            #expect(anonymous?.code == .permissionDenied)
            #expect(anonymous?.message.contains("requires authentication") == true, "\(String(describing: anonymous))")
            let wrong = await #expect(throws: PodvisorError.self) {
                try await store.pull(image, credentials: .basic(username: "alice", password: "wrong"))
            }
            #expect(wrong?.code == .permissionDenied)
            #expect(wrong?.message.contains("refused the credentials") == true, "\(String(describing: wrong))")
            let pulled = try await store.pull(image, credentials: .basic(username: "alice", password: "secret"))
            #expect(pulled.layers.count == 2)
        }
    }

    /// A token service that fails for a moment is asked again; the retry does not take the registry's next
    /// 401 for a refusal of the credentials.
    @Test func aTokenServiceFailingOnceIsAskedAgain() async throws {
        let registry = try TestRegistry(storage: await FixtureImages.shared.storageDirectory())
        let proxy = try BearerProxy(upstream: registry, user: "bob", password: "hunter2", tokenDrops: 1)
        try await withStore(registry) { store in
            let pulled = try await store.pull("\(proxy.address)/busybox", credentials: .basic(username: "bob", password: "hunter2"))
            #expect(pulled.layers.count == 2)
        }
    }

    @Test func bearerTokenAuthAndOneRequestForAPresentImage() async throws {
        let registry = try TestRegistry(storage: await FixtureImages.shared.storageDirectory())
        let proxy = try BearerProxy(upstream: registry, user: "bob", password: "hunter2")
        try await withStore(registry) { store in
            let image = "\(proxy.address)/busybox"
            let anonymous = await #expect(throws: PodvisorError.self) { try await store.pull(image) }
            #expect(anonymous?.code == .permissionDenied)
            #expect(anonymous?.message.contains("requires authentication") == true, "\(String(describing: anonymous))")
            let wrong = await #expect(throws: PodvisorError.self) {
                try await store.pull(image, credentials: .basic(username: "bob", password: "wrong"))
            }
            #expect(wrong?.code == .permissionDenied)
            #expect(wrong?.message.contains("refused the credentials") == true, "\(String(describing: wrong))")
            #expect(proxy.requests.isEmpty)

            let credentials = RegistryCredentials.basic(username: "bob", password: "hunter2")
            let first = try await store.pull(image, credentials: credentials)
            #expect(proxy.requests.count == 4)  // manifest, config, two layers
            let again = try await store.pull(image, credentials: credentials)
            #expect(again == first)
            #expect(proxy.requests.dropFirst(4) == ["GET /v2/busybox/manifests/latest"])
        }
    }

    /// `podvisor image pull` (built beside this test binary) is killed while its first blob is in flight; the
    /// store it leaves opens clean and pulls the image afterwards.
    @Test func killDuringPullLeavesAConsistentStore() async throws {
        let registry = try TestRegistry(storage: await FixtureImages.shared.storageDirectory())
        let proxy = try BearerProxy(upstream: registry, user: "bob", password: "pw", blobDelaySeconds: 60)
        let binary = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
            .appendingPathComponent("podvisor").path
        #expect(FileManager.default.isExecutableFile(atPath: binary), "build the podvisor product first")
        // The command runs the runtime in-process (which checks for the guest image), its image store at `root`.
        let config = "\(root).toml"
        defer {
            try? FileManager.default.removeItem(atPath: config)
            try? FileManager.default.removeItem(atPath: "\(root)-state")
        }
        try "state_dir = \"\(root)-state\"\n[vm]\n\(GuestImage.configLines)\n[images]\nroot = \"\(root)\"\n".write(
            toFile: config, atomically: true, encoding: .utf8)
        let pull = Process()
        pull.executableURL = URL(fileURLWithPath: binary)
        pull.arguments = ["image", "pull", "--config", config, "--username", "bob", "--password", "pw", "\(proxy.address)/busybox"]
        pull.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        pull.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try pull.run()
        let deadline = ContinuousClock.now + .seconds(30)
        while !proxy.requests.contains(where: { $0.contains("/blobs/") }) && pull.isRunning && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(pull.isRunning)
        kill(pull.processIdentifier, SIGKILL)
        pull.waitUntilExit()
        #expect(!(try FileManager.default.contentsOfDirectory(atPath: "\(root)/content/ingest").isEmpty))

        try await withStore(registry) { store in
            #expect(await store.list().isEmpty)
            let ingest = try FileManager.default.contentsOfDirectory(atPath: "\(root)/content/ingest")
            #expect(ingest.isEmpty)
            let image = try await store.pull("\(registry.address)/busybox")
            #expect(image.layers.count == 2)
        }
    }

    @Test func corruptBlobIsRejected() async throws {
        let storage = try await FixtureImages.shared.copyOfStorage()
        defer { try? FileManager.default.removeItem(atPath: storage) }
        let registry = try TestRegistry(storage: storage)
        // Damage the big layer in the registry's own storage: it keeps serving it under the original digest.
        let blobs = "\(storage)/docker/registry/v2/blobs/sha256"
        let damaged = try FileManager.default.subpathsOfDirectory(atPath: blobs).filter { $0.hasSuffix("/data") }
            .map { "\(blobs)/\($0)" }
            .max {
                (try? FileManager.default.attributesOfItem(atPath: $0)[.size] as? Int) ?? 0
                    < (try? FileManager.default.attributesOfItem(atPath: $1)[.size] as? Int) ?? 0
            }
        let path = try #require(damaged)
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        bytes[bytes.count / 2] ^= 0xff
        try bytes.write(to: URL(fileURLWithPath: path))
        try await withStore(registry) { store in
            let error = await #expect(throws: PodvisorError.self) { try await store.pull("\(registry.address)/busybox") }
            #expect(error?.code == .dataLoss)
            #expect(await store.list().isEmpty)
            let layerHex = URL(fileURLWithPath: path).deletingLastPathComponent().lastPathComponent
            #expect(!FileManager.default.fileExists(atPath: "\(root)/content/blobs/sha256/\(layerHex)"))
            let ingest = try FileManager.default.contentsOfDirectory(atPath: "\(root)/content/ingest")
            #expect(ingest.isEmpty)
        }
    }

    @Test func concurrentPullsShareContent() async throws {
        let registry = try TestRegistry(storage: await FixtureImages.shared.storageDirectory())
        try await withStore(registry) { store in
            let ids = try await withThrowingTaskGroup(of: Digest.self) { group in
                for name in ["busybox", "busybox:latest", "busybox:1.0", "busybox", "named-user"] {
                    group.addTask { try await store.pull("\(registry.address)/\(name)").id }
                }
                return try await group.reduce(into: Set<Digest>()) { $0.insert($1) }
            }
            #expect(ids.count == 2)
            #expect(await store.list().count == 2)
        }
    }

    @Test func removalSemantics() async throws {
        let registry = try TestRegistry(storage: await FixtureImages.shared.storageDirectory())
        try await withStore(registry) { store in
            let image = try await store.pull("\(registry.address)/busybox:latest")
            try await store.pull("\(registry.address)/busybox:1.0")
            let other = try await store.pull("\(registry.address)/named-user")

            try await store.startUsing(image.id)
            let inUse = await #expect(throws: PodvisorError.self) { try await store.remove("\(registry.address)/busybox:1.0") }
            #expect(inUse?.code == .failedPrecondition)
            await store.stopUsing(image.id)

            try await store.setPinned(image.id, true)
            await #expect(throws: PodvisorError.self) { try await store.remove(image.id.description) }
            try await store.setPinned(image.id, false)

            let before = store.usage()
            try await store.remove("\(registry.address)/busybox:1.0")
            #expect(await store.image("\(registry.address)/busybox:latest") == nil)
            #expect(await store.list().map(\.id) == [other.id])
            // Only the remaining image's content is left: manifest, config, one layer blob and its directory.
            #expect(Set(store.content.digests()) == Set(other.manifests + [other.id] + other.layers))
            #expect(store.usage().bytes < before.bytes - 1_000_000)
            let missing = await #expect(throws: PodvisorError.self) { try await store.remove("\(registry.address)/busybox") }
            #expect(missing?.code == .notFound)

            // A reopened store sees what was recorded.
            let reopened = try ImageStore(root: root)
            #expect(await reopened.list() == [other])
        }
    }
}

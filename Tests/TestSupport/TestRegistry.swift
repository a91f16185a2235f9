import Foundation

/// A real `docker-registry` (Debian's distribution 2.8) on a free loopback port, serving a storage directory;
/// optionally with htpasswd (bcrypt) basic auth. Stopped when released.
public final class TestRegistry: @unchecked Sendable {
    public let address: String
    public let storage: String
    private let process: Process
    private let directory: String

    public init(storage: String, user: (name: String, password: String)? = nil) throws {
        self.storage = storage
        directory = "/tmp/podvisor-registry-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let port = try Self.freePort()
        address = "127.0.0.1:\(port)"
        var config = """
            version: 0.1
            log:
              level: warn
            storage:
              filesystem:
                rootdirectory: \(storage)
            http:
              addr: \(address)

            """
        if let user {
            try Self.run("/usr/bin/htpasswd", ["-Bbc", "\(directory)/htpasswd", user.name, user.password])
            config += """
                auth:
                  htpasswd:
                    realm: podvisor-test
                    path: \(directory)/htpasswd

                """
        }
        try config.write(toFile: "\(directory)/config.yml", atomically: true, encoding: .utf8)
        process = try Self.serve("/usr/bin/docker-registry", ["serve", "\(directory)/config.yml"], port: port)
        // Shared registries live as long as the test process: they go with it.
        TestCleanup.removeAtExit(directory)
    }

    /// Starts a server and waits until it accepts connections on `port`.
    public static func serve(_ executable: String, _ arguments: [String], port: UInt16) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        process.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try process.run()
        let deadline = Date().addingTimeInterval(10)
        while !accepts(port: port) {
            guard process.isRunning, Date() < deadline else {
                if process.isRunning { process.terminate() }
                throw TestError("\(executable) did not come up on port \(port)")
            }
            usleep(20_000)
        }
        return process
    }

    deinit {
        process.terminate()
        process.waitUntilExit()
        try? FileManager.default.removeItem(atPath: directory)
    }

    public static func freePort() throws -> UInt16 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        guard bound else { throw TestError("no free port") }
        return UInt16(bigEndian: address.sin_port)
    }

    public static func accepts(port: UInt16) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }

    public static func run(_ executable: String, _ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw TestError("\(executable) \(arguments) failed: \(text)") }
    }
}

/// Fixtures/bearer-proxy.py in front of a registry: bearer-token auth the way Docker Hub does it, and a log of
/// the requests that got through.
public final class BearerProxy: @unchecked Sendable {
    public let address: String
    public let log = "/tmp/podvisor-bearer-proxy-\(UUID().uuidString).log"
    private let process: Process

    /// `tokenDrops`: the first token requests closed without an answer.
    public init(upstream: TestRegistry, user: String, password: String, blobDelaySeconds: Int = 0, tokenDrops: Int = 0) throws {
        let port = try TestRegistry.freePort()
        address = "127.0.0.1:\(port)"
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/bearer-proxy.py").path
        process = try TestRegistry.serve(
            "/usr/bin/python3", [script, "\(port)", upstream.address, user, password, log, "\(blobDelaySeconds)", "\(tokenDrops)"], port: port)
    }

    deinit {
        // KILL: the child inherits the test runner's blocked signals, so a TERM would stay pending forever.
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        try? FileManager.default.removeItem(atPath: log)
    }

    /// Requests relayed to the registry so far, "GET /v2/…" each.
    public var requests: [String] {
        ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }
}

public struct TestError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// The registry storage with the fixture images (Fixtures/make-images.sh), built once per test process. Tests
/// serve it read-only through registries of their own; one that damages content copies it first.
public actor FixtureImages {
    public static let shared = FixtureImages()
    private var storage: String?

    public func storageDirectory() throws -> String {
        if let storage { return storage }
        // Fixtures of test processes that are gone.
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/tmp")) ?? []
        where entry.hasPrefix("podvisor-image-fixtures-") {
            if let pid = Int32(entry.dropFirst("podvisor-image-fixtures-".count)), kill(pid, 0) != 0 && errno == ESRCH {
                try? FileManager.default.removeItem(atPath: "/tmp/\(entry)")
            }
        }
        let root = "/tmp/podvisor-image-fixtures-\(getpid())"
        TestCleanup.removeAtExit(root)
        let registry = try TestRegistry(storage: "\(root)/registry")
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/make-images.sh").path
        try TestRegistry.run(script, ["\(root)/work", registry.address])
        storage = "\(root)/registry"
        return "\(root)/registry"
    }

    /// The OCI image layout the fixture images were built in (tags busybox, 1.0, named-user, pause, multi).
    public func layoutDirectory() throws -> String {
        let storage = try storageDirectory()
        return URL(fileURLWithPath: storage).deletingLastPathComponent().appendingPathComponent("work/layout").path
    }

    /// A private copy of the storage, for a test that corrupts it.
    public func copyOfStorage() throws -> String {
        let copy = "/tmp/podvisor-image-fixtures-copy-\(UUID().uuidString)"
        TestCleanup.removeAtExit(copy)
        try TestRegistry.run("/bin/cp", ["-a", try storageDirectory(), copy])
        return copy
    }
}

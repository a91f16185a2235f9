import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The host's side of pod network tests: its address, a server for pods to reach, a client for theirs.
public enum HostNetwork {
    /// The host's own address on its default route: where a node's host ports are reached.
    public static func nodeAddress() async throws -> String? {
        let route = Process()
        let output = Pipe()
        route.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        route.arguments = ["-4", "route", "get", "192.0.2.1"]
        route.standardOutput = output
        try route.run()
        route.waitUntilExit()
        let words = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).split(separator: " ")
        return words.firstIndex(of: "src").flatMap { words.index(after: $0) < words.endIndex ? String(words[words.index(after: $0)]) : nil }
    }

    /// Serves one HTTP answer on `host` (a free port) while `client` runs; returns what the client got.
    public static func serveOnce(host: String, answer: String, _ client: (UInt16) async throws -> String) async throws -> String {
        let port = try TestRegistry.freePort()
        let directory = "/tmp/podvisor-serve-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try "\(answer)\n".write(toFile: "\(directory)/index.html", atomically: true, encoding: .utf8)
        let server = Process()
        server.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        server.arguments = ["-m", "http.server", "--bind", host, "--directory", directory, "\(port)"]
        server.standardOutput = FileHandle.nullDevice
        server.standardError = FileHandle.nullDevice
        try server.run()
        defer {
            // SIGKILL: test runners block SIGTERM, and their children inherit the mask.
            kill(server.processIdentifier, SIGKILL)
            server.waitUntilExit()
        }
        return try await client(port).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// An HTTP GET from the host, retried while the server is not listening yet.
    public static func fetch(_ url: String) async throws -> String {
        var lastError: (any Error)?
        for _ in 0..<20 {
            do { return String(decoding: try await URLSession.shared.data(from: URL(string: url)!).0, as: UTF8.self) } catch {
                lastError = error
                try await Task.sleep(for: .milliseconds(250))
            }
        }
        throw lastError!
    }
}

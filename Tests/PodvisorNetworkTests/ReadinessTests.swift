import Foundation
import Testing

@testable import PodvisorNetwork

@Suite struct ReadinessTests {
    static let conflist = """
        {"cniVersion": "1.0.0", "name": "pods", "plugins": [{"type": "bridge"}, {"type": "portmap"}]}
        """

    /// A conf dir and a bin dir of the test's own, and the network reading them.
    static func withDirs(_ body: (_ conf: String, _ bin: String, CNINetwork) async throws -> Void) async throws {
        try await withTemporaryDirectory { dir in
            let conf = "\(dir)/net.d"
            let bin = "\(dir)/bin"
            try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
            try await body(conf, bin, CNINetwork(confDir: conf, binDirs: [bin], cacheDir: "\(dir)/cache"))
        }
    }

    @Test func aMissingOrEmptyConfDirIsNotReady() async throws {
        try await Self.withDirs { conf, _, network in
            let missing = network.status()
            #expect(!missing.ready)
            #expect(missing.reason == "NetworkPluginNotReady")
            #expect(missing.message == "no CNI network config in \(conf) (*.conflist, *.conf, *.json)")
            try FileManager.default.createDirectory(atPath: conf, withIntermediateDirectories: true)
            #expect(network.status() == missing)
        }
    }

    @Test func namesTheInvalidFileAndWhy() async throws {
        try await Self.withDirs { conf, _, network in
            try writeFile("\(conf)/10-pods.conflist", #"{"cniVersion": "1.0.0", "plugins": [{"type": "bridge"}]}"#)
            let status = network.status()
            #expect(!status.ready)
            #expect(status.message == "no valid CNI network config in \(conf): 10-pods.conflist: missing \"name\"")
        }
    }

    @Test func namesEveryMissingPluginAndTheDirsSearched() async throws {
        try await Self.withDirs { conf, bin, network in
            try writeFile("\(conf)/10-pods.conflist", Self.conflist)
            try writeFile("\(bin)/portmap", "#!/bin/sh\n", mode: 0o755)
            let status = network.status()
            #expect(!status.ready)
            #expect(status.message == "network \"pods\" (\(conf)/10-pods.conflist): CNI plugin \"bridge\" not found in [\(bin)]")
        }
    }

    @Test func followsTheDirectoryWithoutARestart() async throws {
        try await Self.withDirs { conf, bin, network in
            try writeFile("\(bin)/bridge", "#!/bin/sh\n", mode: 0o755)
            try writeFile("\(bin)/portmap", "#!/bin/sh\n", mode: 0o644)
            try FileManager.default.createDirectory(atPath: conf, withIntermediateDirectories: true)
            #expect(!network.status().ready)
            // A CNI DaemonSet: the config first, then the binaries.
            try writeFile("\(conf)/10-pods.conflist", Self.conflist)
            #expect(network.status().message.hasSuffix("CNI plugin \"portmap\" not found in [\(bin)]"))
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: "\(bin)/portmap")
            #expect(network.status().ready)
            try FileManager.default.removeItem(atPath: "\(conf)/10-pods.conflist")
            #expect(!network.status().ready)
        }
    }

    @Test func reusesAScanUntilSomethingItReadChanges() async throws {
        try await Self.withDirs { conf, bin, network in
            try writeFile("\(bin)/bridge", "#!/bin/sh\n", mode: 0o755)
            try writeFile("\(bin)/portmap", "#!/bin/sh\n", mode: 0o755)
            try writeFile("\(conf)/10-pods.conflist", Self.conflist)
            #expect(network.status().ready)
            // Changes younger than two seconds keep the scan from being reused (a timestamp is a clock tick).
            #expect(network.lastScan?.reusable == false)
            try await Task.sleep(for: .milliseconds(2100))
            #expect(network.status().ready)
            let first = try #require(network.lastScan)
            #expect(first.reusable)
            #expect(network.status().ready)
            #expect(network.lastScan?.scannedAt == first.scannedAt)
            // The binary vanishes: a stat of what the scan depended on notices it.
            try FileManager.default.removeItem(atPath: "\(bin)/portmap")
            #expect(!network.status().ready)
        }
    }
}

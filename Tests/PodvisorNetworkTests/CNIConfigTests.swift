import Foundation
import PodvisorCore
import Testing

@testable import PodvisorNetwork

@Suite struct CNIConfigTests {
    static let conflist = """
        {
          "cniVersion": "1.0.0", "name": "pods", "disableCheck": true,
          "plugins": [
            {"type": "bridge", "bridge": "cni0", "mtu": 1400, "ipam": {"type": "host-local", "subnet": "10.1.0.0/16"}},
            {"type": "portmap", "capabilities": {"portMappings": true, "bandwidth": false}, "snat": true}
          ]
        }
        """

    @Test func parsesAListKeepingEveryPluginKey() throws {
        let config = try CNIConfig.parse(Data(Self.conflist.utf8), fileName: "10-pods.conflist")
        #expect(config.cniVersion == "1.0.0")
        #expect(config.name == "pods")
        #expect(config.disableCheck)
        #expect(config.plugins.map(\.type) == ["bridge", "portmap"])
        #expect(config.plugins[0].capabilities.isEmpty)
        // Only capabilities declared true count.
        #expect(config.plugins[1].capabilities == ["portMappings"])
        #expect(config.plugins[0].object["mtu"] == .int(1400))
        #expect(config.plugins[0].object["ipam"]?["subnet"] == .string("10.1.0.0/16"))
        #expect(config.plugins[1].object["snat"] == .bool(true))
        #expect(config.bytes == Data(Self.conflist.utf8))
    }

    @Test func wrapsASinglePluginConfAsAList() throws {
        let text = #"{"cniVersion": "0.4.0", "name": "single", "type": "bridge", "bridge": "br9"}"#
        for fileName in ["10-single.conf", "10-single.json"] {
            let config = try CNIConfig.parse(Data(text.utf8), fileName: fileName)
            #expect(config.name == "single")
            #expect(config.plugins.count == 1)
            #expect(config.plugins[0].type == "bridge")
            #expect(config.plugins[0].object["bridge"] == .string("br9"))
        }
    }

    @Test(arguments: [
        ("a.conf", #"{"cniVersion": "1.0.0", "name": "x", "plugins": [{"type": "bridge"}]}"#, "a.conf: a plugin has no valid \"type\""),
        ("a.conflist", #"{"cniVersion": "1.0.0", "name": "x", "plugins": []}"#, "a.conflist: \"plugins\" must be a non-empty list"),
        ("a.conflist", #"{"cniVersion": "1.0.0", "plugins": [{"type": "bridge"}]}"#, "a.conflist: missing \"name\""),
        ("a.conflist", #"{"name": "x", "plugins": [{"type": "bridge"}]}"#, "a.conflist: missing \"cniVersion\""),
        ("a.conflist", #"{"cniVersion": "0.2.0", "name": "x", "plugins": [{"type": "bridge"}]}"#, "a.conflist: cniVersion 0.2.0 is not supported"),
        ("a.conflist", #"{"cniVersion": "1.0.0", "name": "x", "plugins": [{"type": "../bin/sh"}]}"#, "a.conflist: a plugin has no valid \"type\""),
        ("a.conflist", #"[1, 2]"#, "a.conflist: not a JSON object"),
        ("a.conflist", #"{"cniVersion": "1.0.0", "name": "#, "a.conflist: not valid JSON"),
    ])
    func refusesInvalidFilesNamingThem(fileName: String, text: String, expected: String) {
        #expect {
            try CNIConfig.parse(Data(text.utf8), fileName: fileName)
        } throws: { error in
            (error as? PodvisorError)?.message.hasPrefix(expected) == true
        }
    }

    @Test func loadsTheFirstValidFileInLexicalOrder() async throws {
        try await withTemporaryDirectory { dir in
            try writeFile("\(dir)/10-broken.conflist", "{")
            try writeFile("\(dir)/05-notes.txt", "not a config")
            try FileManager.default.createDirectory(atPath: "\(dir)/15-dir.conflist", withIntermediateDirectories: false)
            try writeFile("\(dir)/30-a.conflist", Self.conflist)
            try writeFile("\(dir)/20-b.conf", #"{"cniVersion": "1.0.0", "name": "b", "type": "ptp"}"#)
            let scan = CNIConfig.load(confDir: dir)
            #expect(scan.config?.name == "b")
            #expect(scan.config?.fileName == "20-b.conf")
            #expect(scan.skipped.count == 1)
            #expect(scan.skipped.first?.hasPrefix("10-broken.conflist: not valid JSON") == true)
        }
    }

    @Test func findsThePluginInTheFirstBinDirThatHasAnExecutable() async throws {
        try await withTemporaryDirectory { dir in
            try writeFile("\(dir)/one/bridge", "#!/bin/sh\n", mode: 0o644)
            try writeFile("\(dir)/two/bridge", "#!/bin/sh\n", mode: 0o755)
            try writeFile("\(dir)/three/bridge", "#!/bin/sh\n", mode: 0o755)
            let dirs = ["\(dir)/missing", "\(dir)/one", "\(dir)/two", "\(dir)/three"]
            #expect(CNIConfig.pluginPath("bridge", binDirs: dirs) == "\(dir)/two/bridge")
            #expect(CNIConfig.pluginPath("ptp", binDirs: dirs) == nil)
        }
    }
}

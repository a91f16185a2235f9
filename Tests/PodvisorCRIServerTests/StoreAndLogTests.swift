import Foundation
import PodvisorCore
import Testing

@testable import PodvisorCRIServer

struct Item: StoredRecord, Equatable {
    var id: String
    var value: Int
}

@Suite struct RecordStoreTests {
    let directory = "/tmp/podvisor-store-test-\(UUID().uuidString)"

    @Test func persistsReloadsAndFindsByUniquePrefix() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try RecordStore<Item>(directory: directory, what: "item")
        try store.put(Item(id: "abc123", value: 1))
        try store.put(Item(id: "abd456", value: 2))
        try store.update("abc123") { $0.value = 10 }
        // A temporary left by a write that a crash interrupted is not a record.
        FileManager.default.createFile(atPath: "\(directory)/zzz.json.tmp", contents: Data("{".utf8))

        let reloaded = try RecordStore<Item>(directory: directory, what: "item")
        #expect(reloaded.all.count == 2)
        #expect(try reloaded.find("abc").value == 10)
        #expect(try reloaded.find("abd456").value == 2)
        #expect(throws: PodvisorError.self) { try reloaded.find("ab") }  // ambiguous
        #expect((try? reloaded.find("x")) == nil)
        #expect(!FileManager.default.fileExists(atPath: "\(directory)/zzz.json.tmp"))
        try reloaded.remove("abc123")
        #expect(try RecordStore<Item>(directory: directory, what: "item").all == [Item(id: "abd456", value: 2)])
    }
}

@Suite struct ContainerLogTests {
    @Test func criFormatSplitsLinesAndStreams() throws {
        let path = "/tmp/podvisor-log-test-\(UUID().uuidString).log"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let log = try ContainerLog(path: path)
        log.write(Data("one\ntw".utf8), stream: .stdout)
        log.write(Data("err\n".utf8), stream: .stderr)
        log.write(Data("o\nthree".utf8), stream: .stdout)
        log.finish(.stdout)
        log.write(Data(repeating: UInt8(ascii: "x"), count: ContainerLog.maxLine + 5), stream: .stderr)
        log.finish(.stderr)
        log.close()
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map { $0.split(separator: " ", maxSplits: 3) }
        #expect(
            lines.map { "\($0[1]) \($0[2]) \($0[3].prefix(5))" } == [
                "stdout F one", "stderr F err", "stdout F two", "stdout F three", "stderr P xxxxx", "stderr F xxxxx",
            ])
        #expect(lines.allSatisfy { $0[0].count == 30 && $0[0].hasSuffix("Z") })  // 2026-01-02T03:04:05.123456789Z
    }

    @Test func rfc3339Nano() {
        #expect(Clock.rfc3339Nano(1_000_000_000 * 86_400 + 5) == "1970-01-02T00:00:00.000000005Z")
    }
}

@Suite struct ValidateTests {
    @Test func pathsAndNames() {
        #expect(throws: PodvisorError.self) { try Validate.relativePath("../x.log", "log_path") }
        #expect(throws: PodvisorError.self) { try Validate.relativePath("/abs.log", "log_path") }
        #expect(throws: PodvisorError.self) { try Validate.absolutePath("/a/../b", "host_path") }
        #expect(throws: PodvisorError.self) { try Validate.name("a/b", "metadata.name") }
        #expect(throws: PodvisorError.self) { try Validate.hostname("bad_host") }
        #expect((try? Validate.relativePath("c1/0.log", "log_path")) != nil)
        #expect((try? Validate.hostname("pod-1.example")) != nil)
    }
}

import Foundation
import PodvisorCore
import Testing

@testable import PodvisorImages

@Suite struct ImageStoreTests {
    let directory = TemporaryDirectory()

    /// What a process killed in the middle of a pull leaves: a partial download, a half-unpacked layer, a record
    /// being written, and complete blobs and layers that no record names yet.
    @Test func reopeningAfterAKillLeavesAConsistentStore() async throws {
        let root = directory.path
        _ = try ImageStore(root: root)
        let blob = Data("a complete but unrecorded blob".utf8)
        let digest = Digest.sha256(of: blob)
        try blob.write(to: URL(fileURLWithPath: "\(root)/content/blobs/sha256/\(digest.hex)"))
        try Data("partial".utf8).write(to: URL(fileURLWithPath: "\(root)/content/ingest/\(digest.hex)-x"))
        try FileManager.default.createDirectory(atPath: "\(root)/layers/tmp/\(digest.hex)-x/etc", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: "\(root)/layers/sha256/\(digest.hex)/bin", withIntermediateDirectories: true)
        try Data("{".utf8).write(to: URL(fileURLWithPath: "\(root)/images/\(digest.hex).json.tmp-x"))

        let store = try ImageStore(root: root)
        #expect(await store.list().isEmpty)
        #expect(FileSystem.entries("\(root)/content/ingest").isEmpty)
        #expect(FileSystem.entries("\(root)/layers/tmp").isEmpty)
        #expect(FileSystem.entries("\(root)/images").isEmpty)
        let removed = try await store.garbageCollect()
        #expect(removed.blobs == 1 && removed.layers == 1)
        #expect(store.content.digests().isEmpty)
        #expect(FileSystem.entries("\(root)/layers/sha256").isEmpty)
    }

    @Test func aCorruptRecordIsReportedNotIgnored() throws {
        _ = try ImageStore(root: directory.path)
        try Data("{not json".utf8).write(to: URL(fileURLWithPath: "\(directory.path)/images/\(String(repeating: "a", count: 64)).json"))
        let error = #expect(throws: PodvisorError.self) { try ImageStore(root: directory.path) }
        #expect(error?.message.contains("corrupt image record") == true)
    }

    @Test func unknownNamesAreNotFound() async throws {
        let store = try ImageStore(root: directory.path)
        #expect(await store.image("busybox") == nil)
        #expect(await store.image("not a reference") == nil)
        let error = await #expect(throws: PodvisorError.self) { try await store.remove("busybox") }
        #expect(error?.code == .notFound)
        let usage = store.usage()
        #expect(usage.bytes > 0 && usage.inodes >= 8)
    }
}

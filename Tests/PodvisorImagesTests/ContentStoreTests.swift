import Foundation
import PodvisorCore
import Synchronization
import Testing

@testable import PodvisorImages

/// A fresh directory under /tmp, removed when the test is done with it.
final class TemporaryDirectory {
    let path: String

    init() {
        path = "/tmp/podvisor-images-test-\(UUID().uuidString)"
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

final class Counter: Sendable {
    private let count = Atomic(0)
    var value: Int { count.load(ordering: .relaxed) }
    func increment() { count.add(1, ordering: .relaxed) }
}

@Suite struct ContentStoreTests {
    let directory = TemporaryDirectory()

    static func chunks(_ data: Data, by size: Int) -> [Data] {
        stride(from: 0, to: data.count, by: size).map { data.subdata(in: $0..<min($0 + size, data.count)) }
    }

    @Test func storesVerifiedContentUnderItsDigest() async throws {
        let store = try ContentStore(root: directory.path)
        let data = Data((0..<100_000).map { UInt8($0 % 251) })
        let digest = Digest.sha256(of: data)
        try await store.fetch(digest, size: Int64(data.count)) { writer in
            for chunk in Self.chunks(data, by: 4096) { try chunk.withUnsafeBytes { try writer.write($0) } }
        }
        #expect(store.contains(digest))
        #expect(try store.data(of: digest) == data)
        #expect(store.path(of: digest) == "\(directory.path)/blobs/sha256/\(digest.hex)")
        #expect(store.digests() == [digest])
        #expect(FileSystem.entries("\(directory.path)/ingest").isEmpty)
    }

    @Test func corruptContentIsRejectedAndLeavesNothing() async throws {
        let store = try ContentStore(root: directory.path)
        let digest = Digest.sha256(of: Data("the real content".utf8))
        let error = await #expect(throws: PodvisorError.self) {
            try await store.write(Data("tampered content".utf8), digest: digest)
        }
        #expect(error?.code == .dataLoss)
        #expect(error?.message.contains("does not match its digest") == true)
        #expect(!store.contains(digest))
        #expect(FileSystem.entries("\(directory.path)/ingest").isEmpty)
    }

    @Test func sizeIsEnforcedBothWays() async throws {
        let store = try ContentStore(root: directory.path)
        let data = Data("twelve bytes".utf8)
        let digest = Digest.sha256(of: data)
        let longer = await #expect(throws: PodvisorError.self) {
            try await store.fetch(digest, size: 5) { writer in try data.withUnsafeBytes { try writer.write($0) } }
        }
        #expect(longer?.code == .dataLoss)
        #expect(longer?.message.contains("larger than its declared 5 bytes") == true)
        let shorter = await #expect(throws: PodvisorError.self) {
            try await store.fetch(digest, size: 20) { writer in try data.withUnsafeBytes { try writer.write($0) } }
        }
        #expect(shorter?.message.contains("has 12 bytes, expected 20") == true)
        #expect(!store.contains(digest))
    }

    @Test func restartDiscardsWhatWasWritten() async throws {
        let store = try ContentStore(root: directory.path)
        let data = Data("final".utf8)
        try await store.fetch(Digest.sha256(of: data), size: nil) { writer in
            try Data("garbage from a failed attempt".utf8).withUnsafeBytes { try writer.write($0) }
            try writer.restart()
            try data.withUnsafeBytes { try writer.write($0) }
        }
        #expect(try store.data(of: Digest.sha256(of: data)) == data)
    }

    @Test func presentContentIsNotFetchedAgain() async throws {
        let store = try ContentStore(root: directory.path)
        let data = Data("once".utf8)
        try await store.write(data, digest: Digest.sha256(of: data))
        try await store.fetch(Digest.sha256(of: data), size: nil) { _ in Issue.record("fetched again") }
    }

    @Test func concurrentFetchesOfOneDigestShareOneDownload() async throws {
        let store = try ContentStore(root: directory.path)
        let data = Data(repeating: 7, count: 1 << 20)
        let digest = Digest.sha256(of: data)
        let downloads = Counter()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<8 {
                group.addTask {
                    try await store.fetch(digest, size: Int64(data.count)) { writer in
                        downloads.increment()
                        for chunk in Self.chunks(data, by: 65536) {
                            try await Task.sleep(for: .milliseconds(2))
                            try chunk.withUnsafeBytes { try writer.write($0) }
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(downloads.value == 1)
        #expect(try store.data(of: digest) == data)
    }

    @Test func aFailedDownloadIsSharedThenRetriedFresh() async throws {
        let store = try ContentStore(root: directory.path)
        let data = Data("content".utf8)
        let digest = Digest.sha256(of: data)
        await #expect(throws: PodvisorError.self) {
            try await store.fetch(digest, size: nil) { _ in throw PodvisorError(.unavailable, "network down") }
        }
        try await store.write(data, digest: digest)
        #expect(store.contains(digest))
    }

    @Test func reopeningRemovesPartialDownloads() async throws {
        _ = try ContentStore(root: directory.path)
        #expect(FileManager.default.createFile(atPath: "\(directory.path)/ingest/partial", contents: Data("half".utf8)))
        let store = try ContentStore(root: directory.path)
        #expect(FileSystem.entries("\(directory.path)/ingest").isEmpty)
        #expect(store.digests().isEmpty)
    }

    @Test func deleteRemovesAndToleratesMissing() async throws {
        let store = try ContentStore(root: directory.path)
        let data = Data("x".utf8)
        try await store.write(data, digest: Digest.sha256(of: data))
        try await store.delete(Digest.sha256(of: data))
        try await store.delete(Digest.sha256(of: data))
        #expect(!store.contains(Digest.sha256(of: data)))
    }
}

import Foundation
import PodvisorCore
import Testing

@Suite struct FileContentsTests {
    @Test func readsWholeFilesAndSaysWhenItCannot() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("podvisor-read-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let empty = "\(directory)/empty", text = "\(directory)/text"
        #expect(FileManager.default.createFile(atPath: empty, contents: Data()))
        #expect(FileManager.default.createFile(atPath: text, contents: Data("a\u{0}b\n".utf8)))
        #expect(readFile(empty) == Data())
        #expect(readFile(text) == Data("a\u{0}b\n".utf8))
        #expect(readTextFile(text) == "a\u{0}b\n")
        #expect(readFile("\(directory)/missing") == nil)
        #expect(readFile(directory) == nil)
        // /proc files read as size 0; this one is longer than the one page Foundation's readers stop at.
        let maps = try #require(readTextFile("/proc/self/maps"))
        #expect(maps.utf8.count > 4096)
        #expect(maps.hasSuffix("\n"))
    }

    /// Foundation's readers leak 4 KiB on each empty file (kernel threads' /proc/<pid>/cmdline, read at every
    /// VM start): 20000 reads would hold ~80 MiB. The bound leaves room for tests running beside this one.
    @Test func readingEmptyFilesHoldsNoMemory() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("podvisor-empty-\(UUID().uuidString)").path
        #expect(FileManager.default.createFile(atPath: path, contents: Data()))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let before = heapInUseBytes()
        for _ in 0..<20000 { #expect(readFile(path)?.isEmpty == true) }
        #expect(heapInUseBytes() - before < 16 << 20)
    }

    @Test func heapInUseCountsWhatIsAllocated() throws {
        let before = heapInUseBytes()
        #expect(before > 0)
        let block = try #require(malloc(64 << 20))
        memset(block, 1, 64 << 20)
        #expect(heapInUseBytes() - before >= 64 << 20)
        free(block)
    }
}

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
}

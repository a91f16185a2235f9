import Foundation
import PodvisorCore
import Testing
import CArchive

@testable import PodvisorImages

/// These tests create device nodes, set ownership and trusted.* xattrs: they run as root, as the runtime does.
@Suite struct LayerUnpackerTests {
    let directory = TemporaryDirectory()

    func unpack(_ entries: [TarBuilder.Entry], compression: TarBuilder.Compression = .none) async throws -> String {
        let archive = "\(directory.path)/layer.tar"
        try TarBuilder.write(entries, to: archive, compression: compression)
        let target = "\(directory.path)/layer"
        try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
        try await LayerUnpacker.unpack(archive: archive, into: target)
        return target
    }

    static func info(_ path: String) -> stat? {
        var info = stat()
        return lstat(path, &info) == 0 ? info : nil
    }

    static func xattr(_ path: String, _ name: String) -> String? {
        var buffer = [UInt8](repeating: 0, count: 256)
        let n = lgetxattr(path, name, &buffer, buffer.count)
        return n < 0 ? nil : String(decoding: buffer[..<n], as: UTF8.self)
    }

    @Test(arguments: [TarBuilder.Compression.none, .gzip, .zstd])
    func filesDirectoriesAndMetadata(compression: TarBuilder.Compression) async throws {
        let root = try await unpack(
            [
                .directory("bin", mode: 0o755),
                .file("bin/tool", "#!/bin/sh\n", mode: 0o4755, uid: 0, gid: 0),
                .file("home/user/note", "hi", mode: 0o600, uid: 1002, gid: 1003),
                .symlink("bin/sh", to: "/bin/busybox"),
                .hardlink("bin/tool2", to: "bin/tool"),
                TarBuilder.Entry(path: "dev/null", type: UInt32(Glibc.S_IFCHR), mode: 0o666, rdev: (1, 3)),
                TarBuilder.Entry(path: "etc/secret", mode: 0o640, content: Data("x".utf8), xattrs: ["user.label": "blue"]),
            ], compression: compression)
        let tool = try #require(Self.info("\(root)/bin/tool"))
        #expect(tool.st_mode & 0o7777 == 0o4755)
        #expect(try String(contentsOfFile: "\(root)/bin/tool", encoding: .utf8) == "#!/bin/sh\n")
        #expect(Self.info("\(root)/bin/tool2")?.st_ino == tool.st_ino)
        #expect(tool.st_nlink == 2)
        let note = try #require(Self.info("\(root)/home/user/note"))
        #expect((note.st_uid, note.st_gid, note.st_mode & 0o777) == (1002, 1003, 0o600))
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: "\(root)/bin/sh") == "/bin/busybox")
        let null = try #require(Self.info("\(root)/dev/null"))
        #expect(null.st_mode & S_IFMT == S_IFCHR)
        #expect(null.st_rdev == (1 << 8 | 3))  // makedev(1, 3)
        #expect(Self.xattr("\(root)/etc/secret", "user.label") == "blue")
        #expect(Self.info("\(root)/etc/secret")?.st_mtim.tv_sec == 1_700_000_000)
    }

    @Test func whiteoutsBecomeOverlayWhiteouts() async throws {
        let root = try await unpack([
            .directory("etc"),
            .file("etc/.wh.removed"),
            .file(".wh.toplevel"),
            .directory("var/cache"),
            .file("var/cache/.wh..wh..opq"),
            .file("var/cache/kept", "new"),
            .file("later/.wh..wh..opq"),
        ])
        for path in ["etc/removed", "toplevel"] {
            let whiteout = try #require(Self.info("\(root)/\(path)"), "\(path)")
            #expect(whiteout.st_mode & S_IFMT == S_IFCHR)
            #expect(whiteout.st_rdev == 0)
        }
        #expect(Self.info("\(root)/etc/.wh.removed") == nil)
        #expect(Self.xattr("\(root)/var/cache", "trusted.overlay.opaque") == "y")
        #expect(Self.info("\(root)/var/cache/.wh..wh..opq") == nil)
        #expect(try String(contentsOfFile: "\(root)/var/cache/kept", encoding: .utf8) == "new")
        // A marker before its directory's own entry creates the directory.
        #expect(Self.xattr("\(root)/later", "trusted.overlay.opaque") == "y")
        #expect(Self.xattr("\(root)/etc", "trusted.overlay.opaque") == nil)
    }

    @Test(arguments: [
        [TarBuilder.Entry.file("../escaped", "x")],
        [.file("a/../../escaped", "x")],
        [.file("/tmp/absolute-escape-\(UUID().uuidString)", "x")],
        [.symlink("link", to: "/tmp"), .file("link/through-symlink-\(UUID().uuidString)", "x")],
        [.symlink("link", to: ".."), .file("link/escaped", "x")],
        [.hardlink("passwd", to: "/etc/passwd")],
        [.hardlink("up", to: "../outside")],
        [.file("../.wh.victim")],
        [.file("a/.wh...")],
        [.symlink("dir", to: "/tmp"), .file("dir/.wh..wh..opq")],
    ])
    func entriesEscapingTheLayerAreRefused(entries: [TarBuilder.Entry]) async throws {
        let outside = "\(directory.path)/outside"
        #expect(FileManager.default.createFile(atPath: outside, contents: Data("keep".utf8)))
        let error = await #expect(throws: PodvisorError.self) { _ = try await unpack(entries) }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains("refused entry") == true, "\(error?.message ?? "")")
        // Nothing appeared beside the layer, nor where the absolute and symlinked paths point.
        #expect(Set(FileSystem.entries(directory.path)) == ["layer", "layer.tar", "outside"])
        #expect(!FileSystem.entries("/tmp").contains { $0.hasPrefix("absolute-escape-") || $0.hasPrefix("through-symlink-") })
        #expect(try String(contentsOfFile: outside, encoding: .utf8) == "keep")
        #expect(Self.xattr("/tmp", "trusted.overlay.opaque") == nil)
    }

    @Test func garbageIsNotATar() async throws {
        let archive = "\(directory.path)/garbage"
        #expect(FileManager.default.createFile(atPath: archive, contents: Data(repeating: 0x41, count: 4096)))
        let error = await #expect(throws: PodvisorError.self) {
            try await LayerUnpacker.unpack(archive: archive, into: directory.path)
        }
        #expect(error?.code == .invalidArgument)
    }

    @Test func splitNames() {
        #expect(LayerUnpacker.split("a/b/.wh.c") == ("a/b/", ".wh.c"))
        #expect(LayerUnpacker.split(".wh.c") == ("", ".wh.c"))
        #expect(LayerUnpacker.split("./d/") == ("./", "d"))
    }
}

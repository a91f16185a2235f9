import CLinuxSupport
import Foundation
import PodvisorAgentProtocol
import PodvisorCore
import Testing

@testable import PodvisorRuntime

/// The host reads a container's /etc/passwd and /etc/group from the image's unpacked layers as overlayfs
/// shows them, and resolves its user there (as containerd does) so that the guest need not.
@Suite struct LayerFilesTests {
    /// Three layers, top first, in the unpacker's overlay format.
    final class Layers {
        let root = "/tmp/podvisor-layers-\(UUID().uuidString.prefix(8))"
        var paths: [String] { ["top", "middle", "bottom"].map { "\(root)/\($0)" } }

        init() throws {
            for path in paths { try FileManager.default.createDirectory(atPath: "\(path)/etc", withIntermediateDirectories: true) }
        }
        deinit { try? FileManager.default.removeItem(atPath: root) }

        func write(_ layer: String, _ path: String, _ text: String) throws {
            try text.write(toFile: "\(root)/\(layer)/\(path)", atomically: false, encoding: .utf8)
        }

        func whiteout(_ layer: String, _ path: String) {
            #expect(mknod("\(root)/\(layer)/\(path)", S_IFCHR | 0o600, 0) == 0, "mknod: errno \(errno)")
        }

        func makeOpaque(_ layer: String, _ directory: String) {
            #expect(setxattr("\(root)/\(layer)/\(directory)", "trusted.overlay.opaque", "y", 1, 0) == 0, "setxattr: errno \(errno)")
        }
    }

    @Test func theTopLayerWinsAndWhiteoutsAndOpaqueDirectoriesHide() throws {
        let layers = try Layers()
        try layers.write("bottom", "etc/passwd", "bottom\n")
        try layers.write("bottom", "etc/group", "bottom\n")
        try layers.write("bottom", "etc/hosts", "bottom\n")
        try layers.write("middle", "etc/passwd", "middle\n")
        #expect(LayerFiles.read("etc/passwd", layers: layers.paths) == .file("middle\n"))
        #expect(LayerFiles.read("etc/group", layers: layers.paths) == .file("bottom\n"), "through a layer without it")
        #expect(LayerFiles.read("etc/shadow", layers: layers.paths) == .absent)
        layers.whiteout("top", "etc/group")
        #expect(LayerFiles.read("etc/group", layers: layers.paths) == .absent, "a whiteout hides the layers below")
        layers.makeOpaque("middle", "etc")
        #expect(LayerFiles.read("etc/hosts", layers: layers.paths) == .absent, "an opaque directory hides the layers below")
        #expect(LayerFiles.read("etc/passwd", layers: layers.paths) == .file("middle\n"), "but not its own files")
        try FileManager.default.createSymbolicLink(atPath: "\(layers.root)/top/etc/passwd", withDestinationPath: "/etc/passwd")
        #expect(LayerFiles.read("etc/passwd", layers: layers.paths) == .undecided, "a symlink is the mounted rootfs's to follow")
        #expect(LayerFiles.read("../etc/passwd", layers: layers.paths) == .undecided)
    }

    @Test func theIdentityIsResolvedOnTheHostAndPinned() throws {
        let layers = try Layers()
        try layers.write("bottom", "etc/passwd", "root:x:0:0::/:/bin/sh\napp:x:1000:1000::/:/bin/sh\n")
        try layers.write("middle", "etc/group", "root:x:0:\napp:x:1000:\naudio:x:29:app\n")
        let spec = Podvisor_Agent_V1_ProcessSpec.with {
            $0.username = "app"
            $0.additionalGids = [1234]
        }
        let pinned = try spec.pinned(inLayers: layers.paths)
        #expect(pinned.username.isEmpty && pinned.uid == 1000 && pinned.gid == 1000 && pinned.additionalGids == [29, 1234])
        #expect(pinned.strictSupplementalGroups, "the groups are final: the guest reads no file")
        let unknown = #expect(throws: PodvisorError.self) { try spec.with { $0.username = "nobody" }.pinned(inLayers: layers.paths) }
        #expect(unknown?.code == .invalidArgument && unknown?.message == "user nobody not found in the container's /etc/passwd")
        // A passwd the host cannot read as overlayfs would: the agent resolves in the mounted rootfs.
        try FileManager.default.createSymbolicLink(atPath: "\(layers.root)/top/etc/passwd", withDestinationPath: "../usr/passwd")
        #expect(try spec.pinned(inLayers: layers.paths) == spec)
        #expect(try spec.with { $0.username = "nobody" }.pinned(inLayers: layers.paths).username == "nobody")
    }
}

extension Podvisor_Agent_V1_ProcessSpec {
    fileprivate func with(_ change: (inout Self) -> Void) -> Self {
        var copy = self
        change(&copy)
        return copy
    }
}

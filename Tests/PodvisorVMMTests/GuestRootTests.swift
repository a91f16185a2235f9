import Foundation
import PodvisorCore
import Testing

@testable import PodvisorVMM

/// Which root an image file makes, by its layout (Images/pfn-root.pl writes the fsdax one).
@Suite struct GuestRootTests {
    /// A file of `bytes` zeros, with `header` written 4 KiB in; removed after `body`.
    static func withImage<T>(bytes: Int, header: Data, _ body: (String) throws -> T) throws -> T {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("podvisor-root-\(UUID().uuidString)").path
        var contents = Data(count: bytes)
        contents.replaceSubrange(4096..<(4096 + header.count), with: header)
        try contents.write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        return try body(path)
    }

    static let pfnHeader = Data("NVDIMM_PFN_INFO\0".utf8)

    @Test func anFsdaxLayoutGoesOnAnNVDIMMWithItsSize() throws {
        try Self.withImage(bytes: 4 << 20, header: Self.pfnHeader) { path throws in
            #expect(try GuestRoot.image(path) == .persistentMemory(path, bytes: 4 << 20))
        }
    }

    @Test func aPlainErofsImageGoesOnADisk() throws {
        // erofs keeps its superblock at 1 KiB; nothing at 4 KiB says NVDIMM.
        try Self.withImage(bytes: 1 << 20, header: Data("NVDIMM_DAX_INFO\0".utf8)) { path throws in
            #expect(try GuestRoot.image(path) == .disk(path))
        }
    }

    @Test func aTruncatedFsdaxLayoutIsRefusedWithItsSize() throws {
        try Self.withImage(bytes: (4 << 20) - 4096, header: Self.pfnHeader) { path throws in
            let error = #expect(throws: PodvisorError.self) { try GuestRoot.image(path) }
            #expect(error?.code == .failedPrecondition)
            #expect(error?.message.contains("is \((4 << 20) - 4096) bytes: the layout is the image 2 MiB in, padded to a multiple of 2 MiB") == true)
        }
    }

    @Test func aMissingImageIsAFailedPrecondition() {
        let error = #expect(throws: PodvisorError.self) { try GuestRoot.image("/nonexistent/rootfs.erofs") }
        #expect(error?.code == .failedPrecondition)
    }
}

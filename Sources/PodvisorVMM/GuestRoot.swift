import Foundation
import PodvisorCore

/// What the guest kernel boots into; PID 1 is the agent's `/init` either way.
public enum GuestRoot: Sendable, Equatable {
    /// An initramfs the kernel unpacks into guest RAM, where it stays for the VM's life (the agent's binary
    /// cannot be freed while it runs). Debian's cloud kernel needs it: it loads its virtio drivers from it.
    case initramfs(String)
    /// An erofs image on a read-only virtio-blk disk that every VM shares through the host's page cache: the
    /// guest reads only the pages it runs and may drop them again, and the kernel unpacks nothing at boot.
    /// Needs virtio-blk and erofs built into the kernel (podvisor's own is so configured).
    case disk(String)
    /// An erofs image laid out as an fsdax namespace (`Images/pfn-root.pl`: an NVDIMM PFN info block, the image
    /// 2 MiB in) on a read-only NVDIMM: the guest maps the image's pages (DAX) instead of reading them into
    /// its page cache, and they are the host's page cache, one copy for every VM. Needs the kernel's NVDIMM,
    /// ACPI NFIT and FS_DAX (podvisor's own kernel has them). `bytes`: the file's size, a multiple of 2 MiB.
    case persistentMemory(String, bytes: Int)

    /// The root an image file makes: an fsdax layout goes on an NVDIMM, a plain erofs image on a disk.
    public static func image(_ path: String) throws(PodvisorError) -> GuestRoot {
        guard let file = FileHandle(forReadingAtPath: path) else {
            throw PodvisorError(.failedPrecondition, "cannot open the guest root \(path)")
        }
        defer { try? file.close() }
        let header = (try? file.read(upToCount: pfnInfoOffset + pfnSignature.count)) ?? Data()
        guard header.count == pfnInfoOffset + pfnSignature.count, header.suffix(pfnSignature.count).elementsEqual(pfnSignature)
        else { return .disk(path) }
        let bytes = Int((try? file.seekToEnd()) ?? 0)
        guard bytes > pfnAlignment, bytes % pfnAlignment == 0 else {
            throw PodvisorError(
                .failedPrecondition,
                "guest root \(path) has an NVDIMM info block but is \(bytes) bytes: the layout is the image 2 MiB in,"
                    + " padded to a multiple of 2 MiB (Images/pfn-root.pl)")
        }
        return .persistentMemory(path, bytes: bytes)
    }

    /// Where Linux looks for an NVDIMM namespace's PFN info block, and how it begins (drivers/nvdimm/pfn.h).
    static let pfnInfoOffset = 4096
    static let pfnSignature = Data("NVDIMM_PFN_INFO\0".utf8)
    /// The granularity in which the guest's memory hotplug takes a namespace.
    static let pfnAlignment = 2 << 20

    public var path: String {
        switch self {
        case .initramfs(let path), .disk(let path), .persistentMemory(let path, _): path
        }
    }

    /// What it is, for messages and reports.
    public var kind: String {
        switch self {
        case .initramfs: "initramfs"
        case .disk: "erofs root disk (read-only, shared)"
        case .persistentMemory: "erofs root on a read-only NVDIMM (DAX, shared)"
        }
    }

    /// Kernel parameters that mount it (an initramfs needs none).
    public var kernelParameters: [String] {
        switch self {
        case .initramfs: []
        case .disk: ["root=/dev/vda", "rootfstype=erofs", "ro", "init=/init"]
        case .persistentMemory: ["root=/dev/pmem0", "rootfstype=erofs", "rootflags=dax=always", "ro", "init=/init"]
        }
    }
}

/// What the guest kernel boots into; PID 1 is the agent's `/init` either way.
public enum GuestRoot: Sendable, Equatable {
    /// An initramfs the kernel unpacks into guest RAM, where it stays for the VM's life (the agent's binary
    /// cannot be freed while it runs). Debian's cloud kernel needs it: it loads its virtio drivers from it.
    case initramfs(String)
    /// An erofs image on a read-only virtio-blk disk that every VM shares through the host's page cache: the
    /// guest reads only the pages it runs and may drop them again, and the kernel unpacks nothing at boot.
    /// Needs virtio-blk and erofs built into the kernel (podvisor's own is so configured).
    case disk(String)

    public var path: String {
        switch self {
        case .initramfs(let path), .disk(let path): path
        }
    }

    /// What it is, for messages and reports.
    public var kind: String {
        switch self {
        case .initramfs: "initramfs"
        case .disk: "erofs root disk (read-only, shared)"
        }
    }

    /// Kernel parameters that mount it (an initramfs needs none).
    public var kernelParameters: [String] {
        switch self {
        case .initramfs: []
        case .disk: ["root=/dev/vda", "rootfstype=erofs", "ro", "init=/init"]
        }
    }
}

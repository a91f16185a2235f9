import Foundation

/// The guest image the tests boot: what `make image` built in this clone, unless the environment names
/// another (PODVISOR_TEST_KERNEL, PODVISOR_TEST_ROOTFS, PODVISOR_TEST_INITRD). Pods boot from the rootfs image,
/// as installed; the initramfs is the other root a host may configure.
public enum GuestImage {
    public static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().path

    public static let kernel = ProcessInfo.processInfo.environment["PODVISOR_TEST_KERNEL"] ?? "\(repositoryRoot)/build/image/vmlinuz"
    public static let rootfs = ProcessInfo.processInfo.environment["PODVISOR_TEST_ROOTFS"] ?? "\(repositoryRoot)/build/image/rootfs.erofs"
    public static let initrd = ProcessInfo.processInfo.environment["PODVISOR_TEST_INITRD"] ?? "\(repositoryRoot)/build/image/initramfs.img"

    /// The `[vm]` lines of a podvisor.toml that boots this image.
    public static let configLines = "kernel = \"\(kernel)\"\nrootfs = \"\(rootfs)\""
}

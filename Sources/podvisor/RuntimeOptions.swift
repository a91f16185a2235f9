import ArgumentParser
import Foundation
import PodvisorCore

/// Options every command that talks to the runtime shares: a config file plus per-run overrides.
struct RuntimeOptions: ParsableArguments {
    @Option(help: "Configuration file (default: \(PodvisorConfig.defaultPath) when present).")
    var config: String?

    @Option(help: "State directory (VM run directories, embedded libvirt root).")
    var stateDir: String?

    @Option(help: "Guest kernel.")
    var kernel: String?

    @Option(help: "Guest root filesystem: an erofs image, plain (a read-only disk) or laid out by make image for an NVDIMM (the default root).")
    var rootfs: String?

    @Option(help: "Guest initramfs, instead of the rootfs (a kernel whose virtio drivers are modules).")
    var initrd: String?

    @Option(help: "auto, kvm or tcg.")
    var hypervisor: String?

    @Option(help: "auto, vsock, hybrid-vsock or virtio-serial.")
    var transport: String?

    @Option(help: "libvirt URI (default: the embedded QEMU driver in the state directory).")
    var libvirtURI: String?

    func load() throws -> PodvisorConfig {
        var config = try PodvisorConfig.load(path: self.config)
        // Overrides go through the same parser, so they are validated exactly like the file.
        var overrides: [String] = []
        if let stateDir { overrides.append("state_dir = \(PodvisorConfig.quote(stateDir))") }
        if !overrides.isEmpty { config = try config.merging(toml: overrides.joined(separator: "\n")) }
        overrides = []
        if let kernel { overrides.append("kernel = \(PodvisorConfig.quote(kernel))") }
        if let rootfs { overrides.append("rootfs = \(PodvisorConfig.quote(rootfs))") }
        // An initrd wins over the rootfs: --rootfs alone must not lose to one the config file sets.
        if let initrd { overrides.append("initrd = \(PodvisorConfig.quote(initrd))") } else if rootfs != nil { overrides.append("initrd = \"\"") }
        if let hypervisor { overrides.append("hypervisor = \(PodvisorConfig.quote(hypervisor))") }
        if let transport { overrides.append("transport = \(PodvisorConfig.quote(transport))") }
        if let libvirtURI { overrides.append("libvirt_uri = \(PodvisorConfig.quote(libvirtURI))") }
        if !overrides.isEmpty { config = try config.merging(toml: "[vm]\n" + overrides.joined(separator: "\n")) }
        return config
    }
}

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

    @Option(help: "Guest initramfs.")
    var initrd: String?

    @Option(help: "auto, kvm or tcg.")
    var hypervisor: String?

    @Option(help: "auto, vsock, hybrid-vsock or virtio-serial.")
    var transport: String?

    @Option(help: "libvirt URI (default: the embedded QEMU driver in the state directory).")
    var libvirtURI: String?

    func load() throws -> PodvisorConfig {
        var config = PodvisorConfig()
        let path = self.config ?? (FileManager.default.fileExists(atPath: PodvisorConfig.defaultPath) ? PodvisorConfig.defaultPath : nil)
        if let path {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw ValidationError("cannot read configuration \(path)")
            }
            config = try PodvisorConfig(toml: text)
        }
        // Overrides go through the same parser, so they are validated exactly like the file.
        var overrides: [String] = []
        if let stateDir { overrides.append("state_dir = \(Self.quote(stateDir))") }
        if !overrides.isEmpty { config = try config.merging(toml: overrides.joined(separator: "\n")) }
        overrides = []
        if let kernel { overrides.append("kernel = \(Self.quote(kernel))") }
        if let initrd { overrides.append("initrd = \(Self.quote(initrd))") }
        if let hypervisor { overrides.append("hypervisor = \(Self.quote(hypervisor))") }
        if let transport { overrides.append("transport = \(Self.quote(transport))") }
        if let libvirtURI { overrides.append("libvirt_uri = \(Self.quote(libvirtURI))") }
        if !overrides.isEmpty { config = try config.merging(toml: "[vm]\n" + overrides.joined(separator: "\n")) }
        return config
    }

    private static func quote(_ s: String) -> String {
        "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }
}

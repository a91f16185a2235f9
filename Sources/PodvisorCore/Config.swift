import Foundation

/// podvisor's configuration (`/etc/podvisor/config.toml`; `Configs/podvisor.toml` documents every key).
public struct PodvisorConfig: Sendable, Equatable {
    public static let defaultPath = "/etc/podvisor/config.toml"

    public var stateDirectory = "/var/lib/podvisor"
    /// Empty: the embedded QEMU driver rooted in the state directory (no daemon needed).
    public var libvirtURI = ""
    /// nil ("auto"): KVM where /dev/kvm opens and the CPU has vmx/svm, TCG otherwise.
    public var hypervisor: Accelerator?
    /// nil ("auto"): the first transport the host supports, in AgentTransportKind's order.
    public var transport: AgentTransportKind?
    public var kernelPath = "/usr/local/share/podvisor/vmlinuz"
    public var initrdPath = "/usr/local/share/podvisor/initramfs.img"
    public var emulatorPath = "/usr/bin/qemu-system-x86_64"
    public var vsockBackendPath = "/usr/local/libexec/podvisor/vhost-device-vsock"
    public var virtiofsdPath = "/usr/lib/qemu/virtiofsd"
    public var memoryMiB = 256
    public var vcpus = 1
    public var bootTimeoutSeconds = 60
    /// Under TCG: the bound of QEMU's translated-code cache, in MiB (0: QEMU's default).
    public var tcgCacheMiB = 32
    /// Extra guest kernel parameters.
    public var kernelParameters = ""
    /// Added to the memory a pod's resources ask for: the guest kernel, agent and page cache.
    public var overheadMiB = 128

    /// The CRI socket podvisord serves (RuntimeService and ImageService).
    public var socketPath = "/run/podvisor/podvisor.sock"
    /// The runtime handler name kubelet may pass in RunPodSandbox (a RuntimeClass's handler); "" always works.
    public var runtimeHandler = "podvisor"
    /// Where the streaming server behind Exec and Attach listens (port 0: any free port), as containerd's
    /// stream_server_address/port: loopback, because kubelet on the same node is its client.
    public var streamingAddress = "127.0.0.1"
    public var streamingPort = 0
    /// Seconds StopPodSandbox waits for the guest to power off before destroying the VM.
    public var shutdownTimeoutSeconds = 10
    public var logLevel = LogLevel.info
    /// text (one line per event; journald adds the time) or json (JSON lines for log shippers).
    public var logFormat = LogOutput.Format.text

    /// The pod network's CNI configuration (the first valid file in lexical order) and plugin directories.
    public var cniConfDirectory = "/etc/cni/net.d"
    public var cniBinDirectories = ["/opt/cni/bin", "/usr/lib/cni"]

    /// containerd's CRI socket (`unix://…`) for pods that share the host's namespaces; empty: they are refused.
    public var hostPodsEndpoint = ""
    /// RuntimeClass handlers whose pods always go to containerd (e.g. "runc").
    public var hostPodsHandlers: [String] = []
    /// Prometheus metrics on HOST:PORT (`GET /metrics`); empty: off.
    public var metricsAddress = ""

    /// Empty: `<state_dir>/images`.
    public var imageRoot = ""
    /// containerd-style `hosts.toml` directories (mirrors, CAs) per registry.
    public var registryHostsDirectory = "/etc/podvisor/certs.d"
    /// Registries reached over plain HTTP (loopback ones always may).
    public var insecureRegistries: [String] = []

    public enum LogLevel: String, Sendable, CaseIterable, Comparable {
        case debug, info, warning, error

        public static func < (a: LogLevel, b: LogLevel) -> Bool {
            allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
        }
    }

    public init() {}

    public var effectiveLibvirtURI: String {
        libvirtURI.isEmpty ? "qemu:///embed?root=\(stateDirectory)/libvirt" : libvirtURI
    }

    public var effectiveImageRoot: String { imageRoot.isEmpty ? "\(stateDirectory)/images" : imageRoot }

    /// Reads `path`, or the default file when there is one (defaults otherwise).
    public static func load(path: String?) throws(PodvisorError) -> PodvisorConfig {
        guard let path = path ?? (access(defaultPath, F_OK) == 0 ? defaultPath : nil) else { return PodvisorConfig() }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw PodvisorError(.invalidArgument, "cannot read configuration \(path)")
        }
        return try PodvisorConfig(toml: text)
    }

    /// A string as a TOML basic string, for overrides given on a command line.
    public static func quote(_ s: String) -> String {
        "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }

    /// Reads a TOML document; keys it does not set keep their defaults, unknown keys are an error.
    public init(toml text: String) throws(PodvisorError) {
        self.init()
        try apply(toml: text)
    }

    /// This configuration with the keys that `text` sets replaced (command-line overrides use it).
    public func merging(toml text: String) throws(PodvisorError) -> PodvisorConfig {
        var copy = self
        try copy.apply(toml: text)
        return copy
    }

    private mutating func apply(toml text: String) throws(PodvisorError) {
        let document = try TOMLDocument(parsing: text)
        for (key, value) in document.values {
            switch key {
            case "state_dir": stateDirectory = try value.string(key)
            case "vm.libvirt_uri": libvirtURI = try value.string(key)
            case "vm.hypervisor": hypervisor = try value.choiceOrAuto(key, of: Accelerator.self)
            case "vm.transport": transport = try value.choiceOrAuto(key, of: AgentTransportKind.self)
            case "vm.kernel": kernelPath = try value.string(key)
            case "vm.initrd": initrdPath = try value.string(key)
            case "vm.emulator": emulatorPath = try value.string(key)
            case "vm.vsock_backend": vsockBackendPath = try value.string(key)
            case "vm.virtiofsd": virtiofsdPath = try value.string(key)
            case "vm.memory_mib": memoryMiB = try value.integer(key, in: 64...1_048_576)
            case "vm.vcpus": vcpus = try value.integer(key, in: 1...256)
            case "vm.boot_timeout_s": bootTimeoutSeconds = try value.integer(key, in: 1...3600)
            case "vm.kernel_params": kernelParameters = try value.string(key)
            case "vm.tcg_cache_mib": tcgCacheMiB = try value.integer(key, in: 0...4096)
            case "vm.overhead_mib": overheadMiB = try value.integer(key, in: 0...65536)
            case "vm.shutdown_timeout_s": shutdownTimeoutSeconds = try value.integer(key, in: 0...3600)
            case "cri.socket": socketPath = try value.string(key)
            case "cri.runtime_handler": runtimeHandler = try value.string(key)
            case "cri.streaming_address": streamingAddress = try value.string(key)
            case "cri.streaming_port": streamingPort = try value.integer(key, in: 0...65535)
            case "log_level":
                guard let level = try value.choiceOrAuto(key, of: LogLevel.self) else {
                    throw PodvisorError(.invalidArgument, "log_level must be one of: debug, info, warning, error")
                }
                logLevel = level
            case "log_format":
                guard let format = try value.choiceOrAuto(key, of: LogOutput.Format.self) else {
                    throw PodvisorError(.invalidArgument, "log_format must be one of: text, json")
                }
                logFormat = format
            case "metrics.address": metricsAddress = try value.string(key)
            case "host_pods.endpoint": hostPodsEndpoint = try value.string(key)
            case "host_pods.handlers": hostPodsHandlers = try value.strings(key)
            case "cni.conf_dir": cniConfDirectory = try value.string(key)
            case "cni.bin_dirs": cniBinDirectories = try value.strings(key)
            case "images.root": imageRoot = try value.string(key)
            case "images.hosts_dir": registryHostsDirectory = try value.string(key)
            case "images.insecure_registries": insecureRegistries = try value.strings(key)
            default: throw PodvisorError(.invalidArgument, "unknown configuration key \(key)")
            }
        }
    }
}

extension TOMLValue {
    /// "auto" is nil: the runtime decides from what the host offers.
    func choiceOrAuto<T: RawRepresentable & CaseIterable>(_ key: String, of: T.Type) throws(PodvisorError) -> T?
    where T.RawValue == String {
        guard case .string(let s) = self, s == "auto" || T(rawValue: s) != nil else {
            let allowed = (["auto"] + T.allCases.map(\.rawValue)).joined(separator: ", ")
            throw PodvisorError(.invalidArgument, "\(key) must be one of: \(allowed)")
        }
        return T(rawValue: s)
    }
}

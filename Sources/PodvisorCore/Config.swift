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
    /// The guest's root: an erofs image shared by every VM, on a read-only NVDIMM (fsdax layout) or disk (GuestRoot)...
    public var rootfsPath = "/usr/local/share/podvisor/rootfs.erofs"
    /// ...or, when set, an initramfs instead (a kernel that loads its virtio drivers as modules, Debian's cloud one).
    public var initrdPath = ""
    public var emulatorPath = "/usr/bin/qemu-system-x86_64"
    public var vsockBackendPath = "/usr/local/libexec/podvisor/vhost-device-vsock"
    public var virtiofsdPath = "/usr/lib/qemu/virtiofsd"
    public var memoryMiB = 256
    public var vcpus = 1
    public var bootTimeoutSeconds = 60
    /// Under TCG: the bound of QEMU's translated-code cache, in MiB (0: QEMU's default). 16 would save an idle
    /// pod 18 MiB but costs the guest retranslation: container create 150 -> 230 ms, ExecSync 65 -> 138 ms.
    public var tcgCacheMiB = 32
    /// Extra guest kernel parameters.
    public var kernelParameters = ""
    /// Added to the memory a pod's resources ask for: the guest kernel, agent and page cache.
    public var overheadMiB = 128
    /// What QEMU and the VM's helpers use on the host beyond guest RAM (measured idle under TCG: QEMU 93 MiB
    /// with a 32 MiB translation cache, helpers 5 MiB): the part of a RuntimeClass overhead the guest does not get.
    public var vmmOverheadMiB = 96
    /// VMs of the default shape (memory_mib, vcpus) podvisord boots ahead for pods that fit it; 0: none.
    public var poolSize = 0

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
        guard let text = readTextFile(path) else {
            throw PodvisorError(.invalidArgument, "cannot read configuration \(path)")
        }
        return try PodvisorConfig(toml: text)
    }

    /// A string as a TOML basic string, control characters escaped: any string an override or a key name holds.
    public static func quote(_ s: String) -> String {
        var quoted = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\\", "\"": quoted += "\\\(scalar)"
            case "\u{0}"..."\u{1F}", "\u{7F}": quoted += String(format: "\\u%04X", scalar.value)
            default: quoted.unicodeScalars.append(scalar)
            }
        }
        return quoted + "\""
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

    /// The tables keys are grouped in; any other table is an unknown key itself.
    static let tables: Set<String> = ["vm", "cri", "cni", "metrics", "host_pods", "images"]

    private mutating func apply(toml text: String) throws(PodvisorError) {
        for key in try TOMLDocument(parsing: text).leaves(descendingInto: Self.tables) {
            switch key.name {
            case "state_dir": stateDirectory = try key.string()
            case "vm.libvirt_uri": libvirtURI = try key.string()
            case "vm.hypervisor": hypervisor = try key.choiceOrAuto(of: Accelerator.self)
            case "vm.transport": transport = try key.choiceOrAuto(of: AgentTransportKind.self)
            case "vm.kernel": kernelPath = try key.string()
            case "vm.rootfs": rootfsPath = try key.string()
            case "vm.initrd": initrdPath = try key.string()
            case "vm.emulator": emulatorPath = try key.string()
            case "vm.vsock_backend": vsockBackendPath = try key.string()
            case "vm.virtiofsd": virtiofsdPath = try key.string()
            case "vm.memory_mib": memoryMiB = try key.integer(in: 64...1_048_576)
            case "vm.vcpus": vcpus = try key.integer(in: 1...256)
            case "vm.boot_timeout_s": bootTimeoutSeconds = try key.integer(in: 1...3600)
            case "vm.kernel_params": kernelParameters = try key.string()
            case "vm.tcg_cache_mib": tcgCacheMiB = try key.integer(in: 0...4096)
            case "vm.overhead_mib": overheadMiB = try key.integer(in: 0...65536)
            case "vm.vmm_overhead_mib": vmmOverheadMiB = try key.integer(in: 0...65536)
            case "vm.pool_size": poolSize = try key.integer(in: 0...1024)
            case "vm.shutdown_timeout_s": shutdownTimeoutSeconds = try key.integer(in: 0...3600)
            case "cri.socket": socketPath = try key.string()
            case "cri.runtime_handler": runtimeHandler = try key.string()
            case "cri.streaming_address": streamingAddress = try key.string()
            case "cri.streaming_port": streamingPort = try key.integer(in: 0...65535)
            case "log_level": logLevel = try key.choice(of: LogLevel.self)
            case "log_format": logFormat = try key.choice(of: LogOutput.Format.self)
            case "metrics.address": metricsAddress = try key.string()
            case "host_pods.endpoint": hostPodsEndpoint = try key.string()
            case "host_pods.handlers": hostPodsHandlers = try key.strings()
            case "cni.conf_dir": cniConfDirectory = try key.string()
            case "cni.bin_dirs": cniBinDirectories = try key.strings()
            case "images.root": imageRoot = try key.string()
            case "images.hosts_dir": registryHostsDirectory = try key.string()
            case "images.insecure_registries": insecureRegistries = try key.strings()
            case let table where Self.tables.contains(table): throw key.mismatch("a table")
            default: throw PodvisorError(.invalidArgument, "line \(key.line): unknown configuration key \(key.name)")
            }
        }
    }
}

extension TOMLDocument {
    /// Every key, depth first in file order, descending only into the tables named in `tables`: another table is
    /// handed over whole, so a reader with a fixed set of keys refuses an unknown table by its own name and line.
    func leaves(descendingInto tables: Set<String>) -> [TOMLKey] {
        func walk(_ keys: [TOMLKey]) -> [TOMLKey] {
            keys.flatMap { key in
                guard case .table(let children) = key.value, tables.contains(key.name) else { return [key] }
                return walk(children)
            }
        }
        return walk(keys)
    }
}

extension TOMLKey {
    /// One of `T`'s names.
    func choice<T: RawRepresentable & CaseIterable>(of type: T.Type, alsoAllowed extra: [String] = []) throws(PodvisorError) -> T
    where T.RawValue == String {
        let expected = "one of: " + (extra + T.allCases.map(\.rawValue)).joined(separator: ", ")
        guard case .string(let name) = value else { throw mismatch(expected) }
        guard let choice = T(rawValue: name) else { throw error("must be \(expected) (not \(PodvisorError.quote(name)))") }
        return choice
    }

    /// One of `T`'s names or "auto", which is nil: the runtime decides from what the host offers.
    func choiceOrAuto<T: RawRepresentable & CaseIterable>(of type: T.Type) throws(PodvisorError) -> T? where T.RawValue == String {
        value == .string("auto") ? nil : try choice(of: type, alsoAllowed: ["auto"])
    }
}

import Foundation
import PodvisorCore
import PodvisorVMM

/// The host side of pod VMs: one libvirt connection and the accelerator and transport chosen for this host.
public final class VMHost: Sendable {
    public let config: PodvisorConfig
    public let connection: LibvirtConnection
    public let accelerator: Accelerator
    public let transport: AgentTransportKind
    /// Set when the automatic choice had to fall back (TCG instead of KVM).
    public let warning: String?

    public init(config: PodvisorConfig) throws(PodvisorError) {
        // A peer (agent, vsock backend) closing mid-write must fail that write, not end the process.
        signal(SIGPIPE, SIG_IGN)
        // libvirt logs warnings to stderr, which belongs to the CLI's user or the daemon's journal: they go to
        // a file in the state directory instead (unless the environment chose otherwise). Read by libvirt's
        // initialisation, so before any libvirt call.
        setenv("LIBVIRT_LOG_OUTPUTS", "3:file:\(config.stateDirectory)/libvirt.log", 0)
        self.config = config
        let (accelerator, warning) = try HostVirtualization.probe().choose(config.hypervisor)
        self.accelerator = accelerator
        self.warning = warning
        transport = try HostTransports.probe(vsockBackendPath: config.vsockBackendPath).choose(config.transport)
        // Each names the fix: an installed node has the guest image from `make install` or the package, a
        // source tree has it in build/image/ (`make image`); QEMU's binaries come from Debian's packages.
        let guestImage =
            "install podvisor (`make install`, or the podvisor package), or point vm.kernel and vm.rootfs"
            + " (podvisor: --kernel, --rootfs) at `make image`'s build/image/"
        for (what, path, fix) in [
            ("guest kernel", config.kernelPath, guestImage), ("guest root", Self.rootPath(config), guestImage),
            ("emulator", config.emulatorPath, "apt-get install qemu-system-x86"),
            ("virtiofsd", config.virtiofsdPath, "apt-get install qemu-system-common"),
        ]
        where !FileManager.default.isReadableFile(atPath: path) {
            throw PodvisorError(.failedPrecondition, "\(what) \(path) is missing: \(fix)")
        }
        // A broken image fails here, at start, rather than at every pod's boot.
        _ = try Self.root(config)
        do {
            try FileManager.default.createDirectory(atPath: "\(config.stateDirectory)/vm", withIntermediateDirectories: true)
        } catch {
            throw PodvisorError(.internalError, "cannot create state directory \(config.stateDirectory)", cause: error)
        }
        try StateDirectoryLock.acquire(config.stateDirectory)
        // QEMU (libvirt-qemu) must traverse into per-VM directories below.
        chmod(config.stateDirectory, 0o711)
        chmod("\(config.stateDirectory)/vm", 0o711)
        if config.libvirtURI.isEmpty { try Self.prepareEmbeddedDriver(root: "\(config.stateDirectory)/libvirt") }
        connection = try LibvirtConnection(uri: config.effectiveLibvirtURI)
    }

    /// The embedded driver reads `<root>/etc/qemu.conf`. Its default sends QEMU's output through virtlogd,
    /// a daemon we do not want to need; plain files do. QEMU runs unprivileged as libvirt-qemu (created by
    /// `make deps`); that is also the user whose access to /dev/kvm libvirt checks: where root can open
    /// /dev/kvm but QEMU cannot use it (PVM hosts), running QEMU as root makes libvirt re-probe QEMU's
    /// capabilities on every lookup (~4 s each).
    static func prepareEmbeddedDriver(root: String) throws(PodvisorError) {
        let settings = """
            # Written by podvisor for libvirt's embedded QEMU driver.
            stdio_handler = "file"
            user = "libvirt-qemu"
            group = "libvirt-qemu"
            # No xattrs remembering the kernel's and logs' owners: podvisor does not need them restored, and
            # stale ones (another boot, another host) make libvirt print warnings on every start.
            remember_owner = 0

            """
        do {
            try FileManager.default.createDirectory(atPath: "\(root)/etc", withIntermediateDirectories: true)
            let path = "\(root)/etc/qemu.conf"
            if readTextFile(path) != settings {
                try settings.write(toFile: path, atomically: true, encoding: .utf8)
            }
        } catch {
            throw PodvisorError(.internalError, "cannot prepare the embedded libvirt root \(root)", cause: error)
        }
    }

    /// Domain names of pod VMs carry this prefix, so a restart can tell ours from anything else on the host.
    public static let domainPrefix = "podvisor-"

    /// Boots a pod VM; `size` overrides the configured memory and vCPUs; `network` is its NIC;
    /// `placeProcesses` gets its processes before the guest's first instruction (the pod's cgroup); `kernel`
    /// and `root`: another guest image than the configured one (the kernel benchmark's).
    public func boot(
        id: String, transport: AgentTransportKind? = nil, size: VMSize? = nil, network: DomainSpec.NetworkInterface? = nil,
        placeProcesses: (@Sendable ([pid_t]) throws(PodvisorError) -> Void)? = nil, cpuShares: Int? = nil,
        kernel: String? = nil, root: GuestRoot? = nil
    ) async throws(PodvisorError) -> PodVM {
        var configuration = try vmConfiguration(id: id, transport: transport, size: size, kernel: kernel, root: root)
        configuration.networkInterface = network
        configuration.placeProcesses = placeProcesses
        configuration.cpuShares = cpuShares
        return try await PodVM.boot(configuration, on: connection, timeout: .seconds(config.bootTimeoutSeconds))
    }

    /// Takes over the running VM of pod `id` after a restart of this process; `transport` and `size` must be
    /// those it booted with.
    public func reattach(id: String, transport: AgentTransportKind, size: VMSize) async throws(PodvisorError) -> PodVM {
        try await PodVM.reattach(
            try configuration(id: id, transport: transport, size: size, kernel: nil, root: nil), on: connection, timeout: .seconds(10))
    }

    /// Names of the pod VM domains on this host (see domainPrefix), running or not, as pod ids.
    public func podVMIDs() throws(PodvisorError) -> [String] {
        try connection.domains().map(\.name).filter { $0.hasPrefix(Self.domainPrefix) }.map { String($0.dropFirst(Self.domainPrefix.count)) }
    }

    /// Destroys the domain of pod `id` and removes its run directory, without a VM object (orphans after a restart).
    public func destroyOrphan(id: String) throws(PodvisorError) {
        let configuration = try self.configuration(id: id, transport: nil, size: nil, kernel: nil, root: nil)
        if let vm = try? VirtualMachine.reattach(configuration, on: connection) {
            try vm.destroy()
        } else {
            if let domain = connection.lookupDomain(name: configuration.name) {
                try VirtualMachine.destroyDomain(domain, name: configuration.name)
            }
            try VirtualMachine.removeLeftovers(configuration)
        }
    }

    /// The configured root's file: the initramfs where one is set, the rootfs image otherwise.
    public var rootPath: String { Self.rootPath(config) }

    static func rootPath(_ config: PodvisorConfig) -> String { config.initrdPath.isEmpty ? config.rootfsPath : config.initrdPath }

    /// The configured root: the initramfs where one is set, otherwise the shared rootfs image, on an NVDIMM
    /// or a disk by its layout. Read at every boot: `make image` or an upgrade may replace the file.
    public func root() throws(PodvisorError) -> GuestRoot { try Self.root(config) }

    static func root(_ config: PodvisorConfig) throws(PodvisorError) -> GuestRoot {
        config.initrdPath.isEmpty ? try GuestRoot.image(config.rootfsPath) : .initramfs(config.initrdPath)
    }

    /// The VM a pod with this id boots; `transport`, `size`, `kernel` and `root` override the host's choice.
    public func vmConfiguration(
        id: String, transport: AgentTransportKind? = nil, size: VMSize? = nil, kernel: String? = nil, root: GuestRoot? = nil
    )
        throws(PodvisorError) -> VirtualMachine.Configuration
    {
        try configuration(id: id, transport: transport, size: size, kernel: kernel, root: root != nil ? root : self.root())
    }

    /// `root` nil: a VM that is only taken over or removed, so the image's layout is not read.
    private func configuration(
        id: String, transport override: AgentTransportKind?, size: VMSize?, kernel: String?, root: GuestRoot?
    )
        throws(PodvisorError) -> VirtualMachine.Configuration
    {
        if let override {
            _ = try HostTransports.probe(vsockBackendPath: config.vsockBackendPath).choose(override)
        }
        return VirtualMachine.Configuration(
            name: Self.domainPrefix + id, runDirectory: "\(config.stateDirectory)/vm/\(id)",
            accelerator: accelerator, transport: override ?? transport, memoryMiB: size?.memoryMiB ?? config.memoryMiB,
            vcpus: size?.vcpus ?? config.vcpus,
            kernel: kernel ?? config.kernelPath, root: root, emulator: config.emulatorPath,
            extraKernelParameters: config.kernelParameters, vsockBackendExecutable: config.vsockBackendPath,
            virtiofsdExecutable: config.virtiofsdPath, tcgCacheMiB: config.tcgCacheMiB > 0 ? config.tcgCacheMiB : nil)
    }
}

/// Memory and vCPUs of one pod VM.
public struct VMSize: Sendable, Equatable, Codable {
    public var memoryMiB: Int
    public var vcpus: Int

    public init(memoryMiB: Int, vcpus: Int) {
        self.memoryMiB = memoryMiB
        self.vcpus = vcpus
    }
}

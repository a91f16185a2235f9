import Foundation
import PodvisorCore
import Synchronization

/// One pod VM as the host sees it: the libvirt domain, its helper processes and its run directory.
/// `destroy()` removes all of them; the domain's death is observed through libvirt's lifecycle events.
public final class VirtualMachine: Sendable {
    public struct Configuration: Sendable {
        /// libvirt domain name; unique on the connection.
        public var name: String
        /// Per-VM directory for sockets, console log and helper logs; removed on destroy.
        public var runDirectory: String
        public var accelerator: Accelerator
        public var transport: AgentTransportKind
        public var memoryMiB: Int
        public var vcpus: Int
        public var kernel: String
        /// What the guest boots into; nil where a VM is only taken over or removed (VMHost.reattach,
        /// destroyOrphan), which never read it: a root image replaced or removed meanwhile must not stop those.
        public var root: GuestRoot?
        public var emulator: String
        public var extraKernelParameters: String
        public var vsockBackendExecutable: String
        /// nil: no shared directory (virtio-fs) for this VM.
        public var virtiofsdExecutable: String?
        /// The pod's network: a tap that exists before the VM starts.
        public var networkInterface: DomainSpec.NetworkInterface?
        /// TCG's translation cache bound (DomainSpec.tcgCacheMiB).
        public var tcgCacheMiB: Int?
        /// The VM's CPU weight (DomainSpec.cpuShares); `setCPUShares` changes it while the VM runs.
        public var cpuShares: Int?
        /// Given QEMU's and the helpers' processes (every one of each tree) before the guest runs a single
        /// instruction: a cgroup placed there then holds all the memory the VM will touch.
        public var placeProcesses: (@Sendable ([pid_t]) throws(PodvisorError) -> Void)?

        public init(
            name: String, runDirectory: String, accelerator: Accelerator, transport: AgentTransportKind,
            memoryMiB: Int, vcpus: Int, kernel: String, root: GuestRoot?, emulator: String,
            extraKernelParameters: String, vsockBackendExecutable: String, virtiofsdExecutable: String?, tcgCacheMiB: Int? = nil
        ) {
            self.name = name
            self.runDirectory = runDirectory
            self.accelerator = accelerator
            self.transport = transport
            self.memoryMiB = memoryMiB
            self.vcpus = vcpus
            self.kernel = kernel
            self.root = root
            self.emulator = emulator
            self.extraKernelParameters = extraKernelParameters
            self.vsockBackendExecutable = vsockBackendExecutable
            self.virtiofsdExecutable = virtiofsdExecutable
            self.tcgCacheMiB = tcgCacheMiB
        }
    }

    public enum State: Sendable, Equatable {
        case running
        case stopped(DomainLifecycleEvent.StopReason)
    }

    public let configuration: Configuration
    public let endpoint: AgentEndpoint
    let domain: LibvirtDomain
    private let backend: VsockBackend?
    private let share: SharedDirectory?
    private let state = Mutex<(state: State, waiters: [UUID: CheckedContinuation<State?, Never>], poweringOff: Bool)>(
        (.running, [:], false))

    public var name: String { configuration.name }
    /// The host directory the guest mounts through virtio-fs (tag `share`); mounts made below it appear there.
    public var sharedDirectory: String? { share?.path }
    public var consoleLog: String { "\(configuration.runDirectory)/console.log" }
    public var currentState: State { state.withLock { $0.state } }

    /// libvirt's default CPU weight of a VM: cgroup v1's cpu.shares default, or v2's cpu.weight.
    public static var defaultCPUShares: Int { HostCgroups.unified ? 100 : 1024 }

    /// Changes the running VM's CPU weight (Configuration.cpuShares).
    public func setCPUShares(_ shares: Int) throws(PodvisorError) { try domain.setCPUShares(shares) }

    /// The VM's host processes: QEMU and its helpers (what the pod's cgroup must hold).
    public var processIDs: [pid_t] {
        (ProcessExitWatch.qemuPID(domain: name).map { [$0] } ?? []) + [backend?.helper.pid, share?.virtiofsd.pid].compactMap { $0 }
    }

    /// Creates the run directory, starts helpers, then the domain. Anything started is undone on failure.
    public static func start(_ configuration: Configuration, on connection: LibvirtConnection) throws(PodvisorError) -> VirtualMachine {
        let run = configuration.runDirectory
        guard let root = configuration.root else { throw PodvisorError(.internalError, "VM \(configuration.name) has no root to boot") }
        let qemuGroup = getgrnam("libvirt-qemu")?.pointee.gr_gid
        let qemuUser = getpwnam("libvirt-qemu").map { DomainSpec.QEMUUser(uid: $0.pointee.pw_uid, gid: $0.pointee.pw_gid) }
        // Before domains said relabel='no' (DomainSpec.qemuUser), libvirt gave the kernel, initrd and disks
        // to QEMU's user, a read-only disk for good: a shared file left so goes back to root before a VM uses it.
        for path in [configuration.kernel, root.path] {
            var info = stat()
            if let qemuUser, stat(path, &info) == 0, info.st_uid == qemuUser.uid { chown(path, 0, 0) }
        }
        do {
            try FileManager.default.createDirectory(atPath: run, withIntermediateDirectories: true)
        } catch {
            throw PodvisorError(.internalError, "cannot create \(run)", cause: error)
        }
        // QEMU runs as libvirt-qemu: it must traverse to its sockets, but needs no listing.
        chmod(run, 0o711)
        var backend: VsockBackend?
        var share: SharedDirectory?
        do {
            if let virtiofsd = configuration.virtiofsdExecutable {
                share = try SharedDirectory.start(executable: virtiofsd, runDirectory: run, qemuGroup: qemuGroup)
            }
            let channel: DomainSpec.AgentChannel
            switch configuration.transport {
            case .vsock:
                channel = .vsock
            case .virtioSerial:
                channel = .virtioSerial(socket: "\(run)/agent.sock")
            case .hybridVsock:
                backend = try VsockBackend.start(
                    executable: configuration.vsockBackendExecutable, directory: "\(run)/vsock", qemuUser: qemuUser)
                channel = .hybridVsock(backendSocket: backend!.vhostSocket)
            }
            let spec = DomainSpec(
                name: configuration.name, uuid: UUID().uuidString.lowercased(), accelerator: configuration.accelerator,
                memoryMiB: configuration.memoryMiB, vcpus: configuration.vcpus, emulator: configuration.emulator,
                kernel: configuration.kernel, root: root,
                kernelCommandLine: DomainSpec.baseKernelCommandLine(configuration.accelerator, extra: configuration.extraKernelParameters),
                consoleLog: "\(run)/console.log", agentChannel: channel, sharedDirectorySocket: share?.socket,
                networkInterface: configuration.networkInterface, tcgCacheMiB: configuration.tcgCacheMiB,
                cpuShares: configuration.cpuShares, qemuUser: qemuUser)
            _ = ProcessExitWatch.adoptOrphans
            let domain = try connection.createDomain(xml: spec.xml, paused: configuration.placeProcesses != nil)
            let vm = try observed(configuration, domain: domain, backend: backend, share: share)
            if let place = configuration.placeProcesses {
                try place(processTrees(vm.processIDs))
                try domain.resume()
            }
            return vm
        } catch {
            if let domain = connection.lookupDomain(name: configuration.name) { try? domain.destroy() }
            backend?.helper.stop()
            share?.stop()
            try? removeUnmountedDirectory(run)
            throw error
        }
    }

    /// Takes over a VM that an earlier runtime process started and that still runs (after a crash or restart
    /// of the runtime): its domain, helpers and share outlive that process.
    public static func reattach(_ configuration: Configuration, on connection: LibvirtConnection) throws(PodvisorError) -> VirtualMachine {
        guard let domain = connection.lookupDomain(name: configuration.name), domain.isActive else {
            throw PodvisorError(.notFound, "VM \(configuration.name) is not running")
        }
        let run = configuration.runDirectory
        let share = configuration.virtiofsdExecutable == nil ? nil : try SharedDirectory.adopt(runDirectory: run)
        let backend = configuration.transport == .hybridVsock ? try VsockBackend.adopt(directory: "\(run)/vsock") : nil
        return try observed(configuration, domain: domain, backend: backend, share: share)
    }

    /// The VM object of a running domain, with its death observed through libvirt events and QEMU's pidfd.
    private static func observed(
        _ configuration: Configuration, domain: LibvirtDomain, backend: VsockBackend?, share: SharedDirectory?
    ) throws(PodvisorError) -> VirtualMachine {
        let endpoint: AgentEndpoint
        switch configuration.transport {
        case .vsock: endpoint = .vsock(cid: try Self.guestCID(in: domain.liveXML()))
        case .virtioSerial: endpoint = .virtioSerial(socket: "\(configuration.runDirectory)/agent.sock")
        case .hybridVsock: endpoint = .hybridVsock(hostSocket: backend!.hostSocket)
        }
        let vm = VirtualMachine(configuration: configuration, domain: domain, endpoint: endpoint, backend: backend, share: share)
        domain.connection.observeLifecycle(domain: configuration.name) { [weak vm] event in vm?.handle(event) }
        if let pid = ProcessExitWatch.qemuPID(domain: configuration.name) {
            ProcessExitWatch.watch(pid: pid) { [weak vm] in vm?.qemuExited() }
        }
        // The domain may have died between creation and subscription.
        if !domain.isActive { vm.handle(.stopped(.failed)) }
        return vm
    }

    private init(
        configuration: Configuration, domain: LibvirtDomain, endpoint: AgentEndpoint, backend: VsockBackend?,
        share: SharedDirectory?
    ) {
        self.configuration = configuration
        self.domain = domain
        self.endpoint = endpoint
        self.backend = backend
        self.share = share
    }

    /// The CID libvirt assigned: `<cid auto='yes' address='N'/>` in the live XML.
    static func guestCID(in xml: String) throws(PodvisorError) -> UInt32 {
        guard let range = xml.range(of: #"<cid auto='yes' address='(\d+)'"#, options: .regularExpression),
            let cid = UInt32(xml[range].filter(\.isNumber))
        else { throw PodvisorError(.internalError, "libvirt assigned no vsock CID") }
        return cid
    }

    /// The guest was asked to power off: QEMU exiting now is a clean shutdown, not a failure.
    public func expectPowerOff() {
        state.withLock { $0.poweringOff = true }
    }

    private func qemuExited() {
        handle(.stopped(state.withLock { $0.poweringOff } ? .shutdown : .failed))
    }

    private func handle(_ event: DomainLifecycleEvent) {
        guard case .stopped(let reason) = event else { return }
        let waiters = state.withLock { s -> [CheckedContinuation<State?, Never>] in
            guard s.state == .running else { return [] }
            s.state = .stopped(reason)
            defer { s.waiters = [:] }
            return Array(s.waiters.values)
        }
        waiters.forEach { $0.resume(returning: .stopped(reason)) }
    }

    /// Returns once the domain has stopped, however that happened; nil if the task is cancelled first.
    public func waitUntilStopped() async -> State? {
        let id = UUID()
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let current = state.withLock { s -> State? in
                    guard s.state == .running else { return s.state }
                    if Task.isCancelled { return nil }
                    s.waiters[id] = continuation
                    return .running
                }
                if current != .running { continuation.resume(returning: current) }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?.resume(returning: nil)
        }
    }

    /// Waits up to `timeout` for the domain to stop; nil if it still runs.
    public func waitUntilStopped(timeout: Duration) async -> State? {
        await withTaskGroup(of: State?.self) { group in
            group.addTask { await self.waitUntilStopped() }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            let first = await group.next()!
            group.cancelAll()
            return first
        }
    }

    // MARK: the share's mounts, in the VM's mount namespace (SharedDirectory)

    /// Binds `source` at `<share>/<relative>`; read-only ones are read-only, idmapped ones (a pod's user
    /// namespace) shifted, before the guest can see them.
    public func bind(
        _ source: String, intoShareAt relative: String, _ mode: BindMode = .readWrite, idmap: UserNamespaceMapping? = nil
    ) throws(PodvisorError) {
        let share = try requireShare()
        try share.bind(source, at: "\(share.path)/\(relative)", mode, idmap: idmap)
    }

    /// An overlay of `lower` (top first) at `<share>/<relative>`, writes going to `upper`; with `idmap` the
    /// image's files appear owned by the pod's ids (`SharedDirectory.mountOverlay`).
    public func mountOverlay(
        lower: [String], upper: String, work: String, intoShareAt relative: String, idmap: UserNamespaceMapping? = nil
    ) throws(PodvisorError) {
        let share = try requireShare()
        try share.mountOverlay(lower: lower, upper: upper, work: work, at: "\(share.path)/\(relative)", idmap: idmap)
    }

    /// Detaches what is mounted for `<share>/<relative>` (its rootfs and volumes, as `PodVM` places them),
    /// then removes that directory. Its mount points are plain directories on the host: removing them never
    /// reaches into a mount, and the kernel detaches anything left on them in the VM's namespace.
    public func removeFromShare(_ relative: String, mountPoints: [String]) throws(PodvisorError) {
        let share = try requireShare()
        let directory = "\(share.path)/\(relative)"
        share.detach(mountPoints.map { "\(directory)/\($0)" })
        try removeUnmountedDirectory(directory)
    }

    private func requireShare() throws(PodvisorError) -> SharedDirectory {
        guard let share else { throw PodvisorError(.failedPrecondition, "VM \(name) has no shared directory") }
        return share
    }

    /// What a VM leaves when its runtime died while starting or stopping it (the domain gone or never
    /// made): helpers still running from their pid files, the share's mounts, the run directory. Idempotent.
    public static func removeLeftovers(_ configuration: Configuration) throws(PodvisorError) {
        let run = configuration.runDirectory
        for (name, directory) in [("vhost-device-vsock", "\(run)/vsock"), ("virtiofsd", "\(run)/fs")] {
            (try? HelperProcess.adopt(name, directory: directory))?.stop()
        }
        SharedDirectory.removePidFile(socket: SharedDirectory.socketPath(run))
        MachineCgroups.remove(domain: configuration.name)
        // The pin of the VM's mount namespace (whose mounts go with it).
        detachMounts(under: run)
        try removeUnmountedDirectory(run)
    }

    /// Destroys the domain while libvirt calls it active. A runtime killed while libvirt was starting it leaves
    /// a domain that a restarted libvirt calls active but cannot destroy ("no error"): with no QEMU of it
    /// running there is nothing to destroy, and its helpers and directory must still go.
    public static func destroyDomain(_ domain: LibvirtDomain, name: String) throws(PodvisorError) {
        guard domain.isActive else { return }
        do {
            try domain.destroy()
        } catch {
            guard ProcessExitWatch.qemuPID(domain: name) == nil else { throw error }
        }
    }

    /// Removes every trace: domain (QEMU), helpers, mounts, sockets, logs and the run directory. Idempotent.
    public func destroy() throws(PodvisorError) {
        try Self.destroyDomain(domain, name: name)
        handle(.stopped(.destroyed))
        domain.connection.stopObservingLifecycle(domain: name)
        backend?.helper.stop()
        share?.stop()
        MachineCgroups.remove(domain: name)
        try removeUnmountedDirectory(configuration.runDirectory)
    }
}

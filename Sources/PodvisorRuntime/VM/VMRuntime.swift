import Foundation
import Logging
import PodvisorCore
import PodvisorNetwork
import PodvisorVMM
import Synchronization

/// Pod sandboxes on VMs of this host. Everything a sandbox has on the host is recorded under
/// `<state>/sandboxes/<id>/` before it is created, so a restarted runtime can take it back or remove it:
///
/// ```
/// <state>/sandboxes/<id>/sandbox.json   what was created (transport, size, host ports on the network)
/// <state>/sandboxes/<id>/{hostname,resolv.conf,hosts}   the pod's files, bound into each container
/// <state>/containers/<id>/{upper,work,rootfs}           a container's overlay rootfs
/// <state>/vm/<vm id>/                                   the VM's run directory (VirtualMachine)
/// <state>/network/<id>.json                             the CNI attachment (PodNetworks)
/// <state>/pool/rootfs                                    the empty rootfs of pool VMs' rehearsal (VMPool)
/// <state>/pool/members/<id>                             a pre-booted VM's mark, until its sandbox is removed
/// /run/netns/podvisor-<vm id>, tap pvt<…>               the pod's network namespace and the VM's NIC
/// ```
public final class VMRuntime: SandboxRuntime {
    /// What a sandbox got, written before its VM boots.
    struct SandboxState: Codable, Sendable {
        var id: String
        var transport: AgentTransportKind
        var size: VMSize
        /// Host ports are served by portmap on the pod network.
        var portMappingsByNetwork = false
        /// kubelet's pod cgroup, which holds the VM's processes (empty: podvisord's own).
        var cgroupParent = ""
        /// The pod's user namespace: its containers' files are idmapped with it.
        var userNamespace: UserNamespaceMapping?
    }

    static let podFiles = ["hostname", "resolv.conf", "hosts"]

    package let host: VMHost
    let networks: PodNetworks
    /// Pre-booted VMs, once podvisord started them.
    private let pool = Mutex<VMPool?>(nil)
    let log: Logger
    /// The runtime's own directory and the image store, resolved: no container may mount them.
    private let protectedPaths: [String]

    public init(host: VMHost, imageRoot: String, logger: Logger) throws(PodvisorError) {
        self.host = host
        networks = PodNetworks(config: host.config)
        log = logger
        for directory in ["sandboxes", "containers"] { try makeDirectory("\(host.config.stateDirectory)/\(directory)") }
        protectedPaths = [host.config.stateDirectory, imageRoot].map { HostPathGuard.resolve($0) }
    }

    private var state: String { host.config.stateDirectory }
    func sandboxDirectory(_ id: String) -> String { "\(state)/sandboxes/\(id)" }
    func containerDirectory(_ id: String) -> String { "\(state)/containers/\(id)" }
    private func statePath(_ id: String) -> String { "\(sandboxDirectory(id))/sandbox.json" }

    public var hostInfo: [String: String] {
        let counts = poolCounts
        return [
            "hypervisor": host.accelerator.rawValue, "transport": host.transport.rawValue,
            "libvirtURI": host.config.effectiveLibvirtURI, "stateDir": state, "kernel": host.config.kernelPath,
            "root": host.rootPath, "warning": host.warning ?? "",
            "pool": "\(counts.ready) ready, \(counts.booting) booting of \(host.config.poolSize)",
        ]
    }

    // MARK: the pool

    public func startPool() throws(PodvisorError) {
        guard host.config.poolSize > 0 else { return }
        let started = try VMPool(host: host, networks: networks, log: log)
        pool.withLock { $0 = started }
        log.info("booting a pool of \(started.capacity) VMs of \(started.size.memoryMiB) MiB, \(started.size.vcpus) vCPUs")
        started.refill()
    }

    public func stopPool() async {
        await pool.withLock { $0 }?.stop()
    }

    public func claimPooledSandbox(size: VMSize) -> String? {
        pool.withLock { $0 }?.claim(size)
    }

    public var poolCounts: (ready: Int, booting: Int) {
        pool.withLock { $0 }?.counts ?? (0, 0)
    }

    public func readiness() -> (ready: Bool, message: String) {
        (try? host.connection.domains()) != nil ? (true, "") : (false, "the libvirt connection does not answer")
    }

    public func networkReadiness() -> (ready: Bool, reason: String, message: String) {
        let status = networks.cni.status()
        return (status.ready, status.reason, status.message)
    }

    // MARK: sandboxes

    /// The record and the netns first; then at once CNI ADD and the VM (booted on a tap of its own with a MAC
    /// of its own, or pre-booted: `claimPooledSandbox`), the tap moved into the netns while the guest makes the
    /// pod's namespaces; then at once the tap's mirror of eth0 and the guest's eth0, which takes the MAC and
    /// MTU CNI gave. Anything done is undone on failure. A pre-booted VM brings its netns, with its tap in it;
    /// it gets the CPU weight of any VM and moves into the pod's cgroup; the pool refills once the pod has had
    /// time to start (`VMPool.refillAfterClaim`), not while it starts.
    public func createSandbox(_ spec: SandboxSpec) async throws(PodvisorError) -> any PodSandbox {
        let pool = pool.withLock { $0 }
        let pooled = pool?.take(spec.id)
        defer { if pooled != nil { pool?.refillAfterClaim() } }
        var record = SandboxState(
            id: spec.id, transport: host.transport, size: spec.size, cgroupParent: spec.cgroupParent, userNamespace: spec.userNamespace)
        log.debug("creating sandbox \(spec.id)", metadata: ["netns": "\(PodNetworks.namespace(spec.id).path)", "tap": "\(PodNetworks.tap(spec.id))"])
        var steps = StepTimes()
        do throws(PodvisorError) {
            try makeDirectory(sandboxDirectory(spec.id))
            try AtomicFile.write(json: record, to: statePath(spec.id))
            let cgroup = spec.cgroupParent.isEmpty ? nil : try PodCgroup(parent: spec.cgroupParent)
            let bootMAC = pooled?.mac ?? PodNetworks.bootMAC()
            if let pooled {
                try pooled.pod.vm.setCPUShares(VirtualMachine.defaultCPUShares)
                try cgroup?.placement(pooled.pod.vm.processIDs)
            } else {
                try await TapPlumbing.createTap(name: PodNetworks.tap(spec.id))
                try networks.createNamespace(spec.id)
            }
            steps.lap(pooled == nil ? "record, tap and netns" : "claim")
            let (networks, host) = (networks, host)
            let (attached, pod) = try await concurrently(
                { () async throws(PodvisorError) in try await timed { () async throws(PodvisorError) in try await networks.attach(spec) } },
                { () async throws(PodvisorError) -> PodVM in
                    let pod =
                        if let pooled { pooled.pod } else {
                            try await host.boot(
                                id: spec.vmID, transport: host.transport, size: spec.size,
                                network: PodNetworks.bootInterface(spec.id, mac: bootMAC), placeProcesses: cgroup?.placement)
                        }
                    // QEMU holds the tap: it moves into the netns while the guest makes the pod's namespaces (a
                    // pre-booted VM's tap is there already).
                    _ = try await concurrently(
                        { () async throws(PodvisorError) in if pooled == nil { try await networks.moveTap(spec.id) } },
                        { () async throws(PodvisorError) in
                            try await pod.agent.createSandbox(hostname: spec.hostname, sysctls: spec.sysctls, userNamespace: spec.userNamespace)
                        })
                    return pod
                })
            steps.lap(
                pooled == nil
                    ? "network, VM boot and the guest's sandbox (CNI ADD \(attached.took.milliseconds) ms; the VM's domain started in "
                        + "\(pod.timings.domainStart.milliseconds) ms, its agent ready in \(pod.timings.ready.milliseconds) ms)"
                    : "network and the guest's sandbox (CNI ADD \(attached.took.milliseconds) ms)")
            let network = attached.value
            record.portMappingsByNetwork = network.mappedPorts
            try AtomicFile.write(json: record, to: statePath(spec.id))
            try writePodFiles(spec, ips: network.pod.ips)
            let sandbox = VMSandbox(id: spec.id, pod: pod, runtime: self, record: record, ips: network.pod.ips, pooled: pooled != nil)
            do throws(PodvisorError) {
                let (mirror, guest) = try await concurrently(
                    { () async throws(PodvisorError) in
                        try await timed { () async throws(PodvisorError) in try await networks.connect(spec.id, mtu: network.pod.mtu) }.took
                    },
                    { () async throws(PodvisorError) in
                        try await timed { () async throws(PodvisorError) in
                            try await pod.agent.configureNetwork(network.pod.agentMessage(bootMAC: bootMAC))
                        }.took
                    })
                steps.lap("tap and guest network (the tap's mirror \(mirror.milliseconds) ms, the guest's \(guest.milliseconds) ms)")
            } catch {
                try? await sandbox.destroy()
                throw error
            }
            log.debug("sandbox \(spec.id) created: \(steps)")
            return sandbox
        } catch {
            do throws(PodvisorError) { try await removeSandbox(id: spec.id) } catch {
                log.error("sandbox \(spec.id): cleaning up after a failed start: \(error)")
            }
            throw error
        }
    }

    public func reattachSandbox(id: String) async throws(PodvisorError) -> any PodSandbox {
        let record: SandboxState
        do {
            guard let data = readFile(statePath(id)) else { throw PodvisorError(.notFound, "cannot read \(statePath(id))") }
            record = try JSONDecoder().decode(SandboxState.self, from: data)
        } catch {
            throw PodvisorError(.notFound, "sandbox \(id) has no runtime record", cause: error)
        }
        let pod = try await host.reattach(id: SandboxSpec.vmID(id), transport: record.transport, size: record.size)
        let ips = (try? networks.interface(id).ips) ?? []
        return VMSandbox(id: id, pod: pod, runtime: self, record: record, ips: ips)
    }

    /// The VM (and what is left of it), the network, the files. Every part runs even when another failed.
    public func removeSandbox(id: String) async throws(PodvisorError) {
        var failure: PodvisorError?
        do throws(PodvisorError) { try host.destroyOrphan(id: SandboxSpec.vmID(id)) } catch { failure = error }
        do throws(PodvisorError) { try await networks.detach(id) } catch { failure = failure ?? error }
        do throws(PodvisorError) { try removeUnmountedDirectory(sandboxDirectory(id)) } catch { failure = failure ?? error }
        if failure == nil { VMPool.forget(id, host.config) }
        if let failure { throw failure }
    }

    public func sandboxIDs() -> [String] {
        let recorded = Set(
            ((try? FileManager.default.contentsOfDirectory(atPath: "\(state)/sandboxes")) ?? []) + networks.attachedSandboxIDs()
                + VMPool.memberIDs(host.config))
        let vmIDs = Set(recorded.map(SandboxSpec.vmID))
        // A VM whose record is gone (or was never written) is known by its VM id only.
        return Array(recorded) + ((try? host.podVMIDs()) ?? []).filter { !vmIDs.contains($0) }
    }

    /// /etc/hostname, /etc/resolv.conf and /etc/hosts for the pod's containers. Without a DNS config the
    /// host's resolv.conf is used, as containerd does.
    private func writePodFiles(_ spec: SandboxSpec, ips: [String]) throws(PodvisorError) {
        var resolv = ""
        if let dns = spec.dns {
            resolv += dns.servers.map { "nameserver \($0)\n" }.joined()
            if !dns.searches.isEmpty { resolv += "search \(dns.searches.joined(separator: " "))\n" }
            if !dns.options.isEmpty { resolv += "options \(dns.options.joined(separator: " "))\n" }
        } else {
            resolv = readTextFile("/etc/resolv.conf") ?? ""
        }
        let files = [
            "hostname": "\(spec.hostname)\n",
            "resolv.conf": resolv,
            "hosts": "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
                + (ips.isEmpty ? ["127.0.1.1"] : ips).map { "\($0)\t\(spec.hostname)\n" }.joined(),
        ]
        for (file, text) in files {
            try AtomicFile.write(Data(text.utf8), to: "\(sandboxDirectory(spec.id))/\(file)", mode: 0o644)
        }
    }

    // MARK: containers

    public func removeContainer(id: String) throws(PodvisorError) {
        try removeUnmountedDirectory(containerDirectory(id))
    }

    public func containerIDs() -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: "\(state)/containers")) ?? []
    }

    public func writableLayer(containerID: String) -> String { "\(containerDirectory(containerID))/upper" }

    public var writableLayersRoot: String { "\(state)/containers" }

    /// A volume's host path, created as a directory when missing (as containerd does), refused when it
    /// resolves to the runtime's own state, into it, or to a directory above it.
    func guardHostPath(_ path: String) throws(PodvisorError) -> HostPathGuard.Opened {
        try HostPathGuard.open(path, protecting: protectedPaths)
    }
}

import Foundation
import PodvisorCore

/// What a pod sandbox is asked to be: the CRI server fills it from RunPodSandbox.
public struct SandboxSpec: Sendable {
    /// The CRI sandbox id (64 hex digits); VM and device names use its first 16.
    public var id: String
    /// kubelet's pod name, namespace and uid: CNI plugins get them as K8S_POD_* arguments.
    public var name: String
    public var namespace: String
    public var uid: String
    public var hostname: String
    /// nil: the host's /etc/resolv.conf, as containerd does.
    public var dns: DNSConfig?
    /// Namespaced sysctls of the pod (kernel.shm*, net.*, …).
    public var sysctls: [String: String] = [:]
    public var size: VMSize
    /// kubelet's pod cgroup on the host (LinuxPodSandboxConfig.cgroup_parent); empty: podvisord's own.
    public var cgroupParent = ""
    /// The pod's user namespace in the guest (userns mode POD); nil: the guest's own.
    public var userNamespace: UserNamespaceMapping?
    public var portMappings: [PortMapping] = []
    /// Traffic shaping in bits per second (kubelet's kubernetes.io/ingress-bandwidth and egress-bandwidth
    /// annotations), through the CNI bandwidth plugin.
    public var bandwidth: (ingress: UInt64?, egress: UInt64?) = (nil, nil)

    public init(id: String, name: String, namespace: String, uid: String, hostname: String, size: VMSize) {
        self.id = id
        self.name = name
        self.namespace = namespace
        self.uid = uid
        self.hostname = hostname
        self.size = size
    }

    /// Domain, run directory and device names derive from this, kept short: unix socket paths below the
    /// run directory must stay under 108 bytes.
    public var vmID: String { Self.vmID(id) }
    public static func vmID(_ sandboxID: String) -> String { String(sandboxID.prefix(16)) }
}

public struct DNSConfig: Sendable, Equatable, Codable {
    public var servers: [String]
    public var searches: [String]
    public var options: [String]

    public init(servers: [String], searches: [String], options: [String]) {
        self.servers = servers
        self.searches = searches
        self.options = options
    }
}

public struct PortMapping: Sendable, Equatable, Codable {
    public enum TransportProtocol: String, Sendable, Codable {
        case tcp, udp, sctp
    }

    public var hostPort: UInt16
    public var containerPort: UInt16
    public var `protocol`: TransportProtocol
    /// Empty: every host address.
    public var hostIP: String

    public init(hostPort: UInt16, containerPort: UInt16, protocol: TransportProtocol, hostIP: String = "") {
        self.hostPort = hostPort
        self.containerPort = containerPort
        self.protocol = `protocol`
        self.hostIP = hostIP
    }
}

/// What `crictl inspectp` and the CLI show about a live sandbox.
public struct SandboxInfo: Sendable {
    public var domain: String
    /// From the boot request until the agent answered; zero for a sandbox taken over after a restart.
    public var bootToReady: Duration
    public var agentVersion: String
    public var guestKernel: String
    public var sharedDirectory: String
    public var memoryMiB: Int
    public var vcpus: Int
    public var transport: String
    public var hypervisor: String
    /// The pod's addresses on the pod network, IPv4 first.
    public var ips: [String] = []
    /// Host ports are served by the CNI portmap plugin (else the CRI server relays them itself).
    public var portMappingsByNetwork = false
    /// The guest's own clock (uptime) when its PID 1 started and when the agent began serving; zero when unknown.
    public var guestInitAt: Duration = .zero
    public var guestReadyAt: Duration = .zero
    /// The VM was booted ahead, in the pool (`bootToReady` is that boot's, not this pod's).
    public var pooled = false

    public init(
        domain: String, bootToReady: Duration, agentVersion: String, guestKernel: String, sharedDirectory: String,
        memoryMiB: Int, vcpus: Int, transport: String, hypervisor: String
    ) {
        self.domain = domain
        self.bootToReady = bootToReady
        self.agentVersion = agentVersion
        self.guestKernel = guestKernel
        self.sharedDirectory = sharedDirectory
        self.memoryMiB = memoryMiB
        self.vcpus = vcpus
        self.transport = transport
        self.hypervisor = hypervisor
    }
}

/// Why a sandbox's VM stopped without being asked to.
public struct SandboxStop: Sendable, Equatable {
    public var reason: String
    /// The kernel killed it for the memory limit of the pod's cgroup.
    public var oomKilled: Bool

    public init(reason: String, oomKilled: Bool = false) {
        self.reason = reason
        self.oomKilled = oomKilled
    }
}

/// A pod VM's processes on the host: QEMU and its helpers (virtiofsd, the vsock backend).
public struct SandboxHostUsage: Sendable, Equatable {
    /// Proportional set size: what the VM adds to the host's memory, shared pages counted once.
    public var pssBytes: Int
    public var cpuSeconds: Double

    public init(pssBytes: Int, cpuSeconds: Double) {
        self.pssBytes = pssBytes
        self.cpuSeconds = cpuSeconds
    }
}

public struct SandboxHealth: Sendable {
    public var agentRSSBytes: UInt64
    public var guestMemAvailableBytes: UInt64
    /// The root as the guest kernel mounted it ("<device> <type> <options>": dax=always on an NVDIMM).
    public var bootRoot: String

    public init(agentRSSBytes: UInt64, guestMemAvailableBytes: UInt64, bootRoot: String) {
        self.agentRSSBytes = agentRSSBytes
        self.guestMemAvailableBytes = guestMemAvailableBytes
        self.bootRoot = bootRoot
    }
}

/// One pod's host side, live: its VM, the agent in it, the pod's files, containers' rootfs and volumes.
/// The CRI server reaches VMs only through this protocol (and `SandboxRuntime`); handler tests put a fake
/// behind it.
public protocol PodSandbox: AnyObject, Sendable {
    var id: String { get }
    var info: SandboxInfo { get }
    /// The guest's own figures, asked of its agent.
    func health() async throws(PodvisorError) -> SandboxHealth

    /// Places the rootfs (an overlay of the layers) and volumes, then has the agent create the container,
    /// held before exec; answers who it will run as. On failure nothing of it is left.
    @discardableResult
    func createContainer(_ spec: ContainerSpec) async throws(PodvisorError) -> ContainerIdentity
    func startContainer(_ id: String) async throws(PodvisorError)
    /// Kills what still runs, removes it from the guest and removes its host side. Idempotent.
    func removeContainer(_ id: String) async throws(PodvisorError)
    func updateResources(_ id: String, _ limits: ResourceLimits) async throws(PodvisorError)
    func usage(_ id: String) async throws(PodvisorError) -> ContainerUsage

    /// Starts `process` as a new exec of a running container.
    func exec(_ process: ProcessSpec, as ref: ProcessRef) async throws(PodvisorError)
    func signal(_ ref: ProcessRef, _ signal: Int32) async throws(PodvisorError)
    /// `signal`, then SIGKILL once `grace` has passed; returns the exit.
    func stop(_ ref: ProcessRef, grace: Duration, signal: Int32) async throws(PodvisorError) -> ProcessExit
    func wait(_ ref: ProcessRef) async throws(PodvisorError) -> ProcessExit
    /// Reads one stream to its end, handing each chunk to `consume` before acknowledging it.
    func readOutput(_ ref: ProcessRef, stderr: Bool, _ consume: (Data) async -> Void) async throws(PodvisorError)
    func writeStdin(_ ref: ProcessRef, _ data: Data) async throws(PodvisorError)
    func closeStdin(_ ref: ProcessRef) async throws(PodvisorError)
    func resizeTerminal(_ ref: ProcessRef, rows: UInt32, columns: UInt32) async throws(PodvisorError)
    /// Lets the guest forget an exec that has exited and whose output was read.
    func release(_ ref: ProcessRef) async throws(PodvisorError)

    /// A TCP connection to `port` inside the pod (PortForward, host ports); answers its id.
    func portConnect(_ port: UInt16) async throws(PodvisorError) -> String
    /// nil once the pod's side has closed.
    func portRead(_ connection: String) async throws(PodvisorError) -> Data?
    func portWrite(_ connection: String, _ data: Data, closeWrite: Bool) async throws(PodvisorError)
    func portClose(_ connection: String) async throws(PodvisorError)

    /// Returns once the VM has stopped, however that happened, with the reason.
    func waitUntilStopped() async -> SandboxStop
    /// Powers the guest off (destroying the VM after `timeout`) and removes the sandbox's host side but
    /// its containers' writable layers. Returns true when the guest powered itself off.
    func stop(timeout: Duration) async throws(PodvisorError) -> Bool
    /// The same without asking the guest: its VM died, or the sandbox cannot be used.
    func destroy() async throws(PodvisorError)
}

extension PodSandbox {
    /// Everything the process writes to one stream, until it closes.
    public func readAllOutput(_ ref: ProcessRef, stderr: Bool = false) async throws(PodvisorError) -> Data {
        var all = Data()
        try await readOutput(ref, stderr: stderr) { all.append($0) }
        return all
    }
}

/// The host that pod sandboxes live on.
public protocol SandboxRuntime: Sendable {
    /// Boots the pod's VM with its host side; nothing is left when it fails.
    func createSandbox(_ spec: SandboxSpec) async throws(PodvisorError) -> any PodSandbox
    /// After a restart of this process: the running sandbox is taken back.
    func reattachSandbox(id: String) async throws(PodvisorError) -> any PodSandbox
    /// Every host trace of a sandbox that is not live in this process (its VM if still running, its files).
    /// Idempotent.
    func removeSandbox(id: String) async throws(PodvisorError)
    /// Ids of the sandboxes the host has any trace of (recovery compares them with the CRI's records).
    func sandboxIDs() -> [String]

    /// A container's writable layer and rootfs mount, once its sandbox is gone. Idempotent.
    func removeContainer(id: String) throws(PodvisorError)
    /// Ids of the containers whose host side exists.
    func containerIDs() -> [String]
    /// The container's writable (upper) directory, for its filesystem usage.
    func writableLayer(containerID: String) -> String
    /// Where every container's writable layer lives (ImageFsInfo's container filesystem).
    var writableLayersRoot: String { get }

    /// Whether the VM host answers (the RuntimeReady condition), and why not.
    func readiness() -> (ready: Bool, message: String)
    /// The NetworkReady condition: whether pods can get the node's pod network, and what is missing.
    func networkReadiness() -> (ready: Bool, reason: String, message: String)
    /// What `crictl info` shows about the host.
    var hostInfo: [String: String] { get }
    /// What each pod VM costs the host right now, by VM id (the first 16 hex digits of the sandbox id).
    func hostUsage() -> [String: SandboxHostUsage]

    /// Pre-booted sandboxes (`[vm] pool_size`): podvisord starts them once recovery is done, and stops them
    /// when it shuts down. Refused when the host cannot hold them.
    func startPool() throws(PodvisorError)
    func stopPool() async
    /// The id of a pre-booted sandbox that fits a pod of `size`, set aside for the next `createSandbox` with
    /// that id; nil: the pod's sandbox is made from nothing.
    func claimPooledSandbox(size: VMSize) -> String?
    /// Pre-booted sandboxes waiting, and booting.
    var poolCounts: (ready: Int, booting: Int) { get }
}

/// Runtimes without a pool.
extension SandboxRuntime {
    public func startPool() throws(PodvisorError) {}
    public func stopPool() async {}
    public func claimPooledSandbox(size: VMSize) -> String? { nil }
    public var poolCounts: (ready: Int, booting: Int) { (0, 0) }
}

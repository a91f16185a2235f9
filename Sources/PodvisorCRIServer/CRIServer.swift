import Foundation
import GRPCCore
import Logging
import PodvisorCRI
import PodvisorCore
import PodvisorImages
import PodvisorRuntime
import PodvisorStreaming
import Synchronization

/// The state behind both CRI services: the sandbox runtime, the image store, one record store per object
/// kind, the live sandboxes and container logs, and the event fan-out. Records under `<state_dir>/cri/`
/// survive a crash; `open` takes the sandboxes that outlived the previous process back (see Recovery.swift).
public final class CRIServer: Sendable {
    public static let runtimeName = "podvisor"
    public static let runtimeVersion = "0.1.0"

    public let config: PodvisorConfig
    let runtime: any SandboxRuntime
    let images: ImageStore
    let sandboxes: RecordStore<SandboxRecord>
    let containers: RecordStore<ContainerRecord>
    let locks = OperationLocks()
    let events = ContainerEvents()
    /// Live sandboxes by id, while they are ready.
    let pods = Mutex<[String: any PodSandbox]>([:])
    /// Log files of containers that run, by container id.
    let logs = Mutex<[String: ContainerLog]>([:])
    /// Attach sessions' share of containers' output.
    let attachments = ContainerAttachments()
    /// Serves the URLs Exec, Attach and PortForward answer with.
    let streaming: StreamingServer
    /// Pods' hostPort listeners.
    let hostPorts = HostPorts()
    /// Name keys taken by objects being created (records hold the rest): two concurrent requests for the
    /// same name must not both succeed.
    let reservedNames = Mutex<Set<String>>([])
    /// containerd's CRI for pods that share the host's namespaces (`[host_pods]`), when configured.
    let hostPods: HostPods?
    private let hostEvents: Task<Void, Never>?
    /// Series read when Prometheus scrapes (sandboxes and containers by state, each pod VM's host cost).
    let scrapeGauges = ScrapeGauges()
    /// Gives the host back the heap a removed pod's records, logs and connections used.
    let heapTrimmer = HeapTrimmer()
    /// UpdateRuntimeConfig's pod CIDR, reported back by Status.
    let podCIDR = Mutex<String>("")
    let log: Logger

    /// The CRI over pod VMs of this host (podvisord, the CLI standalone).
    public static func open(config: PodvisorConfig, logger: Logger) async throws(PodvisorError) -> CRIServer {
        let host = try VMHost(config: config)
        if let warning = host.warning { logger.warning("\(warning)") }
        return try await open(
            config: config, runtime: try VMRuntime(host: host, imageRoot: config.effectiveImageRoot, logger: logger), logger: logger)
    }

    /// The CRI over any sandbox runtime (benchmarks bring their own VM host; handler tests a fake).
    public static func open(config: PodvisorConfig, runtime: any SandboxRuntime, logger: Logger) async throws(PodvisorError) -> CRIServer {
        let streaming: StreamingServer
        do { streaming = try await StreamingServer.start(host: config.streamingAddress, port: config.streamingPort) } catch {
            throw PodvisorError(.unavailable, "streaming server on \(config.streamingAddress):\(config.streamingPort): \(error)")
        }
        let server = try CRIServer(config: config, runtime: runtime, streaming: streaming, logger: logger)
        await server.recover()
        return server
    }

    private init(config: PodvisorConfig, runtime: any SandboxRuntime, streaming: StreamingServer, logger: Logger) throws(PodvisorError) {
        self.config = config
        self.runtime = runtime
        self.streaming = streaming
        log = logger
        var options = RegistryClient.Options()
        options.hosts = RegistryHosts(directory: config.registryHostsDirectory, insecureRegistries: Set(config.insecureRegistries))
        images = try ImageStore(root: config.effectiveImageRoot, registry: RegistryClient(options: options))
        sandboxes = try RecordStore(directory: "\(config.stateDirectory)/cri/records/sandboxes", what: "pod sandbox")
        containers = try RecordStore(directory: "\(config.stateDirectory)/cri/records/containers", what: "container")
        hostPods =
            config.hostPodsEndpoint.isEmpty
            ? nil : try HostPods(endpoint: config.hostPodsEndpoint, handlers: config.hostPodsHandlers, stateDirectory: config.stateDirectory)
        hostEvents = hostPods?.relayEvents(into: events, log: log)
    }

    deinit { hostEvents?.cancel() }

    /// What every transport serving this server puts in front of the handlers: one log line per call, and
    /// host pods' calls going to containerd.
    public var interceptors: [any ServerInterceptor] {
        [CallLog(log: log)] + (hostPods.map { [HostPodForwarding(server: self, hostPods: $0)] } ?? [])
    }

    public var runtimeService: RuntimeService { RuntimeService(server: self) }

    /// The runtime's pre-booted sandboxes (`[vm] pool_size`), for podvisord: after recovery, until shutdown.
    public func startPool() throws(PodvisorError) { try runtime.startPool() }
    public func stopPool() async { await runtime.stopPool() }

    /// For a process whose runtime ends with it: waits (at most `limit`) until the exec and attach sessions
    /// still running are over, e.g. the command of an exec whose client left at its timeout, killed by now.
    public func waitForStreamingSessions(atMost limit: Duration) async { await streaming.waitForSessions(atMost: limit) }

    /// Brings the series that are read at scrape time up to date (before the registry is rendered).
    public func refreshMetrics() { scrapeGauges.refresh(self) }
    public var imageService: ImageService { ImageService(server: self) }

    func pod(_ sandboxID: String) -> (any PodSandbox)? { pods.withLock { $0[sandboxID] } }

    /// The live sandbox that must be ready for the request.
    func readyPod(_ sandbox: SandboxRecord) throws(PodvisorError) -> any PodSandbox {
        guard sandbox.state == .ready, let pod = pod(sandbox.id) else {
            throw PodvisorError(.failedPrecondition, "pod sandbox \(sandbox.id) is not ready\(sandbox.notReadyReason.map { " (\($0))" } ?? "")")
        }
        return pod
    }

    /// A running container and its live sandbox, for requests that need its processes (ExecSync, Exec,
    /// Attach; Attach takes a created one too).
    func runningContainer(_ id: String, orCreated: Bool = false) throws(PodvisorError) -> (ContainerRecord, any PodSandbox) {
        let container = try containers.find(id)
        guard container.state == .running || (orCreated && container.state == .created) else {
            throw PodvisorError(.failedPrecondition, "container \(container.id) is \(container.state.rawValue), not running")
        }
        return (container, try readyPod(try sandboxes.find(container.sandboxID)))
    }

    /// Starts `command` as a new exec in a running container, with the container's identity and environment
    /// (ExecSync and Exec); answers the sandbox to follow it through and the exec's reference.
    func startExec(
        in containerID: String, command: [String], tty: Bool, stdin: Bool
    ) async throws(PodvisorError)
        -> (any PodSandbox, ProcessRef)
    {
        let (container, pod) = try runningContainer(containerID)
        var process = container.process
        process.args = command
        process.terminal = tty
        process.stdin = stdin
        let ref = ProcessRef(container: container.id, exec: String(newObjectID().prefix(16)))
        try await pod.exec(process, as: ref)
        return (pod, ref)
    }

    /// Serves a ready sandbox's hostPort mappings in userspace, where the pod network (CNI portmap) does not.
    func openHostPorts(_ sandboxID: String, _ config: Runtime_V1_PodSandboxConfig, on pod: any PodSandbox) async throws(PodvisorError) {
        let mappings = config.portMappings.filter { $0.hostPort > 0 }
        guard !mappings.isEmpty, !pod.info.portMappingsByNetwork else { return }
        log.info("sandbox \(sandboxID): host ports relayed by podvisord (TCP only): the CNI configuration has no portMappings capability")
        try await hostPorts.open(sandboxID, mappings) { [self] port, connection in
            if let failure = await relay(sandboxID, port: port, connection) { log.warning("host port: \(failure)") }
        }
    }

    func reserve(_ key: String, what: String) throws(PodvisorError) {
        let taken = reservedNames.withLock { !$0.insert(key).inserted }
        guard !taken else { throw PodvisorError(.alreadyExists, "\(what) name \(key) is already reserved") }
    }

    func release(_ key: String) {
        _ = reservedNames.withLock { $0.remove(key) }
    }

    func publish(_ type: Runtime_V1_ContainerEventType, container: ContainerRecord) {
        let sandbox = sandboxes.get(container.sandboxID)
        events.publish(
            .with {
                $0.containerID = container.id
                $0.containerEventType = type
                $0.createdAt = Clock.nowNanoseconds()
                if let sandbox { $0.podSandboxStatus = sandboxStatus(sandbox) }
                $0.containersStatuses = [containerStatus(container)]
            })
    }
}

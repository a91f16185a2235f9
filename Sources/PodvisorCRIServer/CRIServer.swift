import Foundation
import PodvisorAgentClient
import PodvisorAgentProtocol
import PodvisorCRI
import PodvisorCore
import PodvisorImages
import PodvisorRuntime
import PodvisorStreaming
import Synchronization

/// The state behind both CRI services: the VM host, the image store, one record store per object kind,
/// the live pod VMs and container logs, and the event fan-out. Records under `<state_dir>/cri/` survive a
/// crash; `open` takes the pod VMs that outlived the previous process back (see Recovery.swift).
public final class CRIServer: Sendable {
    public static let runtimeName = "podvisor"
    public static let runtimeVersion = "0.1.0"

    public let config: PodvisorConfig
    let host: VMHost
    let images: ImageStore
    let sandboxes: RecordStore<SandboxRecord>
    let containers: RecordStore<ContainerRecord>
    let locks = OperationLocks()
    let events = ContainerEvents()
    /// Pod VMs by sandbox id, while the sandbox is ready.
    let pods = Mutex<[String: PodVM]>([:])
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
    /// UpdateRuntimeConfig's pod CIDR, reported back by Status (no pod networking uses it yet).
    let podCIDR = Mutex<String>("")
    let log: Logger

    /// `program` names the process in log lines (podvisord, or podvisor running the runtime in-process).
    public static func open(config: PodvisorConfig, program: String = "podvisord") async throws(PodvisorError) -> CRIServer {
        let streaming: StreamingServer
        do { streaming = try await StreamingServer.start(host: config.streamingAddress, port: config.streamingPort) } catch {
            throw PodvisorError(.unavailable, "streaming server on \(config.streamingAddress):\(config.streamingPort): \(error)")
        }
        let server = try CRIServer(config: config, program: program, streaming: streaming)
        await server.recover()
        return server
    }

    private init(config: PodvisorConfig, program: String, streaming: StreamingServer) throws(PodvisorError) {
        self.config = config
        self.streaming = streaming
        log = Logger(program: program, level: config.logLevel)
        host = try VMHost(config: config)
        if let warning = host.warning { log.warning(warning) }
        var options = RegistryClient.Options()
        options.hosts = RegistryHosts(directory: config.registryHostsDirectory, insecureRegistries: Set(config.insecureRegistries))
        images = try ImageStore(root: config.effectiveImageRoot, registry: RegistryClient(options: options))
        sandboxes = try RecordStore(directory: "\(config.stateDirectory)/cri/records/sandboxes", what: "pod sandbox")
        containers = try RecordStore(directory: "\(config.stateDirectory)/cri/records/containers", what: "container")
    }

    public var runtimeService: RuntimeService { RuntimeService(server: self) }
    /// The VM host the sandboxes boot on (benchmarks boot baseline VMs on it too).
    public var vmHost: VMHost { host }
    public var imageService: ImageService { ImageService(server: self) }

    /// Directory of a container's host-side files: overlay upper and work directories, its rootfs mount point.
    func containerDirectory(_ id: String) -> String { "\(config.stateDirectory)/cri/containers/\(id)" }
    /// Directory of a sandbox's generated files (hostname, resolv.conf, hosts).
    func sandboxDirectory(_ id: String) -> String { "\(config.stateDirectory)/cri/sandboxes/\(id)" }

    func pod(_ sandboxID: String) -> PodVM? { pods.withLock { $0[sandboxID] } }

    /// The live VM of a sandbox that must be ready for the request.
    func readyPod(_ sandbox: SandboxRecord) throws(PodvisorError) -> PodVM {
        guard sandbox.state == .ready, let pod = pod(sandbox.id) else {
            throw PodvisorError(.failedPrecondition, "pod sandbox \(sandbox.id) is not ready\(sandbox.notReadyReason.map { " (\($0))" } ?? "")")
        }
        return pod
    }

    /// A running container and its pod's VM, for requests that need its processes (ExecSync, Exec, Attach;
    /// Attach takes a created one too).
    func runningContainer(_ id: String, orCreated: Bool = false) throws(PodvisorError) -> (ContainerRecord, PodVM) {
        let container = try containers.find(id)
        guard container.state == .running || (orCreated && container.state == .created) else {
            throw PodvisorError(.failedPrecondition, "container \(container.id) is \(container.state.rawValue), not running")
        }
        return (container, try readyPod(try sandboxes.find(container.sandboxID)))
    }

    /// Starts `command` as a new exec in a running container, with the container's identity and environment
    /// (ExecSync and Exec); answers the agent to follow it through and the exec's reference.
    func startExec(in containerID: String, command: [String], tty: Bool, stdin: Bool) async throws(PodvisorError)
        -> (AgentClient, Podvisor_Agent_V1_ProcessRef)
    {
        let (container, pod) = try runningContainer(containerID)
        var process = container.process
        process.args = command
        process.terminal = tty
        process.stdin = stdin
        let ref = AgentClient.process(container.id, exec: String(newObjectID().prefix(16)))
        try await pod.agent.exec(container.id, execID: ref.execID, process)
        return (pod.agent, ref)
    }

    /// Serves a ready sandbox's hostPort mappings.
    func openHostPorts(_ sandboxID: String, _ config: Runtime_V1_PodSandboxConfig) async throws(PodvisorError) {
        try await hostPorts.open(sandboxID, config.portMappings) { [self] port, connection in
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
        events.publish(.with {
            $0.containerID = container.id
            $0.containerEventType = type
            $0.createdAt = Clock.nowNanoseconds()
            if let sandbox { $0.podSandboxStatus = sandboxStatus(sandbox) }
            $0.containersStatuses = [containerStatus(container)]
        })
    }
}

/// A minimal leveled logger to stderr (journald adds the timestamps under systemd).
struct Logger: Sendable {
    let program: String
    let level: PodvisorConfig.LogLevel

    func debug(_ message: @autoclosure () -> String) { emit(.debug, message) }
    func info(_ message: @autoclosure () -> String) { emit(.info, message) }
    func warning(_ message: @autoclosure () -> String) { emit(.warning, message) }
    func error(_ message: @autoclosure () -> String) { emit(.error, message) }

    private func emit(_ at: PodvisorConfig.LogLevel, _ message: () -> String) {
        guard at >= level else { return }
        FileHandle.standardError.write(Data("\(program) \(at.rawValue): \(message())\n".utf8))
    }
}

import ArgumentParser
import Foundation
import GRPCCore
import PodvisorCRI
import PodvisorCore
import PodvisorCRIServer
import PodvisorStreaming
import Synchronization

/// `podvisor run`: one pod VM with one container (or the containers of a pod file), its output streamed,
/// the container's exit code returned.
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a container (or a pod file's containers) in a new pod VM.",
        discussion: """
            Exit status: the container's own (the first non-zero one of a pod file's containers); \
            \(ExitCodes.runtimeFailure) when podvisor failed (bad input, image, VM); \(ExitCodes.timeout) when --timeout \
            passed; \(ExitCodes.interrupted) on SIGINT/SIGTERM. In the last two cases the pod is torn down first.
            """)

    @OptionGroup var connection: ConnectionOptions

    @Flag(help: "Remove the pod and its containers when they exit.") var rm = false
    @Flag(name: .shortAndLong, help: "Start the pod and print its container id; do not wait.") var detach = false
    @Flag(name: .short, help: "Give the container a terminal (its output then comes on stdout only).") var tty = false
    @Flag(name: .short, help: "Pass stdin to the container (attached before it starts; its stdin closes when ours ends).")
    var interactive = false
    @Option(help: "Pod and container name (default: run-<random>).") var name: String?
    @Option(name: .short, help: "Environment variable KEY=VALUE (repeatable).") var env: [String] = []
    @Option(name: .short, help: "Volume HOST:CONTAINER[:ro] (repeatable).") var volume: [String] = []
    @Option(name: [.short, .customLong("publish")], help: "Publish a port on the host: [IP:]HOST:CONTAINER[/tcp|udp] (repeatable).")
    var publish: [String] = []
    @Option(help: "Memory limit, e.g. 256m or 1Gi; the VM gets it plus the configured overhead.") var memory: String?
    @Option(help: "CPU limit, e.g. 1.5; the VM gets that many vCPUs, rounded up.") var cpus: String?
    @Option(help: "Seconds before the pod is torn down and podvisor exits \(ExitCodes.timeout).") var timeout: Int?
    @Option(name: .customShort("f"), help: "Pod file: a subset of a Kubernetes Pod (README, \"Pod files\").") var file: String?
    @Option(help: "Where container logs go; each pod gets a directory below.") var logRoot = "/var/log/podvisor"
    @Option(help: "Where pod files' emptyDir volumes go; each pod gets a directory below.") var volumeRoot = "/var/lib/podvisor-volumes"
    @Flag(help: "Report the pod start time (RunPodSandbox to the first output line) on stderr.")
    var timing = false
    @Argument(help: "Image, then the command after --.") var arguments: [String] = []

    func validate() throws {
        if interactive && (file != nil || detach) { throw ValidationError("-i attaches to one container: not with -f or -d") }
        if file == nil && arguments.isEmpty { throw ValidationError("give an IMAGE or -f pod.yaml") }
        if file != nil && !arguments.isEmpty { throw ValidationError("give either an IMAGE or -f pod.yaml, not both") }
        if let timeout, timeout <= 0 { throw ValidationError("--timeout must be positive") }
    }

    func run() async throws {
        let code: Int32
        do {
            code = try await connection.withRuntime { runtime, images, local in
                try await PodRun(plan: try plan(), runtime: runtime, images: images, local: local, options: self).execute()
            }
        } catch let error as ValidationError {
            throw error
        } catch {
            FileHandle.standardError.write(Data("podvisor: \(describe(error))\n".utf8))
            throw ExitCode(ExitCodes.runtimeFailure)
        }
        if code != 0 { throw ExitCode(code) }
    }

    /// `docker run -p`'s forms: `8080:80`, `127.0.0.1:8080:80`, `8080:80/udp`.
    static func portMapping(_ spec: String) throws -> Runtime_V1_PortMapping {
        let (ports, proto) = spec.split(separator: "/", maxSplits: 1).map(String.init).splitFirst()
        var parts = ports.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        let hostIP = parts.count == 3 ? parts.removeFirst() : ""
        guard parts.count == 2, let host = Int32(parts[0]), let container = Int32(parts[1]),
            (1...65535).contains(host), (1...65535).contains(container)
        else { throw ValidationError("-p \(spec): expected [IP:]HOST:CONTAINER[/tcp|udp] with ports 1-65535") }
        let transport: Runtime_V1_Protocol
        switch proto ?? "tcp" {
        case "tcp": transport = .tcp
        case "udp": transport = .udp
        default: throw ValidationError("-p \(spec): the protocol is tcp or udp")
        }
        return .with {
            $0.hostIp = hostIP
            $0.hostPort = host
            $0.containerPort = container
            $0.protocol = transport
        }
    }

    /// Where a pod file's emptyDir volumes live (outside the state directory, which mounts may not reach).
    func emptyDirRoot(_ uid: String) -> String { "\(volumeRoot)/\(uid)" }

    /// The pod and containers to run, from the arguments or the pod file.
    func plan() throws -> (pod: Runtime_V1_PodSandboxConfig, containers: [Runtime_V1_ContainerConfig]) {
        let uid = UUID().uuidString.lowercased()
        var pod = Runtime_V1_PodSandboxConfig()
        var containers: [Runtime_V1_ContainerConfig]
        if let file {
            let podFile = try PodFile.load(file)
            pod.metadata = .with { $0.name = podFile.metadata.name }
            pod.labels = podFile.metadata.labels ?? [:]
            pod.annotations = podFile.metadata.annotations ?? [:]
            pod.hostname = podFile.spec.hostname ?? podFile.metadata.name
            containers = try podFile.containers(emptyDirRoot: emptyDirRoot(uid))
        } else {
            let name = self.name ?? "run-\(uid.prefix(8))"
            pod.metadata = .with { $0.name = name }
            pod.hostname = name
            var container = Runtime_V1_ContainerConfig()
            container.metadata = .with { $0.name = name }
            container.image = .with { $0.image = arguments[0] }
            container.command = Array(arguments.dropFirst())
            container.tty = tty
            container.stdin = interactive
            container.stdinOnce = interactive
            container.logPath = "\(name).log"
            for variable in env {
                guard let equals = variable.firstIndex(of: "="), equals != variable.startIndex else {
                    throw ValidationError("-e \(variable): expected KEY=VALUE")
                }
                container.envs.append(
                    .with {
                        $0.key = String(variable[..<equals])
                        $0.value = Data(variable[variable.index(after: equals)...].utf8)
                    })
            }
            for spec in volume {
                let parts = spec.split(separator: ":").map(String.init)
                guard parts.count == 2 || (parts.count == 3 && parts[2] == "ro") else {
                    throw ValidationError("-v \(spec): expected HOST:CONTAINER[:ro]")
                }
                container.mounts.append(
                    .with {
                        $0.hostPath = URL(fileURLWithPath: parts[0]).standardizedFileURL.path
                        $0.containerPath = parts[1]
                        $0.readonly = parts.count == 3
                    })
            }
            if let memory { container.linux.resources.memoryLimitInBytes = try Quantity.dockerBytes(memory) }
            if let cpus { container.linux.resources.setCPULimit(try Quantity.cpus(cpus)) }
            containers = [container]
        }
        pod.portMappings = try publish.map(Self.portMapping)
        pod.metadata.namespace = "podvisor"
        pod.metadata.uid = uid
        pod.labels["podvisor.io/run"] = "true"
        pod.logDirectory = "\(logRoot)/podvisor_\(pod.metadata.name)_\(uid)"
        // The VM is sized from the sum of the containers' limits, as kubelet passes it.
        let limits = containers.map(\.linux.resources)
        if limits.allSatisfy({ $0.memoryLimitInBytes > 0 }) {
            pod.linux.resources.memoryLimitInBytes = limits.reduce(0) { $0 + $1.memoryLimitInBytes }
        }
        if limits.allSatisfy({ $0.cpuQuota > 0 }) {
            pod.linux.resources.cpuPeriod = 100_000
            pod.linux.resources.cpuQuota = limits.reduce(0) { $0 + $1.cpuQuota }
        }
        return (pod, containers)
    }
}

/// The messages of CRI errors, without gRPC's decoration.
func describe(_ error: any Error) -> String {
    if let error = error as? RPCError { return error.message }
    if let error = error as? PodvisorError { return error.message }
    return "\(error)"
}

/// One `podvisor run`: pull what is missing, start the pod and its containers, stream their logs, wait,
/// tear down. Interrupts and --timeout tear the pod down before exiting.
struct PodRun {
    let plan: (pod: Runtime_V1_PodSandboxConfig, containers: [Runtime_V1_ContainerConfig])
    let runtime: RuntimeClient
    let images: ImageClient
    /// The runtime in this process (standalone): pulls through it show progress.
    let local: CRIServer?
    let options: RunCommand

    func execute() async throws -> Int32 {
        for image in Set(plan.containers.map(\.image.image)) {
            let present = try await images.imageStatus(.with { $0.image.image = image }).hasImage
            guard !present else { continue }
            let terminal = isatty(STDERR_FILENO) == 1
            if terminal { FileHandle.standardError.write(Data("Pulling \(image)…\n".utf8)) }
            if let local {
                let bars = terminal ? ProgressBars() : nil
                _ = try await local.pull(image) { bars?.update($0) }
                bars?.finish()
            } else {
                _ = try await images.pullImage(.with { $0.image.image = image })
            }
        }
        let started = ContinuousClock.now
        let interrupted = Interruption()
        let sandbox = try await runtime.runPodSandbox(.with { $0.config = plan.pod }).podSandboxID
        do {
            var ids: [String] = []
            for config in plan.containers {
                let id = try await runtime.createContainer(
                    .with {
                        $0.podSandboxID = sandbox
                        $0.config = config
                        $0.sandboxConfig = plan.pod
                    }
                ).containerID
                ids.append(id)
            }
            // -i: attached before the start (the attach sees all output), connected after it.
            let attachURL = options.interactive ? try await attach(ids[0]) : nil
            for id in ids { _ = try await runtime.startContainer(.with { $0.containerID = id }) }
            if options.detach {
                print(ids.count == 1 ? ids[0] : sandbox)
                return 0
            }
            let session = attachURL.map { url in
                Task { try await TerminalSession.run(url: url, stdin: true, tty: options.tty) }
            }
            let code = try await follow(ids, started: started, interrupted: interrupted, session: session)
            try await finish(sandbox)
            return code
        } catch {
            try? await finish(sandbox)
            throw error
        }
    }

    private func attach(_ id: String) async throws -> String {
        try await runtime.attach(
            .with {
                $0.containerID = id
                $0.stdin = true
                $0.stdout = true
                $0.stderr = !options.tty
                $0.tty = options.tty
            }
        ).url
    }

    /// Streams the logs (or, with -i, lets the attach session print the output) until every container has
    /// exited, or until an interrupt or the timeout.
    private func follow(
        _ ids: [String], started: ContinuousClock.Instant, interrupted: Interruption, session: Task<RemoteCommandResult, any Error>?
    ) async throws -> Int32 {
        let names = plan.containers.map(\.metadata.name)
        let width = names.map(\.count).max() ?? 0
        let readers =
            session != nil
            ? []
            : zip(ids, names).map { id, name in
                ContainerLogReader(
                    path: "\(plan.pod.logDirectory)/\(name).log",
                    prefix: ids.count > 1 ? name.padding(toLength: width, withPad: " ", startingAt: 0) + " | " : "")
            }
        var reported = !options.timing
        let deadline = options.timeout.map { started + .seconds($0) }
        while true {
            for reader in readers where reader.drain() && !reported {
                reported = true
                let elapsed = started.duration(to: .now)
                FileHandle.standardError.write(Data("podvisor: pod \(plan.pod.metadata.name) started in \(elapsed.milliseconds) ms\n".utf8))
            }
            var statuses: [Runtime_V1_ContainerStatus] = []
            for id in ids { statuses.append(try await runtime.containerStatus(.with { $0.containerID = id }).status) }
            if statuses.allSatisfy({ $0.state == .containerExited }) {
                readers.forEach { $0.drain() }
                // The session ends with the container; its last output may still be on the way.
                if let session { _ = await TerminalSession.wait(session, atMost: .seconds(2)) }
                return statuses.first { $0.exitCode != 0 }?.exitCode ?? 0
            }
            if let signal = interrupted.signal {
                session?.cancel()
                FileHandle.standardError.write(Data("podvisor: \(signal == SIGINT ? "interrupted" : "terminated"), removing the pod\n".utf8))
                return ExitCodes.interrupted
            }
            if let deadline, ContinuousClock.now > deadline {
                session?.cancel()
                FileHandle.standardError.write(Data("podvisor: --timeout \(options.timeout!) s passed, removing the pod\n".utf8))
                return ExitCodes.timeout
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// --rm removes the pod; otherwise its VM stops and its containers stay listed (ps -a, logs, rm).
    private func finish(_ sandbox: String) async throws {
        _ = try await runtime.stopPodSandbox(.with { $0.podSandboxID = sandbox })
        guard options.rm else { return }
        _ = try await runtime.removePodSandbox(.with { $0.podSandboxID = sandbox })
        try? FileManager.default.removeItem(atPath: plan.pod.logDirectory)
        try? FileManager.default.removeItem(atPath: options.emptyDirRoot(plan.pod.metadata.uid))
    }
}

/// SIGINT and SIGTERM, noted instead of ending the process: the run loop tears the pod down first.
final class Interruption: @unchecked Sendable {
    private let received = Mutex<Int32?>(nil)
    private var sources: [any DispatchSourceSignal] = []

    init() {
        for number in [SIGINT, SIGTERM] {
            Glibc.signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { [weak self] in self?.received.withLock { $0 = $0 ?? number } }
            source.resume()
            sources.append(source)
        }
    }

    var signal: Int32? { received.withLock { $0 } }

    deinit { sources.forEach { $0.cancel() } }
}

extension Array where Element == String {
    /// The first element and the second, if any: `"8080:80/udp"` split at "/".
    fileprivate func splitFirst() -> (String, String?) { (self.first ?? "", self.count > 1 ? self[1] : nil) }
}

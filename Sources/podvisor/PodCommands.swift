import ArgumentParser
import Foundation
import PodvisorCRI
import PodvisorCore
import PodvisorStreaming
import SwiftProtobuf

/// What a name on the command line refers to: a container or a pod, by id, unique id prefix or name.
enum Target {
    case container(Runtime_V1_Container)
    case pod(Runtime_V1_PodSandbox)

    static func resolve(_ reference: String, _ runtime: RuntimeClient) async throws -> Target {
        let containers = try await runtime.listContainers(Runtime_V1_ListContainersRequest()).containers
        let pods = try await runtime.listPodSandbox(Runtime_V1_ListPodSandboxRequest()).items
        let byContainer = containers.filter { $0.id == reference || $0.metadata.name == reference }
        let byPod = pods.filter { $0.id == reference || $0.metadata.name == reference }
        // A `podvisor run` pod and its container share the name: the container is meant.
        if byContainer.count == 1 { return .container(byContainer[0]) }
        if byPod.count == 1 { return .pod(byPod[0]) }
        let prefixed =
            containers.filter { $0.id.hasPrefix(reference) }.map(Target.container)
            + pods.filter { $0.id.hasPrefix(reference) }.map(Target.pod)
        guard prefixed.count == 1 else {
            throw PodvisorError(
                prefixed.isEmpty && byContainer.isEmpty && byPod.isEmpty ? .notFound : .invalidArgument,
                prefixed.isEmpty && byContainer.isEmpty && byPod.isEmpty
                    ? "no container or pod \(reference)" : "\(reference) names more than one container or pod")
        }
        return prefixed[0]
    }

    /// A reference that must name a container; `why` says so when it names a pod.
    static func container(_ reference: String, _ runtime: RuntimeClient, for why: String) async throws -> Runtime_V1_Container {
        guard case .container(let found) = try await resolve(reference, runtime) else {
            throw PodvisorError(.invalidArgument, "\(reference) is a pod; \(why)")
        }
        return found
    }
}

/// Runs a pod command; runtime errors exit 125 with their message (as `run` does).
func runtimeCommand(_ connection: ConnectionOptions, _ body: @Sendable (RuntimeClient, ImageClient) async throws -> Int32) async throws {
    let code: Int32
    do { code = try await connection.withRuntime { runtime, images, _ in try await body(runtime, images) } } catch {
        FileHandle.standardError.write(Data("podvisor: \(describe(error))\n".utf8))
        throw ExitCode(ExitCodes.runtimeFailure)
    }
    if code != 0 { throw ExitCode(code) }
}

private func age(_ nanoseconds: Int64) -> String {
    let seconds = max(0, Int(Date().timeIntervalSince1970) - Int(nanoseconds / 1_000_000_000))
    switch seconds {
    case ..<60: return "\(seconds)s ago"
    case ..<3600: return "\(seconds / 60)m ago"
    case ..<86_400: return "\(seconds / 3600)h ago"
    default: return "\(seconds / 86_400)d ago"
    }
}

private func stateName(_ state: Runtime_V1_ContainerState) -> String {
    switch state {
    case .containerCreated: "created"
    case .containerRunning: "running"
    case .containerExited: "exited"
    default: "unknown"
    }
}

/// The JSON the CLI prints: the CRI message as protobuf JSON (field names as crictl shows them).
func printMessages(_ messages: [some SwiftProtobuf.Message]) throws {
    let objects = try messages.map { try JSONSerialization.jsonObject(with: $0.jsonUTF8Data()) }
    let data = try JSONSerialization.data(withJSONObject: objects, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
    print(String(decoding: data, as: UTF8.self))
}

struct PsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ps", abstract: "List containers (running ones unless -a).")
    @OptionGroup var connection: ConnectionOptions
    @Flag(name: .shortAndLong, help: "Also created and exited containers.") var all = false

    func run() async throws {
        try await runtimeCommand(connection) { runtime, _ in
            var request = Runtime_V1_ListContainersRequest()
            if !all { request.filter.state.state = .containerRunning }
            let containers = try await runtime.listContainers(request).containers
            let pods = Dictionary(
                uniqueKeysWithValues: try await runtime.listPodSandbox(Runtime_V1_ListPodSandboxRequest()).items.map { ($0.id, $0) })
            switch connection.output {
            case .json: try printMessages(containers)
            case .table:
                printTable(
                    ["CONTAINER ID", "IMAGE", "STATE", "CREATED", "NAME", "POD"],
                    containers.map {
                        [
                            String($0.id.prefix(12)), $0.image.image, stateName($0.state), age($0.createdAt), $0.metadata.name,
                            pods[$0.podSandboxID]?.metadata.name ?? String($0.podSandboxID.prefix(12)),
                        ]
                    })
            }
            return 0
        }
    }
}

struct PodsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "pods", abstract: "List pods (each one VM).")
    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        try await runtimeCommand(connection) { runtime, _ in
            let pods = try await runtime.listPodSandbox(Runtime_V1_ListPodSandboxRequest()).items
            switch connection.output {
            case .json: try printMessages(pods)
            case .table:
                var rows: [[String]] = []
                for pod in pods {
                    // The pod's address is in its status only (ListPodSandbox carries none).
                    let ip = (try? await runtime.podSandboxStatus(.with { $0.podSandboxID = pod.id }).status.network.ip) ?? ""
                    rows.append([
                        String(pod.id.prefix(12)), pod.state == .sandboxReady ? "ready" : "notready", age(pod.createdAt),
                        pod.metadata.name, pod.metadata.namespace, ip.isEmpty ? "-" : ip,
                    ])
                }
                printTable(["POD ID", "STATE", "CREATED", "NAME", "NAMESPACE", "IP"], rows)
                // podvisord's pre-booted VMs (`[vm] pool_size`), waiting for pods.
                let info = try? await runtime.status(.with { $0.verbose = true }).info["info"]
                if let pool = info.flatMap(Self.pool) { print("pre-booted VMs: \(pool)") }
            }
            return 0
        }
    }

    /// Status's "pool" ("1 ready, 0 booting of 1"); nil without a pool.
    static func pool(_ json: String) -> String? {
        let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
        guard let pool = object?["pool"] as? String, !pool.hasSuffix(" of 0") else { return nil }
        return pool
    }
}

struct LogsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "logs", abstract: "Print a container's output.")
    @OptionGroup var connection: ConnectionOptions
    @Flag(name: .shortAndLong, help: "Keep following while the container runs.") var follow = false
    @Argument(help: "Container id, id prefix or name.") var container: String

    func run() async throws {
        try await runtimeCommand(connection) { runtime, _ in
            let found = try await Target.container(container, runtime, for: "logs are per container")
            let status = try await runtime.containerStatus(.with { $0.containerID = found.id }).status
            guard !status.logPath.isEmpty else { throw PodvisorError(.notFound, "container \(found.id) has no log") }
            let reader = ContainerLogReader(path: status.logPath)
            // Standalone, output only flows into logs while a podvisor process runs: this one has just
            // started following the container again; let it catch up with what the guest held meanwhile.
            if connection.endpoint == nil && status.state == .containerRunning { try await Task.sleep(for: .milliseconds(500)) }
            reader.drain()
            while follow, try await runtime.containerStatus(.with { $0.containerID = found.id }).status.state == .containerRunning {
                try await Task.sleep(for: .milliseconds(100))
                reader.drain()
            }
            reader.drain()
            return 0
        }
    }
}

struct ExecCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "exec", abstract: "Run a command in a running container; exits with the command's status.",
        discussion: "Output streams as the command writes it (CRI Exec). \(ExitCodes.timeout) when --timeout passed (the command is killed).")
    @OptionGroup var connection: ConnectionOptions
    @Flag(name: .short, help: "Pass stdin to the command.") var interactive = false
    @Flag(name: .short, help: "Give the command a terminal (its output then comes on stdout only).") var tty = false
    @Option(help: "Seconds before the command is killed (0: none).") var timeout: Int = 0
    @Argument(help: "Container id, id prefix or name.") var container: String
    @Argument(parsing: .postTerminator, help: "The command, after --.") var command: [String] = []

    func validate() throws {
        if command.isEmpty { throw ValidationError("give the command after --") }
        if timeout < 0 { throw ValidationError("--timeout must not be negative") }
    }

    func run() async throws {
        try await runtimeCommand(connection) { runtime, _ in
            let found = try await Target.container(container, runtime, for: "exec runs in a container")
            let url = try await runtime.exec(
                .with {
                    $0.containerID = found.id
                    $0.cmd = command
                    $0.tty = tty
                    $0.stdin = interactive
                    $0.stdout = true
                    $0.stderr = !tty
                }
            ).url
            // Leaving the session (at the timeout) closes the connection, which kills the command.
            let session = Task { try await TerminalSession.run(url: url, stdin: interactive, tty: tty) }
            guard timeout > 0 else { return TerminalSession.exitCode(try await session.value) }
            let (result, cut) = await TerminalSession.wait(session, atMost: .seconds(timeout))
            if cut {
                FileHandle.standardError.write(Data("podvisor: --timeout \(timeout) s passed, the command was killed\n".utf8))
                return ExitCodes.timeout
            }
            return TerminalSession.exitCode(try result.get())
        }
    }
}

struct StopCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stop", abstract: "Stop containers or pods (a `run` container's pod VM stops with it).")
    @OptionGroup var connection: ConnectionOptions
    @Option(name: .shortAndLong, help: "Seconds between SIGTERM and SIGKILL.") var time: Int64 = 10
    @Argument(help: "Container or pod ids, id prefixes or names.") var targets: [String]

    func run() async throws {
        try await runtimeCommand(connection) { runtime, _ in
            for reference in targets {
                switch try await Target.resolve(reference, runtime) {
                case .container(let container):
                    _ = try await runtime.stopContainer(
                        .with {
                            $0.containerID = container.id; $0.timeout = time
                        })
                    if try await isRunPod(container.podSandboxID, runtime) {
                        _ = try await runtime.stopPodSandbox(.with { $0.podSandboxID = container.podSandboxID })
                    }
                case .pod(let pod):
                    _ = try await runtime.stopPodSandbox(.with { $0.podSandboxID = pod.id })
                }
                print(reference)
            }
            return 0
        }
    }
}

struct RemoveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rm", abstract: "Remove containers or pods (a `run` container's pod goes with it).")
    @OptionGroup var connection: ConnectionOptions
    @Flag(name: .shortAndLong, help: "Also when running.") var force = false
    @Argument(help: "Container or pod ids, id prefixes or names.") var targets: [String]

    func run() async throws {
        try await runtimeCommand(connection) { runtime, _ in
            for reference in targets {
                switch try await Target.resolve(reference, runtime) {
                case .container(let container):
                    guard force || container.state != .containerRunning else {
                        throw PodvisorError(.failedPrecondition, "container \(reference) is running: stop it first or use --force")
                    }
                    if try await isRunPod(container.podSandboxID, runtime) {
                        _ = try await runtime.removePodSandbox(.with { $0.podSandboxID = container.podSandboxID })
                    } else {
                        _ = try await runtime.removeContainer(.with { $0.containerID = container.id })
                    }
                case .pod(let pod):
                    guard force || pod.state != .sandboxReady else {
                        throw PodvisorError(.failedPrecondition, "pod \(reference) is ready: stop it first or use --force")
                    }
                    _ = try await runtime.removePodSandbox(.with { $0.podSandboxID = pod.id })
                }
                print(reference)
            }
            return 0
        }
    }
}

struct InspectCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "inspect", abstract: "Show a container's or pod's status as JSON.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "Container or pod id, id prefix or name.") var target: String

    func run() async throws {
        try await runtimeCommand(connection) { runtime, _ in
            switch try await Target.resolve(target, runtime) {
            case .container(let container):
                try printMessages([
                    try await runtime.containerStatus(
                        .with {
                            $0.containerID = container.id; $0.verbose = true
                        })
                ])
            case .pod(let pod):
                try printMessages([
                    try await runtime.podSandboxStatus(
                        .with {
                            $0.podSandboxID = pod.id; $0.verbose = true
                        })
                ])
            }
            return 0
        }
    }
}

/// Pods that `podvisor run` made exist for their one container: they stop and go with it.
private func isRunPod(_ id: String, _ runtime: RuntimeClient) async throws -> Bool {
    try await runtime.listPodSandbox(.with { $0.filter.id = id }).items.first?.labels["podvisor.io/run"] == "true"
}

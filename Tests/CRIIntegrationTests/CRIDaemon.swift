import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import PodvisorCRI
import Testing
import TestSupport
import PodvisorVMM

typealias Transport = HTTP2ClientTransport.Posix

/// A real podvisord process (the binary `make build` made) on a state directory of its own, and gRPC
/// clients of its two services over its unix socket: what kubelet sees.
final class CRIDaemon: @unchecked Sendable {

    let stateDirectory: String
    let socket: String
    let logFile: String
    /// The daemon's pod network: bridge <name>0, 10.214.<subnet>.0/24.
    let network: TestPodNetwork
    /// Where it serves Prometheus metrics.
    let metricsURL: URL
    private var process: Process?
    private var client: GRPCClient<Transport>?

    var runtime: Runtime_V1_RuntimeService.Client<Transport> { .init(wrapping: client!) }
    var images: Runtime_V1_ImageService.Client<Transport> { .init(wrapping: client!) }
    var pid: Int32 { process?.processIdentifier ?? 0 }

    /// One daemon for the whole test process; tests that restart it leave it running again. It is killed
    /// when the test process exits (its pods are all removed by then).
    static let shared = Task { () throws -> CRIDaemon in
        let daemon = try CRIDaemon(name: "pvcri")
        daemon.cleanUpAtExit()
        try await daemon.start()
        return daemon
    }

    /// `vmConfig`: more keys of [vm] (e.g. pool_size); `extraConfig`: more TOML tables (e.g. [host_pods]).
    init(name: String, subnet: Int = 250, vmConfig: String = "", extraConfig: String = "") throws {
        // Short: unix socket paths below it must stay under 108 bytes.
        stateDirectory = Self.stateDirectory(name)
        socket = "\(stateDirectory)/cri.sock"
        logFile = "/tmp/\(name)-podvisord.log"
        try Self.clean(stateDirectory)
        network = try TestPodNetwork(directory: Self.networkDirectory(name), bridge: "\(name)0", subnet: subnet)
        let metricsPort = try TestRegistry.freePort()
        metricsURL = URL(string: "http://127.0.0.1:\(metricsPort)/metrics")!
        let config = """
            state_dir = "\(stateDirectory)"
            log_level = "debug"
            [vm]
            \(GuestImage.configLines)
            boot_timeout_s = 180
            shutdown_timeout_s = 5
            \(vmConfig)
            [cri]
            socket = "\(socket)"
            [metrics]
            address = "127.0.0.1:\(metricsPort)"
            [cni]
            conf_dir = "\(network.confDir)"
            bin_dirs = ["/usr/lib/cni"]
            \(extraConfig)
            """
        try config.write(toFile: "\(stateDirectory)/config.toml", atomically: true, encoding: .utf8)
        FileManager.default.createFile(atPath: logFile, contents: nil)
    }

    static func stateDirectory(_ name: String) -> String { "/tmp/\(name)" }
    /// The pod network's files (a `TestPodNetwork`: conf dir net.d, IPAM leases), known before `init` makes them.
    static func networkDirectory(_ name: String) -> String { "\(stateDirectory(name))/cni" }

    /// What a killed earlier run left: its CRI records and files go, the runtime's own state stays, so the
    /// daemon's recovery removes that run's VMs, networks and layers as it does after any crash (no record
    /// owns them). The embedded libvirt root stays too: QEMU's capability cache survives.
    static func clean(_ directory: String) throws {
        for pid in HostState.processes(matching: "\(directory)/config.toml") { kill(pid, SIGKILL) }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let runtimeState: Set = ["libvirt", "sandboxes", "containers", "network", "vm"]
        for entry in try FileManager.default.contentsOfDirectory(atPath: directory) where !runtimeState.contains(entry) {
            try FileManager.default.removeItem(atPath: "\(directory)/\(entry)")
        }
    }

    /// Starts podvisord and waits until it answers Version (recovery of earlier pods comes first).
    func start() async throws {
        unlink(socket)  // left by a killed daemon: its presence says nothing
        let process = Process()
        process.executableURL = URL(
            fileURLWithPath: ProcessInfo.processInfo.environment["PODVISORD"] ?? "\(GuestImage.repositoryRoot)/.build/debug/podvisord")
        process.arguments = ["--config", "\(stateDirectory)/config.toml"]
        let log = FileHandle(forWritingAtPath: logFile)!
        log.seekToEndOfFile()
        process.standardOutput = log
        process.standardError = log
        try process.run()
        self.process = process
        let deadline = ContinuousClock.now + .seconds(120)
        while access(socket, F_OK) != 0 {
            guard process.isRunning, ContinuousClock.now < deadline else { throw TestError("podvisord did not start: \(tail())") }
            try await Task.sleep(for: .milliseconds(50))
        }
        let client = GRPCClient(transport: try .http2NIOPosix(target: .unixDomainSocket(path: socket), transportSecurity: .plaintext))
        Task { try? await client.runConnections() }
        self.client = client
        while true {
            do {
                _ = try await runtime.version(Runtime_V1_VersionRequest())
                return
            } catch  where ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(100))
            }
        }
    }

    /// kill -9, as a crash would. The closed client stays until `start` replaces it: a call racing the kill
    /// (Chaos) then fails, where it found no client and crashed the test process.
    func kill9() {
        client?.beginGracefulShutdown()
        guard let process else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        self.process = nil
    }

    /// At exit, newest first: the pods the daemon still has (a suite's long-lived pod, a failed test's) are
    /// removed through it and it is stopped as systemd stops it, so CNI DEL, libvirt and the pool tidy up as in
    /// production; then what a hung daemon left: the network namespaces of its pods, the daemon with its VMs
    /// and the state directory, the bridge and the log.
    func cleanUpAtExit() {
        TestCleanup.atExit { [network, logFile] in
            network.remove()
            unlink(logFile)
        }
        TestCleanup.removeAtExit(stateDirectory)
        TestCleanup.atExit { [stateDirectory] in TestPodNetwork.removeNamespaces(recordedIn: stateDirectory) }
        TestCleanup.atExit { [self] in
            guard process?.isRunning == true else { return }
            let listed = (try? cli(["pods", "--output", "json"])) ?? ""
            let pods = (try? JSONSerialization.jsonObject(with: Data(listed.utf8))) as? [[String: Any]] ?? []
            let ids = pods.compactMap { $0["id"] as? String }
            if !ids.isEmpty { _ = try? cli(["rm", "--force"] + ids) }
            signal(SIGTERM)  // the next step kills what has not gone within 60 s
            for _ in 0..<600 where process?.isRunning == true { usleep(100_000) }
        }
    }

    /// Runs the `podvisor` CLI against this daemon (as an operator would): its stdout. Killed after 60 s.
    func cli(_ arguments: [String]) throws -> String {
        let cli = Process()
        cli.executableURL = URL(
            fileURLWithPath: ProcessInfo.processInfo.environment["PODVISOR"] ?? "\(GuestImage.repositoryRoot)/.build/debug/podvisor")
        cli.arguments = arguments + ["--endpoint", "unix://\(socket)"]
        let output = Pipe()
        cli.standardOutput = output
        try cli.run()
        let watchdog = DispatchWorkItem { if cli.isRunning { kill(cli.processIdentifier, SIGKILL) } }
        DispatchQueue.global().asyncAfter(deadline: .now() + 60, execute: watchdog)
        let printed = output.fileHandleForReading.readDataToEndOfFile()
        cli.waitUntilExit()
        watchdog.cancel()
        return String(decoding: printed, as: UTF8.self)
    }

    /// `kill -SIGNAL`, as an operator or systemd sends it.
    func signal(_ signal: Int32) {
        if let process { kill(process.processIdentifier, signal) }
    }

    /// SIGTERM, as `systemctl stop` sends it; the daemon's exit status.
    func terminate() -> Int32 {
        client?.beginGracefulShutdown()
        guard let process else { return -1 }
        kill(process.processIdentifier, SIGTERM)
        process.waitUntilExit()
        self.process = nil
        return process.terminationStatus
    }

    /// Waits until the daemon's log has grown by a line containing `text`.
    func waitForLog(_ text: String, after offset: Int, seconds: Int = 10) async throws {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while !log(after: offset).contains(text) {
            guard ContinuousClock.now < deadline else { throw TestError("no \"\(text)\" in podvisord's log: \(tail())") }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// The log written since `offset` bytes (`logSize`).
    func log(after offset: Int) -> String {
        let data = FileManager.default.contents(atPath: logFile) ?? Data()
        return String(decoding: data.dropFirst(offset), as: UTF8.self)
    }

    var logSize: Int { FileManager.default.contents(atPath: logFile)?.count ?? 0 }

    func tail() -> String { String(((try? String(contentsOfFile: logFile, encoding: .utf8)) ?? "").suffix(2000)) }
}

/// Fixture images served by a real docker-registry on loopback (plain HTTP is allowed there).
enum TestImages {
    static let registry = Task { () throws -> TestRegistry in
        try TestRegistry(storage: try await FixtureImages.shared.storageDirectory())
    }

    /// busybox (User 1002, Cmd /bin/sh), pulled through the CRI.
    static func busybox(_ daemon: CRIDaemon) async throws -> String {
        let name = "\(try await registry.value.address)/busybox:latest"
        _ = try await daemon.images.pullImage(.with { $0.image = .with { $0.image = name } })
        return name
    }
}

func podConfig(_ name: String, labels: [String: String] = [:], logDirectory: String = "") -> Runtime_V1_PodSandboxConfig {
    .with {
        $0.metadata = .with {
            $0.name = name
            $0.namespace = "test"
            $0.uid = UUID().uuidString
        }
        $0.hostname = name
        $0.labels = labels
        $0.logDirectory = logDirectory
    }
}

func containerConfig(
    _ name: String, image: String, _ command: [String], attempt: UInt32 = 0, log: String = "", labels: [String: String] = [:]
)
    -> Runtime_V1_ContainerConfig
{
    .with {
        $0.metadata = .with {
            $0.name = name
            $0.attempt = attempt
        }
        $0.image = .with { $0.image = image }
        $0.command = command
        $0.logPath = log
        $0.labels = labels
    }
}

/// The call must fail with `code`; its message is shown when it does not.
func expectStatus<T>(_ code: RPCError.Code, _ what: String, sourceLocation: SourceLocation = #_sourceLocation, _ body: () async throws -> T) async {
    do {
        _ = try await body()
        Issue.record("\(what): expected \(code), got success", sourceLocation: sourceLocation)
    } catch let error as RPCError {
        #expect(error.code == code, "\(what): \(error.message)", sourceLocation: sourceLocation)
        #expect(!error.message.isEmpty, sourceLocation: sourceLocation)
    } catch {
        Issue.record("\(what): \(error)", sourceLocation: sourceLocation)
    }
}

extension CRIDaemon {
    func status(_ id: String) async throws -> Runtime_V1_ContainerStatus {
        try await runtime.containerStatus(.with { $0.containerID = id }).status
    }

    /// Polls ContainerStatus until the container reaches `state`.
    func wait(_ id: String, until state: Runtime_V1_ContainerState, seconds: Int = 60) async throws -> Runtime_V1_ContainerStatus {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while true {
            let status = try await status(id)
            if status.state == state || ContinuousClock.now > deadline { return status }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    func sandboxState(_ id: String) async throws -> Runtime_V1_PodSandboxState {
        try await runtime.podSandboxStatus(.with { $0.podSandboxID = id }).status.state
    }

    func run(_ config: Runtime_V1_PodSandboxConfig) async throws -> String {
        try await runtime.runPodSandbox(.with { $0.config = config }).podSandboxID
    }

    func create(_ sandbox: String, _ pod: Runtime_V1_PodSandboxConfig, _ config: Runtime_V1_ContainerConfig) async throws -> String {
        try await runtime.createContainer(
            .with {
                $0.podSandboxID = sandbox
                $0.config = config
                $0.sandboxConfig = pod
            }
        ).containerID
    }

    func start(_ id: String) async throws {
        _ = try await runtime.startContainer(.with { $0.containerID = id })
    }

    /// PodSandboxStatus's verbose "info" (the runtime's JSON: VM, pooled, hostname…).
    func sandboxInfo(_ id: String) async throws -> String {
        try await runtime.podSandboxStatus(
            .with {
                $0.podSandboxID = id; $0.verbose = true
            }
        ).info["info"] ?? ""
    }

    func removePod(_ id: String) async throws {
        _ = try await runtime.stopPodSandbox(.with { $0.podSandboxID = id })
        _ = try await runtime.removePodSandbox(.with { $0.podSandboxID = id })
    }
}

/// What the host says about a pod VM: QEMU runs with `-name guest=podvisor-<first 16 of the sandbox id>,`.
enum PodTraces {
    static func qemu(sandbox id: String) -> [Int32] { HostState.processes(matching: "guest=podvisor-\(id.prefix(16)),") }

    /// No QEMU, run directory, mount, container directory, network namespace, tap or CNI attachment of the
    /// sandbox is left.
    static func expectNothingLeft(_ daemon: CRIDaemon, sandbox id: String, containers: [String], sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(qemu(sandbox: id).isEmpty, "QEMU still runs", sourceLocation: sourceLocation)
        // Removed again in the background while QEMU's threads leave (MachineCgroups).
        var cgroups = MachineCgroups.directories(domain: "podvisor-\(id.prefix(16))")
        for _ in 0..<50 where !cgroups.isEmpty {
            Thread.sleep(forTimeInterval: 0.2)
            cgroups = MachineCgroups.directories(domain: "podvisor-\(id.prefix(16))")
        }
        #expect(cgroups.isEmpty, "libvirt's cgroup directories left: \(cgroups)", sourceLocation: sourceLocation)
        // Debian's virtiofsd names its pid file after its socket's path.
        let socket = "\(daemon.stateDirectory)/vm/\(id.prefix(16))/fs/virtiofsd.sock"
        let pidFile = "/run/virtiofsd/" + socket.replacingOccurrences(of: "/", with: ".") + ".pid"
        #expect(!FileManager.default.fileExists(atPath: pidFile), "virtiofsd's pid file left", sourceLocation: sourceLocation)
        #expect(TestPodNetwork.leftovers(sandbox: id).isEmpty, "\(TestPodNetwork.leftovers(sandbox: id))", sourceLocation: sourceLocation)
        #expect(
            !FileManager.default.fileExists(atPath: "\(daemon.stateDirectory)/network/\(id).json"), "CNI attachment left",
            sourceLocation: sourceLocation)
        #expect(
            !FileManager.default.fileExists(atPath: "\(daemon.stateDirectory)/sandboxes/\(id)"), "sandbox directory left",
            sourceLocation: sourceLocation)
        #expect(
            !FileManager.default.fileExists(atPath: "\(daemon.stateDirectory)/vm/\(id.prefix(16))"), "run directory left",
            sourceLocation: sourceLocation)
        for container in containers {
            #expect(mountPoints(under: "\(daemon.stateDirectory)/containers/\(container)").isEmpty, "mounts left", sourceLocation: sourceLocation)
            #expect(!FileManager.default.fileExists(atPath: "\(daemon.stateDirectory)/containers/\(container)"), sourceLocation: sourceLocation)
        }
    }
}

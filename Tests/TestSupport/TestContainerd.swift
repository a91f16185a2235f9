import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import PodvisorCRI
import PodvisorVMM
import Synchronization

/// kill(2), callable where `TestContainerd.kill()` hides it.
@discardableResult
private func sendSignal(_ pid: Int32, _ number: Int32) -> Int32 { kill(pid, number) }

/// A private containerd (Debian's 1.6 with runc) for tests of host pods, the runtime podvisord hands
/// hostNetwork/hostPID/hostIPC pods to. Everything it makes lives under one directory of its own:
///
/// ```
/// /tmp/pvctrd-<test pid>-<n>/config.toml     Configs/containerd/config.toml with these paths
///                            root/           images, snapshots, metadata
///                            state/          containerd.sock (CRI v1 and containerd's API; .ttrpc beside it),
///                                            shims' bundles, runc's state (state/runc/k8s.io), pods' netns
///                            certs.d/        (empty: registries as they answer; loopback over plain HTTP)
///                            containerd.log
/// ```
///
/// Outside it: the shims' sockets (containerd 1.6 puts them in /run/containerd/s, whatever its config
/// says; each is removed with its shim), the containers' cgroups (/sys/fs/cgroup/<controller>/k8s.io/<id>
/// without a cgroup parent), and what the caller's CNI network makes. `start` imports the pause image
/// (`sandboxImage`, built offline from Fixtures/pause.c) before it returns, so pods run without a registry.
/// `stop` removes every pod through the CRI, then `kill`s what is left; `kill` runs at exit as well, and a
/// later test process clears the directories of test processes that died without it.
public final class TestContainerd: @unchecked Sendable {
    public typealias Transport = HTTP2ClientTransport.Posix

    /// The sandbox image the configuration names (kubelet 1.32's default), imported from an archive.
    public static let sandboxImage = "registry.k8s.io/pause:3.10"
    static let namespace = "k8s.io"
    static let path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

    public let directory: String
    public let root: String
    public let state: String
    /// containerd's socket: point a CRI client (or podvisord's forwarding) at `unix://<socket>`.
    public let socket: String
    public let configFile: String
    public let logFile: String
    public let cniConfDir: String
    /// runc's state directory of the CRI's namespace: one directory per container (pause containers too).
    public var runcRoot: String { "\(state)/runc/\(Self.namespace)" }
    public var endpoint: String { "unix://\(socket)" }

    private let lock = NSLock()
    private var process: Daemon?
    private var grpcClient: GRPCClient<Transport>?
    private var imported = false
    private static let instances = Atomic<Int>(0)

    /// Writes the configuration; `start` runs it. `cniConfDir`: the pod network (a `TestPodNetwork`'s conf
    /// dir; an empty directory leaves NetworkReady false, which host-network pods do not need).
    public init(cniConfDir: String, cniBinDir: String = "/usr/lib/cni") throws {
        TestCleanup.removeStale(prefix: "/tmp/pvctrd-", Self.destroy)
        let n = Self.instances.add(1, ordering: .relaxed).newValue
        // Short: the socket path plus ".ttrpc" must stay under 108 bytes.
        directory = "/tmp/pvctrd-\(getpid())-\(n)"
        root = "\(directory)/root"
        state = "\(directory)/state"
        socket = "\(directory)/state/containerd.sock"
        configFile = "\(directory)/config.toml"
        logFile = "\(directory)/containerd.log"
        self.cniConfDir = cniConfDir
        Self.destroy(directory)
        try FileManager.default.createDirectory(atPath: "\(directory)/certs.d", withIntermediateDirectories: true)
        try Self.config(directory: directory, cniConfDir: cniConfDir, cniBinDir: cniBinDir)
            .write(toFile: configFile, atomically: true, encoding: .utf8)
        FileManager.default.createFile(atPath: logFile, contents: nil)
        TestCleanup.atExit { [self] in kill() }
    }

    /// A started instance: `init` and `start`.
    public static func start(cniConfDir: String) async throws -> TestContainerd {
        let containerd = try TestContainerd(cniConfDir: cniConfDir)
        try await containerd.start()
        return containerd
    }

    /// The production configuration (Configs/containerd/config.toml) with its paths moved into `directory`
    /// (root, state with the socket and runc's root, an empty certs.d) and the caller's CNI network.
    static func config(directory: String, cniConfDir: String, cniBinDir: String) throws -> String {
        let template = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Configs/containerd/config.toml").path
        var config = try String(contentsOfFile: template, encoding: .utf8)
        for (production, test) in [
            ("\"/var/lib/podvisor-containerd", "\"\(directory)/root"),
            ("\"/run/podvisor/containerd", "\"\(directory)/state"),
            ("conf_dir = \"/etc/cni/net.d\"", "conf_dir = \"\(cniConfDir)\""),
            ("bin_dir = \"/usr/lib/cni\"", "bin_dir = \"\(cniBinDir)\""),
            ("config_path = \"/etc/podvisor/certs.d\"", "config_path = \"\(directory)/certs.d\""),
        ] {
            guard config.contains(production) else { throw TestError("\(template) no longer has \(production)") }
            config = config.replacingOccurrences(of: production, with: test)
        }
        return config
    }

    // MARK: - Running

    /// CRI clients over the socket (valid between `start` and `stop`; `restart` makes new ones).
    public var runtime: Runtime_V1_RuntimeService.Client<Transport> { .init(wrapping: client()) }
    public var images: Runtime_V1_ImageService.Client<Transport> { .init(wrapping: client()) }
    /// containerd's own process (not the shims').
    public var pid: Int32? { lock.withLock { process?.pid } }

    private func client() -> GRPCClient<Transport> {
        guard let client = lock.withLock({ grpcClient }) else { fatalError("TestContainerd: not started") }
        return client
    }

    /// Starts containerd, waits until its CRI answers (RuntimeReady; NetworkReady too when the CNI conf dir
    /// holds a network), and imports the sandbox image on the first start.
    public func start() async throws {
        try launch()
        try await waitUntilReady()
        if !lock.withLock({ imported }) {
            try importImage(archive: try await PauseImage.shared.archive())
            lock.withLock { imported = true }
        }
    }

    /// Stops containerd alone (SIGTERM, as `systemctl stop` with KillMode=process): the shims and their
    /// containers keep running, and `start` takes them up again on the same root and state.
    public func stopDaemon() async {
        closeClient()
        guard let process = lock.withLock({ self.process }) else { return }
        process.signal(SIGTERM)
        let deadline = ContinuousClock.now + .seconds(15)
        while process.isRunning() && ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(20)) }
        if process.isRunning() {
            process.signal(SIGKILL)
            _ = process.wait(seconds: 10)
        }
        lock.withLock { self.process = nil }
    }

    /// `stopDaemon` and `start`: what `systemctl restart` does to the unit.
    public func restart() async throws {
        await stopDaemon()
        try await start()
    }

    /// Removes every pod through the CRI (StopPodSandbox, RemovePodSandbox: CNI DEL included), then `kill`.
    public func stop() async {
        if lock.withLock({ grpcClient != nil && process?.isRunning() == true }) {
            let pods = (try? await runtime.listPodSandbox(Runtime_V1_ListPodSandboxRequest()).items) ?? []
            for pod in pods {
                _ = try? await runtime.stopPodSandbox(.with { $0.podSandboxID = pod.id })
                _ = try? await runtime.removePodSandbox(.with { $0.podSandboxID = pod.id })
            }
        }
        kill()
    }

    /// Kills containerd, its shims and their runc containers, detaches every mount below the directory,
    /// removes the shims' sockets and the directory. No CNI DEL: the caller's network keeps what ADD made
    /// (a host-local lease; the veth went with the netns). Idempotent; also runs at exit.
    public func kill() {
        closeClient()
        if let process = lock.withLock({ self.process }) {
            process.signal(SIGKILL)
            _ = process.wait(seconds: 10)
            lock.withLock { self.process = nil }
        }
        Self.destroy(directory)
    }

    private func launch() throws {
        guard FileManager.default.fileExists(atPath: logFile) else {
            throw TestError("TestContainerd: \(directory) is gone (stopped instances do not start again)")
        }
        unlink(socket)
        var environment = ProcessInfo.processInfo.environment
        environment["PATH"] = Self.path
        let daemon = try Daemon(
            "/usr/bin/containerd", ["--config", configFile], environment: environment.map { "\($0)=\($1)" }, log: logFile)
        lock.withLock { process = daemon }
    }

    /// Waits for the socket, connects, and polls the CRI until it is ready.
    private func waitUntilReady() async throws {
        let deadline = ContinuousClock.now + .seconds(60)
        let wantNetwork = Self.hasNetwork(cniConfDir)
        var last = "no socket"
        while true {
            guard lock.withLock({ process?.isRunning() }) == true else {
                throw TestError("containerd exited: \(tail())")
            }
            if lock.withLock({ grpcClient }) == nil && access(socket, F_OK) == 0 {
                let client = GRPCClient(
                    transport: try .http2NIOPosix(target: .unixDomainSocket(path: socket), transportSecurity: .plaintext))
                Task { try? await client.runConnections() }
                lock.withLock { grpcClient = client }
            }
            guard lock.withLock({ grpcClient }) != nil else {
                guard ContinuousClock.now < deadline else { throw TestError("containerd made no socket: \(tail())") }
                try await Task.sleep(for: .milliseconds(20))
                continue
            }
            do {
                _ = try await runtime.version(Runtime_V1_VersionRequest())
                let conditions = try await runtime.status(Runtime_V1_StatusRequest()).status.conditions
                let ready = conditions.first { $0.type == "RuntimeReady" }?.status == true
                let network = conditions.first { $0.type == "NetworkReady" }
                if ready && (!wantNetwork || network?.status == true) { return }
                last = "\(conditions.map { "\($0.type)=\($0.status) \($0.message)" })"
            } catch {
                last = "\(error)"
            }
            guard ContinuousClock.now < deadline else { throw TestError("containerd's CRI not ready: \(last)\n\(tail())") }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    private func closeClient() {
        lock.withLock {
            grpcClient?.beginGracefulShutdown()
            grpcClient = nil
        }
    }

    /// The last lines of containerd's log.
    public func tail(_ characters: Int = 3000) -> String {
        String(((try? String(contentsOfFile: logFile, encoding: .utf8)) ?? "").suffix(characters))
    }

    // MARK: - Images

    /// `ctr images import` into the CRI's namespace: a docker-archive or OCI archive tarball.
    public func importImage(archive: String) throws {
        try TestRegistry.run("/usr/bin/ctr", ["--address", socket, "--namespace", Self.namespace, "images", "import", archive])
    }

    /// An image of an OCI layout (`FixtureImages.layoutDirectory()`, tag e.g. "busybox") imported as `name`.
    public func importImage(layout: String, tag: String, name: String) throws {
        let archive = "\(directory)/import-\(UUID().uuidString).tar"
        defer { unlink(archive) }
        try TestRegistry.run("/usr/bin/skopeo", ["copy", "--quiet", "oci:\(layout):\(tag)", "docker-archive:\(archive):\(name)"])
        try importImage(archive: archive)
    }

    // MARK: - What is on the host

    /// One runc container of this containerd (a pod's pause container or a container), from runc's state.json.
    public struct RuncContainer: Sendable {
        public let id: String
        public let pid: Int32
        /// One directory per cgroup v1 controller (and the unified hierarchy).
        public let cgroupPaths: [String]
        /// The shim's socket (containerd 1.6: /run/containerd/s/<sha256>), from its bundle's `address` file.
        public let shimSocket: String?
    }

    public func runcContainers() -> [RuncContainer] {
        Self.runcContainers(state: state)
    }

    public func runcContainer(_ id: String) -> RuncContainer? {
        runcContainers().first { $0.id == id }
    }

    /// What of sandbox or container `id` is still on the host: its shim, runc state, bundle, mounts, cgroups
    /// (as `container` recorded them while it ran), processes and shim socket. Empty when it is gone.
    public func traces(of id: String, as container: RuncContainer? = nil) -> [String] {
        var found: [String] = []
        let shims = HostState.processes(matching: "-id \(id) -address \(socket) ")
        if !shims.isEmpty { found.append("shim \(shims)") }
        if FileManager.default.fileExists(atPath: "\(runcRoot)/\(id)") { found.append("runc state \(runcRoot)/\(id)") }
        let bundle = "\(state)/io.containerd.runtime.v2.task/\(Self.namespace)/\(id)"
        if FileManager.default.fileExists(atPath: bundle) { found.append("bundle \(bundle)") }
        found += mountPoints(under: directory).filter { $0.contains(id) }.map { "mount \($0)" }
        if let container {
            if Self.alive(container.pid) { found.append("process \(container.pid)") }
            found += container.cgroupPaths.filter { FileManager.default.fileExists(atPath: $0) }.map { "cgroup \($0)" }
            if let socket = container.shimSocket, FileManager.default.fileExists(atPath: socket) { found.append("shim socket \(socket)") }
        }
        return found
    }

    /// Everything of this instance still on the host: containerd, shims, runc containers, mounts, the shims'
    /// sockets, the directory. Empty after `kill`.
    public func leftovers() -> [String] {
        var found: [String] = []
        let daemons = HostState.processes(matching: "\(configFile) ")
        if !daemons.isEmpty { found.append("containerd \(daemons)") }
        let shims = HostState.processes(matching: "-address \(socket) ")
        if !shims.isEmpty { found.append("shims \(shims)") }
        for container in runcContainers() {
            found.append("runc container \(container.id)")
            if Self.alive(container.pid) { found.append("process \(container.pid)") }
        }
        found += mountPoints(under: directory).map { "mount \($0)" }
        found += Self.shimSockets(state: state).filter { FileManager.default.fileExists(atPath: $0) }.map { "shim socket \($0)" }
        if FileManager.default.fileExists(atPath: directory) { found.append("directory \(directory)") }
        return found
    }

    /// A process that exists and is not a zombie (a killed shim may wait for a lazy init to reap it).
    public static func alive(_ pid: Int32) -> Bool {
        guard pid > 0, let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return false }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return fields.first.map { $0 != "Z" && $0 != "X" } ?? false
    }

    // MARK: - Clean-up

    static func runcContainers(state: String) -> [RuncContainer] {
        let runcRoot = "\(state)/runc/\(namespace)"
        let ids = (try? FileManager.default.contentsOfDirectory(atPath: runcRoot)) ?? []
        return ids.sorted().map { id in
            let data = FileManager.default.contents(atPath: "\(runcRoot)/\(id)/state.json") ?? Data()
            let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
            let pid = (json["init_process_pid"] as? NSNumber)?.int32Value ?? 0
            let cgroups = ((json["cgroup_paths"] as? [String: String]) ?? [:]).values.sorted()
            let address = try? String(
                contentsOfFile: "\(state)/io.containerd.runtime.v2.task/\(namespace)/\(id)/address", encoding: .utf8)
            return RuncContainer(id: id, pid: pid, cgroupPaths: cgroups, shimSocket: address.map(socketPath))
        }
    }

    /// The shims' socket files, from the `address` file of every bundle ("unix:///run/containerd/s/<hex>").
    static func shimSockets(state: String) -> [String] {
        let tasks = "\(state)/io.containerd.runtime.v2.task/\(namespace)"
        let ids = (try? FileManager.default.contentsOfDirectory(atPath: tasks)) ?? []
        return Set(ids.compactMap { try? String(contentsOfFile: "\(tasks)/\($0)/address", encoding: .utf8) }.map(socketPath)).sorted()
    }

    static func socketPath(_ address: String) -> String {
        let trimmed = address.trimmingCharacters(in: .whitespacesAndNewlines)
        return trimmed.hasPrefix("unix://") ? String(trimmed.dropFirst("unix://".count)) : trimmed
    }

    static func hasNetwork(_ confDir: String) -> Bool {
        ((try? FileManager.default.contentsOfDirectory(atPath: confDir)) ?? []).contains {
            $0.hasSuffix(".conflist") || $0.hasSuffix(".conf") || $0.hasSuffix(".json")
        }
    }

    /// Everything a containerd of `directory` made, gone: the daemon, its shims, their runc containers (with
    /// their processes and cgroups), the shims' sockets, the mounts below the directory (rootfs overlays,
    /// sandboxes' /dev/shm, pods' netns), the directory.
    static func destroy(_ directory: String) {
        guard FileManager.default.fileExists(atPath: directory) else { return }
        let state = "\(directory)/state"
        // The daemon first, so it restarts nothing; then the shims, so none reaps or reports what follows.
        killAll(matching: "\(directory)/config.toml ")
        killAll(matching: "-address \(state)/containerd.sock ")
        let runcRoot = "\(state)/runc/\(namespace)"
        for container in runcContainers(state: state) {
            // Kills every process of the container's cgroup (hostPID ones too), removes cgroups and state.
            let runc = Process()
            runc.executableURL = URL(fileURLWithPath: "/usr/sbin/runc")
            runc.arguments = ["--root", runcRoot, "delete", "--force", container.id]
            runc.standardOutput = FileHandle.nullDevice
            runc.standardError = FileHandle.nullDevice
            if (try? runc.run()) != nil { runc.waitUntilExit() }
            if alive(container.pid) { sendSignal(container.pid, SIGKILL) }
            for path in container.cgroupPaths.reversed() { rmdir(path) }
        }
        for socket in shimSockets(state: state) { unlink(socket) }
        HostState.detachMounts(under: directory)
        try? FileManager.default.removeItem(atPath: directory)
    }

    private static func killAll(matching needle: String) {
        for pid in HostState.processes(matching: needle) { sendSignal(pid, SIGKILL) }
        for _ in 0..<100 where !HostState.processes(matching: needle).isEmpty { usleep(20_000) }
    }

}

/// containerd as a child of the test process, spawned with only stdin (/dev/null), stdout and stderr (the log)
/// open, and reaped here. Not Foundation's `Process`: it learns of an exit from a socket the child inherits,
/// containerd passes it on to its shims, and a shim that outlives containerd (a restart) kept the process
/// "running" forever (`waitUntilExit` spun).
final class Daemon: @unchecked Sendable {
    let pid: pid_t
    private let lock = NSLock()
    private var exited = false

    init(_ executable: String, _ arguments: [String], environment: [String], log: String) throws {
        let logFD = open(log, O_WRONLY | O_APPEND | O_CLOEXEC)
        guard logFD >= 0 else { throw TestError("open \(log): \(String(cString: strerror(errno)))") }
        defer { close(logFD) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, logFD, 1)
        posix_spawn_file_actions_adddup2(&actions, logFD, 2)
        // Nothing else of the test process: glibc's closefrom action (2.34; Swift's Glibc module does not
        // import it), else each descriptor open now.
        if let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np") {
            typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
            _ = unsafeBitCast(symbol, to: CloseFrom.self)(&actions, 3)
        } else {
            for fd in ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []).compactMap({ Int32($0) })
            where fd > 2 && fd != logFD {
                posix_spawn_file_actions_addclose(&actions, fd)
            }
        }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // No signal blocked or ignored as the test runner has them; a process group of its own.
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attributes, &none)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup($0) } + [nil]
        defer { (argv + envp).forEach { free($0) } }
        var pid = pid_t()
        let rc = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        guard rc == 0 else { throw TestError("spawn \(executable): \(String(cString: strerror(rc)))") }
        self.pid = pid
    }

    /// Reaps the process once it has exited.
    func isRunning() -> Bool {
        lock.withLock {
            guard !exited else { return false }
            var status: Int32 = 0
            let reaped = waitpid(pid, &status, WNOHANG)
            if reaped == pid || (reaped == -1 && errno == ECHILD) { exited = true }
            return !exited
        }
    }

    func signal(_ number: Int32) {
        if isRunning() { sendSignal(pid, number) }
    }

    /// True when it exited within `seconds`.
    func wait(seconds: Int) -> Bool {
        for _ in 0..<(seconds * 50) {
            if !isRunning() { return true }
            usleep(20_000)
        }
        return !isRunning()
    }
}

/// The pause image (Fixtures/make-pause-image.sh: Fixtures/pause.c, static) as a docker-archive named
/// `TestContainerd.sandboxImage`, built once per test process.
actor PauseImage {
    static let shared = PauseImage()
    private var built: String?

    func archive() throws -> String {
        if let built { return built }
        TestCleanup.removeStale(prefix: "/tmp/podvisor-pause-")
        let directory = "/tmp/podvisor-pause-\(getpid())"
        TestCleanup.removeAtExit(directory)
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/make-pause-image.sh").path
        try TestRegistry.run(script, ["\(directory)/work", "\(directory)/pause.tar", TestContainerd.sandboxImage])
        built = "\(directory)/pause.tar"
        return "\(directory)/pause.tar"
    }
}

#if canImport(Glibc)
import Glibc
#endif
import CContainerSpawn
import CLinuxSupport
import PodvisorAgentProtocol

/// Every container and process the agent runs, and their exit statuses. The PID-1 loop reports reaped
/// children here; RPC threads block on the condition until what they wait for has happened.
public final class Containers: Sendable {
    struct Exit: Equatable {
        var code: Int32
        var signal: Int32
        var finishedAtNs: Int64
    }

    struct Process {
        var pid: pid_t
        var stdinFD: Int32?
        var stdoutFD: Int32
        var stderrFD: Int32
        var exit: Exit?
    }

    struct Container {
        var rootfs: String
        var initProcess: Process
        /// Write end the created (not yet started) init waits on; nil once started.
        var startFD: Int32?
        var statusFD: Int32?
        /// The container cgroup's cgroup.procs, which every process of the container joins.
        var cgroupProcsFD: Int32
        var execs: [String: Process] = [:]
    }

    struct State {
        var containers: [String: Container] = [:]
        /// The pod's sandbox process, once CreateSandbox ran.
        var sandboxPID: pid_t?
        /// The sandbox has a user namespace of its own, which every container and exec joins.
        var userNamespace = false
    }

    private let state = Condition(State())
    /// Output read from the pipes but not yet acknowledged by the host.
    private let outputs = OutputBuffers()
    /// Where the VM's shared directory is mounted; container rootfs paths are relative to it.
    let sharedDirectory: String

    public init(sharedDirectory: String) {
        self.sharedDirectory = sharedDirectory
    }

    // MARK: reaping

    /// Called by PID 1 for every child it reaps. Returns false for a pid that belongs to no container.
    @discardableResult
    public func reaped(pid: pid_t, status: Int32) -> Bool {
        let exit = Self.exit(from: status)
        return state.update { s in
            for (id, var container) in s.containers {
                if container.initProcess.pid == pid {
                    container.initProcess.exit = exit
                    s.containers[id] = container
                    return true
                }
                if let execID = container.execs.first(where: { $0.value.pid == pid })?.key {
                    container.execs[execID]?.exit = exit
                    s.containers[id] = container
                    return true
                }
            }
            return false
        }
    }

    static func exit(from status: Int32) -> Exit {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        let at = Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
        // WIFSIGNALED: low 7 bits hold the signal; otherwise the exit code is in bits 8-15.
        let signal = status & 0x7f
        if signal != 0 && signal != 0x7f { return Exit(code: 128 + signal, signal: signal, finishedAtNs: at) }
        return Exit(code: (status >> 8) & 0xff, signal: 0, finishedAtNs: at)
    }

    // MARK: RPCs

    func createSandbox(_ request: Podvisor_Agent_V1_CreateSandboxRequest) throws(RPCError) {
        var sysctls = try Self.sysctls(request.sysctls)
        let arena = CArena()
        var config = pv_spawn_config()
        config.sandbox_init = 1
        if request.hasUserNamespace {
            let maps = try Self.idMaps(request.userNamespace)
            config.user_namespace = 1
            config.uid_map = arena.string(maps.uid)
            config.gid_map = arena.string(maps.gid)
            sysctls = try Self.writeNetworkSysctls(sysctls)
        }
        config.hostname = request.hostname.isEmpty ? nil : arena.string(request.hostname)
        config.sysctl_files = arena.strings(sysctls.map(\.file))
        config.sysctl_values = arena.strings(sysctls.map(\.value))
        config.cgroup_procs_fd = -1
        config.start_fd = -1
        var error = [CChar](repeating: 0, count: 512)
        var statusFD: Int32 = -1
        let spawned = try state.update { s throws(RPCError) -> pid_t in
            guard s.sandboxPID == nil else { throw RPCError(.alreadyExists, "the sandbox already exists") }
            let pid = withExtendedLifetime(arena) { pv_spawn(&config, &statusFD, &error, error.count) }
            guard pid > 0 else { throw RPCError(.internal, Self.string(error)) }
            s.sandboxPID = pid
            s.userNamespace = request.hasUserNamespace
            return pid
        }
        let failure = Self.waitStage(statusFD, "R")
        close(statusFD)
        if let failure {
            kill(spawned, SIGKILL)
            state.update {
                $0.sandboxPID = nil
                $0.userNamespace = false
            }
            throw RPCError(.invalidArgument, "cannot create the sandbox: \(failure)")
        }
    }

    /// /proc/<pid>/uid_map and gid_map lines of the pod's user namespace.
    static func idMaps(_ namespace: Podvisor_Agent_V1_UserNamespace) throws(RPCError) -> (uid: String, gid: String) {
        func line(_ mapping: Podvisor_Agent_V1_IDMapping, _ what: String) throws(RPCError) -> String {
            let limit = UInt64(UInt32.max)
            guard mapping.length > 0, UInt64(mapping.containerID) + UInt64(mapping.length) <= limit,
                UInt64(mapping.hostID) + UInt64(mapping.length) <= limit
            else {
                throw RPCError(.invalidArgument, "\(what) mapping \(mapping.containerID) \(mapping.hostID) \(mapping.length) is out of range")
            }
            return "\(mapping.containerID) \(mapping.hostID) \(mapping.length)\n"
        }
        guard namespace.hasUids, namespace.hasGids else { throw RPCError(.invalidArgument, "a user namespace needs uid and gid mappings") }
        return (try line(namespace.uids, "uid"), try line(namespace.gids, "gid"))
    }

    /// The guest's network namespace is the pod's, but it belongs to the guest's user namespace, where a pod in
    /// its own may not write: the agent writes the pod's net.* sysctls itself. Returns the others.
    private static func writeNetworkSysctls(_ sysctls: [(file: String, value: String)]) throws(RPCError) -> [(file: String, value: String)] {
        for sysctl in sysctls where sysctl.file.hasPrefix(networkSysctls) {
            guard GuestFiles.write(sysctl.value, to: sysctl.file) else {
                throw RPCError(.invalidArgument, "cannot create the sandbox: \(sysctl.file): errno \(errno)")
            }
        }
        return sysctls.filter { !$0.file.hasPrefix(networkSysctls) }
    }

    private static let networkSysctls = "/proc/sys/net/"

    /// The container's init, held before exec: its pid and the identity it will run as.
    func create(_ request: Podvisor_Agent_V1_CreateContainerRequest) throws(RPCError) -> (pid: pid_t, identity: UserDatabase.Identity) {
        try Self.validate(id: request.containerID, what: "container id")
        let relative = request.rootfs
        guard !relative.isEmpty, !relative.hasPrefix("/"), !relative.split(separator: "/").contains("..") else {
            throw RPCError(.invalidArgument, "rootfs must be a relative path inside the shared directory, got \"\(relative)\"")
        }
        let rootfs = "\(sharedDirectory)/\(relative)"
        guard GuestFiles.exists(rootfs) else { throw RPCError(.notFound, "rootfs \(relative) does not exist in the guest") }
        let identity = try UserDatabase.resolve(request.process, rootfs: rootfs)
        let (exists, sandboxPID, userNamespace) = state.update { ($0.containers[request.containerID] != nil, $0.sandboxPID, $0.userNamespace) }
        guard !exists else { throw RPCError(.alreadyExists, "container \(request.containerID) already exists") }
        guard sandboxPID == nil || request.hostname.isEmpty else {
            throw RPCError(.failedPrecondition, "the hostname belongs to the sandbox; containers in it cannot set their own")
        }
        let setup = RootfsSetup(
            rootfs: rootfs, newPIDNamespace: request.ownPidNamespace, readonlyRootfs: request.readonlyRootfs,
            privileged: request.privileged, hostname: request.hostname, maskedPaths: try Self.containerPaths(request.maskedPaths, "masked path"),
            readonlyPaths: try Self.containerPaths(request.readonlyPaths, "read-only path"),
            // In the pod's user namespace the sandbox wrote the net.* sysctls; the rest are the container's own.
            sysctls: try Self.sysctls(request.sysctls).filter { !userNamespace || !$0.file.hasPrefix(Self.networkSysctls) },
            sandboxPID: sandboxPID ?? 0, userNamespace: userNamespace, mounts: try volumes(request.mounts))

        let cgroupFD = try Cgroups.create(request.containerID, request.resources)
        var start: [Int32] = [-1, -1]
        guard pv_pipe(&start) == 0 else {
            close(cgroupFD)
            Cgroups.remove(request.containerID)
            throw RPCError(.internal, "pipe: errno \(errno)")
        }
        let spawned: Spawned
        do throws(RPCError) {
            spawned = try spawn(
                request.process, identity: identity, joinPID: 0, setup: setup, cgroupFD: cgroupFD, startFD: start[0]
            ) { s, process, statusFD in
                s.containers[request.containerID] = Container(
                    rootfs: rootfs, initProcess: process, startFD: start[1], statusFD: statusFD, cgroupProcsFD: cgroupFD)
            }
        } catch {
            close(start[0])
            close(start[1])
            close(cgroupFD)
            Cgroups.remove(request.containerID)
            throw error
        }
        close(start[0])
        // The child reports once namespaces, mounts and identity are in place and it waits for Start.
        if let failure = Self.waitStage(spawned.statusFD, "R") {
            forget(request.containerID)
            throw RPCError(.invalidArgument, "cannot create container \(request.containerID): \(failure)")
        }
        return (spawned.pid, identity)
    }

    func start(_ id: String) throws(RPCError) {
        let fds = try state.update { s throws(RPCError) -> (start: Int32, status: Int32) in
            guard let c = s.containers[id] else { throw RPCError(.notFound, "container \(id) not found") }
            guard let start = c.startFD, let status = c.statusFD else {
                throw RPCError(.failedPrecondition, "container \(id) was already started")
            }
            s.containers[id]?.startFD = nil
            s.containers[id]?.statusFD = nil
            return (start, status)
        }
        var go: UInt8 = 1
        _ = write(fds.start, &go, 1)
        close(fds.start)
        let failure = Self.waitStage(fds.status, "X")
        close(fds.status)
        if let failure { throw RPCError(.failedPrecondition, "container \(id) failed to start: \(failure)") }
    }

    func exec(_ request: Podvisor_Agent_V1_ExecProcessRequest) throws(RPCError) {
        try Self.validate(id: request.execID, what: "exec id")
        let target = try state.update { s throws(RPCError) -> (pid: pid_t, rootfs: String, cgroupFD: Int32, userNamespace: Bool) in
            guard let c = s.containers[request.containerID] else {
                throw RPCError(.notFound, "container \(request.containerID) not found")
            }
            guard c.initProcess.exit == nil, c.startFD == nil else {
                throw RPCError(.failedPrecondition, "container \(request.containerID) is not running")
            }
            guard c.execs[request.execID] == nil else { throw RPCError(.alreadyExists, "exec \(request.execID) already exists") }
            return (c.initProcess.pid, c.rootfs, c.cgroupProcsFD, s.userNamespace)
        }
        let identity = try UserDatabase.resolve(request.process, rootfs: target.rootfs)
        let spawned = try spawn(
            request.process, identity: identity, joinPID: target.pid,
            setup: RootfsSetup(rootfs: target.rootfs, userNamespace: target.userNamespace),
            cgroupFD: target.cgroupFD, startFD: -1
        ) { s, process, _ in
            s.containers[request.containerID]?.execs[request.execID] = process
        }
        let failure = Self.waitStage(spawned.statusFD, "X")
        close(spawned.statusFD)
        if let failure {
            _ = state.update { $0.containers[request.containerID]?.execs.removeValue(forKey: request.execID) }
            throw RPCError(.failedPrecondition, "exec \(request.execID) failed: \(failure)")
        }
    }

    func signal(_ ref: Podvisor_Agent_V1_ProcessRef, _ signal: Int32) throws(RPCError) {
        guard signal > 0 && signal < 65 else { throw RPCError(.invalidArgument, "signal \(signal) out of range") }
        let process = try lookup(ref)
        guard process.exit == nil else { return }
        if kill(process.pid, signal) != 0 && errno != ESRCH {
            throw RPCError(.internal, "kill \(process.pid): errno \(errno)")
        }
    }

    func wait(_ ref: Podvisor_Agent_V1_ProcessRef) throws(RPCError) -> Exit {
        _ = try lookup(ref)
        // A removed container ends the wait too: its processes were killed.
        return state.wait { s in
            guard let c = s.containers[ref.containerID] else { return Exit(code: 137, signal: SIGKILL, finishedAtNs: 0) }
            let process = ref.execID.isEmpty ? c.initProcess : c.execs[ref.execID]
            return process?.exit ?? (process == nil ? Exit(code: 137, signal: SIGKILL, finishedAtNs: 0) : nil)
        }
    }

    func readOutput(_ request: Podvisor_Agent_V1_ReadOutputRequest) throws(RPCError) -> (data: [UInt8], eof: Bool, offset: UInt64) {
        let process = try lookup(request.process)
        let fd = request.stream == .stderr ? process.stderrFD : process.stdoutFD
        let key = OutputBuffers.Key(containerID: request.process.containerID, execID: request.process.execID, stderr: request.stream == .stderr)
        return outputs.next(key, offset: request.hasOffset ? request.offset : nil, max: Int(min(max(request.maxBytes, 1), 1 << 20))) { max in
            // Closed by RemoveContainer while we read: the end of the stream.
            let bytes = try? FileDescriptorStream(fd: fd).read(upTo: max)
            return bytes?.isEmpty == false ? bytes : nil
        }
    }

    func writeStdin(_ request: Podvisor_Agent_V1_WriteStdinRequest) throws(RPCError) {
        guard let fd = try lookup(request.process).stdinFD else {
            throw RPCError(.failedPrecondition, "process has no open stdin")
        }
        do { try FileDescriptorStream(fd: fd).write(Array(request.data)) } catch {
            throw RPCError(.failedPrecondition, "stdin closed: \(error)")
        }
    }

    func closeStdin(_ ref: Podvisor_Agent_V1_ProcessRef) throws(RPCError) {
        let fd = try state.update { s throws(RPCError) -> Int32? in
            guard var c = s.containers[ref.containerID] else { throw RPCError(.notFound, "container \(ref.containerID) not found") }
            let fd: Int32?
            if ref.execID.isEmpty {
                fd = c.initProcess.stdinFD
                c.initProcess.stdinFD = nil
            } else {
                guard c.execs[ref.execID] != nil else { throw RPCError(.notFound, "exec \(ref.execID) not found") }
                fd = c.execs[ref.execID]?.stdinFD
                c.execs[ref.execID]?.stdinFD = nil
            }
            s.containers[ref.containerID] = c
            return fd
        }
        if let fd { close(fd) }
    }

    /// Drops an exited exec; releasing one that is already gone succeeds (the host may retry).
    func release(_ ref: Podvisor_Agent_V1_ProcessRef) throws(RPCError) {
        guard !ref.execID.isEmpty else { throw RPCError(.invalidArgument, "only execs are released; RemoveContainer forgets the main process") }
        let released = try state.update { s throws(RPCError) -> Process? in
            guard let process = s.containers[ref.containerID]?.execs[ref.execID] else { return nil }
            guard process.exit != nil else { throw RPCError(.failedPrecondition, "exec \(ref.execID) is still running") }
            s.containers[ref.containerID]?.execs[ref.execID] = nil
            return process
        }
        guard let released else { return }
        outputs.forget(containerID: ref.containerID, execID: ref.execID)
        close(released.stdoutFD)
        close(released.stderrFD)
        if let fd = released.stdinFD { close(fd) }
    }

    func resize(_ request: Podvisor_Agent_V1_ResizeTTYRequest) throws(RPCError) {
        let process = try lookup(request.process)
        guard request.rows <= UInt32(UInt16.max), request.columns <= UInt32(UInt16.max) else {
            throw RPCError(.invalidArgument, "window size \(request.rows)x\(request.columns) out of range")
        }
        guard pv_set_window_size(process.stdoutFD, UInt16(request.rows), UInt16(request.columns)) == 0 else {
            throw RPCError(.failedPrecondition, "process has no terminal")
        }
    }

    func stats(_ id: String) throws(RPCError) -> Podvisor_Agent_V1_ContainerStatsResponse {
        guard state.update({ $0.containers[id] != nil }) else { throw RPCError(.notFound, "container \(id) not found") }
        return Cgroups.stats(id)
    }

    func update(_ id: String, _ resources: Podvisor_Agent_V1_Resources) throws(RPCError) {
        guard state.update({ $0.containers[id] != nil }) else { throw RPCError(.notFound, "container \(id) not found") }
        try Cgroups.apply(resources, to: id)
    }

    func remove(_ id: String) throws(RPCError) {
        guard state.update({ $0.containers[id] != nil }) else { throw RPCError(.notFound, "container \(id) not found") }
        forget(id)
        outputs.forget(containerID: id)
    }

    // MARK: helpers

    private struct Spawned {
        var pid: pid_t
        var statusFD: Int32
    }

    /// What only a container's init gets: its root filesystem and what is mounted and set inside it.
    struct RootfsSetup {
        var rootfs: String
        var newPIDNamespace = false
        var readonlyRootfs = false
        var privileged = false
        var hostname = ""
        var maskedPaths: [String] = []
        var readonlyPaths: [String] = []
        /// /proc/sys/… file → value.
        var sysctls: [(file: String, value: String)] = []
        /// The pod's sandbox process whose namespaces the container shares (see CreateSandbox).
        var sandboxPID: pid_t = 0
        /// The sandbox's user namespace is joined (by a container, or an exec in one).
        var userNamespace = false
        var mounts: [(source: String, destination: String, readonly: Int32, propagation: UInt)] = []
    }

    /// Creates the stdio pipes and the process, and registers it (through `register`) under the same lock
    /// the reaper takes, so even a process that exits at once is never reaped unrecorded.
    /// `joinPID` 0 creates a container from `setup`; otherwise the process joins that one's namespaces.
    private func spawn(
        _ spec: Podvisor_Agent_V1_ProcessSpec, identity: UserDatabase.Identity, joinPID: pid_t, setup: RootfsSetup,
        cgroupFD: Int32, startFD: Int32, register: (inout State, Process, Int32) -> Void
    ) throws(RPCError) -> Spawned {
        guard !spec.args.isEmpty, !spec.args[0].isEmpty else { throw RPCError(.invalidArgument, "process args are empty") }
        guard spec.cwd.isEmpty || spec.cwd.hasPrefix("/") else {
            throw RPCError(.invalidArgument, "working directory must be absolute, got \"\(spec.cwd)\"")
        }
        let capabilities = spec.hasCapabilities ? try ProcessLimits.capabilityMask(spec.capabilities.names) : nil
        let rlimits = try ProcessLimits.rlimits(spec.rlimits)
        let seccomp = try SeccompProfile.program(for: spec.seccomp, capabilities: capabilities)
        // [read end, write end] of each stream. With a terminal the child opens it in the container's own
        // /dev/pts and sends the master back over `console`; the agent then reads and writes the master, and
        // until then the child's stdio is /dev/null (stderr stays empty: the terminal carries everything).
        var out: [Int32] = [-1, -1], err: [Int32] = [-1, -1], input: [Int32] = [-1, -1], console: [Int32] = [-1, -1]
        if spec.terminal {
            guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &console) == 0 else {
                throw RPCError(.internal, "socketpair: errno \(errno)")
            }
            input[0] = open("/dev/null", O_RDONLY | O_CLOEXEC)
            out[1] = open("/dev/null", O_WRONLY | O_CLOEXEC)
            err = [open("/dev/null", O_RDONLY | O_CLOEXEC), open("/dev/null", O_WRONLY | O_CLOEXEC)]
        } else {
            guard pv_pipe(&out) == 0, pv_pipe(&err) == 0 else { throw RPCError(.internal, "pipe: errno \(errno)") }
            if spec.stdin {
                guard pv_pipe(&input) == 0 else { throw RPCError(.internal, "pipe: errno \(errno)") }
            } else {
                input[0] = open("/dev/null", O_RDONLY | O_CLOEXEC)
            }
        }
        defer {
            // The child's ends: it has its own copies now (or never will).
            close(out[1])
            close(err[1])
            close(input[0])
            if console[0] >= 0 { close(console[0]) }
        }
        // Everything the child reads lives in C memory owned by `arena` until pv_spawn has returned.
        let arena = CArena()
        var config = pv_spawn_config()
        config.join_pid = joinPID
        config.sandbox_pid = setup.sandboxPID
        config.user_namespace = setup.userNamespace ? 1 : 0
        config.rootfs = arena.string(setup.rootfs)
        config.new_pid_namespace = setup.newPIDNamespace ? 1 : 0
        config.readonly_rootfs = setup.readonlyRootfs ? 1 : 0
        config.privileged = setup.privileged ? 1 : 0
        config.hostname = setup.hostname.isEmpty ? nil : arena.string(setup.hostname)
        config.mounts = arena.array(
            setup.mounts.map {
                pv_mount(
                    source: arena.string($0.source), destination: arena.string($0.destination),
                    readonly: $0.readonly, propagation: $0.propagation)
            })
        config.mount_count = setup.mounts.count
        config.masked_paths = arena.strings(setup.maskedPaths)
        config.readonly_paths = arena.strings(setup.readonlyPaths)
        config.sysctl_files = arena.strings(setup.sysctls.map(\.file))
        config.sysctl_values = arena.strings(setup.sysctls.map(\.value))
        config.cwd = arena.string(spec.cwd.isEmpty ? "/" : spec.cwd)
        config.argv = arena.strings(spec.args)
        config.envp = arena.strings(spec.env)
        config.uid = identity.uid
        config.gid = identity.gid
        config.groups = arena.array(identity.additionalGIDs)
        config.group_count = identity.additionalGIDs.count
        config.no_new_privileges = spec.noNewPrivileges ? 1 : 0
        config.set_capabilities = capabilities == nil ? 0 : 1
        config.capabilities = capabilities ?? 0
        config.rlimits = arena.array(rlimits)
        config.rlimit_count = rlimits.count
        config.seccomp_filter = seccomp.isEmpty ? nil : UnsafeRawPointer(arena.array(seccomp))
        config.seccomp_instructions = UInt16(seccomp.count / 8)
        config.stdio = (input[0], out[1], err[1])
        config.console_socket = console[1]
        config.start_fd = startFD
        config.cgroup_procs_fd = cgroupFD
        var error = [CChar](repeating: 0, count: 512)
        var statusFD: Int32 = -1
        let result = state.update { s -> Result<Spawned, RPCError> in
            // The arena's memory must outlive the call, whatever ARC decides about its last use.
            let pid = withExtendedLifetime(arena) { pv_spawn(&config, &statusFD, &error, error.count) }
            if console[1] >= 0 { close(console[1]) }
            guard pid > 0 else { return .failure(RPCError(.internal, Self.string(error))) }
            if spec.terminal {
                // The child sends the master once its terminal is set up; one that failed before (its error is on
                // the status pipe) closes the socket by exiting, and the caller reports that error.
                let master = pv_recv_fd(console[0])
                out[0] = master >= 0 ? master : open("/dev/null", O_RDONLY | O_CLOEXEC)
                input[1] = spec.stdin && master >= 0 ? fcntl(master, F_DUPFD_CLOEXEC, 0) : -1
            }
            let process = Process(
                pid: pid, stdinFD: spec.stdin && input[1] >= 0 ? input[1] : nil, stdoutFD: out[0], stderrFD: err[0])
            register(&s, process, statusFD)
            return .success(Spawned(pid: pid, statusFD: statusFD))
        }
        switch result {
        case .success(let spawned): return spawned
        case .failure(let error):
            if out[0] >= 0 { close(out[0]) }
            close(err[0])
            if spec.stdin && input[1] >= 0 { close(input[1]) }
            throw error
        }
    }

    /// A NUL-terminated C buffer as a String.
    static func string(_ buffer: [CChar]) -> String {
        String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// nil when the child reached `stage`, else its error message.
    private static func waitStage(_ statusFD: Int32, _ stage: Character) -> String? {
        var error = [CChar](repeating: 0, count: 512)
        guard pv_spawn_wait(statusFD, CChar(stage.asciiValue!), &error, error.count) != 0 else { return nil }
        return string(error)
    }

    private func lookup(_ ref: Podvisor_Agent_V1_ProcessRef) throws(RPCError) -> Process {
        try state.update { s throws(RPCError) -> Process in
            guard let c = s.containers[ref.containerID] else { throw RPCError(.notFound, "container \(ref.containerID) not found") }
            if ref.execID.isEmpty { return c.initProcess }
            guard let p = c.execs[ref.execID] else { throw RPCError(.notFound, "exec \(ref.execID) not found") }
            return p
        }
    }

    /// Kills every process of the container, waits until they are reaped, closes their pipes.
    private func forget(_ id: String) {
        guard let container = state.update({ $0.containers[id] }) else { return }
        let processes = [container.initProcess] + Array(container.execs.values)
        for p in processes where p.exit == nil { kill(p.pid, SIGKILL) }
        _ = state.wait { s -> Bool? in
            guard let c = s.containers[id] else { return true }
            return ([c.initProcess] + Array(c.execs.values)).allSatisfy { $0.exit != nil } ? true : nil
        }
        _ = state.update { $0.containers.removeValue(forKey: id) }
        for p in processes {
            close(p.stdoutFD)
            close(p.stderrFD)
            if let fd = p.stdinFD { close(fd) }
        }
        for fd in [container.startFD, container.statusFD].compactMap({ $0 }) { close(fd) }
        close(container.cgroupProcsFD)
        Cgroups.remove(id)
    }

    /// Volume sources must lie inside the shared directory and exist; destinations inside the container.
    private func volumes(
        _ mounts: [Podvisor_Agent_V1_Mount]
    ) throws(RPCError) -> [(source: String, destination: String, readonly: Int32, propagation: UInt)] {
        try mounts.map { m throws(RPCError) in
            guard !m.source.isEmpty, !m.source.hasPrefix("/"), !m.source.split(separator: "/").contains("..") else {
                throw RPCError(.invalidArgument, "volume source \"\(m.source)\" must be a relative path inside the shared directory")
            }
            let destination = try Self.containerPaths([m.destination], "volume destination")[0]
            let source = "\(sharedDirectory)/\(m.source)"
            guard GuestFiles.exists(source) else { throw RPCError(.notFound, "volume source \(m.source) does not exist in the guest") }
            let propagation: UInt =
                switch m.propagation {
                case .rslave: pv_ms_slave()
                case .rshared: pv_ms_shared()
                default: pv_ms_private()
                }
            let readonly = !m.readonly ? PV_READWRITE : m.recursiveReadonly ? PV_READONLY_RECURSIVE : PV_READONLY_TOP
            if readonly == PV_READONLY_TOP {
                for submount in m.submounts where !submount.hasPrefix("/") && !submount.split(separator: "/").contains("..") {
                    _ = GuestFiles.exists("\(source)/\(submount)/.")  // the lookup mounts it
                }
            }
            return (source, destination, Int32(readonly), propagation)
        }
    }

    static func containerPaths(_ paths: [String], _ what: String) throws(RPCError) -> [String] {
        for path in paths where !path.hasPrefix("/") || path.split(separator: "/").contains("..") {
            throw RPCError(.invalidArgument, "\(what) \"\(path)\" must be absolute and stay inside the container")
        }
        return paths
    }

    /// Only sysctls that belong to the container's namespaces (IPC, UTS) or the pod's network namespace:
    /// anything else would change the whole VM.
    static func sysctls(_ requested: [String: String]) throws(RPCError) -> [(file: String, value: String)] {
        let namespaced = ["kernel.shm", "kernel.msg", "kernel.sem", "fs.mqueue.", "net.", "kernel.hostname", "kernel.domainname"]
        return try requested.sorted { $0.key < $1.key }.map { key, value throws(RPCError) in
            let wellFormed =
                !key.isEmpty
                && key.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7a) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2e || $0 == 0x5f || $0 == 0x2d }
            guard wellFormed, !key.contains(".."), namespaced.contains(where: { key.hasPrefix($0) }) else {
                throw RPCError(.invalidArgument, "sysctl \(key) is not a namespaced sysctl")
            }
            return ("/proc/sys/" + key.replacingDots(), value)
        }
    }

    static func validate(id: String, what: String) throws(RPCError) {
        let allowed = id.utf8.allSatisfy {
            ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5a) || ($0 >= 0x61 && $0 <= 0x7a) || $0 == 0x2d || $0 == 0x5f || $0 == 0x2e
        }
        guard !id.isEmpty, id.utf8.count <= 128, allowed, id != ".", id != ".." else {
            throw RPCError(.invalidArgument, "\(what) \"\(id)\" must be 1-128 characters of [A-Za-z0-9._-]")
        }
    }
}

/// C memory for one spawn: strings, NULL-terminated string arrays and plain arrays, freed together.
final class CArena {
    private var allocations: [UnsafeMutableRawPointer] = []

    deinit { allocations.forEach { free($0) } }

    func string(_ s: String) -> UnsafePointer<CChar> {
        let copy = strdup(s)!
        allocations.append(copy)
        return UnsafePointer(copy)
    }

    func strings(_ list: [String]) -> UnsafePointer<UnsafePointer<CChar>?> {
        let pointers: [UnsafePointer<CChar>?] = list.map { string($0) } + [nil]
        return array(pointers)
    }

    func array<T>(_ values: [T]) -> UnsafePointer<T> {
        let memory = malloc(max(1, values.count * MemoryLayout<T>.stride))!
        allocations.append(memory)
        let typed = memory.bindMemory(to: T.self, capacity: max(1, values.count))
        for (i, value) in values.enumerated() { (typed + i).initialize(to: value) }
        return UnsafePointer(typed)
    }
}

extension String {
    /// `net.ipv4.ip_forward` → `net/ipv4/ip_forward`.
    fileprivate func replacingDots() -> String {
        String(map { $0 == "." ? "/" : $0 })
    }
}

extension UserDatabase {
    /// Against the container's files over virtio-fs, which a process the host pinned does not need.
    static func resolve(_ spec: Podvisor_Agent_V1_ProcessSpec, rootfs: String) throws(RPCError) -> Identity {
        try resolve(spec, passwd: { GuestFiles.read("\(rootfs)/etc/passwd") }, group: { GuestFiles.read("\(rootfs)/etc/group") })
    }
}

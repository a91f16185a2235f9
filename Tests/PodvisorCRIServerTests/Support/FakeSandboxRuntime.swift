import Foundation
import PodvisorCore
import PodvisorRuntime
import Synchronization

/// A sandbox runtime without VMs, for the CRI handlers' own rules (validation, idempotence, state
/// transitions, error codes), as containerd tests its CRI server against a fake sandbox controller.
/// Containers "run" until they are signalled; their output is what `output` says.
final class FakeSandboxRuntime: SandboxRuntime {
    struct State {
        var sandboxes: [String: FakeSandbox] = [:]
        /// Ids with host traces: created and not yet removed.
        var traces: Set<String> = []
        var containerTraces: Set<String> = []
        var failNextCreate: PodvisorError?
        var network = (ready: true, reason: "", message: "")
        var specs: [SandboxSpec] = []
    }

    let state = Mutex(State())
    let root: String

    init(root: String) { self.root = root }

    func createSandbox(_ spec: SandboxSpec) async throws(PodvisorError) -> any PodSandbox {
        let sandbox = FakeSandbox(id: spec.id, runtime: self)
        try state.withLock { s throws(PodvisorError) in
            if let failure = s.failNextCreate {
                s.failNextCreate = nil
                throw failure
            }
            s.sandboxes[spec.id] = sandbox
            s.traces.insert(spec.id)
            s.specs.append(spec)
        }
        return sandbox
    }

    func reattachSandbox(id: String) async throws(PodvisorError) -> any PodSandbox {
        guard let sandbox = state.withLock({ $0.sandboxes[id] }) else { throw PodvisorError(.notFound, "no sandbox \(id)") }
        return sandbox
    }

    func removeSandbox(id: String) async throws(PodvisorError) {
        state.withLock {
            $0.traces.remove(id)
            $0.sandboxes[id] = nil
        }
    }

    func sandboxIDs() -> [String] { state.withLock { Array($0.traces) } }

    func removeContainer(id: String) throws(PodvisorError) {
        _ = state.withLock { $0.containerTraces.remove(id) }
    }

    func containerIDs() -> [String] { state.withLock { Array($0.containerTraces) } }

    func writableLayer(containerID: String) -> String { "\(root)/upper-\(containerID)" }

    var writableLayersRoot: String { root }

    func readiness() -> (ready: Bool, message: String) { (true, "") }

    func networkReadiness() -> (ready: Bool, reason: String, message: String) { state.withLock { $0.network } }

    var hostInfo: [String: String] { ["hypervisor": "fake"] }

    func hostUsage() -> [String: SandboxHostUsage] {
        Dictionary(
            uniqueKeysWithValues: state.withLock { $0.sandboxes.keys }.map {
                (SandboxSpec.vmID($0), SandboxHostUsage(pssBytes: 1 << 20, cpuSeconds: 1))
            })
    }
}

/// One fake pod: container processes are continuations that a signal or a stop resumes.
final class FakeSandbox: PodSandbox {
    struct Container {
        var spec: ContainerSpec
        var started = false
        var exit: ProcessExit?
        var waiters: [CheckedContinuation<ProcessExit, Never>] = []
    }

    let id: String
    private unowned let runtime: FakeSandboxRuntime
    let containers = Mutex<[String: Container]>([:])
    let execs = Mutex<[ProcessRef: ProcessSpec]>([:])
    let stopped = Mutex<(done: Bool, waiters: [CheckedContinuation<SandboxStop, Never>])>((false, []))
    /// What every process writes to stdout before it exits.
    let output = Data("hello\n".utf8)

    init(id: String, runtime: FakeSandboxRuntime) {
        self.id = id
        self.runtime = runtime
    }

    var info: SandboxInfo {
        var info = SandboxInfo(
            domain: "fake-\(id.prefix(16))", bootToReady: .milliseconds(1), agentVersion: "fake", guestKernel: "fake",
            sharedDirectory: "", memoryMiB: 256, vcpus: 1, transport: "fake", hypervisor: "fake")
        info.ips = ["10.0.0.2", "fd00::2"]
        info.portMappingsByNetwork = true
        return info
    }

    func health() async throws(PodvisorError) -> SandboxHealth { SandboxHealth(agentRSSBytes: 1, guestMemAvailableBytes: 1, bootRoot: "") }

    func createContainer(_ spec: ContainerSpec) async throws(PodvisorError) -> ContainerIdentity {
        containers.withLock { $0[spec.id] = Container(spec: spec) }
        _ = runtime.state.withLock { $0.containerTraces.insert(spec.id) }
        let gid = spec.process.gid ?? 1000
        return ContainerIdentity(uid: spec.process.uid, gid: gid, groups: [gid] + spec.process.additionalGids)
    }

    func startContainer(_ id: String) async throws(PodvisorError) {
        try containers.withLock { all throws(PodvisorError) in
            guard all[id] != nil else { throw PodvisorError(.notFound, "container \(id) not found") }
            all[id]!.started = true
        }
    }

    func removeContainer(_ id: String) async throws(PodvisorError) {
        finish(id, ProcessExit(exitCode: 137))
        containers.withLock { $0[id] = nil }
        try runtime.removeContainer(id: id)
    }

    func updateResources(_ id: String, _ limits: ResourceLimits) async throws(PodvisorError) {
        containers.withLock { $0[id]?.spec.resources = limits }
    }

    func usage(_ id: String) async throws(PodvisorError) -> ContainerUsage {
        ContainerUsage(timestampNanoseconds: 1, cpuNanoseconds: 2, memoryBytes: 3, workingSetBytes: 4, pids: 1)
    }

    func exec(_ process: ProcessSpec, as ref: ProcessRef) async throws(PodvisorError) {
        guard containers.withLock({ $0[ref.containerID]?.started }) == true else {
            throw PodvisorError(.failedPrecondition, "container \(ref.containerID) is not running")
        }
        execs.withLock { $0[ref] = process }
    }

    /// The main process ends with the signal; an exec ends at once (its command "ran").
    func signal(_ ref: ProcessRef, _ signal: Int32) async throws(PodvisorError) {
        if ref.execID.isEmpty { finish(ref.containerID, ProcessExit(exitCode: 128 + signal)) }
    }

    func stop(_ ref: ProcessRef, grace: Duration, signal: Int32) async throws(PodvisorError) -> ProcessExit {
        try await self.signal(ref, signal)
        return await wait(main: ref.containerID)
    }

    func wait(_ ref: ProcessRef) async throws(PodvisorError) -> ProcessExit {
        guard ref.execID.isEmpty else { return ProcessExit(exitCode: 0) }
        return await wait(main: ref.containerID)
    }

    private func wait(main id: String) async -> ProcessExit {
        await withCheckedContinuation { continuation in
            let done = containers.withLock { all -> ProcessExit? in
                guard let exit = all[id]?.exit else {
                    all[id]?.waiters.append(continuation)
                    return all[id] == nil ? ProcessExit(exitCode: 137) : nil
                }
                return exit
            }
            if let done { continuation.resume(returning: done) }
        }
    }

    private func finish(_ id: String, _ exit: ProcessExit) {
        let waiters = containers.withLock { all -> [CheckedContinuation<ProcessExit, Never>] in
            guard all[id] != nil, all[id]?.exit == nil else { return [] }
            all[id]!.exit = exit
            defer { all[id]!.waiters = [] }
            return all[id]!.waiters
        }
        waiters.forEach { $0.resume(returning: exit) }
    }

    func readOutput(_ ref: ProcessRef, stderr: Bool, _ consume: (Data) async -> Void) async throws(PodvisorError) {
        if !stderr { await consume(output) }
    }

    func writeStdin(_ ref: ProcessRef, _ data: Data) async throws(PodvisorError) {}
    func closeStdin(_ ref: ProcessRef) async throws(PodvisorError) {}
    func resizeTerminal(_ ref: ProcessRef, rows: UInt32, columns: UInt32) async throws(PodvisorError) {}
    func release(_ ref: ProcessRef) async throws(PodvisorError) { _ = execs.withLock { $0.removeValue(forKey: ref) } }

    func portConnect(_ port: UInt16) async throws(PodvisorError) -> String {
        throw PodvisorError(.unavailable, "nothing listens on port \(port)")
    }

    func portRead(_ connection: String) async throws(PodvisorError) -> Data? { nil }
    func portWrite(_ connection: String, _ data: Data, closeWrite: Bool) async throws(PodvisorError) {}
    func portClose(_ connection: String) async throws(PodvisorError) {}

    func waitUntilStopped() async -> SandboxStop {
        await withCheckedContinuation { continuation in
            let done = stopped.withLock { s -> Bool in
                if !s.done { s.waiters.append(continuation) }
                return s.done
            }
            if done { continuation.resume(returning: SandboxStop(reason: "stopped")) }
        }
    }

    /// The fake VM "dies": what a QEMU crash looks like to the CRI server.
    func die() {
        let waiters = stopped.withLock { s -> [CheckedContinuation<SandboxStop, Never>] in
            s.done = true
            defer { s.waiters = [] }
            return s.waiters
        }
        waiters.forEach { $0.resume(returning: SandboxStop(reason: "pod VM stopped (failed)")) }
    }

    func stop(timeout: Duration) async throws(PodvisorError) -> Bool {
        for id in containers.withLock({ Array($0.keys) }) { finish(id, ProcessExit(exitCode: 137)) }
        die()
        try await runtime.removeSandbox(id: id)
        return true
    }

    func destroy() async throws(PodvisorError) {
        _ = try await stop(timeout: .zero)
    }
}

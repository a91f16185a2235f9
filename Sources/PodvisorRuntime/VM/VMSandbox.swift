import Foundation
import PodvisorAgentClient
import PodvisorAgentProtocol
import PodvisorCore
import PodvisorVMM

/// A pod sandbox on a VM of its own: the VM and its agent, the pod's files (hostname, resolv.conf, hosts)
/// and, per container, an overlay rootfs and volumes bound into the VM's share.
final class VMSandbox: PodSandbox {
    let id: String
    let pod: PodVM
    private let runtime: VMRuntime
    private let record: VMRuntime.SandboxState
    private let ips: [String]
    /// The pod cgroup's OOM kills before this VM lived in it: more at its death means the VM was one.
    private let oomKillsAtStart: Int

    /// Taken from the pool, booted before its pod.
    private let pooled: Bool

    init(id: String, pod: PodVM, runtime: VMRuntime, record: VMRuntime.SandboxState, ips: [String], pooled: Bool = false) {
        self.id = id
        self.pooled = pooled
        self.pod = pod
        self.runtime = runtime
        self.record = record
        self.ips = ips
        oomKillsAtStart = record.cgroupParent.isEmpty ? 0 : (try? PodCgroup(parent: record.cgroupParent).oomKills) ?? 0
    }

    private var agent: AgentClient { pod.agent }

    var info: SandboxInfo {
        var info = SandboxInfo(
            domain: pod.vm.name, bootToReady: pod.timings.ready, agentVersion: pod.version.agentVersion,
            guestKernel: pod.version.kernelVersion, sharedDirectory: pod.vm.sharedDirectory ?? "",
            memoryMiB: record.size.memoryMiB, vcpus: record.size.vcpus, transport: record.transport.rawValue,
            hypervisor: runtime.host.accelerator.rawValue)
        info.ips = ips
        info.portMappingsByNetwork = record.portMappingsByNetwork
        info.guestInitAt = .milliseconds(pod.version.uptimeAtInitMs)
        info.guestReadyAt = .milliseconds(pod.version.uptimeAtReadyMs)
        info.pooled = pooled
        return info
    }

    func health() async throws(PodvisorError) -> SandboxHealth {
        let health = try await agent.health()
        return SandboxHealth(
            agentRSSBytes: health.agentRssBytes, guestMemAvailableBytes: health.guestMemAvailableBytes, bootRoot: health.bootRoot)
    }

    // MARK: containers

    func createContainer(_ spec: ContainerSpec) async throws(PodvisorError) -> ContainerIdentity {
        let directory = runtime.containerDirectory(spec.id)
        do throws(PodvisorError) {
            var request = Podvisor_Agent_V1_CreateContainerRequest()
            request.containerID = spec.id
            request.rootfs = try pod.mountRootfs(
                containerID: spec.id, layers: spec.layers, upper: "\(directory)/upper", work: "\(directory)/work",
                idmap: record.userNamespace)
            request.readonlyRootfs = spec.readonlyRootfs
            request.process = try spec.process.agentMessage.pinned(inLayers: spec.layers)
            request.ownPidNamespace = spec.ownPIDNamespace
            request.privileged = spec.privileged
            request.maskedPaths = spec.maskedPaths
            request.readonlyPaths = spec.readonlyPaths
            request.resources = spec.resources.agentMessage
            request.mounts = try mounts(spec)
            let created = try await agent.createContainer(request)
            return ContainerIdentity(uid: created.uid, gid: created.gid, groups: created.groups)
        } catch {
            releaseHostSide(spec.id)
            throw error
        }
    }

    /// The config's volumes, then the pod's hostname, resolv.conf and hosts files unless a volume takes
    /// their path. Each host path is judged after it is resolved (`HostPathGuard`) and bound from the
    /// descriptor that was judged, so a symlink swapped in between cannot redirect it.
    private func mounts(_ spec: ContainerSpec) throws(PodvisorError) -> [Podvisor_Agent_V1_Mount] {
        var result: [Podvisor_Agent_V1_Mount] = []
        for (index, volume) in spec.mounts.enumerated() {
            let source = try runtime.guardHostPath(volume.hostPath)
            defer { source.close() }
            let placed = try pod.mountVolume(
                containerID: spec.id, name: "v\(index)", from: source.path, readonly: volume.readonly,
                recursive: volume.recursiveReadonly, idmap: record.userNamespace)
            result.append(
                .with {
                    $0.source = placed
                    $0.destination = volume.containerPath
                    $0.readonly = volume.readonly
                    $0.recursiveReadonly = volume.recursiveReadonly
                    if volume.readonly && !volume.recursiveReadonly {
                        $0.submounts = mountPoints(under: source.resolved).map { String($0.dropFirst(source.resolved.count + 1)) }
                    }
                    $0.propagation = volume.propagation.agentMessage
                })
        }
        let taken = Set(spec.mounts.map(\.containerPath))
        for file in VMRuntime.podFiles where !taken.contains("/etc/\(file)") {
            let placed = try pod.mountVolume(
                containerID: spec.id, name: file, from: "\(runtime.sandboxDirectory(id))/\(file)", readonly: spec.readonlyRootfs,
                idmap: record.userNamespace)
            result.append(
                .with {
                    $0.source = placed
                    $0.destination = "/etc/\(file)"
                    $0.readonly = spec.readonlyRootfs
                })
        }
        return result
    }

    func startContainer(_ id: String) async throws(PodvisorError) {
        try await agent.startContainer(id)
    }

    func removeContainer(_ id: String) async throws(PodvisorError) {
        do throws(PodvisorError) { try await agent.removeContainer(id) } catch  where error.code == .notFound {}
        releaseHostSide(id)
    }

    /// The container's binds in the share, then its overlay and directory.
    private func releaseHostSide(_ id: String) {
        try? pod.unmountContainer(containerID: id)
        do { try runtime.removeContainer(id: id) } catch { runtime.log.error("container \(id): \(error)") }
    }

    func updateResources(_ id: String, _ limits: ResourceLimits) async throws(PodvisorError) {
        try await agent.updateResources(id, limits.agentMessage)
    }

    func usage(_ id: String) async throws(PodvisorError) -> ContainerUsage {
        ContainerUsage(try await agent.containerStats(id))
    }

    // MARK: processes

    func exec(_ process: ProcessSpec, as ref: ProcessRef) async throws(PodvisorError) {
        try await agent.exec(ref.containerID, execID: ref.execID, process.agentMessage)
    }

    func signal(_ ref: ProcessRef, _ signal: Int32) async throws(PodvisorError) {
        try await agent.signal(ref.agentMessage, signal)
    }

    func stop(_ ref: ProcessRef, grace: Duration, signal: Int32) async throws(PodvisorError) -> ProcessExit {
        ProcessExit(try await agent.stop(ref.agentMessage, grace: grace, signal: signal))
    }

    func wait(_ ref: ProcessRef) async throws(PodvisorError) -> ProcessExit {
        ProcessExit(try await agent.wait(ref.agentMessage))
    }

    func readOutput(_ ref: ProcessRef, stderr: Bool, _ consume: (Data) async -> Void) async throws(PodvisorError) {
        try await agent.readOutput(ref.agentMessage, stderr: stderr, consume)
    }

    func writeStdin(_ ref: ProcessRef, _ data: Data) async throws(PodvisorError) {
        try await agent.writeStdin(ref.agentMessage, data)
    }

    func closeStdin(_ ref: ProcessRef) async throws(PodvisorError) {
        try await agent.closeStdin(ref.agentMessage)
    }

    func resizeTerminal(_ ref: ProcessRef, rows: UInt32, columns: UInt32) async throws(PodvisorError) {
        try await agent.resizeTTY(ref.agentMessage, rows: rows, columns: columns)
    }

    func release(_ ref: ProcessRef) async throws(PodvisorError) {
        try await agent.releaseProcess(ref.agentMessage)
    }

    // MARK: ports

    func portConnect(_ port: UInt16) async throws(PodvisorError) -> String {
        try await agent.portConnect(UInt32(port))
    }

    func portRead(_ connection: String) async throws(PodvisorError) -> Data? {
        try await agent.portRead(connection)
    }

    func portWrite(_ connection: String, _ data: Data, closeWrite: Bool) async throws(PodvisorError) {
        try await agent.portWrite(connection, data, closeWrite: closeWrite)
    }

    func portClose(_ connection: String) async throws(PodvisorError) {
        try await agent.portClose(connection)
    }

    // MARK: lifetime

    func waitUntilStopped() async -> SandboxStop {
        let state = await pod.vm.waitUntilStopped()
        if let cgroup = record.cgroupParent.isEmpty ? nil : try? PodCgroup(parent: record.cgroupParent), cgroup.oomKills > oomKillsAtStart {
            return SandboxStop(reason: "pod VM OOM-killed: it outgrew the memory limit of its cgroup \(record.cgroupParent)", oomKilled: true)
        }
        if case .stopped(let reason) = state { return SandboxStop(reason: "pod VM stopped (\(reason.rawValue))") }
        return SandboxStop(reason: "pod VM stopped")
    }

    func stop(timeout: Duration) async throws(PodvisorError) -> Bool {
        var steps = StepTimes()
        let cleanly = try await pod.shutdown(timeout: timeout)
        steps.lap("the guest's power-off and the VM's removal")
        try await runtime.removeSandbox(id: id)
        steps.lap("network and files")
        runtime.log.debug("sandbox \(id) stopped: \(steps)")
        return cleanly
    }

    func destroy() async throws(PodvisorError) {
        try pod.destroy()
        try await runtime.removeSandbox(id: id)
    }
}

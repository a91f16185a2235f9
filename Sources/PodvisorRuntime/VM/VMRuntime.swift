import Foundation
import Logging
import PodvisorCore
import PodvisorVMM

/// Pod sandboxes on VMs of this host. Everything a sandbox has on the host is recorded under
/// `<state>/sandboxes/<id>/` before it is created, so a restarted runtime can take it back or remove it:
///
/// ```
/// <state>/sandboxes/<id>/sandbox.json   what was created (transport, size)
/// <state>/sandboxes/<id>/{hostname,resolv.conf,hosts}   the pod's files, bound into each container
/// <state>/containers/<id>/{upper,work,rootfs}           a container's overlay rootfs
/// <state>/vm/<vm id>/                                   the VM's run directory (VirtualMachine)
/// ```
public final class VMRuntime: SandboxRuntime {
    /// What a sandbox got, written before its VM boots.
    struct SandboxState: Codable, Sendable {
        var id: String
        var transport: AgentTransportKind
        var size: VMSize
    }

    static let podFiles = ["hostname", "resolv.conf", "hosts"]

    package let host: VMHost
    let log: Logger
    /// The runtime's own directory and the image store, resolved: no container may mount them.
    private let protectedPaths: [String]

    public init(host: VMHost, imageRoot: String, logger: Logger) throws(PodvisorError) {
        self.host = host
        log = logger
        for directory in ["sandboxes", "containers"] { try makeDirectory("\(host.config.stateDirectory)/\(directory)") }
        protectedPaths = [host.config.stateDirectory, imageRoot].map { HostPathGuard.resolve($0) }
    }

    private var state: String { host.config.stateDirectory }
    func sandboxDirectory(_ id: String) -> String { "\(state)/sandboxes/\(id)" }
    func containerDirectory(_ id: String) -> String { "\(state)/containers/\(id)" }
    private func statePath(_ id: String) -> String { "\(sandboxDirectory(id))/sandbox.json" }

    public var hostInfo: [String: String] {
        [
            "hypervisor": host.accelerator.rawValue, "transport": host.transport.rawValue,
            "libvirtURI": host.config.effectiveLibvirtURI, "stateDir": state, "kernel": host.config.kernelPath,
            "initrd": host.config.initrdPath, "warning": host.warning ?? "",
        ]
    }

    public func readiness() -> (ready: Bool, message: String) {
        (try? host.connection.domains()) != nil ? (true, "") : (false, "the libvirt connection does not answer")
    }

    // MARK: sandboxes

    public func createSandbox(_ spec: SandboxSpec) async throws(PodvisorError) -> any PodSandbox {
        let record = SandboxState(id: spec.id, transport: host.transport, size: spec.size)
        do throws(PodvisorError) {
            try makeDirectory(sandboxDirectory(spec.id))
            try AtomicFile.write(json: record, to: statePath(spec.id))
            try writePodFiles(spec)
            let pod = try await host.boot(id: spec.vmID, transport: record.transport, size: record.size)
            let sandbox = VMSandbox(id: spec.id, pod: pod, runtime: self, record: record)
            do throws(PodvisorError) {
                try await pod.agent.createSandbox(hostname: spec.hostname, sysctls: spec.sysctls)
            } catch {
                try? await sandbox.destroy()
                throw error
            }
            return sandbox
        } catch {
            try? await removeSandbox(id: spec.id)
            throw error
        }
    }

    public func reattachSandbox(id: String) async throws(PodvisorError) -> any PodSandbox {
        let record: SandboxState
        do { record = try JSONDecoder().decode(SandboxState.self, from: Data(contentsOf: URL(fileURLWithPath: statePath(id)))) } catch {
            throw PodvisorError(.notFound, "sandbox \(id) has no runtime record", cause: error)
        }
        let pod = try await host.reattach(id: SandboxSpec.vmID(id), transport: record.transport, size: record.size)
        return VMSandbox(id: id, pod: pod, runtime: self, record: record)
    }

    public func removeSandbox(id: String) async throws(PodvisorError) {
        try host.destroyOrphan(id: SandboxSpec.vmID(id))
        try removeUnmountedDirectory(sandboxDirectory(id))
    }

    public func sandboxIDs() -> [String] {
        let recorded = (try? FileManager.default.contentsOfDirectory(atPath: "\(state)/sandboxes")) ?? []
        let vmIDs = Set(recorded.map(SandboxSpec.vmID))
        // A VM whose record is gone (or was never written) is known by its VM id only.
        return recorded + ((try? host.podVMIDs()) ?? []).filter { !vmIDs.contains($0) }
    }

    /// /etc/hostname, /etc/resolv.conf and /etc/hosts for the pod's containers. Without a DNS config the
    /// host's resolv.conf is used, as containerd does.
    private func writePodFiles(_ spec: SandboxSpec) throws(PodvisorError) {
        var resolv = ""
        if let dns = spec.dns {
            resolv += dns.servers.map { "nameserver \($0)\n" }.joined()
            if !dns.searches.isEmpty { resolv += "search \(dns.searches.joined(separator: " "))\n" }
            if !dns.options.isEmpty { resolv += "options \(dns.options.joined(separator: " "))\n" }
        } else {
            resolv = (try? String(contentsOfFile: "/etc/resolv.conf", encoding: .utf8)) ?? ""
        }
        let files = [
            "hostname": "\(spec.hostname)\n",
            "resolv.conf": resolv,
            "hosts": "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t\(spec.hostname)\n",
        ]
        for (file, text) in files {
            try AtomicFile.write(Data(text.utf8), to: "\(sandboxDirectory(spec.id))/\(file)", mode: 0o644)
        }
    }

    // MARK: containers

    public func removeContainer(id: String) throws(PodvisorError) {
        let directory = containerDirectory(id)
        detachMount("\(directory)/rootfs")
        try removeUnmountedDirectory(directory)
    }

    public func containerIDs() -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: "\(state)/containers")) ?? []
    }

    public func writableLayer(containerID: String) -> String { "\(containerDirectory(containerID))/upper" }

    /// A volume's host path, created as a directory when missing (as containerd does), refused when it
    /// resolves to the runtime's own state, into it, or to a directory above it.
    func guardHostPath(_ path: String) throws(PodvisorError) -> HostPathGuard.Opened {
        try HostPathGuard.open(path, protecting: protectedPaths)
    }
}

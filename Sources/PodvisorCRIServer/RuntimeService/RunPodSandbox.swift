import Foundation
import GRPCCore
import PodvisorCRI
import PodvisorCore
import PodvisorRuntime

extension RuntimeService {
    /// Boots the pod's VM (sized from the pod's resources plus the configured overhead), starts the sandbox
    /// in it (hostname, sysctls) and writes the files its containers get (hostname, resolv.conf, hosts).
    public func runPodSandbox(request: Runtime_V1_RunPodSandboxRequest, context: ServerContext) async throws
        -> Runtime_V1_RunPodSandboxResponse
    {
        try await handle {
            let config = request.config
            try server.validate(config)
            guard request.runtimeHandler.isEmpty || request.runtimeHandler == server.config.runtimeHandler else {
                throw PodvisorError(.invalidArgument, "unknown runtime handler \"\(request.runtimeHandler)\" (this runtime serves \"\(server.config.runtimeHandler)\")")
            }
            let nameKey = SandboxRecord.nameKey(config.metadata)
            if let existing = server.sandboxes.all.first(where: { SandboxRecord.nameKey($0.metadata) == nameKey }) {
                throw PodvisorError(.alreadyExists, "pod sandbox name \(nameKey) is already used by \(existing.id)")
            }
            try server.reserve(nameKey, what: "pod sandbox")
            defer { server.release(nameKey) }

            var record = SandboxRecord(
                id: newObjectID(), configData: try config.serializedBytes(), runtimeHandler: request.runtimeHandler,
                createdAt: Clock.nowNanoseconds(), state: .ready, vmSize: CRIServer.vmSize(config.linux, config: server.config),
                transport: server.host.transport.rawValue)
            while server.sandboxes.all.contains(where: { $0.vmID == record.vmID }) { record.id = newObjectID() }
            try server.writeSandboxFiles(record)
            if !config.logDirectory.isEmpty {
                try? FileManager.default.createDirectory(atPath: config.logDirectory, withIntermediateDirectories: true)
            }
            let pod: PodVM
            do {
                pod = try await server.host.boot(id: record.vmID, size: record.vmSize)
            } catch {
                try? FileManager.default.removeItem(atPath: server.sandboxDirectory(record.id))
                throw error
            }
            do {
                try await pod.agent.createSandbox(hostname: server.hostname(config), sysctls: config.linux.sysctls)
                try await server.openHostPorts(record.id, config)
                try server.sandboxes.put(record)
            } catch {
                server.hostPorts.close(record.id)
                try? pod.destroy()
                try? FileManager.default.removeItem(atPath: server.sandboxDirectory(record.id))
                throw error
            }
            server.pods.withLock { $0[record.id] = pod }
            server.watch(sandboxID: record.id, pod: pod)
            server.log.info("sandbox \(record.id) (\(nameKey)) ready in \(pod.timings.ready)")
            return .with { $0.podSandboxID = record.id }
        }
    }
}

extension CRIServer {
    func validate(_ config: Runtime_V1_PodSandboxConfig) throws(PodvisorError) {
        let m = config.metadata
        try Validate.name(m.name, "metadata.name")
        try Validate.name(m.namespace, "metadata.namespace")
        try Validate.name(m.uid, "metadata.uid")
        if !config.hostname.isEmpty { try Validate.hostname(config.hostname) }
        if !config.logDirectory.isEmpty { try Validate.absolutePath(config.logDirectory, "log_directory") }
        for key in config.labels.keys { try Validate.required(key, "label key") }
        try Validate.noHostNamespaces(config.linux.securityContext.namespaceOptions, "a pod VM")
        if config.linux.securityContext.privileged {
            // Privileged means the guest's devices and capabilities; never the host's.
            log.info("privileged sandbox \(m.name): privileges apply inside its VM only")
        }
        let r = config.linux.resources
        try Validate.nonNegative(r.memoryLimitInBytes, "linux.resources.memory_limit_in_bytes")
        try Validate.nonNegative(config.linux.overhead.memoryLimitInBytes, "linux.overhead.memory_limit_in_bytes")
        for mapping in config.portMappings {
            guard (0...65535).contains(mapping.hostPort), mapping.hostPort == 0 || (1...65535).contains(mapping.containerPort) else {
                throw PodvisorError(.invalidArgument, "port mapping \(mapping.hostPort) → \(mapping.containerPort) is out of range")
            }
            if mapping.hostPort > 0 && mapping.protocol != .tcp {
                log.warning("sandbox \(m.name): host port \(mapping.hostPort)/\(mapping.protocol) is not served (TCP only)")
            }
        }
    }

    /// Memory: the pod's limit (sum of its containers', as kubelet passes it) plus the pod overhead (the
    /// RuntimeClass's, else the configured one); without a limit the configured default size. vCPUs: the
    /// CPU limit rounded up, at most the host's cores.
    static func vmSize(_ linux: Runtime_V1_LinuxPodSandboxConfig, config: PodvisorConfig) -> VMSize {
        let mib: Int64 = 1 << 20
        var size = VMSize(memoryMiB: config.memoryMiB, vcpus: config.vcpus)
        let r = linux.resources
        if r.memoryLimitInBytes > 0 {
            let overhead = linux.overhead.memoryLimitInBytes > 0 ? Int((linux.overhead.memoryLimitInBytes + mib - 1) / mib) : config.overheadMiB
            size.memoryMiB = max(64, Int((r.memoryLimitInBytes + mib - 1) / mib) + overhead)
        }
        if r.cpuQuota > 0, r.cpuPeriod > 0 {
            size.vcpus = min(max(1, Int((r.cpuQuota + r.cpuPeriod - 1) / r.cpuPeriod)), ProcessInfo.processInfo.activeProcessorCount)
        }
        return size
    }

    func hostname(_ config: Runtime_V1_PodSandboxConfig) -> String {
        config.hostname.isEmpty ? String(config.metadata.name.prefix(63)) : config.hostname
    }

    /// /etc/hostname, /etc/resolv.conf and /etc/hosts for the pod's containers. Without a DNS config the
    /// host's resolv.conf is used, as containerd does.
    func writeSandboxFiles(_ record: SandboxRecord) throws(PodvisorError) {
        let config = record.config
        let directory = sandboxDirectory(record.id)
        let dns = config.dnsConfig
        var resolv = ""
        if config.hasDnsConfig {
            resolv += dns.servers.map { "nameserver \($0)\n" }.joined()
            if !dns.searches.isEmpty { resolv += "search \(dns.searches.joined(separator: " "))\n" }
            if !dns.options.isEmpty { resolv += "options \(dns.options.joined(separator: " "))\n" }
        } else {
            resolv = (try? String(contentsOfFile: "/etc/resolv.conf", encoding: .utf8)) ?? ""
        }
        let name = hostname(config)
        let files = [
            "hostname": "\(name)\n",
            "resolv.conf": resolv,
            "hosts": "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t\(name)\n",
        ]
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            for (file, text) in files { try text.write(toFile: "\(directory)/\(file)", atomically: true, encoding: .utf8) }
        } catch {
            throw PodvisorError(.internalError, "cannot write the files of sandbox \(record.id)", cause: error)
        }
    }
}

import Foundation
import GRPCCore
import PodvisorCRI
import PodvisorCore
import PodvisorRuntime

extension RuntimeService {
    /// Boots the pod's VM (sized from the pod's resources plus the configured overhead), starts the sandbox
    /// in it (hostname, sysctls) and writes the files its containers get (hostname, resolv.conf, hosts).
    public func runPodSandbox(
        request: Runtime_V1_RunPodSandboxRequest, context: ServerContext
    ) async throws
        -> Runtime_V1_RunPodSandboxResponse
    {
        try await handle {
            let started = ContinuousClock.now
            let config = request.config
            try server.validate(config)
            guard request.runtimeHandler.isEmpty || request.runtimeHandler == server.config.runtimeHandler else {
                throw PodvisorError(
                    .invalidArgument,
                    "unknown runtime handler \(PodvisorError.quote(request.runtimeHandler)) (this runtime serves \"\(server.config.runtimeHandler)\")"
                )
            }
            let nameKey = SandboxRecord.nameKey(config.metadata)
            if let existing = server.sandboxes.all.first(where: { SandboxRecord.nameKey($0.metadata) == nameKey }) {
                throw PodvisorError(.alreadyExists, "pod sandbox name \(nameKey) is already used by \(existing.id)")
            }
            try server.reserve(nameKey, what: "pod sandbox")
            defer { server.release(nameKey) }

            var record = SandboxRecord(
                id: newObjectID(), configData: try config.serializedBytes(), runtimeHandler: request.runtimeHandler,
                createdAt: Clock.nowNanoseconds(), state: .ready)
            while server.sandboxes.all.contains(where: { SandboxSpec.vmID($0.id) == SandboxSpec.vmID(record.id) }) {
                record.id = newObjectID()
            }
            var createdLogDirectory = false
            if !config.logDirectory.isEmpty && !FileManager.default.fileExists(atPath: config.logDirectory) {
                do { try FileManager.default.createDirectory(atPath: config.logDirectory, withIntermediateDirectories: true) } catch {
                    throw PodvisorError(.invalidArgument, "log_directory \(PodvisorError.quote(config.logDirectory)) cannot be created", cause: error)
                }
                createdLogDirectory = true
            }
            let pod: any PodSandbox
            do {
                var spec = try server.sandboxSpec(record)
                // A pre-booted sandbox of the pod's size, if the pool has one: the pod takes its id.
                if let pooled = server.runtime.claimPooledSandbox(size: spec.size) {
                    record.id = pooled
                    spec.id = pooled
                }
                pod = try await server.runtime.createSandbox(spec)
                do {
                    try await server.openHostPorts(record.id, config, on: pod)
                    try server.sandboxes.put(record)
                } catch {
                    server.hostPorts.close(record.id)
                    try? await pod.destroy()
                    throw error
                }
            } catch {
                // A refused sandbox leaves nothing, not even the log directory it made.
                if createdLogDirectory { try? FileManager.default.removeItem(atPath: config.logDirectory) }
                throw error
            }
            server.pods.withLock { $0[record.id] = pod }
            server.watch(sandboxID: record.id, pod: pod)
            let info = pod.info
            server.log.info(
                "sandbox \(record.id) (\(nameKey)) ready in \(info.pooled ? "\(started.duration(to: .now)), pre-booted" : "\(info.bootToReady)")")
            CRIMetrics.sandboxStarted(boot: info.pooled ? nil : info.bootToReady, total: started.duration(to: .now))
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
        try Validate.metadataMaps(config.labels, config.annotations)
        if !config.linux.cgroupParent.isEmpty { try Validate.absolutePath("/" + config.linux.cgroupParent, "linux.cgroup_parent") }
        try Validate.count(config.linux.sysctls.count, atMost: RequestLimits.maxSysctls, "linux.sysctls")
        try Validate.resources(config.linux.resources, "linux.resources")
        try Validate.resources(config.linux.overhead, "linux.overhead")
        let security = config.linux.securityContext
        if security.hasRunAsUser { _ = try Validate.kernelID(security.runAsUser.value, "linux.security_context.run_as_user") }
        if security.hasRunAsGroup { _ = try Validate.kernelID(security.runAsGroup.value, "linux.security_context.run_as_group") }
        for group in security.supplementalGroups { _ = try Validate.kernelID(group, "linux.security_context.supplemental_groups") }
        try Validate.noHostNamespaces(config.linux.securityContext.namespaceOptions, "a pod VM")
        _ = try Validate.userNamespace(config.linux.securityContext.namespaceOptions)
        if config.linux.securityContext.privileged {
            // Privileged means the guest's devices and capabilities; never the host's.
            log.info("privileged sandbox \(m.name): privileges apply inside its VM only")
        }
        try Validate.count(config.portMappings.count, atMost: RequestLimits.maxPortMappings, "port_mappings")
        for mapping in config.portMappings {
            guard (0...65535).contains(mapping.hostPort), (0...65535).contains(mapping.containerPort),
                mapping.hostPort == 0 || mapping.containerPort > 0
            else {
                throw PodvisorError(.invalidArgument, "port mapping \(mapping.hostPort) → \(mapping.containerPort) is out of range")
            }
            try Validate.known(mapping.protocol, Runtime_V1_Protocol.allCases, "port mapping protocol")
        }
    }

    /// What the runtime is asked for: memory is the pod's limit (sum of its containers', as kubelet passes
    /// it) plus the pod overhead (the RuntimeClass's less QEMU's own, else the configured one), without a limit the
    /// configured default size; vCPUs are the CPU limit rounded up, at most the host's cores.
    func sandboxSpec(_ record: SandboxRecord) throws(PodvisorError) -> SandboxSpec {
        let config = record.config
        let m = config.metadata
        var spec = SandboxSpec(
            id: record.id, name: m.name, namespace: m.namespace, uid: m.uid, hostname: hostname(config),
            size: try Self.vmSize(config.linux, config: self.config))
        spec.sysctls = config.linux.sysctls
        spec.cgroupParent = config.linux.cgroupParent
        spec.userNamespace = try Validate.userNamespace(config.linux.securityContext.namespaceOptions)
        spec.portMappings = config.portMappings.map {
            PortMapping(
                hostPort: UInt16($0.hostPort), containerPort: UInt16($0.containerPort),
                protocol: $0.protocol == .udp ? .udp : $0.protocol == .sctp ? .sctp : .tcp, hostIP: $0.hostIp)
        }
        spec.bandwidth = (
            try Bandwidth.bitsPerSecond(config.annotations[Bandwidth.ingressAnnotation], Bandwidth.ingressAnnotation),
            try Bandwidth.bitsPerSecond(config.annotations[Bandwidth.egressAnnotation], Bandwidth.egressAnnotation)
        )
        if config.hasDnsConfig {
            spec.dns = DNSConfig(servers: config.dnsConfig.servers, searches: config.dnsConfig.searches, options: config.dnsConfig.options)
        }
        return spec
    }

    /// The least a guest gets beyond its pod's limit, whatever the RuntimeClass says: its kernel and agent.
    static let minimumGuestOverheadMiB = 64

    static func vmSize(_ linux: Runtime_V1_LinuxPodSandboxConfig, config: PodvisorConfig) throws(PodvisorError) -> VMSize {
        var size = VMSize(memoryMiB: config.memoryMiB, vcpus: config.vcpus)
        let r = linux.resources
        if r.memoryLimitInBytes > 0 {
            // kubelet's pod cgroup holds limit + RuntimeClass overhead: QEMU's own share of it is not the guest's.
            let overhead =
                linux.overhead.memoryLimitInBytes > 0
                ? max(
                    Self.minimumGuestOverheadMiB,
                    try Validate.mebibytes(linux.overhead.memoryLimitInBytes, "linux.overhead.memory_limit_in_bytes") - config.vmmOverheadMiB)
                : config.overheadMiB
            let (total, overflow) = try Validate.mebibytes(r.memoryLimitInBytes, "linux.resources.memory_limit_in_bytes")
                .addingReportingOverflow(overhead)
            guard !overflow, total <= Validate.maxVMMemoryMiB else {
                throw PodvisorError(.invalidArgument, "pod memory (limit plus overhead) must be at most \(Validate.maxVMMemoryMiB) MiB")
            }
            size.memoryMiB = max(64, total)
        }
        if r.cpuQuota > 0, r.cpuPeriod > 0 {
            // Rounded up without overflow: the quota may be anything up to Int64.max.
            let (whole, part) = r.cpuQuota.quotientAndRemainder(dividingBy: r.cpuPeriod)
            let cpus = whole + (part > 0 ? 1 : 0)
            size.vcpus = Int(min(max(1, cpus), Int64(ProcessInfo.processInfo.activeProcessorCount)))
        }
        return size
    }

    func hostname(_ config: Runtime_V1_PodSandboxConfig) -> String {
        config.hostname.isEmpty ? String(config.metadata.name.prefix(63)) : config.hostname
    }
}

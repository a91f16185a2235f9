import Foundation
import PodvisorCRI
import PodvisorCore
import PodvisorImages
import PodvisorRuntime

/// Translation of a CRI ContainerConfig (plus the image's config) into the runtime's ContainerSpec, as
/// containerd's CRI plugin builds an OCI spec. Pure: every rule kubelet relies on (command/args over
/// entrypoint/cmd, env override, user forms, capability arithmetic, default masked paths, seccomp profile
/// kinds, limits) is unit-tested without a VM.
enum ContainerSpecBuilder {
    /// Every capability the guest kernel (6.1) knows: what "ALL" adds.
    static let allCapabilities = [
        "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID",
        "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN",
        "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
        "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
        "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP",
        "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
        "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
    ]
    /// containerd's defaults when kubelet sends none.
    static let defaultMaskedPaths = [
        "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
        "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
    ]
    static let defaultReadonlyPaths = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
    static let defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

    /// The container's process. `readFile` reads a Localhost seccomp profile on the host.
    static func process(
        _ config: Runtime_V1_ContainerConfig, image: ImageConfiguration.Config?,
        readFile: (String) throws(PodvisorError) -> String
    ) throws(PodvisorError) -> ProcessSpec {
        let security = config.linux.securityContext
        var process = ProcessSpec()
        process.args = try arguments(config, image: image)
        for variable in config.envs where variable.key.isEmpty || variable.key.contains("=") {
            throw PodvisorError(.invalidArgument, "environment variable name \(PodvisorError.quote(variable.key)) must be non-empty and without '='")
        }
        process.env = environment(config, image: image)
        process.cwd = config.workingDir.isEmpty ? (image?.WorkingDir.flatMap { $0.isEmpty ? nil : $0 } ?? "/") : config.workingDir
        try Validate.absolutePath(process.cwd, "working_dir")
        try user(security, image: image, into: &process)
        process.terminal = config.tty
        process.strictSupplementalGroups = security.supplementalGroupsPolicy == .strict
        process.stdin = config.stdin
        process.noNewPrivileges = security.noNewPrivs
        if !security.privileged {
            process.capabilities = capabilities(security.capabilities)
        }
        process.seccomp = try seccomp(security, readFile: readFile)
        return process
    }

    /// kubelet's rule: `command` replaces the image's entrypoint (and drops its cmd), `args` replaces cmd.
    static func arguments(_ config: Runtime_V1_ContainerConfig, image: ImageConfiguration.Config?) throws(PodvisorError) -> [String] {
        let args: [String]
        if !config.command.isEmpty {
            args = config.command + config.args
        } else {
            args = (image?.Entrypoint ?? []) + (config.args.isEmpty ? (image?.Cmd ?? []) : config.args)
        }
        guard let first = args.first, !first.isEmpty else {
            throw PodvisorError(.invalidArgument, "no command: neither the container config nor the image names one")
        }
        return args
    }

    /// The image's environment, then the config's; a later KEY replaces an earlier one in place.
    static func environment(_ config: Runtime_V1_ContainerConfig, image: ImageConfiguration.Config?) -> [String] {
        var order: [String] = []
        var values: [String: String] = [:]
        func set(_ entry: String) {
            let key = String(entry.prefix { $0 != "=" })
            if values[key] == nil { order.append(key) }
            values[key] = entry
        }
        (image?.Env ?? []).forEach(set)
        // CRI carries values as bytes; the environment is text.
        config.envs.forEach { set("\($0.key)=\(String(decoding: $0.value, as: UTF8.self))") }
        if values["PATH"] == nil { set(defaultPath) }
        return order.map { values[$0]! }
    }

    /// run_as_user / run_as_username / run_as_group win over the image's `User` (`uid`, `name`, `uid:gid`, `name:group`).
    static func user(
        _ security: Runtime_V1_LinuxContainerSecurityContext, image: ImageConfiguration.Config?,
        into process: inout ProcessSpec
    ) throws(PodvisorError) {
        let parts = (image?.User ?? "").split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        let imageUser = parts.first ?? ""
        let imageGroup = parts.count > 1 ? parts[1] : ""
        if security.hasRunAsUser {
            process.uid = try Validate.kernelID(security.runAsUser.value, "run_as_user")
        } else if !security.runAsUsername.isEmpty {
            process.username = security.runAsUsername
        } else if let uid = UInt32(imageUser) {
            process.uid = uid
        } else {
            process.username = imageUser
        }
        if security.hasRunAsGroup {
            // As containerd: a group without a user would pair with whatever user the image names.
            guard security.hasRunAsUser || !security.runAsUsername.isEmpty else {
                throw PodvisorError(.invalidArgument, "run_as_group needs run_as_user or run_as_username")
            }
            process.gid = try Validate.kernelID(security.runAsGroup.value, "run_as_group")
        } else if let gid = UInt32(imageGroup) {
            process.gid = gid
        } else {
            process.groupname = imageGroup
        }
        for group in security.supplementalGroups {
            process.additionalGids.append(try Validate.kernelID(group, "supplemental_groups"))
        }
    }

    /// Defaults, minus drops, plus adds; "ALL" in either list means every capability.
    static func capabilities(_ request: Runtime_V1_Capability) -> [String] {
        func normalized(_ names: [String]) -> [String] {
            names.map { $0.uppercased() }.map { $0 == "ALL" || $0.hasPrefix("CAP_") ? $0 : "CAP_" + $0 }
        }
        let add = normalized(request.addCapabilities)
        let drop = normalized(request.dropCapabilities)
        var result = drop.contains("ALL") ? [] : ProcessSpec.defaultCapabilities.filter { !drop.contains($0) }
        for name in add.contains("ALL") ? allCapabilities : add where !result.contains(name) {
            result.append(name)
        }
        if add.contains("ALL") { result.removeAll { drop.contains($0) } }
        return result
    }

    static func seccomp(
        _ security: Runtime_V1_LinuxContainerSecurityContext, readFile: (String) throws(PodvisorError) -> String
    ) throws(PodvisorError) -> ProcessSpec.Seccomp {
        guard security.hasSeccomp, !security.privileged else { return .unconfined }
        switch security.seccomp.profileType {
        case .runtimeDefault: return .runtimeDefault
        case .unconfined: return .unconfined
        case .localhost:
            let path = security.seccomp.localhostRef
            try Validate.absolutePath(path, "seccomp localhost_ref")
            return .localhost(json: try readFile(path))
        case .UNRECOGNIZED(let value):
            throw PodvisorError(.invalidArgument, "seccomp profile_type has an unknown value \(value)")
        }
    }

    /// cgroup v2 limits from CRI's resources (cpu_shares become cpu.weight as runc converts them).
    static func resources(_ r: Runtime_V1_LinuxContainerResources) throws(PodvisorError) -> ResourceLimits {
        try Validate.resources(r, "linux.resources")
        var limits = ResourceLimits()
        limits.memoryLimitBytes = r.memoryLimitInBytes
        limits.cpuQuotaMicroseconds = max(r.cpuQuota, 0)
        limits.cpuPeriodMicroseconds = r.cpuPeriod
        if r.cpuShares > 0 {
            let shares: Int64 = min(max(r.cpuShares, 2), 262_144)
            limits.cpuWeight = UInt64(1 + (shares - 2) * 9999 / 262_142)
        }
        return limits
    }

    static func volume(_ mount: Runtime_V1_Mount) -> VolumeMount {
        var volume = VolumeMount(hostPath: mount.hostPath, containerPath: mount.containerPath, readonly: mount.readonly)
        volume.recursiveReadonly = mount.recursiveReadOnly
        switch mount.propagation {
        case .propagationHostToContainer: volume.propagation = .hostToContainer
        case .propagationBidirectional: volume.propagation = .bidirectional
        default: volume.propagation = .private
        }
        return volume
    }
}

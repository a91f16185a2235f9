import PodvisorCore

/// What a container is, in the runtime's own words: the CRI server translates a CRI ContainerConfig into
/// this (as containerd's CRI plugin produces an OCI spec), the sandbox turns it into host mounts and the
/// agent's request. Codable: a container's record keeps its process, so an exec runs with the same identity.
public struct ContainerSpec: Sendable, Equatable {
    public var id: String
    public var process: ProcessSpec
    /// The image's unpacked layers, top first: the lower directories of the container's overlay rootfs.
    public var layers: [String]
    public var readonlyRootfs = false
    /// A PID namespace of its own (CRI's CONTAINER); otherwise the pod's.
    public var ownPIDNamespace = false
    /// The guest's devices and every capability of the guest; never anything of the host.
    public var privileged = false
    public var maskedPaths: [String] = []
    public var readonlyPaths: [String] = []
    public var resources = ResourceLimits()
    /// Volumes, bound in this order after the rootfs; the pod's hostname, resolv.conf and hosts follow
    /// unless one of these mounts takes their path.
    public var mounts: [VolumeMount] = []

    public init(id: String, process: ProcessSpec, layers: [String]) {
        self.id = id
        self.process = process
        self.layers = layers
    }
}

/// One process: a container's main process or an exec.
public struct ProcessSpec: Sendable, Equatable, Codable {
    public enum Seccomp: Sendable, Equatable, Codable {
        case unconfined
        /// containerd's default profile, its capability-gated parts following the process's capabilities.
        case runtimeDefault
        /// An OCI seccomp profile's JSON (the host reads the file: the guest cannot see host paths).
        case localhost(json: String)
    }

    public var args: [String] = []
    /// KEY=VALUE; PATH from here finds args[0].
    public var env: [String] = []
    public var cwd = "/"
    public var uid: UInt32 = 0
    /// nil: the user's primary group in the container's /etc/passwd (as runc resolves it).
    public var gid: UInt32?
    public var additionalGids: [UInt32] = []
    /// Resolved in the container's /etc/passwd and /etc/group when set; they win over uid/gid.
    public var username = ""
    public var groupname = ""
    public var stdin = false
    public var terminal = false
    public var noNewPrivileges = false
    /// Kubernetes' SupplementalGroupsPolicy Strict: the image's /etc/group adds no groups.
    public var strictSupplementalGroups = false
    /// nil: every capability of the guest (privileged).
    public var capabilities: [String]?
    public var seccomp = Seccomp.unconfined

    public init() {}
}

extension ProcessSpec {
    /// containerd's default capability set for non-privileged containers.
    public static let defaultCapabilities = [
        "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
        "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
    ]

    /// The process as `identity` in numbers: an exec runs as its container does without the guest resolving
    /// names again, as runc's exec takes the numbers containerd resolved at create.
    public func pinned(to identity: ContainerIdentity) -> ProcessSpec {
        var pinned = self
        pinned.username = ""
        pinned.groupname = ""
        pinned.uid = identity.uid
        pinned.gid = identity.gid
        pinned.additionalGids = Array(identity.groups.dropFirst())
        pinned.strictSupplementalGroups = true
        return pinned
    }
}

/// cgroup v2 limits inside the guest; 0 means unlimited.
public struct ResourceLimits: Sendable, Equatable, Codable {
    public var memoryLimitBytes: Int64 = 0
    /// cpu.max: quota per period, in microseconds.
    public var cpuQuotaMicroseconds: Int64 = 0
    public var cpuPeriodMicroseconds: Int64 = 0
    /// cpu.weight, 1-10000 (0: the kernel's default).
    public var cpuWeight: UInt64 = 0
    public var pidsLimit: Int64 = 0

    public init() {}
}

/// A host path bound into a container.
public struct VolumeMount: Sendable, Equatable {
    public enum Propagation: Sendable, Equatable {
        case `private`, hostToContainer, bidirectional
    }

    public var hostPath: String
    public var containerPath: String
    public var readonly = false
    /// With readonly: mounts below the volume are read-only too.
    public var recursiveReadonly = false
    public var propagation = Propagation.private

    public init(hostPath: String, containerPath: String, readonly: Bool = false) {
        self.hostPath = hostPath
        self.containerPath = containerPath
        self.readonly = readonly
    }
}

/// Who a container's process runs as, resolved in its rootfs (CRI's ContainerStatus.user).
public struct ContainerIdentity: Sendable, Equatable {
    public var uid: UInt32
    public var gid: UInt32
    /// The primary group first, then the supplementary ones.
    public var groups: [UInt32]

    public init(uid: UInt32, gid: UInt32, groups: [UInt32]) {
        self.uid = uid
        self.gid = gid
        self.groups = groups
    }
}

/// A process in a sandbox: a container's main process (`exec` empty) or one of its execs.
public struct ProcessRef: Sendable, Hashable {
    public var containerID: String
    public var execID: String

    public init(container: String, exec: String = "") {
        containerID = container
        execID = exec
    }
}

public struct ProcessExit: Sendable, Equatable {
    /// Exit code, or 128 + signal number when killed by a signal.
    public var exitCode: Int32
    /// The container's cgroup saw an OOM kill.
    public var oomKilled: Bool

    public init(exitCode: Int32, oomKilled: Bool = false) {
        self.exitCode = exitCode
        self.oomKilled = oomKilled
    }
}

/// A container's cgroup figures, read in the guest.
public struct ContainerUsage: Sendable, Equatable {
    public var timestampNanoseconds: Int64
    public var cpuNanoseconds: UInt64
    public var memoryBytes: UInt64
    /// memory.current minus inactive file pages: kubelet's working set.
    public var workingSetBytes: UInt64
    public var pids: UInt64

    public init(timestampNanoseconds: Int64, cpuNanoseconds: UInt64, memoryBytes: UInt64, workingSetBytes: UInt64, pids: UInt64) {
        self.timestampNanoseconds = timestampNanoseconds
        self.cpuNanoseconds = cpuNanoseconds
        self.memoryBytes = memoryBytes
        self.workingSetBytes = workingSetBytes
        self.pids = pids
    }
}

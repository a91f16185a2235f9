import PodvisorAgentClient
import PodvisorAgentProtocol
import PodvisorCore
import PodvisorNetwork

// The runtime's vocabulary in the agent's wire messages: the one place that knows both.

extension ProcessSpec {
    var agentMessage: Podvisor_Agent_V1_ProcessSpec {
        .with {
            $0.args = args
            $0.env = env
            $0.cwd = cwd
            $0.uid = uid
            if let gid { $0.gid = gid }
            $0.strictSupplementalGroups = strictSupplementalGroups
            $0.additionalGids = additionalGids
            $0.username = username
            $0.groupname = groupname
            $0.stdin = stdin
            $0.terminal = terminal
            $0.noNewPrivileges = noNewPrivileges
            if let capabilities { $0.capabilities = .with { $0.names = capabilities } }
            switch seccomp {
            case .unconfined: $0.seccomp.kind = .unconfined
            case .runtimeDefault: $0.seccomp.kind = .runtimeDefault
            case .localhost(let json):
                $0.seccomp.kind = .localhost
                $0.seccomp.localhostProfileJson = json
            }
        }
    }
}

extension Podvisor_Agent_V1_ProcessSpec {
    /// The identity resolved on the host from the image's layers, as containerd resolves it, and pinned in
    /// numbers: the guest then reads neither file over virtio-fs (~20 ms of a create under TCG). Unchanged
    /// when a file it needs is not plain in the layers: the agent resolves it in the mounted rootfs.
    func pinned(inLayers layers: [String]) throws(PodvisorError) -> Self {
        var undecided = false
        func file(_ path: String) -> String? {
            switch LayerFiles.read(path, layers: layers) {
            case .file(let text): return text
            case .absent: return nil
            case .undecided:
                undecided = true
                return nil
            }
        }
        do {
            let identity = try UserDatabase.resolve(self, passwd: { file("etc/passwd") }, group: { file("etc/group") })
            return undecided ? self : pinned(to: identity)
        } catch {
            if undecided { return self }
            throw PodvisorError(.invalidArgument, error.message, cause: error)
        }
    }
}

extension ResourceLimits {
    var agentMessage: Podvisor_Agent_V1_Resources {
        .with {
            $0.memoryLimitBytes = memoryLimitBytes
            $0.cpuQuotaUs = cpuQuotaMicroseconds
            $0.cpuPeriodUs = cpuPeriodMicroseconds
            $0.cpuWeight = cpuWeight
            $0.pidsLimit = pidsLimit
        }
    }
}

extension ProcessRef {
    var agentMessage: Podvisor_Agent_V1_ProcessRef { AgentClient.process(containerID, exec: execID) }
}

extension ProcessExit {
    init(_ response: Podvisor_Agent_V1_WaitProcessResponse) {
        self.init(exitCode: response.exitCode, oomKilled: response.oomKilled)
    }
}

extension ContainerUsage {
    init(_ response: Podvisor_Agent_V1_ContainerStatsResponse) {
        self.init(
            timestampNanoseconds: response.timestampNs, cpuNanoseconds: response.cpuUsageNs,
            memoryBytes: response.memoryUsageBytes, workingSetBytes: response.memoryWorkingSetBytes, pids: response.pids)
    }
}

extension VolumeMount.Propagation {
    var agentMessage: Podvisor_Agent_V1_Mount.Propagation {
        switch self {
        case .private: .private
        case .hostToContainer: .rslave
        case .bidirectional: .rshared
        }
    }
}

extension PodInterface {
    /// The guest's eth0: found by `bootMAC`, the one the VM's NIC booted with before its pod's network
    /// existed (it then takes eth0's), or, once configured, by the MAC of the pod's CNI interface.
    func agentMessage(bootMAC: String? = nil) -> Podvisor_Agent_V1_ConfigureNetworkRequest {
        .with {
            $0.interfaces = [
                .with {
                    $0.mac = mac
                    $0.bootMac = bootMAC ?? ""
                    $0.name = "eth0"
                    $0.mtu = UInt32(clamping: mtu)
                    $0.addresses = addresses
                }
            ]
            $0.routes = routes.map { route in
                .with {
                    $0.destination = route.destination
                    $0.gateway = route.gateway ?? ""
                    $0.interfaceName = "eth0"
                }
            }
        }
    }
}

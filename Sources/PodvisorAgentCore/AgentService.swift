#if canImport(Glibc)
import Glibc
#endif
import CLinuxSupport
#if canImport(FoundationEssentials)
import FoundationEssentials
#endif
import PodvisorAgentProtocol

/// The podvisor.agent.v1.Agent service: every method of agent.proto wired to what implements it.
public enum AgentService {
    /// `powerOff` is PID 1's: the Shutdown method answers, then calls it. `bootMounts`: /proc/self/mounts as
    /// it was before PID 1 left the boot root.
    public static func server(
        transport: String, initAtMs: UInt64, readyAtMs: UInt64, sharedDirectory: String, bootMounts: String,
        containers: Containers, powerOff: @escaping @Sendable () -> Void
    ) -> TTRPCServer {
        let kernel = GuestFiles.read("/proc/sys/kernel/osrelease")?.trimmingSuffix("\n") ?? "unknown"
        var builder = TTRPCServer.Builder()
        builder.add(.version) { _ in
            Podvisor_Agent_V1_VersionResponse.with {
                $0.agentVersion = AgentAPI.agentVersion
                $0.kernelVersion = kernel
                $0.uptimeAtInitMs = initAtMs
                $0.uptimeAtReadyMs = readyAtMs
                $0.transport = transport
                $0.sharedDirectory = sharedDirectory
            }
        }
        builder.add(.health) { _ in
            Podvisor_Agent_V1_HealthResponse.with {
                $0.status = .serving
                $0.agentRssBytes = GuestFiles.kilobyteField("VmRSS", in: "/proc/self/status")
                $0.uptimeMs = pv_boottime_ms()
                $0.guestMemAvailableBytes = GuestFiles.kilobyteField("MemAvailable", in: "/proc/meminfo")
                $0.bootRoot = GuestFiles.bootRoot(mounts: bootMounts) ?? ""
            }
        }
        builder.add(.shutdown) { _ in
            // Answer first; power off once the reply had time to leave.
            startDetachedThread {
                usleep(50_000)
                powerOff()
            }
            return Podvisor_Agent_V1_ShutdownResponse()
        }
        builder.add(.configureNetwork) { r in
            try GuestNetwork.configure(r)
            return Empty()
        }
        addContainerMethods(to: &builder, containers)
        addPortMethods(to: &builder, PortConnections())
        return builder.build()
    }

    private static func addPortMethods(to builder: inout TTRPCServer.Builder, _ ports: PortConnections) {
        builder.add(.portConnect) { r in
            let id = try ports.connect(port: r.port)
            return Podvisor_Agent_V1_PortConnectResponse.with { $0.connectionID = id }
        }
        builder.add(.portRead) { r in
            let (data, eof) = try ports.read(r.connectionID, max: r.maxBytes)
            return Podvisor_Agent_V1_PortReadResponse.with {
                $0.data = Data(data)
                $0.eof = eof
            }
        }
        builder.add(.portWrite) { r in
            try ports.write(r.connectionID, Array(r.data), closeWrite: r.closeWrite)
            return Empty()
        }
        builder.add(.portClose) { r in
            ports.close(r.connectionID)
            return Empty()
        }
    }

    private typealias Empty = Podvisor_Agent_V1_Empty

    private static func addContainerMethods(to builder: inout TTRPCServer.Builder, _ containers: Containers) {
        builder.add(.createSandbox) { r in
            try containers.createSandbox(r)
            return Empty()
        }
        builder.add(.createContainer) { r in
            let created = try containers.create(r)
            return Podvisor_Agent_V1_CreateContainerResponse.with {
                $0.pid = UInt32(created.pid)
                $0.uid = created.identity.uid
                $0.gid = created.identity.gid
                $0.groups = created.identity.groups
            }
        }
        builder.add(.startContainer) { r in
            try containers.start(r.containerID)
            return Empty()
        }
        builder.add(.execProcess) { r in
            try containers.exec(r)
            return Empty()
        }
        builder.add(.signalProcess) { r in
            try containers.signal(r.process, r.signal)
            return Empty()
        }
        builder.add(.waitProcess) { r in
            let exit = try containers.wait(r.process)
            return Podvisor_Agent_V1_WaitProcessResponse.with {
                $0.exitCode = exit.code
                $0.signal = exit.signal
                $0.finishedAtNs = exit.finishedAtNs
                // The init's exit is the container's: an OOM kill anywhere in its cgroup is its reason.
                $0.oomKilled = r.process.execID.isEmpty && Cgroups.oomKills(r.process.containerID) > 0
            }
        }
        builder.add(.readOutput) { r in
            let (data, eof, offset) = try containers.readOutput(r)
            return Podvisor_Agent_V1_ReadOutputResponse.with {
                $0.data = Data(data)
                $0.eof = eof
                $0.offset = offset
            }
        }
        builder.add(.writeStdin) { r in
            try containers.writeStdin(r)
            return Empty()
        }
        builder.add(.closeStdin) { r in
            try containers.closeStdin(r)
            return Empty()
        }
        builder.add(.releaseProcess) { r in
            try containers.release(r)
            return Empty()
        }
        builder.add(.containerStats) { r in
            try containers.stats(r.containerID)
        }
        builder.add(.updateResources) { r in
            try containers.update(r.containerID, r.resources)
            return Empty()
        }
        builder.add(.resizeTTY) { r in
            try containers.resize(r)
            return Empty()
        }
        builder.add(.removeContainer) { r in
            try containers.remove(r.containerID)
            return Empty()
        }
    }
}

import Foundation
import PodvisorAgentClient
import PodvisorAgentProtocol
import PodvisorCore
import PodvisorVMM

/// A pod VM whose agent has answered: the unit every sandbox stands on.
public final class PodVM: Sendable {
    public struct BootTimings: Sendable {
        /// From the request until libvirt had started the domain (QEMU running).
        public var domainStart: Duration
        /// From the request until the agent answered Version: boot-to-ready.
        public var ready: Duration
    }

    package let vm: VirtualMachine
    package let agent: AgentClient
    package let version: Podvisor_Agent_V1_VersionResponse
    public let timings: BootTimings

    private init(vm: VirtualMachine, agent: AgentClient, version: Podvisor_Agent_V1_VersionResponse, timings: BootTimings) {
        self.vm = vm
        self.agent = agent
        self.version = version
        self.timings = timings
    }

    /// Starts the VM and dials its agent until it answers. On any failure nothing is left behind.
    static func boot(
        _ configuration: VirtualMachine.Configuration, on connection: LibvirtConnection, timeout: Duration
    )
        async throws(PodvisorError) -> PodVM
    {
        let clock = ContinuousClock()
        let started = clock.now
        let vm = try VirtualMachine.start(configuration, on: connection)
        let domainStart = started.duration(to: clock.now)
        do {
            let (agent, version) = try await dial(vm, deadline: started + timeout)
            return PodVM(
                vm: vm, agent: agent, version: version,
                timings: BootTimings(domainStart: domainStart, ready: started.duration(to: clock.now)))
        } catch {
            let console = readTextFile(vm.consoleLog) ?? ""
            try? vm.destroy()
            throw PodvisorError(error.code, "\(error.message); console: \(console.suffix(800))", cause: error.cause)
        }
    }

    /// Takes over a VM an earlier runtime process started (see VirtualMachine.reattach) and dials its agent.
    /// Its timings are zero: the boot was not observed by this process.
    static func reattach(
        _ configuration: VirtualMachine.Configuration, on connection: LibvirtConnection, timeout: Duration
    )
        async throws(PodvisorError) -> PodVM
    {
        let vm = try VirtualMachine.reattach(configuration, on: connection)
        let (agent, version) = try await dial(vm, deadline: .now + timeout)
        return PodVM(vm: vm, agent: agent, version: version, timings: BootTimings(domainStart: .zero, ready: .zero))
    }

    /// Retries until the agent answers Version, the VM dies, or the deadline passes.
    private static func dial(
        _ vm: VirtualMachine, deadline: ContinuousClock.Instant
    ) async throws(PodvisorError)
        -> (AgentClient, Podvisor_Agent_V1_VersionResponse)
    {
        var lastError = PodvisorError(.timeout, "agent did not answer")
        var lastAttempt = ContinuousClock.now - .seconds(1)
        let announcement = AgentAnnouncement(consoleLog: vm.consoleLog)
        while ContinuousClock.now < deadline {
            if case .stopped(let reason) = vm.currentState {
                throw PodvisorError(.unavailable, "VM stopped (\(reason.rawValue)) before its agent answered")
            }
            // Each attempt before the guest listens is a connection request the vsock backend queues for the
            // guest; hundreds of them during a slow (loaded, TCG) boot wedged vhost-device-vsock for good. The
            // agent announces itself on the console: dial once it has, and otherwise once a second.
            if ContinuousClock.now - lastAttempt < .seconds(1) && !announcement.seen() {
                try? await Task.sleep(for: .milliseconds(10))
                continue
            }
            lastAttempt = .now
            do throws(PodvisorError) {
                let fd = try vm.endpoint.connect(port: AgentAPI.vsockPort)
                let agent = AgentClient(fd: fd)
                do throws(PodvisorError) {
                    // virtio-serial connects before the guest listens (bytes wait for it): give that one call
                    // the whole remaining time; vsock connects only once the agent listens.
                    let version = try await agent.version(timeout: ContinuousClock.now.duration(to: deadline))
                    return (agent, version)
                } catch {
                    agent.close()
                    throw error
                }
            } catch {
                lastError = error
                try? await Task.sleep(for: .milliseconds(20))
            }
        }
        throw PodvisorError(.timeout, "agent did not answer before the boot timeout: \(lastError.message)")
    }

    /// Follows the VM's console log for the agent's "ready on <transport>" line, reading only what was appended
    /// since the last look (it is looked at every 10 ms during a boot).
    private final class AgentAnnouncement {
        private static let line = Data("podvisor-agent: ready on".utf8)
        private let consoleLog: String
        private var handle: FileHandle?
        /// The end of what was read: the line may be split across two reads.
        private var tail = Data()
        private var found = false

        init(consoleLog: String) { self.consoleLog = consoleLog }

        deinit { try? handle?.close() }

        func seen() -> Bool {
            guard !found else { return true }
            // QEMU creates the log when the VM starts.
            if handle == nil { handle = FileHandle(forReadingAtPath: consoleLog) }
            guard let handle else { return false }
            tail.append(handle.readDataToEndOfFile())
            found = tail.range(of: Self.line) != nil
            tail = Data(tail.suffix(Self.line.count - 1))
            return found
        }
    }

    /// Asks the agent to power off and waits for the domain to stop; destroys it if that takes too long.
    /// Either way every host-side trace is removed. Returns true when the guest powered itself off.
    @discardableResult
    public func shutdown(timeout: Duration = .seconds(15)) async throws(PodvisorError) -> Bool {
        var asked = true
        vm.expectPowerOff()
        do {
            try await agent.shutdown()
        } catch {
            // The agent may be gone already; destroying below still cleans up.
            asked = false
        }
        let stopped = asked ? await vm.waitUntilStopped(timeout: timeout) : nil
        agent.close()
        try vm.destroy()
        return stopped == .stopped(.shutdown)
    }

    /// Hard stop and clean-up, without asking the guest.
    public func destroy() throws(PodvisorError) {
        agent.close()
        try vm.destroy()
    }
}

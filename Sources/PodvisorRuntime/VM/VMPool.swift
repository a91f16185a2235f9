import Foundation
import Logging
import PodvisorAgentProtocol
import PodvisorCore
import PodvisorNetwork
import PodvisorVMM
import Synchronization

/// Pod VMs of the default shape booted ahead (`[vm] pool_size`), as Kata's VM templates and Firecracker's
/// snapshots aim at: RunPodSandbox of a pod that fits the shape claims one and skips the boot. A member is
/// booted under a sandbox id of its own making, which the claiming pod takes, so its domain, run directory,
/// network namespace and tap already carry the pod's names. Its NIC's tap moves into that (empty) netns once
/// QEMU holds it, as a cold pod's does while it boots: moving a link takes the kernel 25-35 ms under the
/// RTNL lock, which the claim's CNI ADD would wait for. The guest brings its NIC up with the boot MAC; at the
/// claim CNI makes eth0 in the netns and the NIC takes eth0's MAC and MTU.
///
/// A member boots and waits at the lowest CPU weight (`waitingCPUShares`): it gets only the CPU time that
/// pods leave; its pod gives it the weight of any VM. The refill after a claim also waits until the claiming
/// pod has had time to start (`refillAfterClaim`).
///
/// A member is never reused: after its pod it is destroyed like any pod VM. One that dies while it waits is
/// replaced. Members have no sandbox record, so after a restart recovery destroys them as orphans, and the
/// pool boots anew.
final class VMPool: Sendable {
    struct Member: Sendable {
        let id: String
        let pod: PodVM
        /// The MAC its NIC booted with.
        let mac: String
    }

    private struct State {
        var ready: [Member] = []
        /// Claimed by RunPodSandbox, taken by createSandbox under the same id.
        var claimed: [String: Member] = [:]
        var booting = 0
        var stopped = false
        /// A boot failed: the next refill waits until then.
        var retryAt: ContinuousClock.Instant?
    }

    /// The least cgroup v1 takes (v2's cpu.weight takes 1).
    static let waitingCPUShares = 2

    let size: VMSize
    let capacity: Int
    private let host: VMHost
    private let networks: PodNetworks
    private let log: Logger
    private let state = Mutex(State())

    /// Refuses a pool the host cannot hold: each member keeps its guest memory and QEMU's own.
    init(host: VMHost, networks: PodNetworks, log: Logger) throws(PodvisorError) {
        let config = host.config
        size = VMSize(memoryMiB: config.memoryMiB, vcpus: config.vcpus)
        capacity = config.poolSize
        self.host = host
        self.networks = networks
        self.log = log
        try Self.checkFits(config, availableMiB: procField("MemAvailable", in: readProcFile("/proc/meminfo")) / 1024)
    }

    static func checkFits(_ config: PodvisorConfig, availableMiB: Int) throws(PodvisorError) {
        let perVM = config.memoryMiB + config.vmmOverheadMiB
        let (needed, overflow) = config.poolSize.multipliedReportingOverflow(by: perVM)
        guard !overflow, needed <= availableMiB else {
            throw PodvisorError(
                .invalidArgument,
                "[vm] pool_size \(config.poolSize) needs \(config.poolSize) × \(perVM) MiB (memory_mib \(config.memoryMiB) + "
                    + "vmm_overhead_mib \(config.vmmOverheadMiB)) = \(overflow ? "more" : "\(needed)") MiB; the host has \(availableMiB) MiB available"
            )
        }
    }

    var counts: (ready: Int, booting: Int) { state.withLock { ($0.ready.count, $0.booting) } }

    /// A ready member for a pod of `size`, set aside for `take`; nil: the pod boots its own VM. The refill
    /// waits for the claiming pod (`refillAfterClaim`): a boot would take the CPU that pod needs now.
    func claim(_ size: VMSize) -> String? {
        state.withLock { s -> Member? in
            guard size == self.size, let index = s.ready.firstIndex(where: { $0.pod.vm.currentState == .running }) else { return nil }
            let member = s.ready.remove(at: index)
            s.claimed[member.id] = member
            return member
        }?.id
    }

    func take(_ id: String) -> Member? {
        state.withLock { $0.claimed.removeValue(forKey: id) }
    }

    /// How long the refill waits after a claim: about what a pod takes from the claim to its containers
    /// running, with room for an init container. Booting at the lowest CPU weight is not enough on a small
    /// host: the boot still competes with the runtime's, the helpers' and the guest's work for that pod. A refill
    /// started at the claim slowed its CreateContainer from ~120 to ~215 ms, and one started at StartContainer
    /// its first log line from ~60 to ~90 ms (2 cores, TCG; Docs/performance.md).
    static let claimSettling = Duration.seconds(2)

    /// The refill after a claim, `claimSettling` later.
    func refillAfterClaim() {
        Task {
            try? await Task.sleep(for: Self.claimSettling)
            refill()
        }
    }

    /// Boots members until the pool is full, in the background; nothing when it is full or booting.
    func refill() {
        let wanted = state.withLock { s -> Int in
            guard !s.stopped, s.retryAt.map({ ContinuousClock.now >= $0 }) ?? true else { return 0 }
            let missing = max(0, capacity - s.ready.count - s.booting)
            s.booting += missing
            return missing
        }
        for _ in 0..<wanted { Task { await bootMember() } }
    }

    /// Stops refilling and destroys the members that wait (podvisord's shutdown: they would be orphans).
    func stop() async {
        let members = state.withLock { s -> [Member] in
            s.stopped = true
            defer { s.ready = [] }
            return s.ready
        }
        for member in members { await remove(member.id, vm: member.pod) }
    }

    private func bootMember() async {
        let id = (0..<4).map { _ in String(format: "%016llx", UInt64.random(in: .min ... .max)) }.joined()
        let mac = PodNetworks.bootMAC()
        let tap = PodNetworks.tap(id)
        do throws(PodvisorError) {
            try Self.remember(id, host.config)
            try await TapPlumbing.createTap(name: tap)
            try networks.createNamespace(id)
            let pod = try await host.boot(
                id: SandboxSpec.vmID(id), size: size, network: PodNetworks.bootInterface(id, mac: mac), cpuShares: Self.waitingCPUShares)
            try await networks.moveTap(id)
            if host.accelerator == .tcg { await rehearse(pod, mac: mac) }
            let member = Member(id: id, pod: pod, mac: mac)
            let kept = state.withLock { s -> Bool in
                s.booting -= 1
                guard !s.stopped else { return false }
                s.ready.append(member)
                return true
            }
            guard kept else { return await remove(member.id, vm: member.pod) }
            log.debug("pool VM \(id) ready after \(pod.timings.ready)")
            Task { await watch(member) }
        } catch {
            log.error("pool VM \(id): \(error)")
            state.withLock {
                $0.booting -= 1
                $0.retryAt = ContinuousClock.now + .seconds(10)
            }
            await remove(id, vm: nil)
            Task {
                try? await Task.sleep(for: .seconds(10))
                refill()
            }
        }
    }

    /// Under TCG a guest's first run of any code pays for its translation: ConfigureNetwork's parsing and
    /// MAC lookup took 18-32 ms the first time in a VM and 2-3 ms the second. Before a member counts as
    /// ready it rehearses what its pod will ask of the guest: it configures the guest's loopback as it
    /// already is (the same up link, MTU and addresses, replaced by themselves) and brings the NIC up with its
    /// boot MAC (its first up fills the receive queue; the claim only swaps the MAC and MTU), then creates a
    /// container from an empty read-only rootfs with RuntimeDefault seccomp, starts it (its exec fails: there
    /// is no program) and removes it, whatever the start did. The claiming pod's steps then find most of that
    /// code translated. A failure only costs that head start.
    private func rehearse(_ pod: PodVM, mac: String) async {
        do throws(PodvisorError) {
            try await pod.agent.configureNetwork(Self.rehearsalNetwork(mac: mac))
            let rootfs = try pod.mountRootfs(containerID: Self.rehearsalID, from: try Self.emptyRootfs(host.config))
            defer { try? pod.unmountContainer(containerID: Self.rehearsalID) }
            _ = try await pod.agent.createContainer(
                .with {
                    $0.containerID = Self.rehearsalID
                    $0.rootfs = rootfs
                    $0.readonlyRootfs = true
                    $0.process = Self.rehearsalProcess
                    $0.maskedPaths = ["/proc/kcore"]
                    $0.readonlyPaths = ["/proc/sys"]
                })
            // The exec's failure is the expected end of the start; any other is reported once the container is gone.
            var failure: PodvisorError?
            do throws(PodvisorError) { try await pod.agent.startContainer(Self.rehearsalID) } catch {
                if error.code != .failedPrecondition { failure = error }
            }
            try await pod.agent.removeContainer(Self.rehearsalID)
            if let failure { throw failure }
        } catch {
            log.warning("pool VM \(pod.vm.name): the rehearsal failed: \(error)")
        }
    }

    static let rehearsalID = "pool-rehearsal"

    /// The loopback as it already is, and the NIC with its boot MAC brought up (MTU 0: kept).
    static func rehearsalNetwork(mac: String) -> Podvisor_Agent_V1_ConfigureNetworkRequest {
        .with {
            $0.interfaces = [
                .with {
                    $0.mac = "00:00:00:00:00:00"
                    $0.name = "lo"
                    $0.mtu = 65536
                    $0.addresses = ["127.0.0.1/8", "::1/128"]
                },
                .with { $0.mac = mac },
            ]
        }
    }

    /// containerd's default capabilities and RuntimeDefault seccomp, as a pod's container gets them (the
    /// agent keeps the compiled program); numbers only: no file to read.
    static let rehearsalProcess = Podvisor_Agent_V1_ProcessSpec.with {
        $0.args = ["/rehearsal"]
        $0.cwd = "/"
        $0.gid = 0
        $0.strictSupplementalGroups = true
        $0.capabilities.names = ProcessSpec.defaultCapabilities
        $0.seccomp.kind = .runtimeDefault
    }

    /// `<state>/pool/rootfs`: the directories a container's mounts need, and nothing else.
    static func emptyRootfs(_ config: PodvisorConfig) throws(PodvisorError) -> String {
        let root = "\(config.stateDirectory)/pool/rootfs"
        for directory in ["proc", "sys", "dev"] { try makeDirectory("\(root)/\(directory)") }
        return root
    }

    /// `<state>/pool/members/<id>`, written before a member's tap, netns and VM exist and removed with its
    /// sandbox: after a crash, recovery finds what a member left even when its VM was never defined.
    private static func membersDirectory(_ config: PodvisorConfig) -> String { "\(config.stateDirectory)/pool/members" }

    private static func remember(_ id: String, _ config: PodvisorConfig) throws(PodvisorError) {
        try makeDirectory(membersDirectory(config))
        try AtomicFile.write(Data(), to: "\(membersDirectory(config))/\(id)")
    }

    static func forget(_ id: String, _ config: PodvisorConfig) {
        unlink("\(membersDirectory(config))/\(id)")
    }

    /// Members booted by this state directory's runtime whose sandbox was not removed yet.
    static func memberIDs(_ config: PodvisorConfig) -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: membersDirectory(config))) ?? []
    }

    /// A member that dies while it waits is dropped and replaced; a claimed one is its pod's business.
    private func watch(_ member: Member) async {
        _ = await member.pod.vm.waitUntilStopped()
        let waiting = state.withLock { s -> Bool in
            guard let index = s.ready.firstIndex(where: { $0.id == member.id }) else { return false }
            s.ready.remove(at: index)
            return true
        }
        guard waiting else { return }
        log.warning("pool VM \(member.id) stopped while it waited: replaced")
        await remove(member.id, vm: member.pod)
        refill()
    }

    /// Everything of a member that is not claimed: its VM (the booted one, or what a failed boot left), its netns
    /// and tap, then its mark, which stays for recovery when the network cannot be undone.
    private func remove(_ id: String, vm: PodVM?) async {
        do throws(PodvisorError) {
            if let vm { try vm.destroy() } else { try host.destroyOrphan(id: SandboxSpec.vmID(id)) }
        } catch { log.error("pool VM \(id): \(error)") }
        do throws(PodvisorError) {
            try await networks.detach(id)
            Self.forget(id, host.config)
        } catch { log.error("pool VM \(id): \(error)") }
    }
}

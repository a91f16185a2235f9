import Foundation
import PodvisorCore
import PodvisorNetwork
import PodvisorVMM

/// Pod VMs on the node's pod network, as containerd and CRI-O attach containers and Kata attaches VMs:
///
/// 1. a network namespace per sandbox, pinned at `/run/netns/podvisor-<vm id>`;
/// 2. CNI ADD in it (eth0, its address and routes, host ports through portmap);
/// 3. a tap `pvt<12 hex>` in the root namespace, which libvirt opens for the VM's NIC, made before the VM
///    boots and CNI runs: the NIC boots with a MAC of its own (`bootInterface`), so the VM need not wait for
///    CNI; once QEMU holds it, the tap moves into the netns (while CNI runs), and once CNI is done tc
///    mirrors eth0 ⇄ tap both ways;
/// 4. the guest configures eth0 from what the plugins left in the netns (`PodInterface`): its NIC takes
///    eth0's MAC and MTU, so the peers' ARP entries and the CNI result stay true.
///
/// Names derive from the sandbox id, and CNI keeps its own cache keyed by it, so teardown needs nothing
/// but the id: after a crash at any point, `detach` removes whatever exists.
struct PodNetworks: Sendable {
    let cni: CNINetwork

    init(config: PodvisorConfig) {
        cni = CNINetwork(confDir: config.cniConfDirectory, binDirs: config.cniBinDirectories, cacheDir: "\(config.stateDirectory)/network")
    }

    static func namespace(_ sandboxID: String) -> NetworkNamespace { NetworkNamespace(name: "podvisor-\(SandboxSpec.vmID(sandboxID))") }
    static func tap(_ sandboxID: String) -> String { "pvt" + SandboxSpec.vmID(sandboxID).prefix(12) }

    /// The NIC a pod VM boots with, on the sandbox's tap: a locally administered MAC, which eth0's replaces
    /// in the guest, and a large MTU, which the guest's NIC can lower to the pod network's (never raise).
    static func bootInterface(_ sandboxID: String, mac: String) -> DomainSpec.NetworkInterface {
        DomainSpec.NetworkInterface(tap: tap(sandboxID), mac: mac, mtu: 9000)
    }

    static func bootMAC() -> String {
        "02:" + (0..<5).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined(separator: ":")
    }

    /// What `attach` made: the pod's interface, whether portmap serves the host ports.
    typealias Attached = (pod: PodInterface, mappedPorts: Bool)

    /// Step 1, before the steps that run at once: CNI ADD and the tap's move both need it.
    func createNamespace(_ sandboxID: String) throws(PodvisorError) {
        _ = try NetworkNamespace.create(name: Self.namespace(sandboxID).name)
    }

    /// Step 2; `portMappings` go to portmap when the configuration has that capability (`mappedPorts`
    /// says whether it did).
    func attach(_ spec: SandboxSpec) async throws(PodvisorError) -> Attached {
        let namespace = Self.namespace(spec.id)
        let mappedPorts = !spec.portMappings.isEmpty && cni.capabilities.contains("portMappings")
        var attachment = CNIAttachment(
            containerID: spec.id, netnsPath: namespace.path, podNamespace: spec.namespace, podName: spec.name, podUID: spec.uid)
        if mappedPorts {
            attachment.portMappings = spec.portMappings.filter { $0.hostPort > 0 }.map {
                CNIAttachment.PortMapping(
                    hostPort: Int($0.hostPort), containerPort: Int($0.containerPort),
                    protocol: CNIAttachment.PortMapping.Proto(rawValue: $0.protocol.rawValue) ?? .tcp, hostIP: $0.hostIP)
            }
        }
        if let dns = spec.dns { attachment.dns = CNIAttachment.DNS(servers: dns.servers, searches: dns.searches, options: dns.options) }
        if spec.bandwidth.ingress != nil || spec.bandwidth.egress != nil {
            // containerd's burst for kubelet's bandwidth annotations: as large as the plugin takes.
            let burst = UInt64(Int32.max)
            attachment.bandwidth = CNIAttachment.Bandwidth(
                ingressRate: spec.bandwidth.ingress ?? 0, ingressBurst: spec.bandwidth.ingress == nil ? 0 : burst,
                egressRate: spec.bandwidth.egress ?? 0, egressBurst: spec.bandwidth.egress == nil ? 0 : burst)
        }
        _ = try await cni.add(attachment)
        return (try PodInterface.read(namespacePath: namespace.path), mappedPorts)
    }

    /// Step 3's second half: the tap into the netns, once QEMU holds it (CNI may still run).
    func moveTap(_ sandboxID: String) async throws(PodvisorError) {
        try await TapPlumbing.move(tap: Self.tap(sandboxID), namespacePath: Self.namespace(sandboxID).path)
    }

    /// Step 3's end, once CNI made eth0: the tap takes its MTU and mirrors it.
    func connect(_ sandboxID: String, mtu: Int) async throws(PodvisorError) {
        try await TapPlumbing.mirror(tap: Self.tap(sandboxID), namespacePath: Self.namespace(sandboxID).path, mtu: mtu)
    }

    /// The pod's interface as the plugins left it (after a restart: its addresses for the CRI's status).
    func interface(_ sandboxID: String) throws(PodvisorError) -> PodInterface {
        try PodInterface.read(namespacePath: Self.namespace(sandboxID).path)
    }

    /// Everything of the sandbox on the pod network: its tap, CNI DEL (the lease, portmap's rules), its
    /// netns. Idempotent; every step runs even when an earlier one failed, and the first failure is thrown.
    func detach(_ sandboxID: String) async throws(PodvisorError) {
        let namespace = Self.namespace(sandboxID)
        var failure: PodvisorError?
        do throws(PodvisorError) { try await TapPlumbing.deleteTap(name: Self.tap(sandboxID), namespacePath: namespace.path) } catch {
            failure = error
        }
        do throws(PodvisorError) { try await cni.delete(containerID: sandboxID) } catch { failure = failure ?? error }
        do throws(PodvisorError) { try namespace.remove() } catch { failure = failure ?? error }
        if let failure { throw failure }
    }

    /// Sandboxes the CNI cache still has an attachment of.
    func attachedSandboxIDs() -> [String] {
        ((try? cni.cachedAttachments()) ?? []).map(\.attachment.containerID)
    }
}

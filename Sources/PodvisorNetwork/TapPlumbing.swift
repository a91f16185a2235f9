import CLinuxSupport
import Foundation
import PodvisorCore

// The VM's NIC on the pod network, as Kata's `tcfilter` mode: a tap whose traffic tc mirrors onto the pod
// netns's eth0 (the CNI interface) and back, so CNI plugins need not know about VMs.
//
//   TapPlumbing.createTap(name:) async throws                          persistent tap in the root namespace
//   TapPlumbing.move(tap:namespacePath:) async throws                  after the VM started: into the pod netns
//   TapPlumbing.mirror(tap:namespacePath:interface:mtu:) async throws  after CNI: MTU, up, mirror; both safe to repeat
//   TapPlumbing.deleteTap(name:namespacePath:) async throws            idempotent; in the pod netns or the root one
//   TapPlumbing.link(_:namespacePath:) throws -> LinkInfo              eth0's MAC and MTU for the VM's NIC
//
// Order of use: createTap → VM start (libvirt opens the tap by name in the root namespace: `<interface
// type='ethernet'><target dev='NAME' managed='no'/>`, with eth0's MAC) → move → mirror → … → deleteTap.
// libvirt runs as root and hands QEMU (user libvirt-qemu) the open descriptor, so the tap needs no owner.
// The host kernel has cls_u32 and act_mirred but neither flower nor matchall: `u32 match u32 0 0` matches all.

public enum TapPlumbing {
    /// IFNAMSIZ less the terminating NUL.
    public static let maxNameLength = 15

    /// An interface's link-layer facts.
    public struct LinkInfo: Sendable, Equatable {
        public var mac: String
        public var mtu: Int
    }

    /// Creates a persistent tap in the root namespace; it survives until deleted, with or without a VM.
    public static func createTap(name: String) async throws(PodvisorError) {
        try validate(name)
        try await HostProgram.check("ip", ["tuntap", "add", "dev", name, "mode", "tap"])
    }

    /// Moves the tap into the pod netns (its addresses, if any, are dropped by the move). The kernel takes
    /// 25-35 ms over it (2 cores), so it runs as soon as QEMU holds the tap, while CNI and the guest work.
    /// Moving a tap that an earlier call moved (a runtime restarted half-way) changes nothing.
    public static func move(tap: String, namespacePath: String) async throws(PodvisorError) {
        try validate(tap)
        let move = ["link", "set", "dev", tap, "netns", namespacePath]
        let moved = try await HostProgram.run("ip", move)
        if moved.status != 0 {
            // Not in the root namespace: fine when an earlier move put it there.
            guard moved.stderr.contains("Cannot find device"), (try? link(tap, namespacePath: namespacePath)) != nil else {
                throw HostProgram.failure("ip", move, moved)
            }
        }
    }

    /// Once the tap is in the pod netns and `interface` exists: gives the tap `mtu` (the interface's when nil),
    /// brings it up and redirects each interface's ingress to the other's egress. Mirroring again replaces
    /// the filters, it does not stack them.
    public static func mirror(
        tap: String, namespacePath: String, interface: String = "eth0", mtu: Int? = nil
    ) async throws(PodvisorError) {
        try validate(tap)
        let tapMTU: Int
        if let mtu { tapMTU = mtu } else { tapMTU = try link(interface, namespacePath: namespacePath).mtu }
        // The link over netlink in this process (no `ip` to spawn on a pool start's path); then one tc process
        // for both directions, `replace` making a second mirror of the same pair harmless.
        guard let mtu32 = UInt32(exactly: tapMTU) else { throw PodvisorError(.invalidArgument, "MTU \(tapMTU) is out of range") }
        let rc = pv_netns_link_up(namespacePath, tap, mtu32)
        guard rc == 0 else {
            throw PodvisorError(.internalError, "cannot bring \(tap) up with MTU \(tapMTU) in \(namespacePath): \(String(cString: strerror(-rc)))")
        }
        let script =
            [(interface, tap), (tap, interface)].map { from, to in
                """
                qdisc replace dev \(from) ingress
                filter replace dev \(from) parent ffff: pref 1 handle 800::1 protocol all u32 match u32 0 0 \
                action mirred egress redirect dev \(to)
                """
            }.joined(separator: "\n") + "\n"
        try await inNamespace(namespacePath, "tc", ["-batch", "-"], input: Data(script.utf8))
    }

    /// Deletes the tap wherever it is: in the pod netns (after move) or still in the root namespace. A tap that
    /// is gone, or a namespace that is gone, is fine. Deleting the tap also drops its ingress qdisc; eth0's
    /// qdisc and filter go with the pod netns.
    public static func deleteTap(name: String, namespacePath: String?) async throws(PodvisorError) {
        try validate(name)
        if let namespacePath, NetworkNamespace.isPinned(path: namespacePath) {
            try await deleteLink(name, in: namespacePath)
        }
        try await deleteLink(name, in: nil)
    }

    /// An interface's MAC and MTU inside the pod netns (the VM's NIC takes eth0's MAC, so the peers' ARP
    /// entries and the CNI result stay true).
    public static func link(_ interface: String = "eth0", namespacePath: String) throws(PodvisorError) -> LinkInfo {
        let state = try LinkState.read(interface, namespacePath: namespacePath)
        return LinkInfo(mac: state.mac, mtu: state.mtu)
    }

    private static func deleteLink(_ name: String, in namespacePath: String?) async throws(PodvisorError) {
        let arguments = ["link", "del", "dev", name]
        let output =
            if let namespacePath {
                try await HostProgram.run("nsenter", ["--net=\(namespacePath)", "ip"] + arguments)
            } else {
                try await HostProgram.run("ip", arguments)
            }
        // iproute2's words for a missing link: "Cannot find device".
        guard output.status == 0 || output.stderr.contains("Cannot find device") else {
            throw PodvisorError(.internalError, "cannot delete tap \(name): \(output.stderr.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
    }

    /// Runs `program` in the pod netns. nsenter switches the network namespace only, unlike `ip netns exec`,
    /// which also remounts /sys and needs the namespace under /run/netns.
    @discardableResult
    private static func inNamespace(
        _ namespacePath: String, _ program: String, _ arguments: [String], input: Data = Data()
    ) async throws(PodvisorError) -> String {
        try await HostProgram.check("nsenter", ["--net=\(namespacePath)", program] + arguments, input: input)
    }

    private static func validate(_ name: String) throws(PodvisorError) {
        guard !name.isEmpty, name.utf8.count <= maxNameLength,
            name.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f && $0 != UInt8(ascii: "/") && $0 != UInt8(ascii: ":") })
        else {
            throw PodvisorError(.invalidArgument, "invalid interface name \"\(name)\" (1–\(maxNameLength) printable bytes, no '/' or ':')")
        }
    }
}

import Foundation
import PodvisorCore

/// What the CNI plugins made of the pod's interface inside its netns: the VM's guest takes it over, as Kata
/// reads a pod netns and replays it into its guest. Read from the netns rather than from the CNI result,
/// so routes and addresses a plugin set without reporting them (or that a later plugin changed) come along.
public struct PodInterface: Sendable, Equatable {
    public struct Route: Sendable, Equatable {
        /// CIDR; `0.0.0.0/0` or `::/0` for a default route.
        public var destination: String
        /// nil: on-link.
        public var gateway: String?
    }

    public var mac: String
    public var mtu: Int
    /// CIDR, global scope only (the guest makes its own link-local ones).
    public var addresses: [String]
    /// Without the kernel's own routes (those of an address's subnet): the guest's kernel adds them too.
    public var routes: [Route]

    /// The pod's addresses without prefix length, IPv4 first: PodSandboxStatus's ip and additional_ips.
    public var ips: [String] {
        let plain = addresses.map { String($0.prefix { $0 != "/" }) }
        return plain.filter { !$0.contains(":") } + plain.filter { $0.contains(":") }
    }

    /// eth0 as the netns has it, read over rtnetlink by a thread that enters the netns (no `ip` to spawn: this
    /// is on the path of a start from the pool).
    public static func read(_ interface: String = "eth0", namespacePath: String) throws(PodvisorError) -> PodInterface {
        let link = try LinkState.read(interface, namespacePath: namespacePath)
        // RTPROT_KERNEL: the routes of an address's own subnet.
        let routes = link.routes.filter { $0.protocol != 2 && !$0.destination.hasPrefix("fe80:") && !$0.destination.hasPrefix("ff00:") }
        return PodInterface(
            mac: link.mac, mtu: link.mtu,
            addresses: link.addresses.filter { $0.scope != 253 && $0.scope != 254 }.map(\.cidr),  // neither link nor host scope
            routes: routes.map { Route(destination: $0.destination, gateway: $0.gateway) })
    }
}

#if canImport(Glibc)
import Glibc
#endif
import CLinuxSupport
import PodvisorAgentProtocol

/// The guest's network as the pod's CNI result describes it: each NIC, found by its MAC, renamed, given its
/// MTU, brought up and addressed, then the routes. Through rtnetlink (CLinuxSupport's netlink.c), in the
/// calling thread's network namespace.
public enum GuestNetwork {
    /// Brings the loopback interface up: a pod's containers share the guest's network namespace and talk
    /// over localhost, and port forwarding reaches them there. The kernel leaves `lo` down until asked.
    public static func loopbackUp() {
        let rc = pv_link_set(Int32(if_nametoindex("lo")), nil, nil, 0, 1)
        if rc != 0 { log("cannot bring lo up: \(describe(rc))") }
    }

    /// Applies the request. All of it is checked before the first change, so a malformed request changes
    /// nothing; a change the kernel refuses fails naming its step. Applying it twice ends in the same state.
    static func configure(_ request: Podvisor_Agent_V1_ConfigureNetworkRequest) throws(RPCError) {
        let interfaces = try request.interfaces.map(Interface.init)
        let routes = try request.routes.map(Route.init)
        for interface in interfaces {
            // A NIC that booted with another MAC takes the pod's; configured once, it carries the pod's already.
            var index = interface.bootMAC.map { pv_link_index_by_mac($0) } ?? -ENODEV
            let newMAC = index > 0 ? interface.mac : nil
            if index == -ENODEV { index = pv_link_index_by_mac(interface.mac) }
            guard index > 0 else {
                throw index == -ENODEV
                    ? RPCError(.invalidArgument, "no network interface has MAC \(interface.macText)")
                    : RPCError(.internal, "looking for MAC \(interface.macText): \(describe(index))")
            }
            // Renaming takes the link down first: only when the name changes.
            let rename = interface.name.isEmpty || name(of: index) == interface.name ? nil : interface.name
            let rc =
                if let newMAC { pv_link_set(index, rename, newMAC, interface.mtu, 1) } else { pv_link_set(index, rename, nil, interface.mtu, 1) }
            try check(rc, "\(interface.label): set up (MTU \(interface.mtu))")
            for address in interface.addresses {
                try check(pv_addr_add(index, address.family, address.bytes, address.length), "\(interface.label): add address \(address.text)")
            }
        }
        for route in routes {
            var index: Int32 = 0
            if !route.interfaceName.isEmpty {
                index = Int32(bitPattern: if_nametoindex(route.interfaceName))
                guard index > 0 else { throw RPCError(.invalidArgument, "route \(route.text): no interface named \(route.interfaceName)") }
            }
            let destination = route.destination
            let rc =
                if let gateway = route.gateway {
                    pv_route_add(destination.family, destination.bytes, destination.length, gateway.bytes, index)
                } else {
                    pv_route_add(destination.family, destination.bytes, destination.length, nil, index)
                }
            try check(rc, "route \(route.text)")
        }
    }

    struct Interface {
        var mac: [UInt8]
        /// The MAC the NIC booted with, when it must take `mac` (a pre-booted VM).
        var bootMAC: [UInt8]?
        var macText: String
        var name: String
        var mtu: UInt32
        var addresses: [Prefix]
        /// How errors name it: its guest name, or its MAC when it keeps the kernel's name.
        var label: String { name.isEmpty ? macText : name }

        init(_ spec: Podvisor_Agent_V1_NetworkInterface) throws(RPCError) {
            let mac = try Self.mac(spec.mac)
            bootMAC = spec.bootMac.isEmpty ? nil : try Self.mac(spec.bootMac)
            // The kernel's rule (dev_valid_name), checked here so that a bad name changes nothing.
            let forbidden = spec.name.utf8.contains { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: ":") || $0 <= 0x20 }
            guard spec.name.utf8.count < 16, !forbidden, spec.name != ".", spec.name != ".." else {
                throw RPCError(.invalidArgument, "invalid interface name \"\(spec.name)\"")
            }
            self.mac = mac
            macText = spec.mac.lowercased()
            name = spec.name
            mtu = spec.mtu
            addresses = try spec.addresses.map { cidr throws(RPCError) in try Prefix(cidr: cidr, what: "address of \(spec.mac)") }
        }

        /// "aa:bb:cc:dd:ee:ff" → its six bytes.
        static func mac(_ text: String) throws(RPCError) -> [UInt8] {
            let octets = text.split(separator: ":", omittingEmptySubsequences: false)
            let mac = octets.compactMap { $0.count == 2 ? UInt8($0, radix: 16) : nil }
            guard octets.count == 6, mac.count == 6 else { throw RPCError(.invalidArgument, "malformed MAC \"\(text)\"") }
            return mac
        }
    }

    struct Route {
        var destination: Prefix
        /// nil: on-link.
        var gateway: Prefix?
        var interfaceName: String
        /// As `ip route` would show it, for errors.
        var text: String

        init(_ spec: Podvisor_Agent_V1_Route) throws(RPCError) {
            text =
                spec.destination + (spec.gateway.isEmpty ? "" : " via \(spec.gateway)")
                + (spec.interfaceName.isEmpty ? "" : " dev \(spec.interfaceName)")
            destination = try Prefix(cidr: spec.destination, what: "destination of route \(text)")
            interfaceName = spec.interfaceName
            guard !spec.gateway.isEmpty else {
                guard !spec.interfaceName.isEmpty else { throw RPCError(.invalidArgument, "route \(text): an on-link route needs an interface") }
                return
            }
            let gateway = try Prefix(address: spec.gateway, what: "gateway of route \(text)")
            guard gateway.family == destination.family else {
                throw RPCError(.invalidArgument, "route \(text): gateway and destination are of different address families")
            }
            self.gateway = gateway
        }
    }

    /// An IPv4 or IPv6 address with a prefix length; bytes in network order.
    struct Prefix {
        var family: Int32
        var bytes: [UInt8]
        var length: UInt8
        var text: String

        /// "10.1.2.3/24", "fd00::3/64".
        init(cidr: String, what: String) throws(RPCError) {
            let parts = cidr.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count == 2, let length = UInt8(parts[1]) else {
                throw RPCError(.invalidArgument, "\(what) \"\(cidr)\" is not in CIDR notation")
            }
            try self.init(address: String(parts[0]), what: what)
            guard Int(length) <= bytes.count * 8 else {
                throw RPCError(.invalidArgument, "\(what) \"\(cidr)\": prefix length \(length) exceeds \(bytes.count * 8)")
            }
            self.length = length
            text = cidr
        }

        /// One address (a gateway): its prefix is the whole address.
        init(address: String, what: String) throws(RPCError) {
            for (family, size) in [(AF_INET, 4), (AF_INET6, 16)] {
                var bytes = [UInt8](repeating: 0, count: size)
                if inet_pton(family, address, &bytes) == 1 {
                    (self.family, self.bytes, length, text) = (family, bytes, UInt8(size * 8), address)
                    return
                }
            }
            throw RPCError(.invalidArgument, "\(what) \"\(address)\" is not an IPv4 or IPv6 address")
        }
    }

    private static func name(of index: Int32) -> String? {
        var buffer = [CChar](repeating: 0, count: Int(IF_NAMESIZE))
        guard if_indextoname(UInt32(index), &buffer) != nil else { return nil }
        return Containers.string(buffer)
    }

    private static func check(_ rc: Int32, _ step: String) throws(RPCError) {
        guard rc == 0 else { throw RPCError(.internal, "\(step): \(describe(rc))") }
    }

    private static func describe(_ rc: Int32) -> String { String(cString: strerror(-rc)) }
}

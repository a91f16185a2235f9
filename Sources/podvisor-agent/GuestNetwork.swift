#if canImport(Glibc)
import Glibc
#endif
import CLinuxSupport
import PodvisorAgentProtocol

/// The guest's side of the pod network: the NIC whose MAC is the pod's CNI interface's is renamed, given
/// its MTU and addresses, brought up, and the routes the plugins set in the pod's netns are added, over
/// rtnetlink. Containers share the guest's network namespace, so this is every container's network.
enum GuestNetwork {
    static func configure(_ request: Podvisor_Agent_V1_ConfigureNetworkRequest) throws(RPCError) {
        var indexes: [String: Int32] = [:]
        for interface in request.interfaces {
            let index = try link(mac: interface.mac)
            // A link is renamed only while down.
            try check(pv_link_set(index, interface.name, 0, 0), "rename \(interface.mac) to \(interface.name)")
            try check(pv_link_set(index, nil, interface.mtu, 1), "bring \(interface.name) up with MTU \(interface.mtu)")
            for cidr in interface.addresses {
                let (family, address, prefix) = try parse(cidr)
                try check(pv_address_add(index, family, address, prefix), "add address \(cidr) to \(interface.name)")
            }
            indexes[interface.name] = index
        }
        for route in request.routes {
            guard let index = indexes[route.interfaceName] else {
                throw RPCError(.invalidArgument, "route to \(route.destination): no interface \(route.interfaceName)")
            }
            let (family, destination, prefix) = try parse(route.destination)
            var gateway: [UInt8]?
            if !route.gateway.isEmpty {
                let (gatewayFamily, bytes, _) = try parse(route.gateway)
                guard gatewayFamily == family else {
                    throw RPCError(.invalidArgument, "route to \(route.destination): gateway \(route.gateway) is of another family")
                }
                gateway = bytes
            }
            let rc = gateway.map { gateway in pv_route_add(family, destination, prefix, gateway, index) }
                ?? pv_route_add(family, destination, prefix, nil, index)
            try check(rc, "add route to \(route.destination)\(route.gateway.isEmpty ? "" : " via \(route.gateway)")")
        }
    }

    /// The ifindex of the NIC with this MAC address.
    private static func link(mac: String) throws(RPCError) -> Int32 {
        let wanted = mac.lowercased()
        for name in GuestFiles.listDirectory("/sys/class/net") {
            guard GuestFiles.read("/sys/class/net/\(name)/address")?.trimmingSuffix("\n") == wanted,
                  let index = GuestFiles.read("/sys/class/net/\(name)/ifindex").flatMap({ Int32($0.trimmingSuffix("\n")) })
            else { continue }
            return index
        }
        throw RPCError(.notFound, "no network interface with MAC \(mac) in the guest")
    }

    /// "10.1.2.3/24", "fd00::3/64", or a plain address (a full-length prefix).
    private static func parse(_ text: String) throws(RPCError) -> (family: Int32, bytes: [UInt8], prefix: UInt8) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        let family = parts[0].contains(":") ? AF_INET6 : AF_INET
        let maxPrefix = family == AF_INET ? 32 : 128
        var bytes = [UInt8](repeating: 0, count: 16)
        let parsed = bytes.withUnsafeMutableBytes { inet_pton(family, String(parts[0]), $0.baseAddress) }
        let prefix = parts.count == 2 ? Int(parts[1]) : maxPrefix
        guard parsed == 1, parts.count <= 2, let prefix, (0...maxPrefix).contains(prefix) else {
            throw RPCError(.invalidArgument, "\"\(text)\" is not an IP address or CIDR")
        }
        return (family, Array(bytes.prefix(family == AF_INET ? 4 : 16)), UInt8(prefix))
    }

    private static func check(_ rc: Int32, _ step: String) throws(RPCError) {
        guard rc == 0 else { throw RPCError(.internal, "\(step): \(String(cString: strerror(-rc)))") }
    }
}

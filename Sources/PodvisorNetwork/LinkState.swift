import CLinuxSupport
import Foundation
import PodvisorCore

/// A link in a pinned network namespace as the kernel reports it over rtnetlink (CLinuxSupport's
/// `pv_netns_read_link`): MAC, MTU, addresses, and the main table's routes through it.
struct LinkState {
    struct Address {
        var cidr: String
        /// RT_SCOPE_*: 0 universe, 253 link, 254 host.
        var scope: UInt8
    }

    struct Route {
        /// CIDR, `0.0.0.0/0` or `::/0` for a default route.
        var destination: String
        var gateway: String?
        /// RTPROT_*: 2 is the kernel's own.
        var `protocol`: UInt8
    }

    var mac: String
    var mtu: Int
    var addresses: [Address]
    var routes: [Route]

    static func read(_ interface: String, namespacePath: String) throws(PodvisorError) -> LinkState {
        var state = pv_link_state()
        let rc = pv_netns_read_link(namespacePath, interface, &state)
        guard rc == 0 else {
            throw PodvisorError(.internalError, "cannot read \(interface) in \(namespacePath): \(String(cString: strerror(-rc)))")
        }
        guard state.truncated == 0 else {
            throw PodvisorError(.failedPrecondition, "\(interface) in \(namespacePath) has more addresses or routes than a pod VM takes over")
        }
        let addresses = elements(state.addresses, count: state.address_count, of: pv_link_address.self).map { a in
            Address(cidr: "\(text(a.address, a.family))/\(a.prefix_length)", scope: a.scope)
        }
        let routes = elements(state.routes, count: state.route_count, of: pv_link_route.self).map { r in
            Route(
                destination: "\(text(r.destination, r.family))/\(r.destination_length)",
                gateway: r.has_gateway == 0 ? nil : text(r.gateway, r.family), protocol: r.protocol)
        }
        let mac = withUnsafeBytes(of: state.mac) { $0.map { String(format: "%02x", $0) }.joined(separator: ":") }
        return LinkState(mac: mac, mtu: Int(state.mtu), addresses: addresses, routes: routes)
    }

    /// The first `count` elements of a C array, which Swift imports as a tuple.
    private static func elements<Tuple, Element>(_ tuple: Tuple, count: Int32, of: Element.Type) -> [Element] {
        withUnsafeBytes(of: tuple) { bytes in
            (0..<Int(count)).map { bytes.loadUnaligned(fromByteOffset: $0 * MemoryLayout<Element>.stride, as: Element.self) }
        }
    }

    /// An address of `family` (its first 4 or 16 bytes) as inet_ntop writes it.
    private static func text<Tuple>(_ bytes: Tuple, _ family: Int32) -> String {
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        return withUnsafeBytes(of: bytes) { address in
            guard inet_ntop(family, address.baseAddress, &buffer, socklen_t(buffer.count)) != nil else { return "?" }
            return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
    }
}

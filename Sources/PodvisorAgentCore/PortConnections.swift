#if canImport(Glibc)
import Glibc
#endif
import PodvisorAgentProtocol

/// TCP connections from the agent to ports of the pod, for the host's port forwarding. Containers share
/// the guest's network namespace with the agent, so 127.0.0.1 reaches what they listen on.
final class PortConnections: Sendable {
    private struct State {
        var sockets: [String: Int32] = [:]
        var next = 0
    }
    private let state = Condition(State())

    func connect(port: UInt32) throws(RPCError) -> String {
        guard port > 0 && port <= 65535 else { throw RPCError(.invalidArgument, "port \(port) out of range") }
        guard let fd = Self.dial(UInt16(port)) else {
            throw RPCError(.unavailable, "nothing accepts connections on port \(port) in the pod: errno \(errno)")
        }
        return state.update { s in
            defer { s.next += 1 }
            let id = "p\(s.next)"
            s.sockets[id] = fd
            return id
        }
    }

    func read(_ id: String, max limit: UInt32) throws(RPCError) -> (data: [UInt8], eof: Bool) {
        let fd = try socket(id)
        // A connection closed meanwhile reads as its end.
        let bytes = (try? FileDescriptorStream(fd: fd).read(upTo: Int(min(max(limit, 1), 1 << 20)))) ?? []
        return (bytes, bytes.isEmpty)
    }

    func write(_ id: String, _ data: [UInt8], closeWrite: Bool) throws(RPCError) {
        let fd = try socket(id)
        do { try FileDescriptorStream(fd: fd).write(data) } catch { throw RPCError(.unavailable, "port connection \(id): \(error)") }
        if closeWrite { Glibc.shutdown(fd, Int32(SHUT_WR)) }
    }

    func close(_ id: String) {
        guard let fd = state.update({ $0.sockets.removeValue(forKey: id) }) else { return }
        // shutdown first wakes a reader blocked on it.
        Glibc.shutdown(fd, Int32(SHUT_RDWR))
        Glibc.close(fd)
    }

    private func socket(_ id: String) throws(RPCError) -> Int32 {
        guard let fd = state.update({ $0.sockets[id] }) else { throw RPCError(.notFound, "port connection \(id) not found") }
        return fd
    }

    /// 127.0.0.1 first, then ::1 (a server may listen on IPv6 loopback only).
    private static func dial(_ port: UInt16) -> Int32? {
        var v4 = sockaddr_in()
        v4.sin_family = sa_family_t(AF_INET)
        v4.sin_port = port.bigEndian
        v4.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        if let fd = withUnsafePointer(to: &v4, { attempt(AF_INET, UnsafeRawPointer($0), MemoryLayout<sockaddr_in>.size) }) { return fd }
        var v6 = sockaddr_in6()
        v6.sin6_family = sa_family_t(AF_INET6)
        v6.sin6_port = port.bigEndian
        v6.sin6_addr.__in6_u.__u6_addr8.15 = 1
        return withUnsafePointer(to: &v6) { attempt(AF_INET6, UnsafeRawPointer($0), MemoryLayout<sockaddr_in6>.size) }
    }

    private static func attempt(_ family: Int32, _ address: UnsafeRawPointer, _ length: Int) -> Int32? {
        let fd = Glibc.socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        guard Glibc.connect(fd, address.assumingMemoryBound(to: sockaddr.self), socklen_t(length)) == 0 else {
            let saved = errno
            Glibc.close(fd)
            errno = saved
            return nil
        }
        return fd
    }
}

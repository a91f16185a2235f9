#if canImport(Glibc)
import Glibc
#endif
import CLinuxSupport
import PodvisorCore

/// Where, on the host, a VM's agent can be dialed. One `connect` is one attempt; callers retry while the
/// guest boots (an attempt fails fast until the agent listens).
public enum AgentEndpoint: Sendable, Equatable {
    case vsock(cid: UInt32)
    /// The backend's unix socket; a `CONNECT <port>` line selects the guest port.
    case hybridVsock(hostSocket: String)
    case virtioSerial(socket: String)

    /// A connected stream to the agent's port, or an error (`.unavailable` while the guest is not listening).
    public func connect(port: UInt32, handshakeTimeoutMs: Int32 = 2000) throws(PodvisorError) -> Int32 {
        switch self {
        case .vsock(let cid):
            let fd = pv_vsock_connect(cid, port)
            guard fd >= 0 else { throw PodvisorError(.unavailable, "vsock connect to \(cid):\(port): errno \(errno)") }
            return fd
        case .virtioSerial(let socket):
            let fd = pv_unix_connect(socket)
            guard fd >= 0 else { throw PodvisorError(.unavailable, "connect \(socket): errno \(errno)") }
            return fd
        case .hybridVsock(let hostSocket):
            let fd = pv_unix_connect(hostSocket)
            guard fd >= 0 else { throw PodvisorError(.unavailable, "connect \(hostSocket): errno \(errno)") }
            do {
                try Self.hybridHandshake(fd: fd, port: port, timeoutMs: handshakeTimeoutMs)
                return fd
            } catch {
                close(fd)
                throw error
            }
        }
    }

    /// vhost-device-vsock's protocol (as Firecracker's): `CONNECT <port>\n` answered by `OK <host port>\n`.
    /// No listener in the guest: the backend closes the connection instead.
    static func hybridHandshake(fd: Int32, port: UInt32, timeoutMs: Int32) throws(PodvisorError) {
        let request = Array("CONNECT \(port)\n".utf8)
        // MSG_NOSIGNAL: a backend that already closed must fail this call, not kill the process with SIGPIPE.
        guard request.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == request.count else {
            throw PodvisorError(.unavailable, "hybrid vsock: cannot send CONNECT: errno \(errno)")
        }
        var line: [UInt8] = []
        while line.last != UInt8(ascii: "\n") {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, timeoutMs) == 1 else { throw PodvisorError(.unavailable, "hybrid vsock: no answer to CONNECT") }
            var byte: UInt8 = 0
            // One byte at a time: what follows the line already belongs to the agent's stream.
            guard read(fd, &byte, 1) == 1 else {
                throw PodvisorError(.unavailable, "hybrid vsock: guest port \(port) not listening yet")
            }
            line.append(byte)
            guard line.count < 64 else { throw PodvisorError(.unavailable, "hybrid vsock: malformed answer") }
        }
        guard line.starts(with: Array("OK ".utf8)) else {
            throw PodvisorError(.unavailable, "hybrid vsock: unexpected answer \(String(decoding: line, as: UTF8.self))")
        }
    }
}

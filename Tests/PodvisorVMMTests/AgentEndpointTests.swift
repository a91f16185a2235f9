import Glibc
import PodvisorCore
import Testing

@testable import PodvisorVMM

/// The hybrid vsock handshake against a scripted backend on the other end of a socketpair. The backend's
/// answer is queued before the handshake starts, so the socket holds more than the answer line at once.
@Suite struct HybridHandshakeTests {
    /// (host end, backend end); the backend end is closed when `body` returns.
    static func withPair<T>(_ body: (Int32, Int32) throws -> T) throws -> T {
        var fds: [Int32] = [-1, -1]
        try #require(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0)
        defer { fds.forEach { close($0) } }
        return try body(fds[0], fds[1])
    }

    static func send(_ fd: Int32, _ text: String) throws {
        let bytes = Array(text.utf8)
        try #require(write(fd, bytes, bytes.count) == bytes.count)
    }

    /// Everything queued on `fd` now, without waiting.
    static func drain(_ fd: Int32) -> String {
        var buffer = [UInt8](repeating: 0, count: 256)
        let n = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
        return n > 0 ? String(decoding: buffer[..<n], as: UTF8.self) : ""
    }

    static func handshakeError(_ fd: Int32, timeoutMs: Int32 = 2000) -> PodvisorError? {
        #expect(throws: PodvisorError.self) { try AgentEndpoint.hybridHandshake(fd: fd, port: 1024, timeoutMs: timeoutMs) }
    }

    @Test func leavesTheBytesAfterTheAnswerLineUnread() throws {
        try Self.withPair { host, backend in
            try Self.send(backend, "OK 5000\nxyz")
            try AgentEndpoint.hybridHandshake(fd: host, port: 1024, timeoutMs: 2000)
            #expect(Self.drain(backend) == "CONNECT 1024\n")
            #expect(Self.drain(host) == "xyz")
        }
    }

    @Test func backendClosingWithoutAnswerIsUnavailable() throws {
        try Self.withPair { host, backend in
            // What vhost-device-vsock does when nothing listens on the guest port: read the line, close.
            shutdown(backend, Int32(SHUT_WR))
            let error = Self.handshakeError(host)
            #expect(error?.code == .unavailable)
            #expect(Self.drain(backend) == "CONNECT 1024\n")
        }
    }

    @Test func backendAlreadyGoneIsUnavailable() throws {
        try Self.withPair { host, backend in
            shutdown(backend, Int32(SHUT_RDWR))
            #expect(Self.handshakeError(host)?.code == .unavailable)
        }
    }

    @Test(arguments: ["NO\n", "OK\n", "ok 5000\n", String(repeating: "O", count: 100) + "\n"])
    func unexpectedAnswerIsRefused(answer: String) throws {
        try Self.withPair { host, backend in
            try Self.send(backend, answer)
            #expect(Self.handshakeError(host)?.code == .unavailable)
        }
    }

    @Test func silentBackendTimesOut() throws {
        try Self.withPair { host, backend in
            let clock = ContinuousClock()
            let start = clock.now
            let error = Self.handshakeError(host, timeoutMs: 100)
            #expect(error?.code == .unavailable)
            #expect(error?.message.contains("no answer") == true)
            #expect(clock.now - start < .seconds(2))
        }
    }

    @Test func partialAnswerThenSilenceTimesOut() throws {
        try Self.withPair { host, backend in
            try Self.send(backend, "OK 50")
            #expect(Self.handshakeError(host, timeoutMs: 100)?.message.contains("no answer") == true)
        }
    }
}

@Suite struct GuestCIDTests {
    @Test func parsesTheAssignedCID() throws {
        let xml = """
            <domain type='qemu' id='1'>
              <devices>
                <vsock model='virtio'>
                  <cid auto='yes' address='3'/>
                  <alias name='vsock0'/>
                </vsock>
              </devices>
            </domain>
            """
        #expect(try VirtualMachine.guestCID(in: xml) == 3)
        #expect(try VirtualMachine.guestCID(in: "<cid auto='yes' address='4294967295'/>") == UInt32.max)
    }

    @Test(arguments: [
        "<vsock model='virtio'><cid auto='yes'/></vsock>",
        "<domain type='qemu'><devices/></domain>",
        "<cid auto='yes' address=''/>",
        "<cid auto='yes' address='4294967296'/>",
    ])
    func noAssignedCIDThrows(xml: String) {
        #expect(throws: PodvisorError.self) { try VirtualMachine.guestCID(in: xml) }
    }
}

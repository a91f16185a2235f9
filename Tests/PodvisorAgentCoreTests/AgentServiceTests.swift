import Foundation
import Glibc
import PodvisorAgentClient
import PodvisorAgentProtocol
import PodvisorCore
import Testing

@testable import PodvisorAgentCore

/// The agent's service as the host reaches it: AgentClient over a socketpair, typed on both sides.
@Suite(.timeLimit(.minutes(1))) struct AgentServiceTests {
    /// A client whose agent serves on a thread of its own (its reads block).
    static func connect(powerOff: @escaping @Sendable () -> Void = {}) throws -> AgentClient {
        var fds: [Int32] = [-1, -1]
        try #require(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0)
        let server = AgentService.server(
            transport: "socketpair", initAtMs: 7, readyAtMs: 42, sharedDirectory: "/run/podvisor/share",
            bootMounts: "proc /proc proc rw 0 0\n/dev/root / erofs ro,relatime,dax=always 0 0\n",
            containers: Containers(sharedDirectory: "/nonexistent"), powerOff: powerOff)
        let serverEnd = fds[1]
        Thread {
            let stream = FileDescriptorStream(fd: serverEnd)
            _ = server.serve(TTRPCConnection(stream: stream))
            stream.close()
        }.start()
        return AgentClient(fd: fds[0])
    }

    @Test func versionNamesAgentKernelAndTransport() async throws {
        let client = try Self.connect()
        defer { client.close() }
        let version = try await client.version()
        #expect(version.agentVersion == AgentAPI.agentVersion)
        #expect(version.transport == "socketpair" && version.uptimeAtInitMs == 7 && version.uptimeAtReadyMs == 42)
        #expect(version.sharedDirectory == "/run/podvisor/share")
        let release = try String(contentsOfFile: "/proc/sys/kernel/osrelease", encoding: .utf8)
        #expect(version.kernelVersion + "\n" == release)
        let health = try await client.health()
        #expect(health.status == .serving)
        #expect(health.bootRoot == "/dev/root erofs ro,relatime,dax=always")
    }

    /// The boot root is the first mount on /: PID 1's tmpfs root comes after it.
    @Test func bootRootIsTheFirstMountOnRoot() {
        let mounts = """
            /dev/root / erofs ro,relatime,dax=always 0 0
            proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0
            tmpfs / tmpfs rw,relatime,mode=755 0 0
            """
        #expect(GuestFiles.bootRoot(mounts: mounts) == "/dev/root erofs ro,relatime,dax=always")
        #expect(GuestFiles.bootRoot(mounts: "tmpfs /tmp tmpfs rw 0 0\n") == nil)
    }

    @Test func shutdownAnswersThenPowersOff() async throws {
        let (poweredOff, signal) = AsyncStream.makeStream(of: Void.self)
        let client = try Self.connect { signal.yield() }
        defer { client.close() }
        try await client.shutdown()
        var iterator = poweredOff.makeAsyncIterator()
        #expect(await iterator.next() != nil)
    }

    /// Requests the agent refuses before touching anything reach the host as invalidArgument, with the reason.
    @Test func refusalsArriveTyped() async throws {
        let client = try Self.connect()
        defer { client.close() }
        let network = await #expect(throws: PodvisorError.self) {
            try await client.configureNetwork(
                .with {
                    $0.interfaces = [
                        .with {
                            $0.mac = "02:00:00:00:00:01"
                            $0.addresses = ["10.1.2.3/33"]
                        }
                    ]
                })
        }
        #expect(network?.code == .invalidArgument)
        #expect(network?.message == "agent ConfigureNetwork: address of 02:00:00:00:00:01 \"10.1.2.3/33\": prefix length 33 exceeds 32")
        let container = await #expect(throws: PodvisorError.self) {
            try await client.createContainer(
                .with {
                    $0.containerID = "web"
                    $0.rootfs = "../etc"
                })
        }
        #expect(container?.code == .invalidArgument)
        #expect(container?.message.contains("rootfs must be a relative path inside the shared directory") == true)
        let missing = await #expect(throws: PodvisorError.self) { try await client.startContainer("nothing") }
        #expect(missing?.code == .notFound)
    }

    /// Port forwarding reaches what listens on the agent's loopback (here: the host's).
    @Test func portConnectionRelaysBothWays() async throws {
        let (listener, port) = try Self.loopbackListener()
        defer { close(listener) }
        Thread {
            let peer = FileDescriptorStream(fd: accept(listener, nil, nil))
            defer { peer.close() }
            if (try? peer.read(upTo: 4)) == Array("ping".utf8) { try? peer.write(Array("pong".utf8)) }
        }.start()
        let client = try Self.connect()
        defer { client.close() }
        let connection = try await client.portConnect(port)
        try await client.portWrite(connection, Data("ping".utf8))
        var received = Data()
        while let chunk = try await client.portRead(connection) { received += chunk }
        #expect(received == Data("pong".utf8))
        try await client.portClose(connection)
        let closed = await #expect(throws: PodvisorError.self) { try await client.portRead(connection) }
        #expect(closed?.code == .notFound)
        let refused = await #expect(throws: PodvisorError.self) { try await client.portConnect(try Self.unusedPort()) }
        #expect(refused?.code == .unavailable)
    }

    /// A listening TCP socket on 127.0.0.1 and its port.
    static func loopbackListener() throws -> (Int32, UInt32) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        try withUnsafeMutablePointer(to: &address) { pointer in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                try #require(bind(fd, $0, length) == 0 && listen(fd, 1) == 0 && getsockname(fd, $0, &length) == 0)
            }
        }
        return (fd, UInt32(UInt16(bigEndian: address.sin_port)))
    }

    /// A port nothing listens on (bound a moment ago, then released).
    static func unusedPort() throws -> UInt32 {
        let (fd, port) = try loopbackListener()
        close(fd)
        return port
    }
}

import Foundation
import Glibc
import PodvisorCore
import Synchronization
import Testing

@testable import PodvisorAgentClient
@testable import PodvisorAgentProtocol

/// Methods only the test server has (the agent's own are declared from agent.proto).
extension AgentMethod where Request == Podvisor_Agent_V1_VersionResponse, Response == Podvisor_Agent_V1_VersionResponse {
    /// Answers out of order: each request waits a different while.
    static var echo: Self { Self("Echo") }
}

extension AgentMethod where Request == Podvisor_Agent_V1_VersionRequest, Response == Podvisor_Agent_V1_VersionResponse {
    static var slow: Self { Self("Slow") }
    static var missing: Self { Self("Missing") }
    static var notServed: Self { Self("NoSuchMethod") }
}

/// AgentClient against a real TTRPCServer, or a scripted peer, over a socketpair.
@Suite struct AgentClientTests {
    typealias VersionResponse = Podvisor_Agent_V1_VersionResponse

    static let slowMs: UInt32 = 1500

    static func makeServer() -> TTRPCServer {
        var builder = TTRPCServer.Builder()
        builder.add(.version) { _ in
            VersionResponse.with {
                $0.agentVersion = "0.0.test"
                $0.kernelVersion = "6.1.0"
                $0.transport = "socketpair"
            }
        }
        builder.add(.health) { _ in
            Podvisor_Agent_V1_HealthResponse.with {
                $0.status = .serving
                $0.agentRssBytes = 4096
            }
        }
        builder.add(.echo) { request in
            usleep(UInt32.random(in: 0...5_000))
            return VersionResponse.with { $0.agentVersion = "echo \(request.kernelVersion)" }
        }
        builder.add(.slow) { _ in
            usleep(AgentClientTests.slowMs * 1000)
            return VersionResponse.with { $0.agentVersion = "late" }
        }
        builder.add(.missing) { _ in
            throw RPCError(.notFound, "no such container")
        }
        return builder.build()
    }

    static func socketPair() throws -> (Int32, Int32) {
        var fds: [Int32] = [-1, -1]
        try #require(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0)
        return (fds[0], fds[1])
    }

    /// A client connected to a server running on a thread of its own (a blocked reader must not take one
    /// of the few cooperative threads). The server closes its end once the client's end is shut down.
    static func connect() throws -> AgentClient {
        let (clientEnd, serverEnd) = try socketPair()
        let server = makeServer()
        Thread {
            let stream = FileDescriptorStream(fd: serverEnd)
            _ = server.serve(TTRPCConnection(stream: stream))
            stream.close()
        }.start()
        return AgentClient(fd: clientEnd)
    }

    /// Runs blocking peer work on a thread of its own.
    static func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread { continuation.resume(with: Result { try body() }) }.start()
        }
    }

    @Test func versionAndHealthRoundTrip() async throws {
        let client = try Self.connect()
        defer { client.close() }
        let version = try await client.version()
        #expect(version.agentVersion == "0.0.test")
        #expect(version.kernelVersion == "6.1.0")
        #expect(version.transport == "socketpair")
        let health = try await client.health()
        #expect(health.status == .serving)
        #expect(health.agentRssBytes == 4096)
    }

    @Test func concurrentCallsEachGetTheirOwnAnswer() async throws {
        let client = try Self.connect()
        defer { client.close() }
        try await withThrowingTaskGroup(of: (Int, String).self) { group in
            for i in 0..<50 {
                group.addTask {
                    let reply = try await client.call(.echo, VersionResponse.with { $0.kernelVersion = "\(i)" })
                    return (i, reply.agentVersion)
                }
            }
            var seen = Set<Int>()
            for try await (i, answer) in group {
                #expect(answer == "echo \(i)")
                seen.insert(i)
            }
            #expect(seen.count == 50)
        }
    }

    @Test func statusesMapToErrorCodes() async throws {
        let client = try Self.connect()
        defer { client.close() }
        let unknown = await #expect(throws: PodvisorError.self) {
            _ = try await client.call(.notServed, Podvisor_Agent_V1_VersionRequest())
        }
        #expect(unknown?.code == .unsupported)
        #expect((unknown?.cause as? RPCError)?.code == .unimplemented)
        let missing = await #expect(throws: PodvisorError.self) {
            _ = try await client.call(.missing, Podvisor_Agent_V1_VersionRequest())
        }
        #expect(missing?.code == .notFound)
        #expect(missing?.message.contains("no such container") == true)
        // A failed call leaves the connection usable.
        #expect(try await client.version().agentVersion == "0.0.test")
    }

    @Test func timeoutFailsOnlyThatCall() async throws {
        let client = try Self.connect()
        defer { client.close() }
        let error = await #expect(throws: PodvisorError.self) {
            _ = try await client.call(.slow, Podvisor_Agent_V1_VersionRequest(), timeout: .milliseconds(50))
        }
        // A timeout, not the slow answer: the timer fired first (no wall-clock bound: CI machines stall).
        #expect(error?.code == .timeout)
        // While the slow answer is still on its way, and after it arrived (and was dropped).
        #expect(try await client.version().agentVersion == "0.0.test")
        try await Task.sleep(for: .milliseconds(Int(Self.slowMs) + 200))
        #expect(try await client.health().status == .serving)
    }

    /// A zero timeout (StopContainer with timeout 0: SIGKILL at once) expires as soon as the call is made. Its
    /// timer once could fire before the call was registered, and the call then waited for its answer: forever,
    /// for a wait on a process that ignores SIGTERM.
    @Test func zeroTimeoutFailsEveryCallAtOnce() async throws {
        let client = try Self.connect()
        defer { client.close() }
        let codes = await withTaskGroup(of: PodvisorError.Code?.self) { group in
            for _ in 0..<3000 {
                group.addTask {
                    do throws(PodvisorError) {
                        _ = try await client.call(.slow, Podvisor_Agent_V1_VersionRequest(), timeout: .zero)
                        return nil
                    } catch { return error.code }
                }
            }
            return await group.reduce(into: [PodvisorError.Code?]()) { $0.append($1) }
        }
        #expect(codes.count == 3000 && codes.allSatisfy { $0 == .timeout })
    }

    @Test func peerClosingFailsPendingAndLaterCalls() async throws {
        let (clientEnd, peerEnd) = try Self.socketPair()
        let client = AgentClient(fd: clientEnd)
        defer { client.close() }
        // A generous timeout: a call that hangs instead of failing shows up as .timeout, not as a hung test.
        let pending = Task { try await client.version(timeout: .seconds(10)) }
        // The peer takes the request, then goes away without answering.
        let request = try await Self.onThread {
            let peer = TTRPCConnection(stream: FileDescriptorStream(fd: peerEnd))
            defer { peer.stream.close() }
            return try peer.receive()
        }
        #expect(request?.kind == .request)
        let clock = ContinuousClock()
        let start = clock.now
        let pendingError = await #expect(throws: PodvisorError.self) { try await pending.value }
        #expect(pendingError?.code == .unavailable)
        let laterError = await #expect(throws: PodvisorError.self) { try await client.health(timeout: .seconds(10)) }
        #expect(laterError?.code == .unavailable)
        #expect(clock.now - start < .seconds(5))
    }

    /// A peer that stops reading makes the write fail with EPIPE: that must fail the call, not raise SIGPIPE.
    @Test func writingToAPeerThatStoppedReadingFailsTheCall() async throws {
        let (clientEnd, peerEnd) = try Self.socketPair()
        defer { close(peerEnd) }
        let client = AgentClient(fd: clientEnd)
        defer { client.close() }
        shutdown(peerEnd, Int32(SHUT_RD))
        let error = await #expect(throws: PodvisorError.self) { try await client.version(timeout: .seconds(10)) }
        #expect(error?.code == .unavailable)
    }

    /// Once its connection broke, a client must never shut down or write to its old descriptor number:
    /// by then the kernel may have handed that number to an unrelated socket.
    @Test func brokenClientLeavesReusedDescriptorNumbersAlone() async throws {
        let (clientEnd, peerEnd) = try Self.socketPair()
        var client: AgentClient? = AgentClient(fd: clientEnd)
        close(peerEnd)
        let error = await #expect(throws: PodvisorError.self) { try await client!.version(timeout: .seconds(10)) }
        #expect(error?.code == .unavailable)
        // Let the client's reader thread finish whatever it does on a broken connection.
        try await Task.sleep(for: .milliseconds(100))
        let (a, b) = try Self.socketPair()
        defer { close(a); close(b) }
        weak var released = client
        client = nil
        #expect(released == nil)
        // Whether or not `a` got the client's old number, it must still work both ways.
        let byte: [UInt8] = [42]
        #expect(send(a, byte, 1, Int32(MSG_NOSIGNAL)) == 1)
        var got: [UInt8] = [0]
        #expect(recv(b, &got, 1, Int32(MSG_DONTWAIT)) == 1 && got == byte)
    }
}

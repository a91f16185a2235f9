import Glibc
import Foundation
import Testing

@testable import PodvisorAgentProtocol

/// Methods only the test server has.
extension AgentMethod where Request == Podvisor_Agent_V1_VersionResponse, Response == Podvisor_Agent_V1_VersionResponse {
    static var say: Self { Self("Say") }
}

extension AgentMethod where Request == Podvisor_Agent_V1_VersionRequest, Response == Podvisor_Agent_V1_VersionResponse {
    static var fail: Self { Self("Fail") }
}

/// The server over a real socketpair, driven by raw frames as a peer would send them.
@Suite struct TTRPCServerTests {
    struct Peer {
        let connection: TTRPCConnection
        let ended: Task<TTRPCServer.End, Never>
    }

    /// A server whose Say answers `agentVersion = "hello <kernel_version>"` and whose Fail fails.
    static func makeServer() -> TTRPCServer {
        var builder = TTRPCServer.Builder()
        builder.add(.say) { request in
            Podvisor_Agent_V1_VersionResponse.with { $0.agentVersion = "hello \(request.kernelVersion)" }
        }
        builder.add(.fail) { _ in
            throw RPCError(.notFound, "no such thing")
        }
        return builder.build()
    }

    /// Serves one end of a new socketpair with `server`; the other end is the peer's. The server runs on a
    /// thread of its own: the tests block in `receive()`, and with as few cooperative threads as cores a
    /// server waiting for one of them would never run.
    static func start(_ server: TTRPCServer = makeServer()) -> Peer {
        var fds: [Int32] = [0, 0]
        precondition(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0)
        let serverStream = FileDescriptorStream(fd: fds[1])
        let (ends, ended) = AsyncStream.makeStream(of: TTRPCServer.End.self)
        Thread {
            let end = server.serve(TTRPCConnection(stream: serverStream))
            serverStream.close()
            ended.yield(end)
            ended.finish()
        }.start()
        return Peer(
            connection: TTRPCConnection(stream: FileDescriptorStream(fd: fds[0])),
            ended: Task { await ends.first { _ in true }! })
    }

    static func request(_ method: String, stream: UInt32, payload: [UInt8]) throws -> TTRPCFrame {
        let request = Ttrpc_Request.with {
            $0.service = AgentAPI.service
            $0.method = method
            $0.payload = Data(payload)
        }
        return TTRPCFrame(streamID: stream, kind: .request, payload: try request.serializedBytes())
    }

    static func response(_ frame: TTRPCFrame?) throws -> Ttrpc_Response {
        let frame = try #require(frame)
        #expect(frame.kind == .response)
        return try Ttrpc_Response(serializedBytes: frame.payload)
    }

    @Test func answersOnTheRequestsStream() throws {
        let peer = Self.start()
        let body = try Podvisor_Agent_V1_VersionResponse.with { $0.kernelVersion = "world" }.serializedBytes() as [UInt8]
        try peer.connection.send(try Self.request("Say", stream: 7, payload: body))
        let frame = try peer.connection.receive()
        #expect(frame?.streamID == 7)
        let reply = try Podvisor_Agent_V1_VersionResponse(serializedBytes: try Self.response(frame).payload)
        #expect(reply.agentVersion == "hello world")
        peer.connection.stream.shutdown()
    }

    @Test func errorsAndUnknownMethodsBecomeStatuses() async throws {
        let peer = Self.start()
        try peer.connection.send(try Self.request("Fail", stream: 1, payload: []))
        let failed = try Self.response(try peer.connection.receive())
        #expect(failed.status.code == StatusCode.notFound.rawValue)
        #expect(failed.status.message == "no such thing")
        try peer.connection.send(try Self.request("Nope", stream: 3, payload: []))
        let unknown = try Self.response(try peer.connection.receive())
        #expect(unknown.status.code == StatusCode.unimplemented.rawValue)
        // An undecodable payload is the caller's mistake, not the server's.
        try peer.connection.send(try Self.request("Say", stream: 5, payload: [0xFF, 0xFF, 0xFF]))
        let invalid = try Self.response(try peer.connection.receive())
        #expect(invalid.status.code == StatusCode.invalidArgument.rawValue)
        peer.connection.stream.shutdown()
        #expect(await peer.ended.value == .closedByPeer)
    }

    @Test func malformedFrameEndsOnlyThatConnection() async throws {
        let server = Self.makeServer()
        let other = Self.start(server)
        let peer = Self.start(server)
        // A header announcing 16 MiB: the server must give up at once, without reading 16 MiB.
        try peer.connection.stream.write([0x01, 0x00, 0x00, 0x00, 0, 0, 0, 1, 1, 0])
        guard case .malformed(let why) = await peer.ended.value else {
            Issue.record("server kept serving a malformed connection")
            return
        }
        #expect(why.contains("exceeds"))
        // The server closed its end: the peer sees end of stream.
        #expect(try peer.connection.receive() == nil)
        // Another connection of the same server is still served, and so is a new one.
        for connection in [other, Self.start(server)] {
            try connection.connection.send(try Self.request("Nope", stream: 1, payload: []))
            #expect(try Self.response(try connection.connection.receive()).status.code == StatusCode.unimplemented.rawValue)
            connection.connection.stream.shutdown()
        }
    }

    @Test func garbageRequestEnvelopeIsMalformed() async throws {
        let peer = Self.start()
        try peer.connection.send(TTRPCFrame(streamID: 1, kind: .request, payload: [0x0A, 0xFF]))
        guard case .malformed = await peer.ended.value else {
            Issue.record("undecodable envelope was accepted")
            return
        }
    }
}

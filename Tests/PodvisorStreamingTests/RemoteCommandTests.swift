import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket
import Synchronization
import Testing
import TestSupport

@testable import PodvisorStreaming

@Suite struct RemoteCommandProtocolTests {
    @Test func negotiationTakesTheClientsFirstServedVersion() {
        #expect(RemoteCommandProtocol.negotiate(["v5.channel.k8s.io", "v4.channel.k8s.io", "v3.channel.k8s.io"]) == .v4)
        #expect(RemoteCommandProtocol.negotiate(["v2.channel.k8s.io", "v4.channel.k8s.io"]) == .v2)
        #expect(RemoteCommandProtocol.negotiate(["channel.k8s.io"]) == nil)
    }

    @Test func expectedStreams() {
        let tty = RemoteCommandOptions(stdin: true, stdout: true, stderr: true, tty: true)
        #expect(RemoteCommandProtocol.v4.expectedStreams(tty) == [.error, .stdin, .stdout, .resize])
        #expect(RemoteCommandProtocol.v2.expectedStreams(tty) == [.error, .stdin, .stdout])
        let plain = RemoteCommandOptions(stdin: false, stdout: true, stderr: true, tty: false)
        #expect(RemoteCommandProtocol.v4.expectedStreams(plain) == [.error, .stdout, .stderr])
    }

    /// What kubelet's client decodes: a metav1.Status whose ExitCode cause carries the code.
    @Test func v4StatusCarriesTheExitCode() throws {
        let message = RemoteCommandProtocol.v4.statusMessage(.exitCode(3))
        let json = try #require(try JSONSerialization.jsonObject(with: Data(message)) as? [String: Any])
        #expect(json["status"] as? String == "Failure")
        #expect(json["reason"] as? String == "NonZeroExitCode")
        let causes = try #require((json["details"] as? [String: Any])?["causes"] as? [[String: Any]])
        #expect(causes.first?["reason"] as? String == "ExitCode")
        #expect(causes.first?["message"] as? String == "3")
        for result in [RemoteCommandResult.success, .exitCode(3), .failure("no such container")] {
            for proto in RemoteCommandProtocol.allCases {
                #expect(proto.result(from: proto.statusMessage(result)) == result)
            }
        }
        #expect(RemoteCommandProtocol.v3.statusMessage(.success).isEmpty)
    }

    @Test func resizeMessagesMaySplitAnywhere() {
        var decoder = TerminalSizeDecoder()
        #expect(decoder.feed(Array(#"{"Width":80,"Hei"#.utf8)).isEmpty)
        #expect(
            decoder.feed(Array("ght\":24}\n{\"Width\":100,\"Height\":30}\n".utf8)) == [
                TerminalSize(width: 80, height: 24), TerminalSize(width: 100, height: 30),
            ])
    }

    @Test func httpHeadKeepsRepeatedHeaders() throws {
        let text =
            "POST /exec/abc HTTP/1.1\r\nHost: x\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n"
            + "X-Stream-Protocol-Version: v3.channel.k8s.io, v2.channel.k8s.io\r\nConnection: Upgrade\r\n\r\n"
        let head = try #require(HTTPHead(Array(text.utf8)))
        #expect(head.startLine == ["POST", "/exec/abc", "HTTP/1.1"])
        #expect(head.values("x-stream-protocol-version") == ["v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io"])
        #expect(head.has("connection", token: "upgrade"))
        #expect(HTTPHead(Array("garbage\r\n\r\n".utf8)) == nil)
    }
}

/// An exec whose handler answers all of its stdin uppercased on stdout, `stderr` on stderr, and exit code 3.
func registerUppercasingExec(on server: StreamingServer, stderr: String) -> String {
    let options = RemoteCommandOptions(stdin: true, stdout: true, stderr: true, tty: false)
    return server.register(.exec, options: options) { streams in
        var input: [UInt8] = []
        for await bytes in streams.stdin { input += bytes }
        await streams.writeStdout(Array(String(decoding: input, as: UTF8.self).uppercased().utf8))
        await streams.writeStderr(Array(stderr.utf8))
        return .exitCode(3)
    }
}

/// Our server and our client over a real loopback socket: the handshake, every stream role, the status.
@Suite struct StreamingSessionTests {
    @Test func execWithStdinStdoutStderrAndExitCode() async throws {
        let server = try await StreamingServer.start(host: "127.0.0.1", port: 0)
        let url = registerUppercasingExec(on: server, stderr: "to stderr")
        #expect(url.hasPrefix(server.baseURL + "/exec/"))
        let collected = StreamOutput()
        let result = try await RemoteCommandClient.run(url: url, tty: false, io: collected.io(stdin: ["hel", "lo"]))
        #expect(result == .exitCode(3))
        #expect(collected.text == ("HELLO", "to stderr"))

        // Tokens are good for one connection.
        await #expect(throws: RemoteCommandClient.Failure.self) {
            try await RemoteCommandClient.run(url: url, tty: false, io: StreamOutput().io(stdin: nil))
        }
        server.close()
    }

    @Test func terminalSessionGetsResizesAndLargeOutput() async throws {
        let server = try await StreamingServer.start(host: "127.0.0.1", port: 0)
        let options = RemoteCommandOptions(stdin: true, stdout: true, stderr: false, tty: true)
        let big = [UInt8](repeating: UInt8(ascii: "x"), count: 300_000)
        let url = server.register(.attach, options: options) { streams in
            var sizes: [TerminalSize] = []
            for await size in streams.resizes {
                sizes.append(size)
                if sizes.count == 2 { break }
            }
            await streams.writeStdout(Array("\(sizes.map { "\($0.width)x\($0.height)" })\n".utf8))
            await streams.writeStdout(big)
            return .success
        }
        let collected = StreamOutput()
        let sizes = [TerminalSize(width: 80, height: 24), TerminalSize(width: 132, height: 43)]
        let result = try await RemoteCommandClient.run(url: url, tty: true, io: collected.io(stdin: [], resizes: sizes))
        #expect(result == .success)
        let out = collected.text.stdout
        #expect(out.hasPrefix("[\"80x24\", \"132x43\"]\n"))
        #expect(out.utf8.count == "[\"80x24\", \"132x43\"]\n".utf8.count + big.count)
        server.close()
    }

    @Test func handlerSeesTheClientLeave() async throws {
        let server = try await StreamingServer.start(host: "127.0.0.1", port: 0)
        let sawDisconnect = Event()
        let options = RemoteCommandOptions(stdin: true, stdout: true, stderr: true, tty: false)
        let url = server.register(.exec, options: options) { streams in
            await streams.writeStdout(Array("ready\n".utf8))
            await streams.waitForDisconnect()
            sawDisconnect.fire()
            return .success
        }
        // A client whose input never ends, cancelled once output arrived: it closes the connection.
        let (input, _) = AsyncStream.makeStream(of: [UInt8].self)
        let gotOutput = Event()
        let client = Task {
            try await RemoteCommandClient.run(
                url: url, tty: false,
                io: .init(stdin: input, resizes: nil, stdout: { _ in gotOutput.fire() }, stderr: { _ in }))
        }
        #expect(await gotOutput.wait(timeout: .seconds(20)))
        client.cancel()
        _ = await client.result
        #expect(await sawDisconnect.wait(timeout: .seconds(10)))
        server.close()
    }

    @Test func refusalsAreClear() async throws {
        let server = try await StreamingServer.start(host: "127.0.0.1", port: 0)
        let error = await #expect(throws: RemoteCommandClient.Failure.self) {
            try await RemoteCommandClient.run(url: server.baseURL + "/exec/nope", tty: false, io: StreamOutput().io(stdin: nil))
        }
        #expect(error?.description.contains("unknown or expired exec token") == true)
        server.close()
    }
}

@Suite struct WebSocketTests {
    /// The v5 channel protocol as client-go's WebSocket executor speaks it, from NIOWebSocket's client.
    @Test func execOverWebSocket() async throws {
        let server = try await StreamingServer.start(host: "127.0.0.1", port: 0)
        let url = registerUppercasingExec(on: server, stderr: "e")
        let frames = try await exchangeWebSocketFrames(
            url: url, subprotocol: "v5.channel.k8s.io",
            [
                WebSocketFrame(fin: true, opcode: .ping, data: ByteBuffer(string: "p")),
                WebSocketFrame(fin: true, opcode: .binary, data: ByteBuffer(bytes: [0] + Array("hel".utf8))),
                // One message in two frames.
                WebSocketFrame(fin: false, opcode: .binary, data: ByteBuffer(bytes: [0, UInt8(ascii: "l")])),
                WebSocketFrame(fin: true, opcode: .continuation, data: ByteBuffer(string: "o")),
                WebSocketFrame(fin: true, opcode: .binary, data: ByteBuffer(bytes: [255, 0])),
            ])
        #expect(frames.first == WebSocketFrame(fin: true, opcode: .pong, data: ByteBuffer(string: "p")))
        func channel(_ id: UInt8) -> String {
            let messages = frames.filter { $0.opcode == .binary && $0.data.readableBytesView.first == id }
            return String(decoding: messages.flatMap { $0.data.readableBytesView.dropFirst() }, as: UTF8.self)
        }
        #expect(channel(1) == "HELLO")
        #expect(channel(2) == "e")
        #expect(RemoteCommandProtocol.v4.result(from: Array(channel(3).utf8)) == .exitCode(3))
        #expect(frames.last == closeFrame(.normalClosure))
        server.close()
    }

    /// Lengths past 16 bits both ways: stdin in one 70000-byte frame, stdout back in messages of 32 KiB.
    @Test func largeMessages() async throws {
        let server = try await StreamingServer.start(host: "127.0.0.1", port: 0)
        let url = registerUppercasingExec(on: server, stderr: "")
        let frames = try await exchangeWebSocketFrames(
            url: url, subprotocol: "v5.channel.k8s.io",
            [
                WebSocketFrame(fin: true, opcode: .binary, data: ByteBuffer(bytes: [0] + Array(repeating: UInt8(ascii: "x"), count: 70000))),
                WebSocketFrame(fin: true, opcode: .binary, data: ByteBuffer(bytes: [255, 0])),
            ])
        let stdout = frames.filter { $0.opcode == .binary && $0.data.readableBytesView.first == 1 }
        #expect(stdout.map(\.length) == [1 + 32768, 1 + 32768, 1 + 4464])
        #expect(stdout.allSatisfy { $0.data.readableBytesView.dropFirst().allSatisfy { $0 == UInt8(ascii: "X") } })
        server.close()
    }

    /// A client that offers v4 only gets it; a reserved opcode (no extension was negotiated) is answered
    /// with a protocol error close.
    @Test func v4AndReservedOpcode() async throws {
        let server = try await StreamingServer.start(host: "127.0.0.1", port: 0)
        let url = registerUppercasingExec(on: server, stderr: "e")
        let reserved = WebSocketFrame(fin: true, opcode: WebSocketOpcode(encodedWebSocketOpcode: 3)!, data: ByteBuffer())
        let frames = try await exchangeWebSocketFrames(url: url, subprotocol: "v4.channel.k8s.io", [reserved])
        #expect(frames == [closeFrame(.protocolError)])
        server.close()
    }
}

func closeFrame(_ code: WebSocketErrorCode) -> WebSocketFrame {
    WebSocketFrame(fin: true, opcode: .connectionClose, data: ByteBuffer(integer: UInt16(webSocketErrorCode: code)))
}

/// NIOWebSocket's client over NIO's HTTP/1.1 upgrade, with RFC 6455 §1.3's key so that the server's answer
/// is known: sends `frames` masked, then reads what the server sends up to its close frame and answers it.
func exchangeWebSocketFrames(url: String, subprotocol: String, _ frames: [WebSocketFrame]) async throws -> [WebSocketFrame] {
    let port = Int(url.split(separator: ":")[2].prefix { $0.isNumber })!
    let path = String(url.drop { $0 != "/" }.dropFirst(2).drop { $0 != "/" })
    typealias Upgraded = (NIOAsyncChannel<WebSocketFrame, WebSocketFrame>, HTTPHeaders)?
    let upgrade = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(host: "127.0.0.1", port: port) { channel in
        channel.eventLoop.makeCompletedFuture {
            let upgrader = NIOTypedWebSocketClientUpgrader<Upgraded>(requestKey: "dGhlIHNhbXBsZSBub25jZQ==", maxFrameSize: 1 << 16) {
                channel, answer in
                channel.eventLoop.makeCompletedFuture { (try NIOAsyncChannel(wrappingChannelSynchronously: channel), answer.headers) }
            }
            let request = HTTPRequestHead(
                version: .http1_1, method: .GET, uri: path, headers: ["Host": "127.0.0.1:\(port)", "Sec-WebSocket-Protocol": subprotocol])
            return try channel.pipeline.syncOperations.configureUpgradableHTTPClientPipeline(
                configuration: .init(
                    upgradeConfiguration: .init(
                        upgradeRequestHead: request, upgraders: [upgrader], notUpgradingCompletionHandler: { $0.eventLoop.makeSucceededFuture(nil) }))
            )
        }
    }
    let (channel, answer) = try #require(try await upgrade.get())
    #expect(answer["sec-websocket-accept"] == ["s3pPLMBiTxaQ9kYGzzhZRbK+xOo="])
    #expect(answer["sec-websocket-protocol"] == [subprotocol])
    return try await channel.executeThenClose { inbound, outbound in
        for var frame in frames {
            frame.maskKey = .random()
            try await outbound.write(frame)
        }
        var received: [WebSocketFrame] = []
        for try await frame in inbound {
            received.append(frame)
            if frame.opcode == .connectionClose { break }
        }
        var close = closeFrame(.normalClosure)
        close.maskKey = .random()
        // After a protocol error the server does not wait for the answer (RFC 6455 §7.1.7).
        try? await outbound.write(close)
        return received
    }
}

@Suite struct PortForwardTests {
    /// kubectl port-forward's protocol between our client and server: a stream pair per connection.
    @Test func connectionsAreRelayedAndFailuresReported() async throws {
        let server = try await StreamingServer.start(host: "127.0.0.1", port: 0)
        let url = server.registerPortForward { port, stream in
            guard port == 80 else { return "nothing listens on \(port)" }
            var received: [UInt8] = []
            for await bytes in stream.received { received += bytes }
            await stream.send(Array(String(decoding: received, as: UTF8.self).uppercased().utf8))
            return nil
        }
        #expect(url.hasPrefix(server.baseURL + "/portforward/"))
        let answers = try await PortForwardClient.withSession(url: url) { client -> [String?] in
            let answer = StreamOutput()
            let io = answer.io(stdin: nil)
            let first = try await client.forward(
                port: 80,
                send: AsyncStream { c in
                    c.yield(Array("hello ".utf8))
                    c.yield(Array("pod".utf8))
                    c.finish()
                }, receive: { io.stdout($0) })
            let refused = try await client.forward(port: 9, send: AsyncStream { $0.finish() }, receive: { _ in })
            return [first, answer.text.stdout, refused]
        }
        #expect(answers == [nil, "HELLO POD", "nothing listens on 9"])
        server.close()
    }
}

import Foundation
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
    @Test func framesRoundTripMaskedOrNot() throws {
        for size in [0, 5, 125, 126, 65535, 65536, 70000] {
            let frame = WebSocketFrame(opcode: .binary, payload: (0..<size).map { UInt8($0 % 251) })
            for mask in [nil, [UInt8(1), 2, 3, 4]] {
                let decoder = WebSocketFrameDecoder()
                let bytes = frame.encoded(mask: mask)
                decoder.feed(Array(bytes.dropLast()))
                #expect(try decoder.nextFrame() == nil)
                decoder.feed([bytes.last!])
                #expect(try decoder.nextFrame() == frame)
            }
        }
        let bad = WebSocketFrameDecoder()
        bad.feed([0x83, 0x00])
        #expect(throws: WebSocketError.self) { try bad.nextFrame() }
    }

    /// RFC 6455 §1.3's example.
    @Test func handshakeAnswer() {
        #expect(WebSocketFrame.accept(key: "dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    }

    /// The v5 channel protocol as client-go's WebSocket executor speaks it, from a blocking socket.
    @Test func execOverWebSocket() async throws {
        let server = try await StreamingServer.start(host: "127.0.0.1", port: 0)
        let url = registerUppercasingExec(on: server, stderr: "e")
        let port = UInt16(url.split(separator: ":")[2].prefix { $0.isNumber })!
        let path = String(url.drop { $0 != "/" }.dropFirst(2).drop { $0 != "/" })
        let frames = try await withCheckedThrowingContinuation { (done: CheckedContinuation<[WebSocketFrame], any Error>) in
            Thread.detachNewThread {
                done.resume(
                    with: Result {
                        let socket = try RawWebSocket(port: port, path: path, subprotocol: "v5.channel.k8s.io")
                        socket.send(WebSocketFrame(opcode: .ping, payload: Array("p".utf8)))
                        socket.send(WebSocketFrame(opcode: .binary, payload: [0] + Array("hel".utf8)))
                        // One message in two frames.
                        socket.send(WebSocketFrame(fin: false, opcode: .binary, payload: [0, UInt8(ascii: "l")]))
                        socket.send(WebSocketFrame(opcode: .continuation, payload: Array("o".utf8)))
                        socket.send(WebSocketFrame(opcode: .binary, payload: [255, 0]))
                        var frames: [WebSocketFrame] = []
                        while let frame = try socket.next() {
                            frames.append(frame)
                            if frame.opcode == .close { break }
                        }
                        socket.send(.close())
                        return frames
                    })
            }
        }
        #expect(frames.first == WebSocketFrame(opcode: .pong, payload: Array("p".utf8)))
        func channel(_ id: UInt8) -> String {
            String(decoding: frames.filter { $0.opcode == .binary && $0.payload.first == id }.flatMap { $0.payload.dropFirst() }, as: UTF8.self)
        }
        #expect(channel(1) == "HELLO")
        #expect(channel(2) == "e")
        #expect(RemoteCommandProtocol.v4.result(from: Array(channel(3).utf8)) == .exitCode(3))
        #expect(frames.last == .close())
        server.close()
    }
}

/// A minimal WebSocket client over a blocking socket, for the test above: handshake, masked frames out.
final class RawWebSocket {
    private let fd: Int32
    private let decoder = WebSocketFrameDecoder()

    init(port: UInt16, path: String, subprotocol: String) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw WebSocketError.protocolError("connect: errno \(errno)") }
        write(
            Array(
                ("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                    + "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: \(subprotocol)\r\n\r\n")
                    .utf8))
        var head: [UInt8] = []
        while head.firstRange(of: Array("\r\n\r\n".utf8)) == nil {
            let bytes = read()
            guard !bytes.isEmpty else { throw WebSocketError.protocolError("no handshake answer") }
            head += bytes
        }
        let end = head.firstRange(of: Array("\r\n\r\n".utf8))!.upperBound
        let answer = String(decoding: head[..<end], as: UTF8.self)
        guard answer.hasPrefix("HTTP/1.1 101"), answer.contains("sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
            answer.contains("sec-websocket-protocol: \(subprotocol)")
        else { throw WebSocketError.protocolError("handshake answered \(answer)") }
        decoder.feed(Array(head[end...]))
    }

    deinit { close(fd) }

    func send(_ frame: WebSocketFrame) { write(frame.encoded(mask: [7, 1, 3, 9])) }

    func next() throws -> WebSocketFrame? {
        while true {
            if let frame = try decoder.nextFrame() { return frame }
            let bytes = read()
            if bytes.isEmpty { return nil }
            decoder.feed(bytes)
        }
    }

    private func write(_ bytes: [UInt8]) {
        _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    private func read() -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: 65536)
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        return n > 0 ? Array(buffer[..<n]) : []
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

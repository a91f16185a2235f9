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
        #expect(decoder.feed(Array("ght\":24}\n{\"Width\":100,\"Height\":30}\n".utf8)) == [
            TerminalSize(width: 80, height: 24), TerminalSize(width: 100, height: 30),
        ])
    }

    @Test func httpHeadKeepsRepeatedHeaders() throws {
        let text = "POST /exec/abc HTTP/1.1\r\nHost: x\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n"
            + "X-Stream-Protocol-Version: v3.channel.k8s.io, v2.channel.k8s.io\r\nConnection: Upgrade\r\n\r\n"
        let head = try #require(HTTPHead(Array(text.utf8)))
        #expect(head.startLine == ["POST", "/exec/abc", "HTTP/1.1"])
        #expect(head.values("x-stream-protocol-version") == ["v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io"])
        #expect(head.has("connection", token: "upgrade"))
        #expect(HTTPHead(Array("garbage\r\n\r\n".utf8)) == nil)
    }
}

/// Our server and our client over a real loopback socket: the handshake, every stream role, the status.
@Suite struct StreamingSessionTests {
    @Test func execWithStdinStdoutStderrAndExitCode() async throws {
        let server = try await StreamingServer.start(host: "127.0.0.1", port: 0)
        let options = RemoteCommandOptions(stdin: true, stdout: true, stderr: true, tty: false)
        let url = server.register(.exec, options: options) { streams in
            var input: [UInt8] = []
            for await bytes in streams.stdin { input += bytes }
            await streams.writeStdout(Array(String(decoding: input, as: UTF8.self).uppercased().utf8))
            await streams.writeStderr(Array("to stderr".utf8))
            return .exitCode(3)
        }
        #expect(url.hasPrefix(server.baseURL + "/exec/"))
        let collected = StreamOutput()
        let result = try await RemoteCommandClient.run(url: url, tty: false, io: collected.io(stdin: ["hel", "lo"]))
        #expect(result == .exitCode(3))
        #expect(collected.text == ("HELLO", "to stderr"))

        // Tokens are good for one connection.
        await #expect(throws: RemoteCommandClient.Failure.self) {
            try await RemoteCommandClient.run(url: url, tty: false, io: StreamOutput().io(stdin: nil))
        }
        await server.close()
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
        await server.close()
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
        await server.close()
    }

    @Test func refusalsAreClear() async throws {
        let server = try await StreamingServer.start(host: "127.0.0.1", port: 0)
        let error = await #expect(throws: RemoteCommandClient.Failure.self) {
            try await RemoteCommandClient.run(url: server.baseURL + "/exec/nope", tty: false, io: StreamOutput().io(stdin: nil))
        }
        #expect(error?.description.contains("unknown or expired exec token") == true)
        await server.close()
    }
}

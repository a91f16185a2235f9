import Foundation
import NIOCore
import NIOPosix

/// The client side of the remote command protocol, as kubectl and crictl speak it: `podvisor exec -it`
/// and `run -i` connect to the URL that CRI Exec or Attach answered with.
public enum RemoteCommandClient {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// Where the client's bytes come from and go to.
    public struct IO: Sendable {
        public var stdin: AsyncStream<[UInt8]>?
        public var resizes: AsyncStream<TerminalSize>?
        public var stdout: @Sendable ([UInt8]) -> Void
        public var stderr: @Sendable ([UInt8]) -> Void

        public init(
            stdin: AsyncStream<[UInt8]>?, resizes: AsyncStream<TerminalSize>?, stdout: @escaping @Sendable ([UInt8]) -> Void,
            stderr: @escaping @Sendable ([UInt8]) -> Void
        ) {
            self.stdin = stdin
            self.resizes = resizes
            self.stdout = stdout
            self.stderr = stderr
        }
    }

    /// Runs the session at `url` until the remote side reports its result.
    public static func run(url: String, tty: Bool, stderr wantsStderr: Bool = true, io: IO) async throws -> RemoteCommandResult {
        try await withSPDYSession(url: url, protocols: RemoteCommandProtocol.allCases.map(\.rawValue)) { spdy, negotiated in
            guard let proto = RemoteCommandProtocol(rawValue: negotiated) else {
                throw Failure(description: "the streaming server chose an unknown protocol \(negotiated)")
            }
            func open(_ type: StreamType) async throws -> SPDYConnection.Stream {
                try await spdy.open([StreamType.header: [type.rawValue]])
            }
            let error = try await open(.error)
            let stdin = io.stdin == nil ? nil : try await open(.stdin)
            let stdout = try await open(.stdout)
            let stderr = tty || !wantsStderr ? nil : try await open(.stderr)
            let resize = tty ? try await open(.resize) : nil

            let pumps = Task {
                await withTaskGroup(of: Void.self) { pumps in
                    if let stdin, let input = io.stdin {
                        pumps.addTask {
                            for await bytes in input { try? await spdy.send(bytes, on: stdin.id) }
                            await spdy.finish(stdin.id)
                        }
                    }
                    if let resize, let sizes = io.resizes {
                        pumps.addTask {
                            for await size in sizes {
                                guard let json = try? JSONEncoder().encode(size) else { continue }
                                try? await spdy.send(Array(json) + [UInt8(ascii: "\n")], on: resize.id)
                            }
                        }
                    }
                }
            }
            defer { pumps.cancel() }
            async let out: Void = { for await bytes in stdout.data { io.stdout(bytes) } }()
            async let err: Void = { if let stderr { for await bytes in stderr.data { io.stderr(bytes) } } }()
            var status: [UInt8] = []
            for await bytes in error.data { status += bytes }
            _ = await (out, err)
            return proto.result(from: status)
        }
    }

    /// Connects to a streaming URL, upgrades to SPDY/3.1 offering `protocols`, and runs `body` with the
    /// session and the protocol the server chose; the connection closes when `body` returns.
    static func withSPDYSession<T: Sendable>(
        url: String, protocols: [String], _ body: @Sendable (SPDYConnection, String) async throws -> T
    ) async throws -> T {
        guard let parsed = URL(string: url), parsed.scheme == "http", let host = parsed.host else {
            throw Failure(description: "streaming URL \(url) is not an http:// URL")
        }
        let port = parsed.port ?? 80
        let connection = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        return try await connection.executeThenClose { inbound, outbound in
            let request = HTTPHead(
                startLine: ["POST", parsed.path.isEmpty ? "/" : parsed.path, "HTTP/1.1"],
                headers: [
                    "host": ["\(host):\(port)"], "connection": ["Upgrade"], "upgrade": ["SPDY/3.1"], "content-length": ["0"],
                    RemoteCommandProtocol.header: protocols,
                ])
            try await outbound.write(ByteBuffer(bytes: request.serialized))
            let reader = ByteReader(inbound)
            guard let bytes = try await reader.readHead(), let head = HTTPHead(bytes), head.startLine.count >= 2 else {
                throw Failure(description: "the streaming server at \(host):\(port) did not answer with HTTP")
            }
            guard head.startLine[1] == "101", let negotiated = head.values(RemoteCommandProtocol.header).first else {
                var body = reader.takeBuffered()
                while body.count < 64 * 1024, let more = try await reader.next() { body += more }
                let message = String(decoding: body, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                throw Failure(description: "streaming request refused (\(head.startLine.dropFirst().joined(separator: " "))): \(message)")
            }
            let spdy = SPDYConnection(role: .client)
            return try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await spdy.runWriter(outbound) }
                group.addTask { await spdy.run(reader) }
                defer {
                    // Ends the reader (and with it every stream) and the writer.
                    spdy.finishWriting()
                    connection.channel.close(promise: nil)
                }
                return try await body(spdy, negotiated)
            }
        }
    }
}

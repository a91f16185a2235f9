import Foundation
import NIOCore
import NIOHTTP1
import Synchronization

/// The streaming server behind CRI Exec, Attach and PortForward. The CRI call only validates and registers
/// the request under a one-time token and answers with a URL; kubelet (or crictl, critest, `podvisor exec
/// -it`) then connects to that URL, upgrades to SPDY/3.1 (or WebSocket) and runs the remote command or port
/// forwarding protocol. Like containerd's, it listens on loopback by default: kubelet on the same node is
/// its only intended client.
public final class StreamingServer: Sendable {
    public enum Kind: String, Sendable {
        case exec, attach, portforward
    }

    /// Runs the command once the client's streams are there; its result is reported on the error stream.
    public typealias Handler = @Sendable (RemoteCommandStreams) async -> RemoteCommandResult

    private enum Work {
        case command(RemoteCommandOptions, Handler)
        case portForward(PortForwardHandler)
    }

    private struct Pending {
        let kind: Kind
        let work: Work
        let expires: ContinuousClock.Instant
    }

    /// kubelet connects right after the CRI answer; containerd's tokens live one minute too.
    static let tokenLifetime: Duration = .seconds(60)
    /// How long a client may take to open the streams it asked for (kubelet's value).
    static let streamCreationTimeout: Duration = .seconds(30)
    /// How long a client gets to read the status and close the connection before it is closed under it.
    static let lingerTimeout: Duration = .seconds(5)

    /// http://host:port, what URLs start with.
    public let baseURL: String
    private let listener: TCPListener
    private let pending = Mutex<[String: Pending]>([:])
    /// Exec and attach sessions whose handler runs.
    private let sessions = Mutex(0)

    /// Binds `host:port` (port 0: any free port) and starts accepting connections.
    public static func start(host: String, port: Int) async throws -> StreamingServer {
        let server = StreamingServer(listener: try await TCPListener.bind(host: host, port: port), host: host)
        Task { await server.listener.serve { await server.serve($0) } }
        return server
    }

    private init(listener: TCPListener, host: String) {
        self.listener = listener
        baseURL = "http://\(host.contains(":") ? "[\(host)]" : host):\(listener.port)"
    }

    /// Registers an exec or attach request and returns the URL its client connects to.
    public func register(_ kind: Kind, options: RemoteCommandOptions, handler: @escaping Handler) -> String {
        register(
            kind,
            .command(options) { [self] streams in
                sessions.withLock { $0 += 1 }
                defer { sessions.withLock { $0 -= 1 } }
                return await handler(streams)
            })
    }

    /// Returns once no exec or attach session runs, or after `limit`. A process whose runtime ends with it (a
    /// standalone `podvisor exec --timeout`) waits here, so that a command its client left is killed before
    /// the process exits, not after.
    public func waitForSessions(atMost limit: Duration) async {
        let deadline = ContinuousClock.now + limit
        while sessions.withLock({ $0 }) > 0, ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(10)) }
    }

    /// Registers a port forwarding request (every connection the client forwards runs `handler`).
    public func registerPortForward(_ handler: @escaping PortForwardHandler) -> String {
        register(.portforward, .portForward(handler))
    }

    private func register(_ kind: Kind, _ work: Work) -> String {
        let token = Self.newToken()
        let now = ContinuousClock.now
        pending.withLock { pending in
            pending = pending.filter { $0.value.expires > now }
            pending[token] = Pending(kind: kind, work: work, expires: now + Self.tokenLifetime)
        }
        return "\(baseURL)/\(kind.rawValue)/\(token)"
    }

    /// Stops accepting connections (sessions under way go on).
    public func close() { listener.close() }

    private static func newToken() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<4).map { _ in String(generator.next() as UInt64, radix: 16).leftPadded(to: 16) }.joined()
    }

    private func take(_ token: String, _ kind: Kind) -> Pending? {
        pending.withLock { pending in
            guard let found = pending[token], found.kind == kind else { return nil }
            pending[token] = nil
            return found.expires > ContinuousClock.now ? found : nil
        }
    }

    private func serve(_ connection: TCPListener.Connection) async {
        try? await connection.executeThenClose { inbound, outbound in
            let reader = ByteReader(inbound)
            @Sendable func refuse(_ status: Int, _ reason: String, _ body: String, headers: [String: [String]] = [:]) async throws {
                try await outbound.write(ByteBuffer(bytes: HTTPHead.response(status, reason, body: body, headers: headers)))
            }
            guard let bytes = try await reader.readHead(), let head = HTTPHead(bytes), head.startLine.count == 3 else {
                return try await refuse(400, "Bad Request", "malformed HTTP request")
            }
            let path = head.startLine[1].split(separator: "?").first.map(String.init) ?? ""
            let parts = path.split(separator: "/").map(String.init)
            guard ["GET", "POST"].contains(head.startLine[0]), parts.count == 2, let kind = Kind(rawValue: parts[0]) else {
                return try await refuse(404, "Not Found", "no such streaming endpoint: \(head.startLine[0]) \(path)")
            }
            guard head.has("connection", token: "upgrade") else {
                return try await refuse(400, "Bad Request", "streaming needs an upgrade to SPDY/3.1 or websocket")
            }
            let token = parts[1]
            if head.has("upgrade", token: "websocket") && kind != .portforward {
                return try await serveWebSocket(head, kind, token, reader, outbound, connection, refuse: refuse)
            }
            guard head.has("upgrade", token: "SPDY/3.1") else {
                return try await refuse(
                    400, "Bad Request",
                    "podvisor streams over SPDY/3.1 (exec and attach also over websocket); this request asked for \(head.values("upgrade"))")
            }
            if kind == .portforward {
                guard head.values(RemoteCommandProtocol.header).contains(PortForward.protocolName) else {
                    return try await refuse(403, "Forbidden", "port forwarding speaks \(PortForward.protocolName)")
                }
                guard let request = take(token, kind), case .portForward(let handler) = request.work else {
                    return try await refuse(404, "Not Found", Self.unknownToken(kind))
                }
                try await outbound.write(
                    ByteBuffer(bytes: Self.switching(to: "SPDY/3.1", [RemoteCommandProtocol.header: [PortForward.protocolName]])))
                let spdy = SPDYConnection(role: .server)
                return await Self.upgraded(
                    connection, writer: { await spdy.runWriter(outbound) }, reader: { await spdy.run(reader) },
                    session: { _ in await PortForward.serve(spdy, handler) }, end: { spdy.finishWriting() })
            }
            guard let proto = RemoteCommandProtocol.negotiate(head.values(RemoteCommandProtocol.header)) else {
                let served = RemoteCommandProtocol.allCases.map(\.rawValue)
                return try await refuse(
                    403, "Forbidden",
                    "unable to negotiate a stream protocol: the client offers \(head.values(RemoteCommandProtocol.header)), podvisor serves \(served)",
                    headers: [RemoteCommandProtocol.acceptedHeader: served])
            }
            guard let request = take(token, kind), case .command(let options, let handler) = request.work else {
                return try await refuse(404, "Not Found", Self.unknownToken(kind))
            }
            try await outbound.write(ByteBuffer(bytes: Self.switching(to: "SPDY/3.1", [RemoteCommandProtocol.header: [proto.rawValue]])))
            let spdy = SPDYConnection(role: .server)
            await Self.upgraded(
                connection, writer: { await spdy.runWriter(outbound) }, reader: { await spdy.run(reader) },
                session: { disconnected in await Self.runSPDYSession(spdy, proto, options, handler, disconnected) },
                end: { spdy.finishWriting() })
        }
    }

    private static func unknownToken(_ kind: Kind) -> String {
        "unknown or expired \(kind.rawValue) token (tokens are valid once, for 60 s)"
    }

    private static func switching(to upgrade: String, _ headers: [String: [String]]) -> [UInt8] {
        HTTPHead(
            startLine: ["HTTP/1.1", "101", "Switching Protocols"],
            headers: headers.merging(["connection": ["Upgrade"], "upgrade": [upgrade]]) { $1 }
        ).serialized
    }

    /// The session over an upgraded connection, with the transport's writer and reader beside it; then the
    /// client gets a moment to read the status and close before the connection is closed under it.
    private static func upgraded(
        _ connection: TCPListener.Connection, writer: @escaping @Sendable () async -> Void,
        reader: @escaping @Sendable () async -> Void, session: (Event) async -> Void, end: () -> Void
    ) async {
        let disconnected = Event()
        await withDiscardingTaskGroup { group in
            group.addTask { await writer() }
            group.addTask {
                await reader()
                disconnected.fire()
            }
            await session(disconnected)
            end()
            if await !disconnected.wait(timeout: lingerTimeout) {
                connection.channel.close(promise: nil)
            }
        }
    }

    private static func runSPDYSession(
        _ spdy: SPDYConnection, _ proto: RemoteCommandProtocol, _ options: RemoteCommandOptions, _ handler: Handler, _ disconnected: Event
    ) async {
        let expected = proto.expectedStreams(options)
        let streams = await withTaskGroup(of: [StreamType: SPDYConnection.Stream]?.self) { group in
            group.addTask {
                var streams: [StreamType: SPDYConnection.Stream] = [:]
                for await stream in spdy.incoming {
                    guard let type = stream.headers[StreamType.header]?.first.flatMap(StreamType.init(rawValue:)) else { continue }
                    streams[type] = stream
                    if expected.isSubset(of: Set(streams.keys)) { return streams }
                }
                return nil
            }
            group.addTask {
                try? await Task.sleep(for: streamCreationTimeout)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
        guard let streams else { return }
        let result = await handler(
            RemoteCommandStreams(
                options: options, stdin: streams[.stdin]?.data, resize: streams[.resize]?.data,
                output: { type, bytes in
                    guard let id = streams[type]?.id else { return }
                    try? await spdy.send(bytes, on: id)
                },
                disconnected: disconnected))
        for type in [StreamType.stdout, .stderr, .stdin, .resize] {
            if let stream = streams[type] { await spdy.finish(stream.id) }
        }
        if let error = streams[.error] {
            try? await spdy.send(proto.statusMessage(result), on: error.id)
            await spdy.finish(error.id)
        }
    }

    /// WebSocket with the v5 or v4 channel protocol: `crictl --transport websocket`, client-go's WebSocket
    /// executor. Both report the status as v4 does. NIOWebSocket's upgrader checks the handshake, computes
    /// its answer and adds the frame handlers behind the handler of the connection's bytes. A client sends
    /// nothing before it has the 101 (RFC 6455 §4.1), so with the handlers added first they see all it sends.
    private func serveWebSocket(
        _ head: HTTPHead, _ kind: Kind, _ token: String, _ reader: ByteReader, _ outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>,
        _ connection: TCPListener.Connection,
        refuse: (Int, String, String, [String: [String]]) async throws -> Void
    ) async throws {
        let upgrader = WebSocketChannels.upgrader
        let upgradeRequest = HTTPRequestHead(
            version: .http1_1, method: HTTPMethod(rawValue: head.startLine[0]), uri: head.startLine[1],
            headers: HTTPHeaders(head.headers.flatMap { name, values in values.map { (name, $0) } }))
        guard
            let answer = try? await upgrader.buildUpgradeResponse(
                channel: connection.channel, upgradeRequest: upgradeRequest, initialResponseHeaders: [:]
            )
            .get()
        else {
            return try await refuse(400, "Bad Request", "a WebSocket upgrade needs Sec-WebSocket-Version 13 and a Sec-WebSocket-Key", [:])
        }
        let served = ["v5.channel.k8s.io", "v4.channel.k8s.io"]
        guard let subprotocol = head.values("sec-websocket-protocol").first(where: served.contains) else {
            return try await refuse(
                403, "Forbidden",
                "unable to negotiate a stream protocol: the client offers \(head.values("sec-websocket-protocol")), podvisor serves \(served)",
                [:])
        }
        guard let request = take(token, kind), case .command(let options, let handler) = request.work else {
            return try await refuse(404, "Not Found", Self.unknownToken(kind), [:])
        }
        let frames = try await connection.channel.eventLoop.flatSubmit {
            upgrader.upgrade(channel: connection.channel, upgradeRequest: upgradeRequest)
        }.get()
        try await outbound.write(
            ByteBuffer(
                bytes: Self.switching(
                    to: "websocket", ["sec-websocket-accept": answer["sec-websocket-accept"], "sec-websocket-protocol": [subprotocol]])))

        let channels = WebSocketChannels()
        await withDiscardingTaskGroup { group in
            // The handler of the connection's bytes sees every read before the frame handlers do: drained, it
            // keeps reading until the channel closes.
            group.addTask { await reader.drain() }
            try? await frames.executeThenClose { inbound, outbound in
                await Self.upgraded(
                    connection, writer: { await channels.runWriter(outbound) }, reader: { await channels.run(inbound) },
                    session: { disconnected in
                        let result = await handler(
                            RemoteCommandStreams(
                                options: options, stdin: channels.stdin, resize: channels.resize,
                                output: { type, bytes in try? await channels.send(bytes, on: type) }, disconnected: disconnected))
                        try? await channels.send(RemoteCommandProtocol.v4.statusMessage(result), on: .error)
                    },
                    end: { channels.close() })
            }
        }
    }
}

extension String {
    func leftPadded(to length: Int) -> String {
        count >= length ? self : String(repeating: "0", count: length - count) + self
    }
}

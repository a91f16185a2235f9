import NIOCore
import NIOPosix
import Synchronization

/// A TCP listener whose connections are each served on a task of their own until it is closed: the
/// streaming server, pods' host ports, `podvisor port-forward`.
public struct TCPListener: Sendable {
    public typealias Connection = NIOAsyncChannel<ByteBuffer, ByteBuffer>
    private let channel: NIOAsyncChannel<Connection, Never>

    /// Binds `host:port` (port 0: any free port). `halfClosure`: a peer's FIN ends only its direction and
    /// ours can end on its own (TCPStream.finish), as a relay needs.
    public static func bind(host: String, port: Int, halfClosure: Bool = false) async throws -> TCPListener {
        TCPListener(
            channel: try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(ChannelOptions.allowRemoteHalfClosure, value: halfClosure)
                .bind(host: host, port: port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try Connection(wrappingChannelSynchronously: channel, configuration: .init(isOutboundHalfClosureEnabled: halfClosure))
                    }
                })
    }

    /// The port it listens on.
    public var port: Int { channel.channel.localAddress?.port ?? 0 }

    /// Accepts connections until `close`, each handled on a task of its own.
    public func serve(_ handle: @escaping @Sendable (Connection) async -> Void) async {
        try? await channel.executeThenClose { inbound in
            try await withThrowingDiscardingTaskGroup { group in
                for try await connection in inbound { group.addTask { await handle(connection) } }
            }
        }
    }

    /// Stops accepting (connections under way go on).
    public func close() { channel.channel.close(promise: nil) }
}

/// One TCP connection as a byte stream in each direction, for relays.
public final class TCPStream: Sendable {
    /// What the peer sends, ending at its FIN or a failure.
    public let received: AsyncStream<[UInt8]>
    private let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    private let failed = Mutex(false)

    private init(_ inbound: NIOAsyncChannelInboundStream<ByteBuffer>, _ outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>) {
        self.outbound = outbound
        let (received, sink) = AsyncStream.makeStream(of: [UInt8].self)
        self.received = received
        Task { [weak self] in
            do { for try await buffer in inbound { sink.yield(Array(buffer.readableBytesView)) } } catch { self?.failed.withLock { $0 = true } }
            sink.finish()
        }
    }

    /// Runs `body` with the connection's streams; the connection closes when it returns.
    public static func with(_ connection: TCPListener.Connection, _ body: (TCPStream) async -> Void) async {
        try? await connection.executeThenClose { inbound, outbound in await body(TCPStream(inbound, outbound)) }
    }

    /// The connection failed (reset) rather than finished (FIN).
    public var wasReset: Bool { failed.withLock { $0 } }

    /// Sends to the peer; returns once written; dropped once the connection is gone.
    public func send(_ bytes: [UInt8]) async { try? await outbound.write(ByteBuffer(bytes: bytes)) }

    /// Ends our direction (a FIN, where the listener allows half-closure).
    public func finish() async { outbound.finish() }
}

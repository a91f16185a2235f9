import NIOCore
import NIOPosix
import PodvisorCRI
import PodvisorCore
import Synchronization

/// A pod's hostPort mappings, which containerd's pods get from CNI's portmap plugin: podvisord listens on the
/// host port (on host_ip, else every address) and relays each connection to the container port on the pod
/// VM's loopback through the agent, so they work without a pod network. TCP only; the pod sees the
/// connections coming from 127.0.0.1.
final class HostPorts: Sendable {
    typealias Listener = NIOAsyncChannel<NIOAsyncChannel<ByteBuffer, ByteBuffer>, Never>
    private let listeners = Mutex<[String: [Listener]]>([:])

    /// Binds the sandbox's TCP mappings that name a host port, all or none, and serves them until `close`.
    func open(
        _ sandboxID: String, _ mappings: [Runtime_V1_PortMapping], relay: @escaping @Sendable (UInt16, HostConnection) async -> Void
    ) async throws(PodvisorError) {
        var bound: [Listener] = []
        for mapping in mappings where mapping.hostPort > 0 && mapping.protocol == .tcp {
            let host = mapping.hostIp.isEmpty ? "0.0.0.0" : mapping.hostIp
            do {
                bound.append(try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                    .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
                    .childChannelOption(ChannelOptions.allowRemoteHalfClosure, value: true)
                    .bind(host: host, port: Int(mapping.hostPort)) { channel in
                        channel.eventLoop.makeCompletedFuture {
                            try NIOAsyncChannel<ByteBuffer, ByteBuffer>(
                                wrappingChannelSynchronously: channel, configuration: .init(isOutboundHalfClosureEnabled: true))
                        }
                    })
            } catch {
                for listener in bound { listener.channel.close(promise: nil) }
                throw PodvisorError(.failedPrecondition, "host port \(host):\(mapping.hostPort) cannot be bound: \(error)")
            }
            let port = UInt16(mapping.containerPort)
            let listener = bound[bound.count - 1]
            Task {
                try? await listener.executeThenClose { inbound in
                    try await withThrowingDiscardingTaskGroup { group in
                        for try await connection in inbound {
                            group.addTask {
                                try? await connection.executeThenClose { inbound, outbound in
                                    await relay(port, HostConnection(inbound, outbound))
                                }
                            }
                        }
                    }
                }
            }
        }
        listeners.withLock { $0[sandboxID, default: []] += bound }
    }

    /// Stops listening (connections under way end when the pod VM goes).
    func close(_ sandboxID: String) {
        for listener in listeners.withLock({ $0.removeValue(forKey: sandboxID) }) ?? [] { listener.channel.close(promise: nil) }
    }
}

/// One accepted host connection as a relay peer.
final class HostConnection: RelayPeer {
    let received: AsyncStream<[UInt8]>
    private let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    private let failed = Mutex(false)

    init(_ inbound: NIOAsyncChannelInboundStream<ByteBuffer>, _ outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>) {
        self.outbound = outbound
        let (received, sink) = AsyncStream.makeStream(of: [UInt8].self)
        self.received = received
        Task { [weak self] in
            do { for try await buffer in inbound { sink.yield(Array(buffer.readableBytesView)) } } catch { self?.failed.withLock { $0 = true } }
            sink.finish()
        }
    }

    /// A connection that failed (reset) rather than finished (FIN).
    var wasReset: Bool { failed.withLock { $0 } }

    func send(_ bytes: [UInt8]) async { try? await outbound.write(ByteBuffer(bytes: bytes)) }

    func finish() async { outbound.finish() }
}

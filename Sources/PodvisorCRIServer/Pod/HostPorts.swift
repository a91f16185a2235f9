import PodvisorCRI
import PodvisorCore
import PodvisorStreaming
import Synchronization

/// A pod's hostPort mappings where the pod network cannot serve them (its CNI configuration has no portmap,
/// i.e. no portMappings capability): podvisord listens on the host port (on host_ip, else every address)
/// and relays each connection to the container port on the pod VM's loopback through the agent. TCP only;
/// the pod sees the connections coming from 127.0.0.1.
final class HostPorts: Sendable {
    private let listeners = Mutex<[String: [TCPListener]]>([:])

    /// Binds the sandbox's TCP mappings that name a host port, all or none, and serves them until `close`.
    func open(
        _ sandboxID: String, _ mappings: [Runtime_V1_PortMapping], relay: @escaping @Sendable (UInt16, TCPStream) async -> Void
    ) async throws(PodvisorError) {
        var bound: [TCPListener] = []
        for mapping in mappings where mapping.hostPort > 0 && mapping.protocol == .tcp {
            let host = mapping.hostIp.isEmpty ? "0.0.0.0" : mapping.hostIp
            let listener: TCPListener
            do { listener = try await TCPListener.bind(host: host, port: Int(mapping.hostPort), halfClosure: true) } catch {
                for listener in bound { listener.close() }
                throw PodvisorError(.failedPrecondition, "host port \(host):\(mapping.hostPort) cannot be bound: \(error)")
            }
            bound.append(listener)
            let port = UInt16(mapping.containerPort)
            Task { await listener.serve { connection in await TCPStream.with(connection) { await relay(port, $0) } } }
        }
        listeners.withLock { $0[sandboxID, default: []] += bound }
    }

    /// Stops listening (connections under way end when the pod VM goes).
    func close(_ sandboxID: String) {
        for listener in listeners.withLock({ $0.removeValue(forKey: sandboxID) }) ?? [] { listener.close() }
    }
}

extension TCPStream: RelayPeer {}

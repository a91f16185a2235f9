import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import PodvisorCRI
import PodvisorCore
import Synchronization

/// Pods that share the host's namespaces (hostNetwork, hostPID, hostIPC — kube-proxy, CNI DaemonSets, node
/// exporters) cannot run in a VM: podvisord hands them to containerd's CRI beside it, as frakti handed them
/// to a host runtime. Which sandboxes and containers are containerd's is recorded before anyone learns
/// their id (crash-safe, `<state>/cri/records/host-routes`), so every later call about them goes there,
/// also after a restart; a host pod's id never reaches the VM side.
final class HostPods: Sendable {
    struct Route: StoredRecord {
        enum Kind: String, Codable { case sandbox, container }
        var id: String
        var kind: Kind
        /// For a container: its sandbox (removing the sandbox removes the container's route too).
        var sandboxID: String
    }

    let endpoint: String
    let handlers: Set<String>
    let routes: RecordStore<Route>
    private let client: GRPCClient<HTTP2ClientTransport.Posix>
    private let connections: Task<Void, Never>

    init(endpoint: String, handlers: [String], stateDirectory: String) throws(PodvisorError) {
        guard endpoint.hasPrefix("unix://") else {
            throw PodvisorError(.invalidArgument, "host_pods.endpoint \(PodvisorError.quote(endpoint)) must be unix:///path/to/containerd.sock")
        }
        self.endpoint = endpoint
        self.handlers = Set(handlers)
        routes = try RecordStore(directory: "\(stateDirectory)/cri/records/host-routes", what: "host pod route")
        let transport: HTTP2ClientTransport.Posix
        do {
            transport = try HTTP2ClientTransport.Posix(
                target: .unixDomainSocket(path: String(endpoint.dropFirst("unix://".count))), transportSecurity: .plaintext,
                config: .defaults { $0.connection.maxIdleTime = nil })
        } catch {
            throw PodvisorError(.invalidArgument, "host_pods.endpoint \(endpoint)", cause: error)
        }
        let client = GRPCClient(transport: transport)
        self.client = client
        connections = Task { try? await client.runConnections() }
    }

    deinit {
        client.beginGracefulShutdown()
        connections.cancel()
    }

    var runtime: Runtime_V1_RuntimeService.Client<HTTP2ClientTransport.Posix> { .init(wrapping: client) }
    var images: Runtime_V1_ImageService.Client<HTTP2ClientTransport.Posix> { .init(wrapping: client) }

    /// A sandbox goes to containerd when it asks for any of the host's namespaces or for a handler that
    /// always does.
    func wants(_ config: Runtime_V1_PodSandboxConfig, handler: String) -> Bool {
        let namespaces = config.linux.securityContext.namespaceOptions
        return [namespaces.network, namespaces.pid, namespaces.ipc].contains(.node) || handlers.contains(handler)
    }

    func owns(sandbox id: String) -> Bool { routes.get(id)?.kind == .sandbox }
    func owns(container id: String) -> Bool { routes.get(id)?.kind == .container }

    /// One call to containerd, as bytes: the request as kubelet sent it, the answer as containerd gave it.
    func forward(_ request: [UInt8], method: MethodDescriptor) async throws -> [UInt8] {
        do {
            return try await client.unary(
                request: ClientRequest(message: request), descriptor: method, serializer: RawBytes(), deserializer: RawBytes(),
                options: .defaults
            ) { try $0.message }
        } catch let error as RPCError where error.code == .unavailable {
            throw unavailable(error)
        }
    }

    /// What a caller hears when containerd does not answer: which runtime, where, and why.
    func unavailable(_ error: any Error) -> RPCError {
        RPCError(code: .unavailable, message: "host pods' runtime (containerd's CRI at \(endpoint)) is unavailable: \(error)")
    }
}

/// Messages passed through untouched.
struct RawBytes: MessageSerializer, MessageDeserializer {
    func serialize<Bytes: GRPCContiguousBytes>(_ message: [UInt8]) throws -> Bytes { Bytes(message) }
    func deserialize<Bytes: GRPCContiguousBytes>(_ serializedMessageBytes: Bytes) throws -> [UInt8] {
        serializedMessageBytes.withUnsafeBytes { Array($0) }
    }
}

extension HostPods {
    /// containerd's container events join podvisor's own fan-out, so a GetContainerEvents subscriber (kubelet's
    /// evented PLEG) hears about both sides. Reconnects while containerd is away.
    func relayEvents(into events: ContainerEvents) -> Task<Void, Never> {
        Task { [runtime] in
            while !Task.isCancelled {
                try? await runtime.getContainerEvents(Runtime_V1_GetEventsRequest()) { response in
                    for try await event in response.messages { events.publish(event) }
                }
                try? await Task.sleep(for: .seconds(2))
            }
        }
    }
}

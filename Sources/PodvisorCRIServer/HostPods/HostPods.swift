import Foundation
import Logging
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
        } catch {
            throw failure(error)
        }
    }

    /// containerd's error as podvisord's answer: its status and message only. Its metadata holds the trailers of
    /// containerd's own response (`:status`, `content-type`, `grpc-status`), which sent again beside ours broke the
    /// stream: kubelet heard "Stream unexpectedly closed" for containerd's NotFound.
    func failure(_ error: any Error) -> any Error {
        guard let error = error as? RPCError else { return error }
        return error.code == .unavailable ? unavailable(error) : RPCError(code: error.code, message: error.message)
    }

    /// containerd's copy of a host container's image, pulled (anonymously) under each of `names` that works
    /// when containerd lacks it (pulling content it already has under another name fetches no layer again);
    /// the names pulled, none when it had it or no name worked (containerd's CreateContainer then says what
    /// is missing).
    func ensureImage(_ image: Runtime_V1_ImageSpec, names: [String]) async -> [String] {
        guard let status = try? await images.imageStatus(.with { $0.image = image }), !status.hasImage else { return [] }
        var pulled: [String] = []
        for name in names where (try? await images.pullImage(.with { $0.image = .with { $0.image = name } })) != nil {
            pulled.append(name)
        }
        return pulled
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
    /// evented PLEG) hears about both sides. Reconnects while containerd is away; a containerd without the
    /// call (1.6) is asked once: kubelet polls then, as it does on such a node.
    func relayEvents(into events: ContainerEvents, log: Logger) -> Task<Void, Never> {
        Task { [runtime, endpoint] in
            while !Task.isCancelled {
                do {
                    try await runtime.getContainerEvents(Runtime_V1_GetEventsRequest()) { response in
                        for try await event in response.messages { events.publish(event) }
                    }
                } catch let error as RPCError where error.code == .unimplemented {
                    log.info("containerd at \(endpoint) has no GetContainerEvents: host pods' events are not relayed")
                    return
                } catch {}
                try? await Task.sleep(for: .seconds(2))
            }
        }
    }
}

import Foundation
import GRPCCore
import PodvisorCRI
import SwiftProtobuf

/// Routes every call about a host pod to containerd before any handler sees it: RunPodSandbox for a pod
/// that asks for the host's namespaces (or a host handler), and every call naming a sandbox or container
/// that is containerd's — recorded when containerd created it, or simply not podvisor's own (after a crash
/// between containerd's answer and the record, containerd still knows it). Requests and answers pass as
/// bytes, so containerd's own answers (its streaming URLs among them) reach kubelet unchanged. Lists,
/// stats, events, status and images, which span both sides, are merged by their handlers instead.
struct HostPodForwarding: ServerInterceptor {
    let server: CRIServer
    let hostPods: HostPods

    func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>, context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        var iterator = request.messages.makeAsyncIterator()
        guard let message = try await iterator.next() else { return try await next(request, context) }
        guard let protobuf = message as? any Message, let outputType = Output.self as? any Message.Type,
            let route = route(protobuf)
        else {
            return try await next(
                StreamingServerRequest(
                    metadata: request.metadata,
                    messages: RPCAsyncSequence(
                        wrapping: AsyncThrowingStream {
                            $0.yield(message); $0.finish()
                        })),
                context)
        }
        if let request = protobuf as? Runtime_V1_CreateContainerRequest {
            await pullIntoContainerd(request.config.image)
        }
        let answer: [UInt8]
        do {
            answer = try await hostPods.forward(try protobuf.serializedBytes(), method: context.descriptor)
        } catch let error as RPCError where [.unavailable, .notFound].contains(error.code) && route.idempotentWhenUnknown {
            // Stop or remove of an id nobody here knows: done, whether containerd could not be asked or did not
            // know it either (containerd 1.6 answers NotFound where the CRI asks for success).
            answer = []
        }
        let output = try outputType.init(serializedBytes: answer)
        try route.recordAfterwards(output)
        return StreamingServerResponse(single: ServerResponse(message: output as! Output))
    }

    /// kubelet pulls only what ImageStatus does not find, and ImageStatus answers from podvisord's store first:
    /// an image that a VM pod (or a pull without a host pod's sandbox config) brought reaches containerd here,
    /// under every name podvisord knows it by: the container may name it by tag, digest or id.
    private func pullIntoContainerd(_ image: Runtime_V1_ImageSpec) async {
        let record = await server.images.image(image.image)
        var names: [String] = []
        for name in [image.image, image.userSpecifiedImage] + (record?.repoTags ?? []) + (record?.repoDigests ?? [])
        where !name.isEmpty && !name.hasPrefix("sha256:") && !names.contains(name) {
            names.append(name)
        }
        let pulled = await hostPods.ensureImage(image, names: names)
        if !pulled.isEmpty {
            server.log.info("pulled \(pulled.joined(separator: ", ")) into containerd for a host pod's container: it had only podvisord's copy")
        }
    }

    struct Route {
        /// Stop and Remove of an unknown id succeed (kubelet retries them).
        var idempotentWhenUnknown = false
        var recordAfterwards: (any Message) throws -> Void = { _ in }
    }

    /// nil: the call is podvisor's own.
    private func route(_ message: any Message) -> Route? {
        switch message {
        case let request as Runtime_V1_RunPodSandboxRequest:
            guard hostPods.wants(request.config, handler: request.runtimeHandler) else { return nil }
            return Route { answer in
                guard let id = (answer as? Runtime_V1_RunPodSandboxResponse)?.podSandboxID else { return }
                try hostPods.routes.put(.init(id: id, kind: .sandbox, sandboxID: id))
            }
        case let request as Runtime_V1_CreateContainerRequest:
            guard isHost(sandbox: request.podSandboxID) else { return nil }
            return Route { answer in
                guard let id = (answer as? Runtime_V1_CreateContainerResponse)?.containerID else { return }
                try hostPods.routes.put(.init(id: id, kind: .container, sandboxID: request.podSandboxID))
            }
        case let request as Runtime_V1_RemovePodSandboxRequest:
            guard isHost(sandbox: request.podSandboxID) else { return nil }
            return Route(idempotentWhenUnknown: !hostPods.owns(sandbox: request.podSandboxID)) { _ in
                for route in hostPods.routes.all where route.sandboxID == request.podSandboxID { try hostPods.routes.remove(route.id) }
            }
        case let request as Runtime_V1_StopPodSandboxRequest:
            return isHost(sandbox: request.podSandboxID) ? Route(idempotentWhenUnknown: !hostPods.owns(sandbox: request.podSandboxID)) : nil
        case let request as Runtime_V1_RemoveContainerRequest:
            guard isHost(container: request.containerID) else { return nil }
            return Route(idempotentWhenUnknown: !hostPods.owns(container: request.containerID)) { _ in
                try hostPods.routes.remove(request.containerID)
            }
        case let request as Runtime_V1_StopContainerRequest:
            return isHost(container: request.containerID) ? Route(idempotentWhenUnknown: !hostPods.owns(container: request.containerID)) : nil
        case let request as any SandboxRequest:
            return isHost(sandbox: request.podSandboxID) ? Route() : nil
        case let request as any ContainerRequest:
            return isHost(container: request.containerID) ? Route() : nil
        default:
            return nil
        }
    }

    /// containerd's when recorded as such, or when podvisor has no sandbox of that id (or prefix).
    private func isHost(sandbox id: String) -> Bool {
        !id.isEmpty && (hostPods.owns(sandbox: id) || (try? server.sandboxes.find(id)) == nil)
    }

    private func isHost(container id: String) -> Bool {
        !id.isEmpty && (hostPods.owns(container: id) || (try? server.containers.find(id)) == nil)
    }
}

/// Requests about one sandbox, whichever RPC.
protocol SandboxRequest { var podSandboxID: String { get } }
/// Requests about one container, whichever RPC.
protocol ContainerRequest { var containerID: String { get } }

extension Runtime_V1_PodSandboxStatusRequest: SandboxRequest {}
extension Runtime_V1_PortForwardRequest: SandboxRequest {}
extension Runtime_V1_PodSandboxStatsRequest: SandboxRequest {}
extension Runtime_V1_UpdatePodSandboxResourcesRequest: SandboxRequest {}
extension Runtime_V1_StartContainerRequest: ContainerRequest {}
extension Runtime_V1_ContainerStatusRequest: ContainerRequest {}
extension Runtime_V1_UpdateContainerResourcesRequest: ContainerRequest {}
extension Runtime_V1_ReopenContainerLogRequest: ContainerRequest {}
extension Runtime_V1_ExecSyncRequest: ContainerRequest {}
extension Runtime_V1_ExecRequest: ContainerRequest {}
extension Runtime_V1_AttachRequest: ContainerRequest {}
extension Runtime_V1_ContainerStatsRequest: ContainerRequest {}
extension Runtime_V1_CheckpointContainerRequest: ContainerRequest {}

import Foundation
import GRPCCore
import GRPCInProcessTransport
import PodvisorCRI
import PodvisorCore
import SwiftProtobuf
import Testing

@testable import PodvisorCRIServer

/// Every RPC of both services, with every numeric field of its request (at every depth) set to an extreme
/// value on top of a request that is otherwise valid: each answer is a status, the server never traps
/// (a trap would end this test process), and it still serves afterwards. The five requests that crashed
/// podvisord (VM sizing, ExecSync's and StopContainer's timeouts at Int64.max) are among them.
@Suite struct ExtremeNumbersTests {
    static let extremes: [Int64] = [.max, .min, -1, Int64(Int32.max), Int64(UInt32.max), 1 << 40]

    @Test func everyNumberOfEveryRequestGetsAnAnswer() async throws {
        try await Harness.with { harness, _ in
            let server = try await harness.open()
            let transport = InProcessTransport()
            try await withGRPCServer(transport: transport.server, services: [server.runtimeService, server.imageService]) { _ in
                try await withGRPCClient(transport: transport.client) { client in
                    let cri = Runtime_V1_RuntimeService.Client(wrapping: client)
                    let images = Runtime_V1_ImageService.Client(wrapping: client)
                    let pod = try await cri.runPod(Harness.podConfig("target"))
                    let container = try await cri.create(in: pod)
                    _ = try await cri.startContainer(.with { $0.containerID = container })
                    var answered = 0
                    func fuzz<Request: Message, Response>(_ base: Request, _ call: (Request) async throws -> Response) async throws {
                        for value in Self.extremes {
                            var request = base
                            try request.merge(serializedBytes: try ExtremeNumbers.message(Request.self, all: value).serializedBytes() as [UInt8])
                            do { _ = try await call(request) } catch is RPCError {}
                            answered += 1
                        }
                    }
                    let podConfig = Harness.podConfig("fuzzed")
                    let named = Harness.containerConfig("fuzzed")
                    try await fuzz(Runtime_V1_VersionRequest()) { try await cri.version($0) }
                    try await fuzz(Runtime_V1_RunPodSandboxRequest.with { $0.config = podConfig }) { try await cri.runPodSandbox($0) }
                    try await fuzz(Runtime_V1_PodSandboxStatusRequest.with { $0.podSandboxID = pod }) { try await cri.podSandboxStatus($0) }
                    try await fuzz(Runtime_V1_ListPodSandboxRequest()) { try await cri.listPodSandbox($0) }
                    try await fuzz(
                        Runtime_V1_CreateContainerRequest.with {
                            $0.podSandboxID = pod
                            $0.config = named
                            $0.sandboxConfig = podConfig
                        }
                    ) { try await cri.createContainer($0) }
                    try await fuzz(Runtime_V1_ListContainersRequest()) { try await cri.listContainers($0) }
                    try await fuzz(Runtime_V1_ContainerStatusRequest.with { $0.containerID = container }) { try await cri.containerStatus($0) }
                    try await fuzz(Runtime_V1_UpdateContainerResourcesRequest.with { $0.containerID = container }) {
                        try await cri.updateContainerResources($0)
                    }
                    try await fuzz(Runtime_V1_ReopenContainerLogRequest.with { $0.containerID = container }) { try await cri.reopenContainerLog($0) }
                    try await fuzz(
                        Runtime_V1_ExecSyncRequest.with {
                            $0.containerID = container; $0.cmd = ["true"]
                        }
                    ) { try await cri.execSync($0) }
                    try await fuzz(
                        Runtime_V1_ExecRequest.with {
                            $0.containerID = container; $0.cmd = ["true"]; $0.stdout = true
                        }
                    ) {
                        try await cri.exec($0)
                    }
                    try await fuzz(
                        Runtime_V1_AttachRequest.with {
                            $0.containerID = container; $0.stdout = true
                        }
                    ) { try await cri.attach($0) }
                    try await fuzz(Runtime_V1_PortForwardRequest.with { $0.podSandboxID = pod }) { try await cri.portForward($0) }
                    try await fuzz(Runtime_V1_ContainerStatsRequest.with { $0.containerID = container }) { try await cri.containerStats($0) }
                    try await fuzz(Runtime_V1_ListContainerStatsRequest()) { try await cri.listContainerStats($0) }
                    try await fuzz(Runtime_V1_PodSandboxStatsRequest.with { $0.podSandboxID = pod }) { try await cri.podSandboxStats($0) }
                    try await fuzz(Runtime_V1_ListPodSandboxStatsRequest()) { try await cri.listPodSandboxStats($0) }
                    try await fuzz(Runtime_V1_UpdateRuntimeConfigRequest()) { try await cri.updateRuntimeConfig($0) }
                    try await fuzz(Runtime_V1_StatusRequest()) { try await cri.status($0) }
                    try await fuzz(Runtime_V1_CheckpointContainerRequest.with { $0.containerID = container }) {
                        try await cri.checkpointContainer($0)
                    }
                    try await fuzz(Runtime_V1_GetEventsRequest()) { try await cri.getContainerEvents($0) { _ in } }
                    try await fuzz(Runtime_V1_ListMetricDescriptorsRequest()) { try await cri.listMetricDescriptors($0) }
                    try await fuzz(Runtime_V1_ListPodSandboxMetricsRequest()) { try await cri.listPodSandboxMetrics($0) }
                    try await fuzz(Runtime_V1_RuntimeConfigRequest()) { try await cri.runtimeConfig($0) }
                    try await fuzz(Runtime_V1_UpdatePodSandboxResourcesRequest.with { $0.podSandboxID = pod }) {
                        try await cri.updatePodSandboxResources($0)
                    }
                    try await fuzz(Runtime_V1_StreamPodSandboxesRequest()) { try await cri.streamPodSandboxes($0) { _ in } }
                    try await fuzz(Runtime_V1_StreamContainersRequest()) { try await cri.streamContainers($0) { _ in } }
                    try await fuzz(Runtime_V1_StreamContainerStatsRequest()) { try await cri.streamContainerStats($0) { _ in } }
                    try await fuzz(Runtime_V1_StreamPodSandboxStatsRequest()) { try await cri.streamPodSandboxStats($0) { _ in } }
                    try await fuzz(Runtime_V1_StreamPodSandboxMetricsRequest()) { try await cri.streamPodSandboxMetrics($0) { _ in } }
                    try await fuzz(Runtime_V1_ListImagesRequest()) { try await images.listImages($0) }
                    try await fuzz(Runtime_V1_ImageStatusRequest.with { $0.image.image = Harness.image }) { try await images.imageStatus($0) }
                    try await fuzz(Runtime_V1_ImageFsInfoRequest()) { try await images.imageFsInfo($0) }
                    try await fuzz(Runtime_V1_StreamImagesRequest()) { try await images.streamImages($0) { _ in } }
                    try await fuzz(Runtime_V1_PullImageRequest.with { $0.image.image = "127.0.0.1:1/absent:1" }) { try await images.pullImage($0) }
                    try await fuzz(Runtime_V1_StopContainerRequest.with { $0.containerID = container }) { try await cri.stopContainer($0) }
                    try await fuzz(Runtime_V1_StartContainerRequest.with { $0.containerID = container }) { try await cri.startContainer($0) }
                    try await fuzz(Runtime_V1_RemoveContainerRequest.with { $0.containerID = container }) { try await cri.removeContainer($0) }
                    try await fuzz(Runtime_V1_RemoveImageRequest.with { $0.image.image = "fake.test/absent:1" }) { try await images.removeImage($0) }
                    try await fuzz(Runtime_V1_StopPodSandboxRequest.with { $0.podSandboxID = pod }) { try await cri.stopPodSandbox($0) }
                    try await fuzz(Runtime_V1_RemovePodSandboxRequest.with { $0.podSandboxID = pod }) { try await cri.removePodSandbox($0) }
                    #expect(answered == 41 * Self.extremes.count)
                    #expect(try await cri.version(.init()).runtimeName == CRIServer.runtimeName, "still serving")
                }
            }
        }
    }

    /// The message really carries the value everywhere: a number four levels deep is set.
    @Test func theBuilderReachesNestedNumbers() throws {
        let request = try ExtremeNumbers.message(Runtime_V1_RunPodSandboxRequest.self, all: .max)
        #expect(request.config.linux.resources.memoryLimitInBytes == .max)
        #expect(request.config.linux.securityContext.runAsUser.value == .max)
        #expect(request.config.portMappings.first?.hostPort == -1)
        #expect(request.config.metadata.name.isEmpty)
    }
}

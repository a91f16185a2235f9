import Foundation
import GRPCCore
import GRPCInProcessTransport
import Logging
import PodvisorCRI
import PodvisorCore
import PodvisorImages
import Testing

@testable import PodvisorCRIServer

/// A CRI server on the fake sandbox runtime, reached through grpc-swift's in-process transport: the
/// handlers answer as kubelet would see them (gRPC statuses), in milliseconds and without a VM.
struct Harness {
    let directory: String
    let runtime: FakeSandboxRuntime
    let config: PodvisorConfig

    static let image = "fake.test/busybox:1"

    /// Runs `body` against a fresh server with one image (a one-file layer) in its store; removes every
    /// file afterwards, also when the body fails.
    static func with(_ body: (Harness, Runtime_V1_RuntimeService.Client<InProcessTransport.Client>) async throws -> Void) async throws {
        let directory = "/tmp/podvisor-handlers-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var config = PodvisorConfig()
        config.stateDirectory = "\(directory)/state"
        config.registryHostsDirectory = "\(directory)/certs.d"
        let harness = Harness(directory: directory, runtime: FakeSandboxRuntime(root: directory), config: config)
        let server = try await harness.open()
        _ = try await server.images.importLayout(try harness.makeLayout(), tag: "1", as: image)
        try await harness.serve(server, body)
    }

    /// A CRI server on the same state and fake runtime: what podvisord is after a restart.
    func open() async throws -> CRIServer {
        try await CRIServer.open(config: config, runtime: runtime, logger: Logger(label: "handler-test", level: .error))
    }

    func serve(
        _ server: CRIServer, _ body: (Harness, Runtime_V1_RuntimeService.Client<InProcessTransport.Client>) async throws -> Void
    )
        async throws
    {
        let transport = InProcessTransport()
        try await withGRPCServer(transport: transport.server, services: [server.runtimeService, server.imageService]) { _ in
            try await withGRPCClient(transport: transport.client) { client in
                try await body(self, Runtime_V1_RuntimeService.Client(wrapping: client))
            }
        }
    }

    /// An OCI image layout with one uncompressed layer holding /hello.
    private func makeLayout() throws -> String {
        let layout = "\(directory)/layout"
        let files = "\(directory)/layer-files"
        try FileManager.default.createDirectory(atPath: "\(layout)/blobs/sha256", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: files, withIntermediateDirectories: true)
        try Data("hi\n".utf8).write(to: URL(fileURLWithPath: "\(files)/hello"))
        let tar = Process()
        tar.executableURL = URL(fileURLWithPath: "/bin/tar")
        tar.arguments = ["-cf", "\(directory)/layer.tar", "-C", files, "."]
        try tar.run()
        tar.waitUntilExit()
        let layer = try Data(contentsOf: URL(fileURLWithPath: "\(directory)/layer.tar"))
        func blob(_ data: Data) throws -> String {
            let digest = Digest.sha256(of: data)
            try data.write(to: URL(fileURLWithPath: "\(layout)/blobs/sha256/\(digest.hex)"))
            return digest.description
        }
        let layerDigest = try blob(layer)
        let imageConfig = Data(
            """
            {"architecture":"amd64","os":"linux","config":{"Cmd":["/hello"],"Env":["PATH=/bin"]},
             "rootfs":{"type":"layers","diff_ids":["\(layerDigest)"]}}
            """.utf8)
        let configDigest = try blob(imageConfig)
        let manifest = Data(
            """
            {"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
             "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"\(configDigest)","size":\(imageConfig.count)},
             "layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"\(layerDigest)","size":\(layer.count)}]}
            """.utf8)
        let manifestDigest = try blob(manifest)
        try Data(
            """
            {"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"\(manifestDigest)",
             "size":\(manifest.count),"annotations":{"org.opencontainers.image.ref.name":"1"}}]}
            """.utf8
        ).write(to: URL(fileURLWithPath: "\(layout)/index.json"))
        try Data(#"{"imageLayoutVersion":"1.0.0"}"#.utf8).write(to: URL(fileURLWithPath: "\(layout)/oci-layout"))
        return layout
    }

    // MARK: requests

    static func podConfig(
        _ name: String = "pod", configure: (inout Runtime_V1_PodSandboxConfig) -> Void = { _ in }
    )
        -> Runtime_V1_PodSandboxConfig
    {
        var config = Runtime_V1_PodSandboxConfig.with {
            $0.metadata = .with {
                $0.name = name
                $0.namespace = "default"
                $0.uid = "uid-\(name)"
            }
        }
        configure(&config)
        return config
    }

    static func containerConfig(
        _ name: String = "c", configure: (inout Runtime_V1_ContainerConfig) -> Void = { _ in }
    )
        -> Runtime_V1_ContainerConfig
    {
        var config = Runtime_V1_ContainerConfig.with {
            $0.metadata = .with { $0.name = name }
            $0.image = .with { $0.image = image }
        }
        configure(&config)
        return config
    }
}

extension Runtime_V1_RuntimeService.Client where Transport == InProcessTransport.Client {
    func runPod(_ config: Runtime_V1_PodSandboxConfig = Harness.podConfig()) async throws -> String {
        try await runPodSandbox(.with { $0.config = config }).podSandboxID
    }

    func create(_ config: Runtime_V1_ContainerConfig = Harness.containerConfig(), in sandbox: String) async throws -> String {
        try await createContainer(
            .with {
                $0.podSandboxID = sandbox
                $0.config = config
            }
        ).containerID
    }

    func state(of container: String) async throws -> Runtime_V1_ContainerState {
        try await containerStatus(.with { $0.containerID = container }).status.state
    }
}

/// The gRPC status a call failed with (nil when it succeeded).
func statusCode(_ call: () async throws -> some Any) async -> RPCError.Code? {
    do {
        _ = try await call()
        return nil
    } catch let error as RPCError {
        return error.code
    } catch {
        Issue.record("not an RPCError: \(error)")
        return nil
    }
}

import ArgumentParser
import Foundation
import Logging
import PodvisorCRI
import PodvisorCRIServer
import PodvisorCore
import PodvisorRuntime

/// Pods as the CRI benchmarks start them: one image with sh and sleep, CRI logs under `logs`.
struct BenchPods {
    let runtime: RuntimeClient
    let image: String
    let logs: String

    /// The CRI server in this process on the configured state directory (quiet: the benchmark prints), its
    /// VM runtime for the host-side figures, and `image` checked to be in the store. `poolSize`: the pool the
    /// benchmark may start (`VMRuntime.startPool`) instead of the configured one.
    static func withRuntime<T: Sendable>(
        _ options: RuntimeOptions, image: String, poolSize: Int? = nil, _ body: @Sendable (BenchPods, VMHost, VMRuntime) async throws -> T
    ) async throws -> T {
        var config = try options.load()
        config.logLevel = .error
        if let poolSize { config.poolSize = poolSize }
        let logs = "/tmp/podvisor-bench-logs-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: logs) }
        LogOutput.bootstrap(program: "podvisor", format: config.logFormat)
        let host = try VMHost(config: config)
        let logger = Logger(label: "bench", level: .error)
        let vms = try VMRuntime(host: host, imageRoot: config.effectiveImageRoot, logger: logger)
        let server = try await CRIServer.open(config: config, runtime: vms, logger: logger)
        return try await withInProcessRuntime(server) { runtime, images in
            guard try await images.imageStatus(.with { $0.image.image = image }).hasImage else {
                throw ValidationError("image \(image) is not in the store (podvisor image import/pull it first)")
            }
            return try await body(BenchPods(runtime: runtime, image: image, logs: logs), host, vms)
        }
    }

    func podConfig(_ name: String) -> Runtime_V1_PodSandboxConfig {
        .with {
            $0.metadata = .with {
                $0.name = name
                $0.namespace = "bench"
                $0.uid = UUID().uuidString
            }
            $0.logDirectory = "\(logs)/\(name)-\($0.metadata.uid)"
        }
    }

    func containerConfig(_ name: String, command: String) -> Runtime_V1_ContainerConfig {
        .with {
            $0.metadata = .with { $0.name = name }
            $0.image = .with { $0.image = image }
            $0.command = ["sh", "-c", command]
            $0.logPath = "\(name).log"
        }
    }

    /// A pod whose one container runs `command`, as kubelet starts it; `afterEachCall` runs after each of
    /// the three CRI calls (the benchmark's step times).
    func start(
        _ name: String, container containerName: String = "idle", command: String, afterEachCall: () -> Void = {}
    ) async throws -> (pod: Runtime_V1_PodSandboxConfig, sandbox: String, container: String) {
        let pod = podConfig(name)
        let sandbox = try await runtime.runPodSandbox(.with { $0.config = pod }).podSandboxID
        afterEachCall()
        let container = try await runtime.createContainer(
            .with {
                $0.podSandboxID = sandbox
                $0.config = containerConfig(containerName, command: command)
                $0.sandboxConfig = pod
            }
        ).containerID
        afterEachCall()
        _ = try await runtime.startContainer(.with { $0.containerID = container })
        afterEachCall()
        return (pod, sandbox, container)
    }

    func remove(_ sandbox: String) async throws {
        _ = try await runtime.stopPodSandbox(.with { $0.podSandboxID = sandbox })
        _ = try await runtime.removePodSandbox(.with { $0.podSandboxID = sandbox })
    }

    /// How long each of `count` calls took.
    static func latencies(_ count: Int, _ call: (Int) async throws -> Void) async throws -> [Duration] {
        var result: [Duration] = []
        for i in 0..<count {
            let started = ContinuousClock.now
            try await call(i)
            result.append(started.duration(to: .now))
        }
        return result
    }
}

extension Duration {
    /// Milliseconds with one decimal, for reports.
    var millisecondsText: String {
        String(format: "%.1f", Double(components.seconds) * 1000 + Double(components.attoseconds) / 1e15)
    }
}

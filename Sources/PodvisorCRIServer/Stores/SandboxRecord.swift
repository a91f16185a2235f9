import Foundation
import PodvisorCRI
import PodvisorCore
import PodvisorRuntime

/// A pod sandbox as persisted: the request kubelet made and its state (what the runtime gave it, the
/// runtime records itself).
struct SandboxRecord: StoredRecord {
    enum State: String, Codable {
        case ready
        case notReady
    }

    var id: String
    /// The PodSandboxConfig of RunPodSandbox, protobuf-encoded: every field stays available to
    /// PodSandboxStatus and to CreateContainer without a schema of our own.
    var configData: Data
    var runtimeHandler: String
    var createdAt: Int64
    var state: State
    /// Why the sandbox is not ready when that was not asked for (its VM died, or was gone after a restart).
    var notReadyReason: String?
    /// Set, durably, before StopPodSandbox powers the VM off: a podvisord restarted half-way must finish the
    /// stop, not report READY a VM that is going down.
    var stopping: Bool?

    var config: Runtime_V1_PodSandboxConfig {
        (try? Runtime_V1_PodSandboxConfig(serializedBytes: configData)) ?? Runtime_V1_PodSandboxConfig()
    }

    var metadata: Runtime_V1_PodSandboxMetadata { config.metadata }

    /// The key that must be unique among sandboxes: kubelet's name, namespace, uid and attempt.
    static func nameKey(_ m: Runtime_V1_PodSandboxMetadata) -> String { "\(m.name)_\(m.namespace)_\(m.uid)_\(m.attempt)" }
}

/// A container as persisted.
struct ContainerRecord: StoredRecord {
    enum State: String, Codable {
        case created, running, exited, unknown
    }

    var id: String
    var sandboxID: String
    /// The ContainerConfig of CreateContainer, protobuf-encoded.
    var configData: Data
    /// The container's process: ExecSync and Exec run with the same identity.
    var process: ProcessSpec
    /// The image as asked for, its id (config digest) and a repo digest when known.
    var imageName: String
    var imageID: String
    var imageRef: String
    var logPath: String
    var state: State
    var createdAt: Int64
    var startedAt: Int64 = 0
    var finishedAt: Int64 = 0
    var exitCode: Int32 = 0
    var reason = ""
    var message = ""
    /// Current limits: those of CreateContainer, then of UpdateContainerResources (protobuf-encoded).
    var resourcesData: Data
    /// What StopContainer sends first (see StopSignal).
    var stopSignal: Int32 = SIGTERM
    var uid: Int64?
    var gid: Int64?
    var supplementalGroups: [Int64] = []

    var config: Runtime_V1_ContainerConfig {
        (try? Runtime_V1_ContainerConfig(serializedBytes: configData)) ?? Runtime_V1_ContainerConfig()
    }

    var resources: Runtime_V1_LinuxContainerResources {
        (try? Runtime_V1_LinuxContainerResources(serializedBytes: resourcesData)) ?? Runtime_V1_LinuxContainerResources()
    }

    /// Records the end of the container's process; the first report wins.
    mutating func exited(code: Int32, at finishedAt: Int64, reason: String, message: String = "") {
        guard state != .exited else { return }
        state = .exited
        exitCode = code
        self.finishedAt = finishedAt
        self.reason = reason
        self.message = message
    }

    static func nameKey(sandboxID: String, _ m: Runtime_V1_ContainerMetadata) -> String { "\(sandboxID)/\(m.name)_\(m.attempt)" }
}

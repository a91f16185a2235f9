import Foundation
import PodvisorCRI

/// Records as the CRI messages that describe them.
extension CRIServer {
    func podSandbox(_ r: SandboxRecord) -> Runtime_V1_PodSandbox {
        let config = r.config
        return .with {
            $0.id = r.id
            $0.metadata = config.metadata
            $0.state = r.state == .ready ? .sandboxReady : .sandboxNotready
            $0.createdAt = r.createdAt
            $0.labels = config.labels
            $0.annotations = config.annotations
            $0.runtimeHandler = r.runtimeHandler
        }
    }

    func sandboxStatus(_ r: SandboxRecord) -> Runtime_V1_PodSandboxStatus {
        let config = r.config
        return .with {
            $0.id = r.id
            $0.metadata = config.metadata
            $0.state = r.state == .ready ? .sandboxReady : .sandboxNotready
            $0.createdAt = r.createdAt
            if let ips = pod(r.id)?.info.ips, let first = ips.first {
                $0.network = .with {
                    $0.ip = first
                    $0.additionalIps = ips.dropFirst().map { ip in .with { $0.ip = ip } }
                }
            }
            $0.linux = .with { $0.namespaces = .with { $0.options = config.linux.securityContext.namespaceOptions } }
            $0.labels = config.labels
            $0.annotations = config.annotations
            $0.runtimeHandler = r.runtimeHandler
        }
    }

    func containerState(_ state: ContainerRecord.State) -> Runtime_V1_ContainerState {
        switch state {
        case .created: .containerCreated
        case .running: .containerRunning
        case .exited: .containerExited
        case .unknown: .containerUnknown
        }
    }

    func container(_ r: ContainerRecord) -> Runtime_V1_Container {
        let config = r.config
        return .with {
            $0.id = r.id
            $0.podSandboxID = r.sandboxID
            $0.metadata = config.metadata
            $0.image = imageSpec(r)
            $0.imageRef = r.imageRef
            $0.imageID = r.imageID
            $0.state = containerState(r.state)
            $0.createdAt = r.createdAt
            $0.labels = config.labels
            $0.annotations = config.annotations
        }
    }

    func containerStatus(_ r: ContainerRecord) -> Runtime_V1_ContainerStatus {
        let config = r.config
        return .with {
            $0.id = r.id
            $0.metadata = config.metadata
            $0.state = containerState(r.state)
            $0.createdAt = r.createdAt
            $0.startedAt = r.startedAt
            $0.finishedAt = r.finishedAt
            $0.exitCode = r.exitCode
            $0.image = imageSpec(r)
            $0.imageRef = r.imageRef
            $0.imageID = r.imageID
            $0.reason = r.reason
            $0.message = r.message
            $0.labels = config.labels
            $0.annotations = config.annotations
            $0.mounts = config.mounts
            $0.logPath = r.logPath
            $0.stopSignal = StopSignal.criSignal(r.stopSignal)
            $0.resources = .with { $0.linux = r.resources }
            if let uid = r.uid {
                $0.user = .with {
                    $0.linux = .with {
                        $0.uid = uid
                        $0.gid = r.gid ?? 0
                        $0.supplementalGroups = r.supplementalGroups
                    }
                }
            }
        }
    }

    private func imageSpec(_ r: ContainerRecord) -> Runtime_V1_ImageSpec {
        var spec = r.config.image
        spec.image = r.imageName
        spec.userSpecifiedImage = r.config.image.userSpecifiedImage.isEmpty ? r.imageName : r.config.image.userSpecifiedImage
        return spec
    }

    /// The `info` map of verbose status answers: one JSON document under "info", as containerd does.
    static func verboseInfo(_ object: [String: Any]) -> [String: String] {
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]) else { return [:] }
        return ["info": String(decoding: data, as: UTF8.self)]
    }
}

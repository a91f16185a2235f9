import Foundation
import PodvisorCRI
import PodvisorCore
import Yams

/// `podvisor run -f pod.yaml`: the subset of a Kubernetes Pod that the CLI runs (README, "Pod files"):
/// metadata.name/labels/annotations; spec.hostname; spec.containers[].name, image, command, args, env
/// (name/value), workingDir, tty, volumeMounts (name, mountPath, readOnly), resources.limits (memory, cpu),
/// securityContext (runAsUser, runAsGroup, readOnlyRootFilesystem, privileged, allowPrivilegeEscalation,
/// capabilities.add/drop); spec.volumes[] with hostPath.path or emptyDir.
struct PodFile: Decodable {
    struct Metadata: Decodable {
        var name: String
        var labels: [String: String]?
        var annotations: [String: String]?
    }
    struct Spec: Decodable {
        var hostname: String?
        var containers: [Container]
        var volumes: [Volume]?
    }
    struct Container: Decodable {
        var name: String
        var image: String
        var command: [String]?
        var args: [String]?
        var env: [EnvVar]?
        var workingDir: String?
        var tty: Bool?
        var volumeMounts: [VolumeMount]?
        var resources: Resources?
        var securityContext: SecurityContext?
    }
    struct EnvVar: Decodable {
        var name: String
        var value: String?
    }
    struct VolumeMount: Decodable {
        var name: String
        var mountPath: String
        var readOnly: Bool?
    }
    struct Resources: Decodable {
        var limits: [String: String]?
    }
    struct SecurityContext: Decodable {
        struct Capabilities: Decodable {
            var add: [String]?
            var drop: [String]?
        }
        var runAsUser: Int64?
        var runAsGroup: Int64?
        var readOnlyRootFilesystem: Bool?
        var privileged: Bool?
        var allowPrivilegeEscalation: Bool?
        var capabilities: Capabilities?
    }
    struct Volume: Decodable {
        struct HostPath: Decodable { var path: String }
        struct EmptyDir: Decodable {}
        var name: String
        var hostPath: HostPath?
        var emptyDir: EmptyDir?
    }

    var apiVersion: String?
    var kind: String?
    var metadata: Metadata
    var spec: Spec

    static func load(_ path: String) throws(PodvisorError) -> PodFile {
        guard let text = readTextFile(path) else {
            throw PodvisorError(.invalidArgument, "cannot read pod file \(path)")
        }
        let pod: PodFile
        do { pod = try YAMLDecoder().decode(PodFile.self, from: text) } catch {
            throw PodvisorError(.invalidArgument, "\(path) is not a pod file: \(Self.describe(error))")
        }
        guard pod.kind == nil || pod.kind == "Pod" else {
            throw PodvisorError(.invalidArgument, "\(path): kind is \(pod.kind!), only Pod is supported")
        }
        guard !pod.spec.containers.isEmpty else { throw PodvisorError(.invalidArgument, "\(path): spec.containers is empty") }
        let names = pod.spec.containers.map(\.name)
        guard Set(names).count == names.count else { throw PodvisorError(.invalidArgument, "\(path): container names repeat") }
        return pod
    }

    /// Decoding errors name the path of the offending key, not Swift's type names.
    private static func describe(_ error: any Error) -> String {
        switch error as? DecodingError {
        case .keyNotFound(let key, let context)?:
            return "missing \(path(context.codingPath + [key]))"
        case .typeMismatch(_, let context)?, .valueNotFound(_, let context)?, .dataCorrupted(let context)?:
            return "\(context.codingPath.isEmpty ? "document" : path(context.codingPath)): \(context.debugDescription)"
        default:
            return "\(error)"
        }
    }

    /// `spec.containers[0].image`, as kubectl names fields.
    private static func path(_ keys: [any CodingKey]) -> String {
        keys.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined().trimmingCharacters(in: CharacterSet(charactersIn: "."))
    }

    /// CRI configs: the containers in order; volumes resolved to host paths (emptyDir under `emptyDirRoot`).
    func containers(emptyDirRoot: String) throws(PodvisorError) -> [Runtime_V1_ContainerConfig] {
        var volumes: [String: String] = [:]
        for volume in spec.volumes ?? [] {
            if let hostPath = volume.hostPath {
                volumes[volume.name] = hostPath.path
            } else if volume.emptyDir != nil {
                // World-writable like Kubernetes' emptyDir: the containers may run as any user.
                let path = "\(emptyDirRoot)/\(volume.name)"
                do { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
                    throw PodvisorError(.internalError, "cannot create emptyDir \(path)", cause: error)
                }
                chmod(path, 0o777)
                volumes[volume.name] = path
            } else {
                throw PodvisorError(.invalidArgument, "volume \(volume.name): only hostPath and emptyDir are supported")
            }
        }
        return try spec.containers.map { (c) throws(PodvisorError) -> Runtime_V1_ContainerConfig in
            var config = Runtime_V1_ContainerConfig()
            config.metadata = .with { $0.name = c.name }
            config.image = .with { $0.image = c.image }
            config.command = c.command ?? []
            config.args = c.args ?? []
            config.envs = (c.env ?? []).map { variable in
                .with {
                    $0.key = variable.name; $0.value = Data((variable.value ?? "").utf8)
                }
            }
            config.workingDir = c.workingDir ?? ""
            config.tty = c.tty ?? false
            config.logPath = "\(c.name).log"
            for mount in c.volumeMounts ?? [] {
                guard let hostPath = volumes[mount.name] else {
                    throw PodvisorError(.invalidArgument, "container \(c.name) mounts volume \(mount.name), which spec.volumes does not declare")
                }
                config.mounts.append(
                    .with {
                        $0.hostPath = hostPath
                        $0.containerPath = mount.mountPath
                        $0.readonly = mount.readOnly ?? false
                    })
            }
            let limits = c.resources?.limits ?? [:]
            if let memory = limits["memory"] { config.linux.resources.memoryLimitInBytes = try Quantity.bytes(memory) }
            if let cpu = limits["cpu"] { config.linux.resources.setCPULimit(try Quantity.cpus(cpu)) }
            if let security = c.securityContext {
                var context = Runtime_V1_LinuxContainerSecurityContext()
                if let uid = security.runAsUser { context.runAsUser = .with { $0.value = uid } }
                if let gid = security.runAsGroup { context.runAsGroup = .with { $0.value = gid } }
                context.readonlyRootfs = security.readOnlyRootFilesystem ?? false
                context.privileged = security.privileged ?? false
                context.noNewPrivs = security.allowPrivilegeEscalation == false
                context.capabilities = .with {
                    $0.addCapabilities = security.capabilities?.add ?? []
                    $0.dropCapabilities = security.capabilities?.drop ?? []
                }
                config.linux.securityContext = context
            }
            return config
        }
    }
}

/// Kubernetes resource quantities: memory ("64Mi", "1G", "1000") and CPU ("500m", "1.5").
enum Quantity {
    static func bytes(_ text: String) throws(PodvisorError) -> Int64 {
        let units: [(String, Double)] = [
            ("Ki", 0x1p10), ("Mi", 0x1p20), ("Gi", 0x1p30), ("Ti", 0x1p40), ("k", 1e3), ("M", 1e6), ("G", 1e9), ("T", 1e12),
        ]
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        for (suffix, factor) in units where trimmed.hasSuffix(suffix) {
            if let value = Double(trimmed.dropLast(suffix.count)), value > 0 { return Int64(value * factor) }
        }
        if let value = Int64(trimmed), value > 0 { return value }
        throw PodvisorError(.invalidArgument, "\"\(text)\" is not a memory size (e.g. 64Mi, 1Gi)")
    }

    /// `--memory` as docker takes it (b, k, m, g: binary units), or any Kubernetes quantity.
    static func dockerBytes(_ text: String) throws(PodvisorError) -> Int64 {
        let factors: [Character: Double] = ["b": 1, "k": 0x1p10, "m": 0x1p20, "g": 0x1p30]
        if let last = text.last, let factor = factors[Character(last.lowercased())], let value = Double(text.dropLast()), value > 0 {
            return Int64(value * factor)
        }
        return try bytes(text)
    }

    static func cpus(_ text: String) throws(PodvisorError) -> Double {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if trimmed.hasSuffix("m"), let milli = Double(trimmed.dropLast()), milli > 0 { return milli / 1000 }
        if let value = Double(trimmed), value > 0 { return value }
        throw PodvisorError(.invalidArgument, "\"\(text)\" is not a CPU amount (e.g. 500m, 1.5)")
    }
}

extension Runtime_V1_LinuxContainerResources {
    /// CPU limit as CFS quota over a 100 ms period, as kubelet sets it.
    mutating func setCPULimit(_ cpus: Double) {
        cpuPeriod = 100_000
        cpuQuota = Int64(cpus * 100_000)
    }
}

import Foundation
import GRPCCore
import PodvisorAgentClient
import PodvisorAgentProtocol
import PodvisorCRI
import PodvisorCore
import PodvisorImages
import PodvisorRuntime
import CLinuxSupport
import PodvisorVMM

extension RuntimeService {
    /// Lays out the container's rootfs (an overlay of the image's layers with a writable upper directory,
    /// bound into the VM's share), its volumes and pod files, then has the agent create it held before exec.
    public func createContainer(request: Runtime_V1_CreateContainerRequest, context: ServerContext) async throws
        -> Runtime_V1_CreateContainerResponse
    {
        try await handle {
            let sandboxID = try server.sandboxes.find(request.podSandboxID).id
            let config = request.config
            try Validate.name(config.metadata.name, "metadata.name")
            try Validate.required(config.image.image, "image.image")
            let nameKey = ContainerRecord.nameKey(sandboxID: sandboxID, config.metadata)
            if let existing = server.containers.all.first(where: { ContainerRecord.nameKey(sandboxID: $0.sandboxID, $0.config.metadata) == nameKey }) {
                throw PodvisorError(.alreadyExists, "container name \(nameKey) is already used by \(existing.id)")
            }
            try server.reserve(nameKey, what: "container")
            defer { server.release(nameKey) }
            let id = try await server.locks.withLock(sandboxID) {
                let sandbox = try server.sandboxes.find(sandboxID)
                return try await server.createContainer(config, in: sandbox, pod: try server.readyPod(sandbox))
            }
            return .with { $0.containerID = id }
        }
    }
}

extension CRIServer {
    func createContainer(_ config: Runtime_V1_ContainerConfig, in sandbox: SandboxRecord, pod: PodVM) async throws -> String {
        let security = config.linux.securityContext
        let namespaces = security.namespaceOptions
        try Validate.noHostNamespaces(namespaces, "a container in a pod VM")
        guard namespaces.pid != .target else {
            throw PodvisorError(.failedPrecondition, "PID namespace TARGET (ephemeral containers sharing another container's) is not supported yet")
        }
        for mount in config.mounts { try validate(mount) }
        let logPath = try containerLogPath(config, sandbox: sandbox.config)

        guard let image = await images.image(config.image.image) else {
            throw PodvisorError(.notFound, "image \(config.image.image) is not present: pull it first")
        }
        let imageConfig = try images.configuration(image.id).config
        let process = try ContainerSpec.process(config, image: imageConfig) { (path) throws(PodvisorError) -> String in
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw PodvisorError(.invalidArgument, "cannot read seccomp profile \(path)")
            }
            return text
        }
        let resources = try ContainerSpec.resources(config.linux.resources)
        let stopSignal = try StopSignal.number(config: config, image: imageConfig?.StopSignal)

        let id = newObjectID()
        try await images.startUsing(image.id)
        var agentCreated = false
        do {
            var request = Podvisor_Agent_V1_CreateContainerRequest()
            request.containerID = id
            request.rootfs = try pod.mountRootfs(containerID: id, from: try mountOverlay(id, layers: try await images.lowerDirectories(image.id)))
            request.readonlyRootfs = security.readonlyRootfs
            request.process = process
            request.ownPidNamespace = namespaces.pid == .container
            request.privileged = security.privileged
            if !security.privileged {
                request.maskedPaths = security.maskedPaths.isEmpty ? ContainerSpec.defaultMaskedPaths : security.maskedPaths
                request.readonlyPaths = security.readonlyPaths.isEmpty ? ContainerSpec.defaultReadonlyPaths : security.readonlyPaths
            }
            request.resources = resources
            request.mounts = try mounts(config, sandboxID: sandbox.id, containerID: id, pod: pod)
            try await pod.agent.createContainer(request)
            agentCreated = true

            var record = ContainerRecord(
                id: id, sandboxID: sandbox.id, configData: try config.serializedBytes(), processData: try process.serializedBytes(),
                imageName: config.image.image, imageID: image.id.description, imageRef: image.repoDigests.first ?? image.id.description,
                logPath: logPath, state: .created, createdAt: Clock.nowNanoseconds(),
                resourcesData: try config.linux.resources.serializedBytes(),
                uid: process.username.isEmpty ? Int64(process.uid) : nil, gid: process.groupname.isEmpty ? Int64(process.gid) : nil,
                supplementalGroups: process.additionalGids.map(Int64.init))
            record.stopSignal = stopSignal
            try containers.put(record)
            log.debug("container \(id) (\(config.metadata.name)) created in sandbox \(sandbox.id) from \(image.id)")
            publish(.containerCreatedEvent, container: record)
            return id
        } catch {
            if agentCreated { try? await pod.agent.removeContainer(id) }
            await releaseHostSide(containerID: id, imageID: image.id, pod: pod)
            throw error
        }
    }

    /// Mounts may not reach into the runtime's own state (VM sockets, other pods' files).
    func validate(_ mount: Runtime_V1_Mount) throws(PodvisorError) {
        try Validate.absolutePath(mount.containerPath, "mount container_path")
        guard !mount.hasImage else { throw PodvisorError(.unsupported, "image volumes are not supported yet") }
        try Validate.absolutePath(mount.hostPath, "mount host_path")
        let state = config.stateDirectory
        guard mount.hostPath != state, !mount.hostPath.hasPrefix(state + "/") else {
            throw PodvisorError(.invalidArgument, "mount host_path \(mount.hostPath) is inside podvisor's state directory")
        }
        try Validate.known(mount.propagation, Runtime_V1_MountPropagation.allCases, "mount propagation")
        // As containerd: recursive read-only only makes sense read-only and private.
        if mount.recursiveReadOnly {
            guard mount.readonly else {
                throw PodvisorError(.invalidArgument, "mount \(mount.containerPath): recursive_read_only needs readonly")
            }
            guard mount.propagation == .propagationPrivate else {
                throw PodvisorError(.invalidArgument, "mount \(mount.containerPath): recursive_read_only needs private propagation")
            }
        }
    }

    /// `<sandbox log_directory>/<log_path>`; the log path must stay inside that directory.
    func containerLogPath(_ config: Runtime_V1_ContainerConfig, sandbox: Runtime_V1_PodSandboxConfig) throws(PodvisorError) -> String {
        guard !config.logPath.isEmpty else { return "" }
        try Validate.relativePath(config.logPath, "log_path")
        guard !sandbox.logDirectory.isEmpty else {
            throw PodvisorError(.invalidArgument, "log_path \(config.logPath) given but the sandbox has no log_directory")
        }
        let path = "\(sandbox.logDirectory)/\(config.logPath)"
        try? FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        return path
    }

    /// `<container dir>/rootfs`: overlayfs of the image's layers (top first) under `upper` and `work`.
    func mountOverlay(_ id: String, layers: [String]) throws(PodvisorError) -> String {
        let directory = containerDirectory(id)
        for sub in ["upper", "work", "rootfs"] {
            do { try FileManager.default.createDirectory(atPath: "\(directory)/\(sub)", withIntermediateDirectories: true) } catch {
                throw PodvisorError(.internalError, "cannot create \(directory)/\(sub)", cause: error)
            }
        }
        let options = "lowerdir=\(layers.joined(separator: ":")),upperdir=\(directory)/upper,workdir=\(directory)/work"
        guard mount("overlay", "\(directory)/rootfs", "overlay", 0, options) == 0 else {
            throw PodvisorError(.internalError, "cannot mount the rootfs overlay of \(id): errno \(errno)")
        }
        return "\(directory)/rootfs"
    }

    /// The config's mounts (host paths created as directories when missing, as containerd does), then the
    /// pod's hostname, resolv.conf and hosts files unless the config mounts those paths itself.
    func mounts(_ config: Runtime_V1_ContainerConfig, sandboxID: String, containerID: String, pod: PodVM) throws
        -> [Podvisor_Agent_V1_Mount]
    {
        var result: [Podvisor_Agent_V1_Mount] = []
        for (index, mount) in config.mounts.enumerated() {
            if !FileManager.default.fileExists(atPath: mount.hostPath) {
                try FileManager.default.createDirectory(atPath: mount.hostPath, withIntermediateDirectories: true)
            }
            let source = try pod.mountVolume(
                containerID: containerID, name: "v\(index)", from: mount.hostPath, readonly: mount.readonly,
                recursive: mount.recursiveReadOnly)
            result.append(.with {
                $0.source = source
                $0.destination = mount.containerPath
                $0.readonly = mount.readonly
                $0.recursiveReadonly = mount.recursiveReadOnly
                if mount.readonly && !mount.recursiveReadOnly {
                    $0.submounts = mountPoints(under: mount.hostPath).map { String($0.dropFirst(mount.hostPath.count + 1)) }
                }
                switch mount.propagation {
                case .propagationHostToContainer: $0.propagation = .rslave
                case .propagationBidirectional: $0.propagation = .rshared
                default: $0.propagation = .private
                }
            })
        }
        let taken = Set(config.mounts.map(\.containerPath))
        let readonly = config.linux.securityContext.readonlyRootfs
        for file in ["hostname", "resolv.conf", "hosts"] where !taken.contains("/etc/\(file)") {
            let source = try pod.mountVolume(containerID: containerID, name: file, from: "\(sandboxDirectory(sandboxID))/\(file)", readonly: readonly)
            result.append(.with {
                $0.source = source
                $0.destination = "/etc/\(file)"
                $0.readonly = readonly
            })
        }
        return result
    }

    /// Undoes CreateContainer on the host: the container's binds in the share, its overlay and directories,
    /// and its hold on the image. Safe to call for a half-created container.
    func releaseHostSide(containerID id: String, imageID: Digest, pod: PodVM?) async {
        if let pod { try? pod.unmountContainer(containerID: id) }
        let directory = containerDirectory(id)
        _ = pv_umount_detach("\(directory)/rootfs")
        do { try removeUnmountedDirectory(directory) } catch { log.error("container \(id): \(error)") }
        await images.stopUsing(imageID)
    }
}

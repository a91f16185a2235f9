import Foundation
import GRPCCore
import PodvisorCRI
import PodvisorCore
import PodvisorImages
import PodvisorRuntime

extension RuntimeService {
    /// Translates the config (ContainerSpec) and has the sandbox create the container: its rootfs (an overlay
    /// of the image's layers), volumes and pod files, held before exec.
    public func createContainer(
        request: Runtime_V1_CreateContainerRequest, context: ServerContext
    ) async throws
        -> Runtime_V1_CreateContainerResponse
    {
        try await handle {
            let sandboxID = try server.sandboxes.find(request.podSandboxID).id
            let config = request.config
            try Validate.name(config.metadata.name, "metadata.name")
            try Validate.required(config.image.image, "image.image")
            let nameKey = ContainerRecord.nameKey(sandboxID: sandboxID, config.metadata)
            if let existing = server.containers.all.first(where: { ContainerRecord.nameKey(sandboxID: $0.sandboxID, $0.config.metadata) == nameKey })
            {
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
    func createContainer(_ config: Runtime_V1_ContainerConfig, in sandbox: SandboxRecord, pod: any PodSandbox) async throws -> String {
        let security = config.linux.securityContext
        let namespaces = security.namespaceOptions
        try Validate.noHostNamespaces(namespaces, "a container in a pod VM")
        // A pod has one user namespace; a container without userns_options is in it too.
        if namespaces.hasUsernsOptions,
            try Validate.userNamespace(namespaces) != Validate.userNamespace(sandbox.config.linux.securityContext.namespaceOptions)
        {
            throw PodvisorError(.invalidArgument, "namespace_options.userns_options: a container's user namespace must be its pod's")
        }
        guard namespaces.pid != .target else {
            throw PodvisorError(.failedPrecondition, "PID namespace TARGET (ephemeral containers sharing another container's) is not supported yet")
        }
        try Validate.count(config.mounts.count, atMost: RequestLimits.maxMountsPerContainer, "mounts")
        for mount in config.mounts { try validate(mount) }
        // A host device cannot cross into the VM: refused, never silently left out.
        guard config.devices.isEmpty else {
            throw PodvisorError(
                .invalidArgument, "devices: host devices cannot be passed into a pod VM (\(PodvisorError.quote(config.devices[0].hostPath)))")
        }
        try Validate.count(config.envs.count, atMost: RequestLimits.maxEnvironmentVariables, "envs")
        try Validate.metadataMaps(config.labels, config.annotations)
        try Validate.count(
            config.linux.securityContext.maskedPaths.count + config.linux.securityContext.readonlyPaths.count,
            atMost: RequestLimits.maxMountsPerContainer, "masked_paths and readonly_paths")
        let logPath = try containerLogPath(config, sandbox: sandbox.config)

        guard let image = await images.image(config.image.image) else {
            throw PodvisorError(.notFound, "image \(config.image.image) is not present: pull it first")
        }
        let imageConfig = try images.configuration(image.id).config
        let process = try ContainerSpecBuilder.process(config, image: imageConfig) { (path) throws(PodvisorError) -> String in
            guard let text = readTextFile(path) else {
                throw PodvisorError(.invalidArgument, "cannot read seccomp profile \(path)")
            }
            return text
        }
        let stopSignal = try StopSignal.number(config: config, image: imageConfig?.StopSignal)

        let id = newObjectID()
        try await images.startUsing(image.id)
        do {
            var spec = ContainerSpec(id: id, process: process, layers: try await images.lowerDirectories(image.id))
            spec.readonlyRootfs = security.readonlyRootfs
            spec.ownPIDNamespace = namespaces.pid == .container
            spec.privileged = security.privileged
            if !security.privileged {
                spec.maskedPaths = security.maskedPaths.isEmpty ? ContainerSpecBuilder.defaultMaskedPaths : security.maskedPaths
                spec.readonlyPaths = security.readonlyPaths.isEmpty ? ContainerSpecBuilder.defaultReadonlyPaths : security.readonlyPaths
            }
            spec.resources = try ContainerSpecBuilder.resources(config.linux.resources)
            spec.mounts = config.mounts.map(ContainerSpecBuilder.volume)
            let identity = try await pod.createContainer(spec)
            var record = ContainerRecord(
                id: id, sandboxID: sandbox.id, configData: try config.serializedBytes(), process: process.pinned(to: identity),
                imageName: config.image.image, imageID: image.id.description, imageRef: image.repoDigests.first ?? image.id.description,
                logPath: logPath, state: .created, createdAt: Clock.nowNanoseconds(),
                resourcesData: try config.linux.resources.serializedBytes(),
                uid: Int64(identity.uid), gid: Int64(identity.gid), supplementalGroups: identity.groups.map(Int64.init))
            record.stopSignal = stopSignal
            do { try containers.put(record) } catch {
                try? await pod.removeContainer(id)
                throw error
            }
            log.debug("container \(id) (\(config.metadata.name)) created in sandbox \(sandbox.id) from \(image.id)")
            publish(.containerCreatedEvent, container: record)
            return id
        } catch {
            await images.stopUsing(image.id)
            throw error
        }
    }

    /// Mounts may not reach into the runtime's own state (VM sockets, other pods' files).
    func validate(_ mount: Runtime_V1_Mount) throws(PodvisorError) {
        try Validate.absolutePath(mount.containerPath, "mount container_path")
        guard !mount.hasImage else { throw PodvisorError(.unsupported, "image volumes are not supported yet") }
        // Where it resolves to is judged by the runtime, which owns the state it must not reach.
        try Validate.absolutePath(mount.hostPath, "mount host_path")
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
}

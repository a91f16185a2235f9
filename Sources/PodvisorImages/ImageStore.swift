import Foundation
import PodvisorCore

/// One image as the CRI image service presents it.
public struct ImageRecord: Codable, Sendable, Equatable {
    /// The config digest (CRI's image id).
    public var id: Digest
    /// `registry/repository:tag` for every tag pulled that names this image.
    public var repoTags: [String]
    /// `registry/repository@digest` (the digest of what the registry served for the reference: an index or a manifest).
    public var repoDigests: [String]
    /// The platform manifest and any indexes above it.
    public var manifests: [Digest]
    /// Layer blobs, base layer first.
    public var layers: [Digest]
    /// Bytes of content: manifest, config and compressed layers.
    public var size: Int64
    public var user: ImageUser?
    /// A pinned image is never removed by garbage collection or RemoveImage (CRI `pinned`).
    public var pinned = false
}

/// Progress of a pull, per blob: `done` of `total` bytes.
public struct PullProgress: Sendable {
    public var digest: Digest
    public var done: Int64
    public var total: Int64
}

/// Images under one root: `content/` (blobs by digest), `layers/` (unpacked layers) and `images/` (one JSON
/// record per image, written atomically). Pulls run concurrently; records are only changed on this actor.
public actor ImageStore {
    public nonisolated let root: String
    public nonisolated let content: ContentStore
    let layerStore: LayerStore
    let registry: RegistryClient
    private var images: [Digest: ImageRecord] = [:]
    /// Containers using each image (by id): such an image cannot be removed.
    private var users: [Digest: Int] = [:]
    /// Blobs and layers of pulls under way, counted: garbage collection must not take them.
    private var busy: [Digest: Int] = [:]

    public init(root: String, registry: RegistryClient = RegistryClient()) throws(PodvisorError) {
        self.root = root
        self.registry = registry
        content = try ContentStore(root: "\(root)/content")
        layerStore = try LayerStore(root: "\(root)/layers")
        try FileSystem.createDirectory("\(root)/images")
        for file in FileSystem.entries("\(root)/images") {
            let path = "\(root)/images/\(file)"
            guard file.hasSuffix(".json") else {
                try FileSystem.remove(path)  // a temporary of an interrupted write
                continue
            }
            do {
                let record = try JSONDecoder().decode(ImageRecord.self, from: try FileSystem.read(path))
                images[record.id] = record
            } catch {
                throw PodvisorError(.internalError, "corrupt image record \(path)", cause: error)
            }
        }
    }

    // MARK: pull

    /// Pulls `reference` (linux/amd64 from an index) and records it. Content already present is not fetched
    /// again: pulling an image that is fully present costs one manifest request.
    @discardableResult
    public func pull(
        _ text: String, credentials: RegistryCredentials? = nil, progress: (@Sendable (PullProgress) -> Void)? = nil
    ) async throws -> ImageRecord {
        let reference = try ImageReference(parsing: text)
        let source = ImageSource(
            manifest: { [registry] in try await registry.manifest(reference, reference: $0, credentials: credentials) },
            blob: { [registry] descriptor, writer, progress in
                try await registry.blob(reference, descriptor, credentials: credentials, into: writer, progress: progress)
            })
        return try await ingest(reference, from: source, progress: progress)
    }

    /// Imports the image tagged `tag` in an OCI image layout directory (what `umoci` and `skopeo copy
    /// oci:` write) under the name `name`: no registry involved. Blobs are verified like pulled ones.
    @discardableResult
    public func importLayout(_ layout: String, tag: String, as name: String) async throws -> ImageRecord {
        let reference = try ImageReference(parsing: name)
        let source = try ImageSource.layout(layout, tag: tag)
        return try await ingest(reference, from: source, progress: nil)
    }

    /// Fetches what is missing of an image from `source` (manifest, linux/amd64 from an index, config and
    /// layers, unpacked), then records it under `reference`.
    private func ingest(
        _ reference: ImageReference, from source: ImageSource, progress: (@Sendable (PullProgress) -> Void)?
    ) async throws -> ImageRecord {
        let top = try await source.manifest(reference.manifestReference)
        var held = [top.digest]
        hold(top.digest)
        defer { for digest in held { release(digest) } }
        try await content.write(top.data, digest: top.digest)

        var manifestData = top.data
        var manifests = [top.digest]
        var mediaType = top.mediaType
        if MediaType.indexes.contains(mediaType) {
            let index = try JSONDecoder.registryDocument(ManifestDocument.self, from: top.data, what: "index of \(reference)")
            let chosen = try Self.choose(.linuxAMD64, from: index.manifests ?? [], of: reference)
            held.append(chosen.digest)
            hold(chosen.digest)
            if content.contains(chosen.digest) {
                manifestData = try content.data(of: chosen.digest)
            } else {
                let child = try await source.manifest(chosen.digest.description)
                try await content.write(child.data, digest: chosen.digest)
                manifestData = child.data
            }
            manifests.append(chosen.digest)
            mediaType = chosen.mediaType
        }
        guard MediaType.manifests.contains(mediaType) else {
            throw PodvisorError(
                .unsupported, "\(reference) is a \(mediaType.isEmpty ? "document of no media type" : mediaType), not an image manifest")
        }
        let manifest = try JSONDecoder.registryDocument(ManifestDocument.self, from: manifestData, what: "manifest of \(reference)")
        guard let configDescriptor = manifest.config, let layers = manifest.layers else {
            throw PodvisorError(.invalidArgument, "manifest of \(reference) has no config or no layers")
        }
        for layer in layers where !MediaType.layers.contains(layer.mediaType) {
            throw PodvisorError(.unsupported, "layer \(layer.digest) of \(reference) has unsupported media type \(layer.mediaType)")
        }
        held.append(contentsOf: [configDescriptor.digest] + layers.map(\.digest))
        for digest in [configDescriptor.digest] + layers.map(\.digest) { hold(digest) }

        try await fetch(configDescriptor, from: source, progress: nil)
        let config = try JSONDecoder.registryDocument(
            ImageConfiguration.self, from: try content.data(of: configDescriptor.digest), what: "config of \(reference)")
        guard config.rootfs.diff_ids.count == layers.count else {
            throw PodvisorError(.invalidArgument, "config of \(reference) lists \(config.rootfs.diff_ids.count) layers, its manifest \(layers.count)")
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for layer in layers {
                group.addTask {
                    if self.layerStore.contains(layer.digest) { return }
                    try await self.fetch(layer, from: source, progress: progress)
                    try await self.layerStore.unpack(layer.digest, archive: self.content.path(of: layer.digest))
                }
            }
            try await group.waitForAll()
        }

        let size = Int64(manifestData.count) + configDescriptor.size + layers.reduce(0) { $0 + $1.size }
        return try record(
            reference, topDigest: top.digest,
            ImageRecord(
                id: configDescriptor.digest, repoTags: [], repoDigests: [], manifests: manifests,
                layers: layers.map(\.digest), size: size, user: ImageUser(configUser: config.config?.User)))
    }

    private nonisolated func fetch(
        _ descriptor: Descriptor, from source: ImageSource, progress: (@Sendable (PullProgress) -> Void)?
    ) async throws {
        try await content.fetch(descriptor.digest, size: descriptor.size) { writer in
            try await source.blob(descriptor, writer) { done in
                progress?(PullProgress(digest: descriptor.digest, done: done, total: descriptor.size))
            }
        }
    }

    /// The entry of an index for `platform`; a variant is not required to match.
    static func choose(_ platform: Platform, from entries: [Descriptor], of reference: ImageReference) throws(PodvisorError) -> Descriptor {
        guard let entry = entries.first(where: { $0.platform?.os == platform.os && $0.platform?.architecture == platform.architecture }) else {
            let offered = entries.compactMap { $0.platform.map { "\($0.os)/\($0.architecture)" } }.joined(separator: ", ")
            throw PodvisorError(.notFound, "\(reference) has no \(platform.os)/\(platform.architecture) image (offers: \(offered))")
        }
        return entry
    }

    /// Adds the names `reference` gives to the image: a tag moves here from any image that had it.
    private func record(_ reference: ImageReference, topDigest: Digest, _ pulled: ImageRecord) throws(PodvisorError) -> ImageRecord {
        var image = images[pulled.id] ?? pulled
        image.manifests = Array(Set(image.manifests).union(pulled.manifests)).sorted()
        if let tag = reference.tag {
            let name = "\(reference.name):\(tag)"
            for var other in images.values where other.id != image.id && other.repoTags.contains(name) {
                other.repoTags.removeAll { $0 == name }
                try save(other)
            }
            if !image.repoTags.contains(name) { image.repoTags.append(name) }
        }
        let repoDigest = "\(reference.name)@\(topDigest)"
        if !image.repoDigests.contains(repoDigest) { image.repoDigests.append(repoDigest) }
        try save(image)
        return image
    }

    private func save(_ image: ImageRecord) throws(PodvisorError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data: Data
        do { data = try encoder.encode(image) } catch { throw PodvisorError(.internalError, "cannot encode image \(image.id)", cause: error) }
        try AtomicFile.write(data, to: recordPath(image.id), mode: 0o644)
        images[image.id] = image
    }

    private func recordPath(_ id: Digest) -> String { "\(root)/images/\(id.hex).json" }

    private func hold(_ digest: Digest) { busy[digest, default: 0] += 1 }

    private func release(_ digest: Digest) {
        busy[digest, default: 1] -= 1
        if busy[digest] == 0 { busy[digest] = nil }
    }

    // MARK: queries

    public func list() -> [ImageRecord] { images.values.sorted { $0.id < $1.id } }

    /// The image that `name` names: its id (`sha256:…`, the hex, or a unique hex prefix of at least 12
    /// characters), a repo tag or a repo digest, in any form a reference may take (`busybox` included).
    public func image(_ name: String) -> ImageRecord? {
        let hex = name.hasPrefix("sha256:") ? String(name.dropFirst(7)) : name
        if hex.count >= 12, hex.allSatisfy(\.isHexDigit) {
            let matches = images.values.filter { $0.id.hex.hasPrefix(hex) }
            if matches.count == 1 { return matches[0] }
        }
        guard let reference = try? ImageReference(parsing: name) else { return nil }
        let forms = [reference.description] + (reference.digest.map { ["\(reference.name)@\($0)"] } ?? [])
        return images.values.first { image in
            forms.contains { image.repoTags.contains($0) || image.repoDigests.contains($0) }
        }
    }

    /// The image's config (entrypoint, cmd, env, working directory, user), read from its blob.
    public nonisolated func configuration(_ id: Digest) throws(PodvisorError) -> ImageConfiguration {
        try JSONDecoder.registryDocument(ImageConfiguration.self, from: try content.data(of: id), what: "image config \(id)")
    }

    /// Layer directories of an image, top layer first: overlayfs `lowerdir` order.
    public func lowerDirectories(_ id: Digest) throws(PodvisorError) -> [String] {
        guard let image = images[id] else { throw PodvisorError(.notFound, "image \(id) not found") }
        return image.layers.reversed().map { layerStore.path(of: $0) }
    }

    // MARK: use, removal, garbage collection

    /// A container starts using the image: it cannot be removed until `stopUsing`.
    public func startUsing(_ id: Digest) throws(PodvisorError) {
        guard images[id] != nil else { throw PodvisorError(.notFound, "image \(id) not found") }
        users[id, default: 0] += 1
    }

    public func stopUsing(_ id: Digest) {
        users[id, default: 1] -= 1
        if users[id] == 0 { users[id] = nil }
    }

    public func setPinned(_ id: Digest, _ pinned: Bool) throws(PodvisorError) {
        guard var image = images[id] else { throw PodvisorError(.notFound, "image \(id) not found") }
        image.pinned = pinned
        try save(image)
    }

    /// Removes the image that `name` names, with all its tags, then the content no image references any more.
    /// Refused while a container uses it or it is pinned.
    public func remove(_ name: String) async throws {
        guard let image = image(name) else { throw PodvisorError(.notFound, "image \(name) not found") }
        guard users[image.id] == nil else {
            throw PodvisorError(.failedPrecondition, "image \(image.id) is in use by \(users[image.id]!) container(s)")
        }
        guard !image.pinned else { throw PodvisorError(.failedPrecondition, "image \(image.id) is pinned") }
        try FileSystem.remove(recordPath(image.id))
        images[image.id] = nil
        try await garbageCollect()
    }

    /// Deletes blobs and unpacked layers that no image record references and no pull under way needs.
    @discardableResult
    public func garbageCollect() async throws -> (blobs: Int, layers: Int) {
        var referenced = Set(busy.keys)
        for image in images.values {
            referenced.formUnion(image.manifests)
            referenced.insert(image.id)
            referenced.formUnion(image.layers)
        }
        // `busy` is read again at each step: a pull may start while a deletion is awaited.
        var removedBlobs = 0
        for digest in content.digests() where !referenced.contains(digest) && busy[digest] == nil {
            try await content.delete(digest)
            removedBlobs += 1
        }
        var removedLayers = 0
        for layer in layerStore.layers() where !referenced.contains(layer) && busy[layer] == nil {
            try await layerStore.delete(layer)
            removedLayers += 1
        }
        return (removedBlobs, removedLayers)
    }

    /// Bytes and inodes used under the root (CRI ImageFsInfo); hard-linked files count once.
    public nonisolated func usage() -> (bytes: Int64, inodes: Int64) {
        var seen = Set<[UInt64]>()
        var bytes: Int64 = 0
        func visit(_ path: String) {
            var info = stat()
            guard lstat(path, &info) == 0, seen.insert([UInt64(info.st_dev), UInt64(info.st_ino)]).inserted else { return }
            bytes += Int64(info.st_blocks) * 512
            guard info.st_mode & S_IFMT == S_IFDIR else { return }
            for entry in FileSystem.entries(path) { visit("\(path)/\(entry)") }
        }
        visit(root)
        return (bytes, Int64(seen.count))
    }
}

import Foundation
import PodvisorCore

/// Where an image's documents and blobs come from: a registry (pull) or an OCI image layout on disk
/// (import). The store verifies everything either gives it against the digests.
struct ImageSource: Sendable {
    /// The manifest or index that a tag or a digest string names.
    let manifest: @Sendable (_ reference: String) async throws -> RegistryClient.Manifest
    /// Streams a blob into the writer, reporting bytes written.
    let blob: @Sendable (_ descriptor: Descriptor, _ writer: BlobWriter, _ progress: (@Sendable (Int64) -> Void)?) async throws -> Void

    /// An OCI image layout: `index.json` names manifests by `org.opencontainers.image.ref.name`, blobs lie
    /// under `blobs/sha256/`. `tag` is the name looked up for the image's own reference.
    static func layout(_ directory: String, tag: String) throws(PodvisorError) -> ImageSource {
        let indexPath = "\(directory)/index.json"
        guard let indexData = readFile(indexPath) else {
            throw PodvisorError(.notFound, "\(directory) is not an OCI image layout (no index.json)")
        }
        let index = try JSONDecoder.registryDocument(LayoutIndex.self, from: indexData, what: indexPath)
        @Sendable func blobPath(_ digest: Digest) -> String { "\(directory)/blobs/sha256/\(digest.hex)" }
        return ImageSource(
            manifest: { reference in
                let descriptor: LayoutIndex.Entry
                if reference.hasPrefix("sha256:") {
                    let digest = try Digest(parsing: reference)
                    descriptor = LayoutIndex.Entry(mediaType: nil, digest: digest, annotations: nil)
                } else {
                    guard let entry = index.manifests.first(where: { $0.annotations?["org.opencontainers.image.ref.name"] == tag }) else {
                        let tags = index.manifests.compactMap { $0.annotations?["org.opencontainers.image.ref.name"] }
                        throw PodvisorError(.notFound, "\(directory) has no image tagged \(tag) (it has: \(tags.joined(separator: ", ")))")
                    }
                    descriptor = entry
                }
                guard let data = readFile(blobPath(descriptor.digest)) else {
                    throw PodvisorError(.notFound, "\(directory) lacks blob \(descriptor.digest)")
                }
                let declared = (try? JSONDecoder().decode(ManifestDocument.self, from: data))?.mediaType
                return RegistryClient.Manifest(
                    data: data, digest: Digest.sha256(of: data), mediaType: descriptor.mediaType ?? declared ?? MediaType.ociManifest)
            },
            blob: { descriptor, writer, progress in
                guard let handle = FileHandle(forReadingAtPath: blobPath(descriptor.digest)) else {
                    throw PodvisorError(.notFound, "\(directory) lacks blob \(descriptor.digest)")
                }
                defer { try? handle.close() }
                try writer.restart()
                while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty {
                    try chunk.withUnsafeBytes { try writer.write($0) }
                    progress?(writer.written)
                }
            })
    }

    private struct LayoutIndex: Decodable {
        struct Entry: Decodable {
            var mediaType: String?
            var digest: Digest
            var annotations: [String: String]?
        }
        var manifests: [Entry]
    }
}

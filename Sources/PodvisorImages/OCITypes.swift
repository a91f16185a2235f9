import Foundation
import PodvisorCore

/// The media types of image-spec and of Docker's schema 2, which registries still serve for most images.
public enum MediaType {
    public static let ociIndex = "application/vnd.oci.image.index.v1+json"
    public static let ociManifest = "application/vnd.oci.image.manifest.v1+json"
    public static let dockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
    public static let dockerManifest = "application/vnd.docker.distribution.manifest.v2+json"

    static let indexes: Set = [ociIndex, dockerManifestList]
    static let manifests: Set = [ociManifest, dockerManifest]
    /// Layers we can unpack: plain, gzip or zstd tar.
    static let layers: Set = [
        "application/vnd.oci.image.layer.v1.tar",
        "application/vnd.oci.image.layer.v1.tar+gzip",
        "application/vnd.oci.image.layer.v1.tar+zstd",
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
    ]
}

public struct Platform: Codable, Sendable, Hashable {
    public var os: String
    public var architecture: String
    public var variant: String?

    public init(os: String, architecture: String, variant: String? = nil) {
        self.os = os
        self.architecture = architecture
        self.variant = variant
    }

    /// podvisor's VMs are x86-64 Linux.
    public static let linuxAMD64 = Platform(os: "linux", architecture: "amd64")
}

public struct Descriptor: Codable, Sendable, Hashable {
    public var mediaType: String
    public var digest: Digest
    public var size: Int64
    public var platform: Platform?
}

/// An image manifest or an index; registries return either for a tag, told apart by media type.
struct ManifestDocument: Codable {
    var schemaVersion: Int?
    var mediaType: String?
    var config: Descriptor?
    var layers: [Descriptor]?
    var manifests: [Descriptor]?
}

/// The parts of an image configuration that containers need.
public struct ImageConfiguration: Codable, Sendable {
    public struct Config: Codable, Sendable {
        public var User: String?
        public var Env: [String]?
        public var Entrypoint: [String]?
        public var Cmd: [String]?
        public var WorkingDir: String?
        /// The signal that stops a container of this image ("SIGQUIT", "3"); SIGTERM when absent.
        public var StopSignal: String?
    }

    public struct RootFS: Codable, Sendable {
        public var type: String
        public var diff_ids: [Digest]
    }

    public var architecture: String?
    public var os: String?
    public var config: Config?
    public var rootfs: RootFS
}

/// How a config's `User` is presented to the kubelet: CRI's `Image.uid` when the user part is numeric, else
/// `Image.username`. The group part (`1003:1004`, `www-data:1004`) does not change either.
public enum ImageUser: Codable, Sendable, Equatable {
    case uid(Int64)
    case name(String)

    /// nil for an empty or missing `User` (the image runs as root by default).
    public init?(configUser: String?) {
        guard let user = configUser?.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).first,
            !user.isEmpty
        else { return nil }
        if let uid = Int64(user), uid >= 0 { self = .uid(uid) } else { self = .name(String(user)) }
    }

    /// Stored as a number or a string, as in the config.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let uid = try? container.decode(Int64.self) { self = .uid(uid) } else { self = .name(try container.decode(String.self)) }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .uid(let uid): try container.encode(uid)
        case .name(let name): try container.encode(name)
        }
    }
}

extension JSONDecoder {
    /// Decodes registry JSON, turning a decoding failure into a clear error that names what was read.
    static func registryDocument<T: Decodable>(_ type: T.Type, from data: Data, what: String) throws(PodvisorError) -> T {
        do { return try JSONDecoder().decode(type, from: data) } catch {
            throw PodvisorError(.invalidArgument, "malformed \(what)", cause: error)
        }
    }
}

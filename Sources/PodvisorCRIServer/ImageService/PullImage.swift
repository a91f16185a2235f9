import GRPCCore
import PodvisorCRI
import PodvisorCore
import PodvisorImages
import Synchronization

extension ImageService {
    /// Pulls linux/amd64 of the reference (mirrors from hosts.toml first); answers the image id. For a host
    /// pod (its sandbox config asks for the host's namespaces) containerd pulls it too, with the same auth:
    /// that is where its containers will need it.
    public func pullImage(request: Runtime_V1_PullImageRequest, context: ServerContext) async throws -> Runtime_V1_PullImageResponse {
        try await handle {
            try Validate.required(request.image.image, "image.image")
            let auth = request.auth
            if !auth.identityToken.isEmpty && auth.registryToken.isEmpty && auth.username.isEmpty && auth.auth.isEmpty {
                throw PodvisorError(.unsupported, "identity_token authentication (OAuth2 refresh tokens) is not supported yet")
            }
            let credentials = RegistryCredentials(
                username: auth.username, password: auth.password, auth: auth.auth, registryToken: auth.registryToken)
            let id = try await server.pull(request.image.image, credentials: credentials)
            if let hostPods = server.hostPods, request.hasSandboxConfig, hostPods.wants(request.sandboxConfig, handler: "") {
                do { _ = try await hostPods.images.pullImage(request) } catch let error as RPCError where error.code == .unavailable {
                    throw hostPods.unavailable(error)
                }
            }
            return .with { $0.imageRef = id.description }
        }
    }
}

extension CRIServer {
    /// PullImage's work, with progress for a caller in this process (the CLI's `run` draws bars; the
    /// CRI has no progress messages).
    public func pull(
        _ reference: String, credentials: RegistryCredentials? = nil, progress: (@Sendable (PullProgress) -> Void)? = nil
    ) async throws -> Digest {
        // Bytes that came over the network (blobs already present cost none), for the metrics.
        let downloaded = Mutex<[Digest: Int64]>([:])
        do {
            let record = try await images.pull(reference, credentials: credentials) { step in
                downloaded.withLock { $0[step.digest] = step.done }
                progress?(step)
            }
            CRIMetrics.imagePulled(bytes: downloaded.withLock { $0.values.reduce(0, +) }, failed: false)
            log.info("pulled \(reference) as \(record.id)")
            return record.id
        } catch {
            CRIMetrics.imagePulled(bytes: downloaded.withLock { $0.values.reduce(0, +) }, failed: true)
            throw error
        }
    }
}

import GRPCCore
import PodvisorCRI
import PodvisorCore
import PodvisorImages

extension ImageService {
    /// Pulls linux/amd64 of the reference (mirrors from hosts.toml first); answers the image id.
    public func pullImage(request: Runtime_V1_PullImageRequest, context: ServerContext) async throws -> Runtime_V1_PullImageResponse {
        try await handle {
            try Validate.required(request.image.image, "image.image")
            let auth = request.auth
            if !auth.identityToken.isEmpty && auth.registryToken.isEmpty && auth.username.isEmpty && auth.auth.isEmpty {
                throw PodvisorError(.unsupported, "identity_token authentication (OAuth2 refresh tokens) is not supported yet")
            }
            let credentials = RegistryCredentials(
                username: auth.username, password: auth.password, auth: auth.auth, registryToken: auth.registryToken)
            let record = try await server.images.pull(request.image.image, credentials: credentials)
            server.log.info("pulled \(request.image.image) as \(record.id)")
            return .with { $0.imageRef = record.id.description }
        }
    }
}

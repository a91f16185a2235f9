import GRPCCore
import PodvisorCRI
import PodvisorCore

extension ImageService {
    /// An image that is not present is an empty answer, not an error (kubelet then pulls it).
    public func imageStatus(request: Runtime_V1_ImageStatusRequest, context: ServerContext) async throws -> Runtime_V1_ImageStatusResponse {
        try await handle {
            try Validate.required(request.image.image, "image.image")
            guard let record = await server.images.image(request.image.image) else {
                // Only containerd may have it (a host pod's image pulled there).
                return await server.fromHostPods("ImageStatus") { try await $0.images.imageStatus(request) } ?? Runtime_V1_ImageStatusResponse()
            }
            return .with {
                $0.image = server.image(record)
                if request.verbose {
                    let config = try? server.images.configuration(record.id).config
                    $0.info = CRIServer.verboseInfo([
                        "layers": record.layers.map(\.description), "manifests": record.manifests.map(\.description),
                        "config": [
                            "Entrypoint": config?.Entrypoint ?? [], "Cmd": config?.Cmd ?? [], "Env": config?.Env ?? [],
                            "User": config?.User ?? "", "WorkingDir": config?.WorkingDir ?? "",
                        ],
                    ])
                }
            }
        }
    }
}

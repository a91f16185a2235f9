import GRPCCore
import PodvisorCRI
import PodvisorCore

extension ImageService {
    /// Removes the image with all its tags. Idempotent; refused while a container uses it or it is pinned.
    public func removeImage(request: Runtime_V1_RemoveImageRequest, context: ServerContext) async throws -> Runtime_V1_RemoveImageResponse {
        try await handle {
            try Validate.required(request.image.image, "image.image")
            do { try await server.images.remove(request.image.image) } catch let error as PodvisorError where error.code == .notFound {}
            _ = await server.fromHostPods("RemoveImage") { try await $0.images.removeImage(request) }
            return Runtime_V1_RemoveImageResponse()
        }
    }
}

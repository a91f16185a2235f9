import GRPCCore
import PodvisorCRI

extension ImageService {
    public func listImages(request: Runtime_V1_ListImagesRequest, context: ServerContext) async throws -> Runtime_V1_ListImagesResponse {
        let images = await server.imageList(request.filter)
        return .with { $0.images = images }
    }

    public func streamImages(
        request: Runtime_V1_StreamImagesRequest, response: RPCWriter<Runtime_V1_StreamImagesResponse>, context: ServerContext
    ) async throws {
        for page in await server.imageList(request.filter).pages() {
            try await response.write(.with { $0.images = page })
        }
    }
}

extension CRIServer {
    /// All images, or the one the filter's image names (by id, tag or digest); containerd's (host pods')
    /// too, an image both hold listed once.
    func imageList(_ filter: Runtime_V1_ImageFilter) async -> [Runtime_V1_Image] {
        let name = filter.image.image
        let local = name.isEmpty ? await images.list().map(image) : await images.image(name).map { [image($0)] } ?? []
        let ids = Set(local.map(\.id))
        let host = await fromHostPods("ListImages") { try await $0.images.listImages(.with { $0.filter = filter }).images } ?? []
        return local + host.filter { !ids.contains($0.id) }
    }
}

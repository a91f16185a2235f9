import GRPCCore
import PodvisorCRI

extension ImageService {
    /// Usage of the image store and of the containers' writable layers (kubelet's image GC and eviction).
    public func imageFsInfo(request: Runtime_V1_ImageFsInfoRequest, context: ServerContext) async throws -> Runtime_V1_ImageFsInfoResponse {
        let now = Clock.nowNanoseconds()
        let images = server.images.usage()
        let containersDirectory = server.runtime.writableLayersRoot
        let containers = directoryUsage(containersDirectory)
        let host = await server.fromHostPods("ImageFsInfo") { try await $0.images.imageFsInfo(request) }
        return .with {
            $0.imageFilesystems = [
                .with {
                    $0.timestamp = now
                    $0.fsID = .with { $0.mountpoint = server.images.root }
                    $0.usedBytes = .with { $0.value = UInt64(max(0, images.bytes)) }
                    $0.inodesUsed = .with { $0.value = UInt64(max(0, images.inodes)) }
                }
            ]
            $0.containerFilesystems = [
                .with {
                    $0.timestamp = now
                    $0.fsID = .with { $0.mountpoint = containersDirectory }
                    $0.usedBytes = .with { $0.value = containers.bytes }
                    $0.inodesUsed = .with { $0.value = containers.inodes }
                }
            ]
            $0.imageFilesystems += host?.imageFilesystems ?? []
            $0.containerFilesystems += host?.containerFilesystems ?? []
        }
    }
}

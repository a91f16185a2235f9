import GRPCCore
import PodvisorCRI
import PodvisorImages

/// runtime.v1.ImageService over the image store; one file per RPC in this folder.
public struct ImageService: Runtime_V1_ImageService.SimpleServiceProtocol {
    let server: CRIServer
}

extension CRIServer {
    func image(_ record: ImageRecord) -> Runtime_V1_Image {
        .with {
            $0.id = record.id.description
            $0.repoTags = record.repoTags
            $0.repoDigests = record.repoDigests
            $0.size = UInt64(max(0, record.size))
            switch record.user {
            case .uid(let uid): $0.uid = .with { $0.value = uid }
            case .name(let name): $0.username = name
            case nil: break
            }
            $0.spec = .with { $0.image = record.id.description }
            $0.pinned = record.pinned
        }
    }
}

import GRPCCore
import PodvisorCRI

extension RuntimeService {
    public func version(request: Runtime_V1_VersionRequest, context: ServerContext) async throws -> Runtime_V1_VersionResponse {
        .with {
            // The kubelet API version this runtime speaks; the only one it checks is "v1" below.
            $0.version = "0.1.0"
            $0.runtimeName = CRIServer.runtimeName
            $0.runtimeVersion = CRIServer.runtimeVersion
            $0.runtimeApiVersion = "v1"
        }
    }
}

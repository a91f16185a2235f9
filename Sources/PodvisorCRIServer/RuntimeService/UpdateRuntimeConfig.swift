import GRPCCore
import PodvisorCRI

extension RuntimeService {
    /// kubelet passes the node's pod CIDR; kept and reported in verbose Status until pod networking uses it.
    public func updateRuntimeConfig(
        request: Runtime_V1_UpdateRuntimeConfigRequest, context: ServerContext
    ) async throws
        -> Runtime_V1_UpdateRuntimeConfigResponse
    {
        server.podCIDR.withLock { $0 = request.runtimeConfig.networkConfig.podCidr }
        return Runtime_V1_UpdateRuntimeConfigResponse()
    }
}

import GRPCCore
import PodvisorCRI

extension RuntimeService {
    /// kubelet passes the node's pod CIDR: kept and reported in verbose Status (the CNI configuration
    /// decides addresses), and passed on to containerd for host pods.
    public func updateRuntimeConfig(
        request: Runtime_V1_UpdateRuntimeConfigRequest, context: ServerContext
    ) async throws
        -> Runtime_V1_UpdateRuntimeConfigResponse
    {
        server.podCIDR.withLock { $0 = request.runtimeConfig.networkConfig.podCidr }
        _ = await server.fromHostPods("UpdateRuntimeConfig") { try await $0.runtime.updateRuntimeConfig(request) }
        return Runtime_V1_UpdateRuntimeConfigResponse()
    }
}

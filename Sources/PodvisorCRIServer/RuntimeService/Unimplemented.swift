import GRPCCore
import PodvisorCRI

/// Checkpoints come with their own issue; until then kubelet gets Unimplemented with the reason.
extension RuntimeService {
    public func checkpointContainer(
        request: Runtime_V1_CheckpointContainerRequest, context: ServerContext
    ) async throws
        -> Runtime_V1_CheckpointContainerResponse
    {
        throw RPCError(code: .unimplemented, message: "CheckpointContainer is not implemented")
    }
}

extension RuntimeService {
    /// kubelet tolerates Unimplemented here (in-place pod resize then relies on container-level updates).
    public func updatePodSandboxResources(
        request: Runtime_V1_UpdatePodSandboxResourcesRequest, context: ServerContext
    ) async throws
        -> Runtime_V1_UpdatePodSandboxResourcesResponse
    {
        throw RPCError(code: .unimplemented, message: "a pod VM's memory and vCPUs are fixed at boot; UpdateContainerResources works")
    }
}

import GRPCCore
import PodvisorCRI

extension RuntimeService {
    /// Containers' cgroups live inside each pod VM; the host cgroup layout kubelet manages is cgroupfs-like.
    public func runtimeConfig(request: Runtime_V1_RuntimeConfigRequest, context: ServerContext) async throws -> Runtime_V1_RuntimeConfigResponse {
        .with { $0.linux = .with { $0.cgroupDriver = .cgroupfs } }
    }
}

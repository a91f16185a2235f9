import PodvisorAgentProtocol
import PodvisorCore

extension AgentClient {
    /// The guest's network from the pod's CNI interface: NICs found by MAC, renamed, addressed, routed.
    public func configureNetwork(_ request: Podvisor_Agent_V1_ConfigureNetworkRequest) async throws(PodvisorError) {
        let _: Podvisor_Agent_V1_Empty = try await call("ConfigureNetwork", request)
    }
}

import PodvisorAgentProtocol
import PodvisorCore

/// Typed calls of the agent's network configuration (podvisor.agent.v1 ConfigureNetwork).
extension AgentClient {
    /// Gives the guest the pod's network from its CNI result: each interface (found by MAC) renamed, sized,
    /// addressed and up, then the routes. Once after boot, before containers; a malformed request
    /// (MAC, name, CIDR) fails `.invalidArgument` with nothing changed.
    public func configureNetwork(_ request: Podvisor_Agent_V1_ConfigureNetworkRequest) async throws(PodvisorError) {
        _ = try await call(.configureNetwork, request)
    }
}

import Foundation
import PodvisorAgentProtocol
import PodvisorCore

/// Typed calls of the agent's port forwarding (podvisor.agent.v1 Port*).
extension AgentClient {
    /// Connects the agent to a port of the pod; answers the connection's id.
    public func portConnect(_ port: UInt32) async throws(PodvisorError) -> String {
        let response = try await call(.portConnect, Podvisor_Agent_V1_PortConnectRequest.with { $0.port = port })
        return response.connectionID
    }

    /// What the pod's side sent next; nil once it closed.
    public func portRead(_ connection: String) async throws(PodvisorError) -> Data? {
        let request = Podvisor_Agent_V1_PortReadRequest.with {
            $0.connectionID = connection
            $0.maxBytes = 65536
        }
        let response = try await call(.portRead, request, timeout: .seconds(365 * 24 * 3600))
        return response.eof ? nil : response.data
    }

    public func portWrite(_ connection: String, _ data: Data, closeWrite: Bool = false) async throws(PodvisorError) {
        let request = Podvisor_Agent_V1_PortWriteRequest.with {
            $0.connectionID = connection
            $0.data = data
            $0.closeWrite = closeWrite
        }
        _ = try await call(.portWrite, request)
    }

    public func portClose(_ connection: String) async throws(PodvisorError) {
        _ = try await call(.portClose, Podvisor_Agent_V1_PortCloseRequest.with { $0.connectionID = connection })
    }
}

import SwiftProtobuf

/// One method of the agent's ttrpc service with its request and response types. The client's `call` and
/// the server's `Builder.add` both take one, so host and guest cannot disagree on a method's name or
/// messages: a mismatch does not compile. Every method is declared once, in `Generated/AgentMethods.swift`,
/// from agent.proto's rpc lines (`Proto/generate.sh`); use them as `.version`, `.createContainer`, ….
public struct AgentMethod<Request: Message, Response: Message>: Sendable {
    /// The rpc's name in agent.proto, as ttrpc requests carry it.
    public let name: String

    // Internal: methods exist only as declared from the proto (tests declare their own through @testable).
    init(_ name: String) {
        self.name = name
    }

    /// `service/method`: what the server routes a request by.
    var path: String { "\(AgentAPI.service)/\(name)" }
}

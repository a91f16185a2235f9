import Foundation
import Testing

@testable import PodvisorAgentProtocol

/// Generated/AgentMethods.swift must match agent.proto: an rpc added without running generate.sh would
/// exist on neither side.
@Suite struct AgentMethodsTests {
    static let sources = URL(filePath: #filePath).deletingLastPathComponent().appending(path: "../../Sources/PodvisorAgentProtocol")

    @Test func everyRpcHasItsTypedMethod() throws {
        let proto = try String(contentsOf: Self.sources.appending(path: "Proto/agent.proto"), encoding: .utf8)
        let generated = try String(contentsOf: Self.sources.appending(path: "Generated/AgentMethods.swift"), encoding: .utf8)
        let rpcs = proto.matches(of: /rpc (\w+)\((\w+)\) returns \((\w+)\);/)
        #expect(rpcs.count > 20)
        for rpc in rpcs {
            let (name, request, response) = (rpc.output.1, rpc.output.2, rpc.output.3)
            let declaration = "extension AgentMethod where Request == Podvisor_Agent_V1_\(request), Response == Podvisor_Agent_V1_\(response) {"
            let declared = generated.split(separator: "\n\n").contains { $0.hasPrefix(declaration) && $0.contains("Self(\"\(name)\")") }
            #expect(declared, "rpc \(name) has no up-to-date AgentMethod: run Proto/generate.sh")
        }
        #expect(generated.matches(of: /Self\("\w+"\)/).count == rpcs.count)
    }

    @Test func methodsRouteByServiceAndName() {
        #expect(AgentMethod.createContainer.name == "CreateContainer")
        #expect(AgentMethod.version.path == "podvisor.agent.v1.Agent/Version")
    }
}

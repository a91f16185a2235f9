import Foundation
import PodvisorAgentClient
import PodvisorAgentProtocol
import PodvisorCore
import PodvisorRuntime
import Testing

/// A pod's containers share the sandbox's PID, IPC and UTS namespaces (one VM of its own: the sandbox is
/// created once per VM and changes what every later container sees).
@Suite(.serialized) struct SandboxTests {
    @Test func podContainersShareTheSandboxNamespaces() async throws {
        let pod = try await TestHost.host().boot(id: TestHost.uniqueID("s"), transport: .hybridVsock)
        defer { try? pod.destroy() }
        let rootfs = try BusyboxRootfs.make(at: "/tmp/podvisor-test/busybox-rootfs")
        let agent = pod.agent
        try await agent.createSandbox(hostname: "pod-x", sysctls: ["kernel.shmmax": "222222"])
        await #expect { try await agent.createSandbox(hostname: "again") } throws: { ($0 as? PodvisorError)?.code == .alreadyExists }

        func create(_ id: String, _ args: [String], ownPID: Bool, hostname: String = "") async throws(PodvisorError) {
            let relative = try pod.mountRootfs(containerID: id, from: rootfs)
            try await agent.createContainer(
                .with {
                    $0.containerID = id
                    $0.rootfs = relative
                    $0.ownPidNamespace = ownPID
                    $0.hostname = hostname
                    $0.process.args = args
                    $0.process.env = ["PATH=/bin"]
                })
        }
        func output(_ id: String) async throws -> String {
            try await agent.startContainer(id)
            let text = String(decoding: try await agent.readAllOutput(AgentClient.process(id)), as: UTF8.self)
            _ = try await agent.wait(AgentClient.process(id))
            return text
        }

        try await create("app", ["sleep", "600"], ownPID: false)
        try await agent.startContainer("app")
        let probe = "hostname; cat /proc/sys/kernel/shmmax; cat /proc/1/comm; ps -o comm | grep -c sleep"
        try await create("shared", ["sh", "-c", probe], ownPID: false)
        // PID 1 is the sandbox's reaper (a fork of the agent, whose binary was /init); the other container's
        // sleep is visible. A container with its own PID namespace is its own PID 1 and sees no sleep.
        let shared = try await output("shared")
        #expect(shared == "pod-x\n222222\ninit\n1\n")
        try await create("alone", ["sh", "-c", probe], ownPID: true)
        let alone = try await output("alone")
        #expect(alone == "pod-x\n222222\nsh\n0\n")
        await #expect { try await create("named", ["true"], ownPID: false, hostname: "mine") } throws: {
            ($0 as? PodvisorError)?.code == .failedPrecondition
        }
        // Like Kubernetes' pause, the sandbox's PID 1 ends on SIGTERM (the agent's power-off sends it to every
        // process, and a namespace's init ignores signals it has no handler for); every process of its PID
        // namespace goes with it. Last: no container can join the pod's PID namespace afterwards.
        try await create("last", ["sh", "-c", "kill -TERM 1; sleep 30; echo survived"], ownPID: false)
        #expect(try await output("last") == "")
        #expect(try await agent.wait(AgentClient.process("last")).signal == SIGKILL)
        for id in ["app", "shared", "alone", "last"] {
            try await agent.removeContainer(id)
            try pod.unmountContainer(containerID: id)
        }
    }
}

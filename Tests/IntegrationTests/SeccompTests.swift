import PodvisorAgentClient
import PodvisorAgentProtocol
import PodvisorCore
import PodvisorRuntime
import Testing

/// Seccomp profiles of container processes: cases of ContainerTests, so they share its one VM.
extension ContainerTests {
    static func localhost(_ json: String) -> Podvisor_Agent_V1_Seccomp {
        .with {
            $0.kind = .localhost
            $0.localhostProfileJson = json
        }
    }

    @Test func runtimeDefaultSeccompBlocksWhatUnconfinedAllows() async throws {
        // A user namespace needs no capability, but RuntimeDefault allows unshare only to CAP_SYS_ADMIN.
        let probe = ["unshare", "-U", "echo", "inside"]
        let unconfined = try await run(probe) { $0.process.capabilities.names = ProcessSpec.defaultCapabilities }
        #expect(unconfined.stdout == "inside\n", "stderr: \(unconfined.stderr)")
        let confined = try await run(probe) {
            $0.process.capabilities.names = ProcessSpec.defaultCapabilities
            $0.process.seccomp.kind = .runtimeDefault
        }
        #expect(confined.exitCode != 0)
        #expect(confined.stderr.contains("Operation not permitted"), "stderr: \(confined.stderr)")
        // Holding CAP_SYS_ADMIN (here: every capability) opens it again, as in containerd's profile.
        let admin = try await run(probe) { $0.process.seccomp.kind = .runtimeDefault }
        #expect(admin.stdout == "inside\n", "stderr: \(admin.stderr)")
    }

    /// vsock ports are not namespaced: an Unconfined container can open vsock sockets, but the agent takes
    /// calls from the host's CID only.
    @Test func containersCannotCallTheAgentOverVsock() async throws {
        let probe = try await run(["vsockdial"]) { $0.process.capabilities.names = ProcessSpec.defaultCapabilities }
        let lines = probe.stdout.split(separator: "\n")
        #expect(lines.count == 2 && lines.allSatisfy { $0 == "closed" || $0.hasPrefix("refused") }, "\(probe.stdout) \(probe.stderr)")
    }

    @Test func runtimeDefaultSeccompRunsOrdinaryPrograms() async throws {
        let probe = ["sh", "-c", "echo ok; ls / >/dev/null && grep 'Seccomp:' /proc/self/status"]
        // Without no_new_privs the filter is loaded while the process is still root with every capability, with
        // it last, just before exec.
        let root = try await run(probe) {
            $0.process.capabilities.names = ProcessSpec.defaultCapabilities
            $0.process.seccomp.kind = .runtimeDefault
        }
        #expect(root.stdout == "ok\nSeccomp:\t2\n", "stderr: \(root.stderr)")
        let user = try await run(probe) {
            $0.process.username = "app"
            $0.process.noNewPrivileges = true
            $0.process.capabilities.names = []
            $0.process.seccomp.kind = .runtimeDefault
        }
        #expect(user.stdout == "ok\nSeccomp:\t2\n", "stderr: \(user.stderr)")
        // Kubernetes' runAsUser without allowPrivilegeEscalation: false, a user without no_new_privs.
        let escalatable = try await run(probe) {
            $0.process.username = "app"
            $0.process.capabilities.names = []
            $0.process.seccomp.kind = .runtimeDefault
        }
        #expect(escalatable.stdout == "ok\nSeccomp:\t2\n", "stderr: \(escalatable.stderr)")
    }

    @Test func localhostSeccompProfileIsHonoured() async throws {
        // Unknown syscall names are skipped (as runc does); errnoRet is the errno the process sees (28: ENOSPC).
        let profile = """
            {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
             "syscalls": [{"names": ["mkdir", "mkdirat", "no_such_syscall"], "action": "SCMP_ACT_ERRNO", "errnoRet": 28}]}
            """
        let outcome = try await run(["sh", "-c", "echo before; mkdir /tmp/x || echo refused; touch /tmp/y && echo touched"]) {
            $0.process.seccomp = Self.localhost(profile)
        }
        #expect(outcome.stdout == "before\nrefused\ntouched\n")
        #expect(outcome.stderr.contains("No space left on device"), "stderr: \(outcome.stderr)")
    }

    @Test func malformedSeccompProfilesAreRefusedAndTheSandboxLivesOn() async throws {
        let agent = pod.agent
        let id = TestHost.uniqueID("sec")
        let relative = try pod.mountRootfs(containerID: id, from: rootfs)
        defer { try? pod.unmountContainer(containerID: id) }
        func request(_ seccomp: Podvisor_Agent_V1_Seccomp) -> Podvisor_Agent_V1_CreateContainerRequest {
            .with {
                $0.containerID = id
                $0.rootfs = relative
                $0.process.args = ["true"]
                $0.process.env = ["PATH=/bin"]
                $0.process.seccomp = seccomp
            }
        }
        let bad = [
            ("{\"defaultAction\": ", "malformed seccomp profile"),
            (#"{"defaultAction": "SCMP_ACT_FLY"}"#, "SCMP_ACT_FLY"),
            (#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_VAX"]}"#, "SCMP_ARCH_VAX"),
            (
                #"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_ABOUT"}]}]}"#,
                "SCMP_CMP_ABOUT"
            ),
        ]
        for (json, mention) in bad {
            await #expect { try await agent.createContainer(request(Self.localhost(json))) } throws: {
                ($0 as? PodvisorError)?.code == .invalidArgument && "\($0)".contains(mention)
            }
        }
        // Nothing was left behind: the same id is created and runs.
        try await agent.createContainer(request(.with { $0.kind = .runtimeDefault }))
        try await agent.startContainer(id)
        #expect(try await agent.wait(AgentClient.process(id)).exitCode == 0)
        try await agent.removeContainer(id)
        #expect(try await agent.health().status == .serving)
    }
}

import Glibc
import PodvisorAgentProtocol
import Testing

@testable import PodvisorAgentCore

/// Profiles compile with the host's libseccomp exactly as in the guest; nothing is loaded here.
@Suite struct SeccompProfileTests {
    static func localhost(_ json: String) throws(RPCError) -> [UInt8] {
        try SeccompProfile.program(
            for: .with {
                $0.kind = .localhost
                $0.localhostProfileJson = json
            }, capabilities: 0)
    }

    /// A BPF program as the kernel loads it: whole instructions, at most 4096, starting by loading the
    /// architecture (`ld [4]`: seccomp_data.arch) as libseccomp's programs do.
    static func expectLoadable(_ program: [UInt8]) {
        #expect(!program.isEmpty && program.count % 8 == 0 && program.count / 8 <= 4096)
        #expect(Array(program.prefix(8)) == [0x20, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00])
    }

    @Test func unconfinedHasNoProgram() throws {
        #expect(try SeccompProfile.program(for: .with { $0.kind = .unconfined }, capabilities: nil).isEmpty)
    }

    @Test func runtimeDefaultFollowsTheCapabilities() throws {
        let all = try SeccompProfile.program(for: .with { $0.kind = .runtimeDefault }, capabilities: nil)
        let none = try SeccompProfile.program(for: .with { $0.kind = .runtimeDefault }, capabilities: 0)
        Self.expectLoadable(all)
        Self.expectLoadable(none)
        // Without CAP_SYS_ADMIN mount & co. are not allowed, clone gets its flag check and clone3 ENOSYS.
        #expect(all != none)
        let defaults = SeccompProfile.runtimeDefault(capabilities: 0)
        let allowed = Set(defaults.syscalls!.filter { $0.action == "SCMP_ACT_ALLOW" }.flatMap(\.names))
        #expect(allowed.contains("read") && !allowed.contains("mount"))
        #expect(defaults.syscalls!.contains { $0.names == ["clone3"] && $0.errnoRet == UInt32(ENOSYS) })
        let admin = SeccompProfile.runtimeDefault(capabilities: 1 << 21)  // CAP_SYS_ADMIN
        #expect(admin.syscalls!.contains { $0.names.contains("mount") && $0.action == "SCMP_ACT_ALLOW" })
    }

    /// A program is compiled once per profile and capabilities; the cache stays bounded.
    @Test func programsAreCompiledOnceAndTheCacheIsBounded() throws {
        let mask: UInt64 = 0xa804_25fb
        let first = try SeccompProfile.program(for: .with { $0.kind = .runtimeDefault }, capabilities: mask)
        #expect(SeccompProfile.compiled.withLock { $0[.init(runtimeDefault: true, json: "", capabilities: mask)] } == first)
        #expect(try SeccompProfile.program(for: .with { $0.kind = .runtimeDefault }, capabilities: mask) == first)
        #expect(try SeccompProfile.runtimeDefault(capabilities: mask).compile() == first)
        for n in 0..<(SeccompProfile.cacheLimit * 2) {
            _ = try Self.localhost(#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}], "n": \#(n)}"#)
            #expect(SeccompProfile.compiled.withLock { $0.count } <= SeccompProfile.cacheLimit)
        }
    }

    @Test func localhostProfileCompilesAndSkipsUnknownSyscalls() throws {
        let program = try Self.localhost(
            """
            {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1, "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
             "syscalls": [
               {"names": ["read", "write", "exit_group", "no_such_syscall"], "action": "SCMP_ACT_ALLOW"},
               {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
               {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}
             ]}
            """)
        Self.expectLoadable(program)
    }

    @Test func badProfilesAreRefusedClearly() {
        let cases: [(json: String, message: String)] = [
            ("{\"defaultAction\": ", "malformed seccomp profile"),
            (#"{"defaultAction": "SCMP_ACT_EXPLODE"}"#, "unsupported seccomp action SCMP_ACT_EXPLODE"),
            (#"{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_VAX"]}"#, "unknown seccomp architecture SCMP_ARCH_VAX"),
            (#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 70000}"#, "seccomp errnoRet 70000 out of range"),
            (
                #"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_ROUGHLY"}]}]}"#,
                "unknown seccomp operator SCMP_CMP_ROUGHLY"
            ),
            (
                #"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}"#,
                "seccomp argument index 6 out of range"
            ),
        ]
        for (json, message) in cases {
            let error = #expect(throws: RPCError.self) { try Self.localhost(json) }
            #expect(error?.code == .invalidArgument)
            #expect(error?.message.hasPrefix(message) == true, "\(error?.message ?? "no error") for \(json)")
        }
    }
}

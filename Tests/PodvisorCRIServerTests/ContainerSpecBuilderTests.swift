import Foundation
import PodvisorCRI
import PodvisorCore
import PodvisorImages
import PodvisorRuntime
import Testing

@testable import PodvisorCRIServer

@Suite struct ContainerSpecTests {
    func image(
        entrypoint: [String]? = ["/entry"], cmd: [String]? = ["default"], env: [String]? = nil, user: String? = nil
    )
        -> ImageConfiguration.Config
    {
        let fields: [String: Any?] = ["User": user, "Env": env, "Entrypoint": entrypoint, "Cmd": cmd, "WorkingDir": "/work"]
        let json = try! JSONSerialization.data(withJSONObject: fields.compactMapValues { $0 })
        return try! JSONDecoder().decode(ImageConfiguration.Config.self, from: json)
    }

    func noFile(_ path: String) throws(PodvisorError) -> String { throw PodvisorError(.notFound, path) }

    @Test func commandAndArgsFollowKubeletsRule() throws {
        var config = Runtime_V1_ContainerConfig()
        #expect(try ContainerSpecBuilder.arguments(config, image: image()) == ["/entry", "default"])
        config.args = ["a"]
        #expect(try ContainerSpecBuilder.arguments(config, image: image()) == ["/entry", "a"])
        config.command = ["/bin/x"]
        #expect(try ContainerSpecBuilder.arguments(config, image: image()) == ["/bin/x", "a"])
        config.args = []
        // command drops the image's cmd as well as its entrypoint.
        #expect(try ContainerSpecBuilder.arguments(config, image: image()) == ["/bin/x"])
        #expect(throws: PodvisorError.self) {
            try ContainerSpecBuilder.arguments(Runtime_V1_ContainerConfig(), image: image(entrypoint: nil, cmd: nil))
        }
    }

    @Test func environmentOverridesByKeyAndHasAPath() {
        var config = Runtime_V1_ContainerConfig()
        config.envs = [
            .with {
                $0.key = "A"; $0.value = Data("2".utf8)
            },
            .with {
                $0.key = "B"; $0.value = Data("x=y".utf8)
            },
        ]
        let env = ContainerSpecBuilder.environment(config, image: image(env: ["A=1", "PATH=/bin"]))
        #expect(env == ["A=2", "PATH=/bin", "B=x=y"])
        #expect(ContainerSpecBuilder.environment(Runtime_V1_ContainerConfig(), image: nil) == [ContainerSpecBuilder.defaultPath])
    }

    @Test func userFormsAndOverrides() throws {
        var process = ProcessSpec()
        try ContainerSpecBuilder.user(Runtime_V1_LinuxContainerSecurityContext(), image: image(user: "www-data:1004"), into: &process)
        #expect(process.username == "www-data" && process.gid == 1004 && process.groupname.isEmpty)

        var security = Runtime_V1_LinuxContainerSecurityContext()
        security.runAsUser = .with { $0.value = 1000 }
        security.runAsGroup = .with { $0.value = 3000 }
        security.supplementalGroups = [4000]
        process = ProcessSpec()
        try ContainerSpecBuilder.user(security, image: image(user: "www-data"), into: &process)
        #expect(process.uid == 1000 && process.username.isEmpty && process.gid == 3000 && process.additionalGids == [4000])

        var groupOnly = Runtime_V1_LinuxContainerSecurityContext()
        groupOnly.runAsGroup = .with { $0.value = 3000 }
        #expect(throws: PodvisorError.self) { try ContainerSpecBuilder.user(groupOnly, image: nil, into: &process) }

        security.runAsUser = .with { $0.value = -1 }
        #expect(throws: PodvisorError.self) { try ContainerSpecBuilder.user(security, image: nil, into: &process) }
    }

    @Test func capabilitiesAddDropAndAll() {
        let dropAll = ContainerSpecBuilder.capabilities(
            .with {
                $0.dropCapabilities = ["ALL"]; $0.addCapabilities = ["net_admin"]
            })
        #expect(dropAll == ["CAP_NET_ADMIN"])
        let defaults = ContainerSpecBuilder.capabilities(.with { $0.dropCapabilities = ["KILL"] })
        #expect(
            !defaults.contains("CAP_KILL") && defaults.contains("CAP_CHOWN") && defaults.count == ProcessSpec.defaultCapabilities.count - 1)
        let all = ContainerSpecBuilder.capabilities(
            .with {
                $0.addCapabilities = ["ALL"]; $0.dropCapabilities = ["CAP_SYS_ADMIN"]
            })
        #expect(all.count == ContainerSpecBuilder.allCapabilities.count - 1 && !all.contains("CAP_SYS_ADMIN"))
    }

    @Test func seccompKindsAndPrivilegedIsUnconfinedWithAllCapabilities() throws {
        var config = Runtime_V1_ContainerConfig()
        config.command = ["/bin/sh"]
        config.linux.securityContext.seccomp = .with { $0.profileType = .runtimeDefault }
        #expect(try ContainerSpecBuilder.process(config, image: nil, readFile: noFile).seccomp == .runtimeDefault)
        config.linux.securityContext.seccomp = .with {
            $0.profileType = .localhost; $0.localhostRef = "/p.json"
        }
        let localhost = try ContainerSpecBuilder.process(config, image: nil) { (path) throws(PodvisorError) -> String in "{\"from\":\"\(path)\"}" }
        #expect(localhost.seccomp == .localhost(json: "{\"from\":\"/p.json\"}"))
        #expect(throws: PodvisorError.self) { try ContainerSpecBuilder.process(config, image: nil, readFile: noFile) }
        config.linux.securityContext.privileged = true
        let privileged = try ContainerSpecBuilder.process(config, image: nil, readFile: noFile)
        #expect(privileged.seccomp == .unconfined && privileged.capabilities == nil)
    }

    @Test func resourcesConvertSharesAndRefuseNegatives() throws {
        let r = try ContainerSpecBuilder.resources(
            .with {
                $0.memoryLimitInBytes = 64 << 20
                $0.cpuQuota = 50_000
                $0.cpuPeriod = 100_000
                $0.cpuShares = 1024
            })
        #expect(r.memoryLimitBytes == 64 << 20 && r.cpuQuotaMicroseconds == 50_000 && r.cpuPeriodMicroseconds == 100_000)
        #expect(r.cpuWeight == 39)  // runc's conversion of the default 1024 shares
        #expect(throws: PodvisorError.self) { try ContainerSpecBuilder.resources(.with { $0.memoryLimitInBytes = -1 }) }
    }

    @Test func vmSizeFromPodResourcesPlusOverhead() throws {
        var config = PodvisorConfig()
        config.memoryMiB = 256
        config.overheadMiB = 100
        var linux = Runtime_V1_LinuxPodSandboxConfig()
        #expect(try CRIServer.vmSize(linux, config: config) == VMSize(memoryMiB: 256, vcpus: config.vcpus))
        linux.resources = .with {
            $0.memoryLimitInBytes = 200 << 20; $0.cpuQuota = 150_000; $0.cpuPeriod = 100_000
        }
        let size = try CRIServer.vmSize(linux, config: config)
        #expect(size.memoryMiB == 300)
        #expect(size.vcpus == min(2, ProcessInfo.processInfo.activeProcessorCount))
        // A RuntimeClass overhead is the pod cgroup's: QEMU and helpers (vmm_overhead_mib) take their part.
        config.vmmOverheadMiB = 96
        linux.overhead = .with { $0.memoryLimitInBytes = 224 << 20 }
        #expect(try CRIServer.vmSize(linux, config: config).memoryMiB == 328)
        // Too small to leave the guest its kernel and agent: the guest still gets 64 MiB.
        linux.overhead = .with { $0.memoryLimitInBytes = 50 << 20 }
        #expect(try CRIServer.vmSize(linux, config: config).memoryMiB == 264)
    }

    @Test func stopSignalFromConfigImageOrDefault() throws {
        var config = Runtime_V1_ContainerConfig()
        #expect(try StopSignal.number(config: config, image: nil) == SIGTERM)
        #expect(try StopSignal.number(config: config, image: "SIGQUIT") == SIGQUIT)
        #expect(try StopSignal.number(config: config, image: "rtmin+3") == 37)
        #expect(throws: PodvisorError.self) { try StopSignal.number(config: config, image: "SIGNOPE") }
        config.stopSignal = .sigusr1
        #expect(try StopSignal.number(config: config, image: "SIGQUIT") == SIGUSR1)
        config.stopSignal = .sigrtmaxminus2
        #expect(try StopSignal.number(config: config, image: nil) == 62)
        #expect(StopSignal.criSignal(SIGUSR2) == .sigusr2 && StopSignal.criSignal(34) == .sigrtmin)
    }
}

import ArgumentParser
import Foundation
import Logging
import PodvisorCore
import PodvisorRuntime

struct VMCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vm", abstract: "Boot and inspect pod VMs directly.", subcommands: [Boot.self])

    struct Boot: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Boot one pod VM, call its agent, report boot-to-ready, power it off and clean up.")

        @OptionGroup var runtime: RuntimeOptions

        @Option(help: "Seconds to keep the VM running before powering it off.")
        var keep: Int = 0

        func run() async throws {
            let config = try runtime.load()
            LogOutput.bootstrap(program: "podvisor", format: config.logFormat)
            let host = try VMHost(config: config)
            if let warning = host.warning { FileHandle.standardError.write(Data("warning: \(warning)\n".utf8)) }
            let sandboxes = try VMRuntime(host: host, imageRoot: config.effectiveImageRoot, logger: Logger(label: "vm", level: .error))
            let id = randomSandboxID()
            let pod = try await sandboxes.createSandbox(
                SandboxSpec(
                    id: id, name: "vm", namespace: "vm", uid: id, hostname: "vm",
                    size: VMSize(memoryMiB: config.memoryMiB, vcpus: config.vcpus)))
            let info = pod.info
            let health = try await pod.health()
            print(
                """
                booted \(info.domain) (\(info.hypervisor), \(info.transport))
                agent \(info.agentVersion), guest kernel \(info.guestKernel), root \(health.bootRoot)
                agent ready after \(info.bootToReady.milliseconds) ms
                agent RSS \(health.agentRSSBytes / 1024) KiB, guest MemAvailable \(health.guestMemAvailableBytes / 1_048_576) MiB
                """)
            if keep > 0 { try await Task.sleep(for: .seconds(keep)) }
            let clock = ContinuousClock()
            let start = clock.now
            _ = try await pod.stop(timeout: .seconds(config.shutdownTimeoutSeconds))
            print("powered off and cleaned up in \(start.duration(to: clock.now).milliseconds) ms")
        }
    }
}

import ArgumentParser
import Foundation
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
            let host = try VMHost(config: runtime.load())
            if let warning = host.warning { FileHandle.standardError.write(Data("warning: \(warning)\n".utf8)) }
            let pod = try await host.boot(id: "vm-\(getpid())")
            let health = try await pod.agent.health()
            print("""
                booted \(pod.vm.name) (\(host.accelerator.rawValue), \(host.transport.rawValue))
                agent \(pod.version.agentVersion) on \(pod.version.transport), guest kernel \(pod.version.kernelVersion)
                domain started in \(pod.timings.domainStart.milliseconds) ms, agent ready after \(pod.timings.ready.milliseconds) ms \
                (guest uptime at ready \(pod.version.uptimeAtReadyMs) ms)
                agent RSS \(health.agentRssBytes / 1024) KiB, guest MemAvailable \(health.guestMemAvailableBytes / 1_048_576) MiB
                """)
            if keep > 0 { try await Task.sleep(for: .seconds(keep)) }
            let clock = ContinuousClock()
            let start = clock.now
            try await pod.shutdown()
            print("powered off and cleaned up in \(start.duration(to: clock.now).milliseconds) ms")
        }
    }
}

extension Duration {
    var milliseconds: Int64 { components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000 }
}

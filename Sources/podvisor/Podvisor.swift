import ArgumentParser
import PodvisorCRIServer

@main
struct Podvisor: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "podvisor",
        abstract: "Run Kubernetes pods in their own virtual machines.",
        version: CRIServer.runtimeVersion,
        subcommands: [
            RunCommand.self, PsCommand.self, PodsCommand.self, LogsCommand.self, ExecCommand.self, StopCommand.self,
            RemoveCommand.self, InspectCommand.self, PortForwardCommand.self, ImageCommand.self, VMCommand.self, BenchCommand.self,
        ])
}

import ArgumentParser

@main
struct Podvisor: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "podvisor",
        abstract: "Run Kubernetes pods in their own virtual machines.",
        subcommands: [VMCommand.self, ImageCommand.self, BenchCommand.self])
}

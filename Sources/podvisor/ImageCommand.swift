import ArgumentParser
import Foundation
import PodvisorCore
import PodvisorImages

struct ImageCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "image", abstract: "Pull, list, inspect and remove OCI images.",
        subcommands: [Pull.self, Import.self, List.self, Inspect.self, Remove.self])

    /// Where the images live and how registries are reached.
    struct StoreOptions: ParsableArguments {
        @OptionGroup var runtime: RuntimeOptions

        @Option(help: "Image store (default: <state dir>/images).")
        var root: String?

        @Option(help: "Directory of <registry>/hosts.toml mirror configurations.")
        var hostsDir = RegistryHosts.defaultDirectory

        @Option(help: "Registry reached over plain HTTP without a hosts.toml (repeatable).")
        var insecureRegistry: [String] = []

        @Option(help: "table, or json (machine readable).")
        var output: OutputFormat = .table

        func open() throws -> ImageStore {
            var options = RegistryClient.Options()
            options.hosts = RegistryHosts(directory: hostsDir, insecureRegistries: Set(insecureRegistry))
            return try ImageStore(root: root ?? "\(runtime.load().stateDirectory)/images", registry: RegistryClient(options: options))
        }
    }

    struct Pull: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Pull an image (linux/amd64) from its registry or a mirror.")

        @OptionGroup var store: StoreOptions
        @Argument(help: "Image reference, e.g. busybox, registry.k8s.io/pause:3.10, host:5000/app@sha256:…")
        var image: String
        @Option(help: "Registry user name.") var username: String?
        @Option(help: "Registry password (or set PODVISOR_REGISTRY_PASSWORD).") var password: String?

        func run() async throws {
            let images = try store.open()
            let secret = password ?? ProcessInfo.processInfo.environment["PODVISOR_REGISTRY_PASSWORD"] ?? ""
            let credentials = username.map { RegistryCredentials.basic(username: $0, password: secret) }
            let bars = isatty(STDERR_FILENO) == 1 && store.output == .table ? ProgressBars() : nil
            let record = try await images.pull(image, credentials: credentials) { progress in
                bars?.update(progress)
            }
            bars?.finish()
            switch store.output {
            case .json: try printJSON(record)
            case .table: print(record.id)
            }
        }
    }

    struct Import: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Import an image from an OCI image layout directory (umoci, skopeo copy oci:…): no registry needed.")

        @OptionGroup var store: StoreOptions
        @Argument(help: "LAYOUT[:TAG]: the layout directory and the tag in its index.json (default: latest).")
        var layout: String
        @Argument(help: "Name to record the image under, e.g. demo or registry.local/app:1.0.")
        var name: String

        func run() async throws {
            var directory = layout
            var tag = "latest"
            if let colon = layout.lastIndex(of: ":"), !layout[colon...].contains("/") {
                directory = String(layout[..<colon])
                tag = String(layout[layout.index(after: colon)...])
            }
            let record = try await store.open().importLayout(directory, tag: tag, as: name)
            switch store.output {
            case .json: try printJSON(record)
            case .table: print(record.id)
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List images.")

        @OptionGroup var store: StoreOptions

        func run() async throws {
            let images = try await store.open().list()
            switch store.output {
            case .json: try printJSON(images)
            case .table:
                print("IMAGE ID     SIZE      NAMES")
                for image in images {
                    let names = (image.repoTags.isEmpty ? image.repoDigests : image.repoTags).joined(separator: ", ")
                    print(String(image.id.hex.prefix(12)), formatBytes(image.size).padding(toLength: 9, withPad: " ", startingAt: 0), names)
                }
            }
        }
    }

    struct Inspect: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show an image's record as JSON.")

        @OptionGroup var store: StoreOptions
        @Argument(help: "Image reference or id.") var image: String

        func run() async throws {
            let images = try store.open()
            guard let record = await images.image(image) else { throw PodvisorError(.notFound, "image \(image) not found") }
            try printJSON(record)
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rm", abstract: "Remove an image with all its tags, then content no image needs.")

        @OptionGroup var store: StoreOptions
        @Argument(help: "Image reference or id.") var image: String

        func run() async throws {
            try await store.open().remove(image)
        }
    }
}

func formatBytes(_ bytes: Int64) -> String {
    bytes >= 1 << 20 ? String(format: "%.1f MiB", Double(bytes) / 1_048_576) : String(format: "%.1f KiB", Double(bytes) / 1024)
}


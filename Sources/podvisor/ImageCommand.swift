import ArgumentParser
import Foundation
import PodvisorCRI
import PodvisorCRIServer
import PodvisorCore
import PodvisorImages

/// Images through the CRI ImageService, like every other command: podvisord's (`--endpoint`) or the
/// in-process server's, so what is in use, where the store is (`images.root`) and which mirrors apply
/// (`images.hosts_dir`) are the runtime's to decide. Only `import` opens the store itself, holding the
/// state directory's lock while it does.
struct ImageCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "image", abstract: "Pull, list, inspect and remove OCI images.",
        subcommands: [Pull.self, Import.self, List.self, Inspect.self, Remove.self])

    struct Pull: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Pull an image (linux/amd64) from its registry or a mirror.")

        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "Image reference, e.g. busybox, registry.k8s.io/pause:3.10, host:5000/app@sha256:…")
        var image: String
        @Option(help: "Registry user name.") var username: String?
        @Option(help: "Registry password (or set PODVISOR_REGISTRY_PASSWORD).") var password: String?

        func run() async throws {
            let secret = password ?? ProcessInfo.processInfo.environment["PODVISOR_REGISTRY_PASSWORD"] ?? ""
            try await imageCommand(connection) { images, local in
                let id: String
                // Standalone, the pull runs in this process: it can show progress, which the CRI cannot carry.
                if let local, connection.output == .table, isatty(STDERR_FILENO) == 1 {
                    let bars = ProgressBars()
                    id = try await local.pull(image, credentials: username.map { .basic(username: $0, password: secret) }) {
                        bars.update($0)
                    }.description
                    bars.finish()
                } else {
                    id = try await images.pullImage(
                        .with {
                            $0.image.image = image
                            if let username {
                                $0.auth.username = username
                                $0.auth.password = secret
                            }
                        }
                    ).imageRef
                }
                let status = try await images.imageStatus(.with { $0.image.image = id })
                switch connection.output {
                case .json: try printMessages([status.image])
                case .table: print(status.image.id)
                }
            }
        }
    }

    struct Import: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Import an image from an OCI image layout directory (umoci, skopeo copy oci:…) into the state directory's store: no registry needed. Holds the state directory: stop podvisord first."
        )

        @OptionGroup var runtime: RuntimeOptions
        @Option(help: "table, or json (machine readable).") var output: OutputFormat = .table
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
            let record: ImageRecord
            do {
                let config = try runtime.load()
                try FileManager.default.createDirectory(atPath: config.stateDirectory, withIntermediateDirectories: true)
                // A running podvisord (or standalone command) counts its images' users in memory: it must not
                // see its store change underneath.
                try StateDirectoryLock.acquire(config.stateDirectory)
                record = try await ImageStore(root: config.effectiveImageRoot).importLayout(directory, tag: tag, as: name)
            } catch {
                FileHandle.standardError.write(Data("podvisor: \(describe(error))\n".utf8))
                throw ExitCode(ExitCodes.runtimeFailure)
            }
            switch output {
            case .json: try printJSON(record)
            case .table: print(record.id)
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List images.")

        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            try await imageCommand(connection) { images, _ in
                let listed = try await images.listImages(Runtime_V1_ListImagesRequest()).images
                switch connection.output {
                case .json: try printMessages(listed)
                case .table:
                    printTable(
                        ["IMAGE ID", "SIZE", "NAMES"],
                        listed.map { image in
                            let names = image.repoTags.isEmpty ? image.repoDigests : image.repoTags
                            return [
                                String(image.id.dropFirst("sha256:".count).prefix(12)), formatBytes(Int64(clamping: image.size)),
                                names.joined(separator: ", "),
                            ]
                        })
                }
            }
        }
    }

    struct Inspect: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show an image's status (and its configuration) as JSON.")

        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "Image reference or id.") var image: String

        func run() async throws {
            try await imageCommand(connection) { images, _ in
                let status = try await images.imageStatus(
                    .with {
                        $0.image.image = image; $0.verbose = true
                    })
                guard status.hasImage else { throw PodvisorError(.notFound, "image \(image) not found") }
                try printMessages([status])
            }
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rm", abstract: "Remove an image with all its tags, then content no image needs.")

        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "Image reference or id.") var image: String

        func run() async throws {
            try await imageCommand(connection) { images, _ in
                _ = try await images.removeImage(.with { $0.image.image = image })
            }
        }
    }
}

/// An image command's body with the ImageService (and the in-process server, standalone); failures are
/// reported as every command reports them.
private func imageCommand(_ connection: ConnectionOptions, _ body: @Sendable (ImageClient, CRIServer?) async throws -> Void) async throws {
    do { try await connection.withRuntime { _, images, local in try await body(images, local) } } catch {
        FileHandle.standardError.write(Data("podvisor: \(describe(error))\n".utf8))
        throw ExitCode(ExitCodes.runtimeFailure)
    }
}

func formatBytes(_ bytes: Int64) -> String {
    bytes >= 1 << 20 ? String(format: "%.1f MiB", Double(bytes) / 1_048_576) : String(format: "%.1f KiB", Double(bytes) / 1024)
}

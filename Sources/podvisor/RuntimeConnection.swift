import ArgumentParser
import Foundation
import GRPCCore
import GRPCInProcessTransport
import GRPCNIOTransportHTTP2Posix
import Logging
import PodvisorCRI
import PodvisorCRIServer
import PodvisorCore

typealias RuntimeClient = any Runtime_V1_RuntimeService.ClientProtocol
typealias ImageClient = any Runtime_V1_ImageService.ClientProtocol

/// How pod commands reach a runtime. Standalone (the default): podvisor's CRI server runs in this process,
/// behind an in-process gRPC transport, on the state directory (pods started by an earlier command are
/// taken back, as podvisord does after a restart). With --endpoint: a CRI client of podvisord. Both paths
/// speak the same CRI, so a command behaves the same either way.
struct ConnectionOptions: ParsableArguments {
    @OptionGroup var runtime: RuntimeOptions

    @Option(help: "podvisord's CRI endpoint, e.g. unix:///run/podvisor/podvisor.sock (default: no daemon; the runtime runs in this command).")
    var endpoint: String?

    @Option(help: "table, or json (machine readable).")
    var output: OutputFormat = .table

    @Flag(help: "Show the in-process runtime's log on stderr.")
    var debug = false

    /// Runs `body` with CRI clients; the connection (and an in-process runtime) ends with it.
    /// `body` gets the CRI clients, and the in-process server when there is one (standalone).
    func withRuntime<T: Sendable>(_ body: @Sendable (RuntimeClient, ImageClient, CRIServer?) async throws -> T) async throws -> T {
        if let endpoint {
            guard endpoint.hasPrefix("unix://") else { throw ValidationError("--endpoint must be unix:///path/to/socket") }
            let path = String(endpoint.dropFirst("unix://".count))
            guard access(path, F_OK) == 0 else {
                throw PodvisorError(.unavailable, "no podvisord socket at \(path) (is podvisord running?)")
            }
            let transport = try HTTP2ClientTransport.Posix(target: .unixDomainSocket(path: path), transportSecurity: .plaintext)
            return try await withGRPCClient(transport: transport) { client in
                try await body(Runtime_V1_RuntimeService.Client(wrapping: client), Runtime_V1_ImageService.Client(wrapping: client), nil)
            }
        }
        // The runtime's own log is for daemons; a command reports errors (and --debug shows the rest).
        var config = try runtime.load()
        if !debug { config.logLevel = .error }
        return try await withInProcessRuntime(config) { server, runtime, images in try await body(runtime, images, server) }
    }
}

/// podvisor's CRI server in this process, reached through an in-process gRPC transport.
func withInProcessRuntime<T: Sendable>(
    _ config: PodvisorConfig, _ body: @Sendable (CRIServer, RuntimeClient, ImageClient) async throws -> T
) async throws -> T {
    LogOutput.bootstrap(program: "podvisor", format: config.logFormat)
    let server = try await CRIServer.open(config: config, logger: Logger(label: "podvisor", level: config.logLevel))
    let result: Result<T, any Error>
    do {
        result = .success(try await withInProcessRuntime(server) { runtime, images in try await body(server, runtime, images) })
    } catch { result = .failure(error) }
    // The runtime ends with this process: a command whose client left (`exec --timeout`) is killed first.
    await server.waitForStreamingSessions(atMost: .seconds(5))
    return try result.get()
}

/// CRI clients of `server` through an in-process gRPC transport.
func withInProcessRuntime<T: Sendable>(
    _ server: CRIServer, _ body: @Sendable (RuntimeClient, ImageClient) async throws -> T
) async throws -> T {
    let transport = InProcessTransport()
    return try await withGRPCServer(
        transport: transport.server, services: [server.runtimeService, server.imageService], interceptors: server.interceptors
    ) { _ in
        try await withGRPCClient(transport: transport.client) { client in
            try await body(Runtime_V1_RuntimeService.Client(wrapping: client), Runtime_V1_ImageService.Client(wrapping: client))
        }
    }
}

enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case table, json
}

/// Exit codes that let CI tell a failed container from a failed runtime (docker's convention).
enum ExitCodes {
    /// podvisor itself failed: bad input, image, VM or runtime error.
    static let runtimeFailure: Int32 = 125
    /// --timeout passed; the pod was torn down.
    static let timeout: Int32 = 124
    /// SIGINT or SIGTERM; the pod was torn down.
    static let interrupted: Int32 = 130
}

func printJSON(_ value: some Encodable) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

/// Left-aligned columns, as `crictl ps` and `docker ps` print them.
func printTable(_ header: [String], _ rows: [[String]]) {
    let widths = header.indices.map { column in ([header] + rows).map { $0[column].count }.max() ?? 0 }
    for row in [header] + rows {
        print(zip(row, widths).map { $0.padding(toLength: $1 + 3, withPad: " ", startingAt: 0) }.joined().trimmingCharacters(in: .whitespaces))
    }
}

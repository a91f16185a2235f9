import ArgumentParser
import Foundation
import GRPCCore
import Logging
import Metrics
import GRPCNIOTransportHTTP2Posix
import PodvisorCRIServer
import PodvisorCore
import Prometheus
import ServiceLifecycle
import UnixSignals

/// kubelet's container runtime: CRI RuntimeService and ImageService on one unix socket. Stopping it
/// (SIGTERM, SIGINT) ends serving and leaves pods running; the next start takes them back. SIGHUP reloads
/// the configuration's log level.
@main
struct Podvisord: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "podvisord", abstract: "Serve the Kubernetes CRI with one VM per pod sandbox.",
        version: CRIServer.runtimeVersion)

    @Option(help: "Configuration file (default: \(PodvisorConfig.defaultPath) when present).")
    var config: String?

    @Option(help: "CRI socket (overrides cri.socket).")
    var socket: String?

    @Option(help: "State directory (overrides state_dir).")
    var stateDir: String?

    /// swift-metrics → swift-prometheus, with buckets that fit each series: pod VMs start in seconds (tens
    /// under TCG), CRI calls in milliseconds.
    static func bootstrapMetrics() -> PrometheusCollectorRegistry {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        let starts: [Duration] = [
            .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2), .seconds(5), .seconds(10), .seconds(20), .seconds(30), .seconds(60),
            .seconds(120),
        ]
        for series in ["podvisor_sandbox_boot_seconds", "podvisor_sandbox_start_seconds", "podvisor_container_start_seconds"] {
            factory.durationHistogramBuckets[series] = starts
        }
        MetricsSystem.bootstrap(factory)
        return registry
    }

    func run() async throws {
        // A parent may have blocked signals (test runners do): the daemon needs SIGTERM and SIGCHLD.
        var none = sigset_t()
        sigemptyset(&none)
        pthread_sigmask(SIG_SETMASK, &none, nil)
        // SIGHUP's default ends the process; until its handler is in place (LogLevelReload) it does nothing.
        signal(SIGHUP, SIG_IGN)
        let config = try loadConfig()

        LogOutput.bootstrap(program: "podvisord", format: config.logFormat)
        let log = Logger(label: "podvisord", level: config.logLevel)
        let metrics = config.metricsAddress.isEmpty ? nil : Self.bootstrapMetrics()
        let server = try await CRIServer.open(config: config, logger: log)
        // After recovery, which removes a previous run's waiting pool VMs as orphans.
        try server.startPool()
        if let metrics {
            let endpoint = try await MetricsEndpoint.start(address: config.metricsAddress) {
                server.refreshMetrics()
                return metrics.emitToBuffer()
            }
            log.info("serving metrics on \(config.metricsAddress) (port \(endpoint.port))")
        }
        let cri = try CRIService(server: server, socket: config.socketPath)
        let reload = LogLevelReload(log: log, load: loadConfig)
        // swift-service-lifecycle owns the signals: SIGTERM and SIGINT shut the group down gracefully.
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: cri), .init(service: reload)], gracefulShutdownSignals: [.sigterm, .sigint], logger: log))
        do { try await group.run() } catch {
            await server.stopPool()
            throw error
        }
        await server.stopPool()
    }

    /// The configuration file with the command line's overrides.
    @Sendable func loadConfig() throws -> PodvisorConfig {
        var config = try PodvisorConfig.load(path: self.config)
        if let stateDir { config = try config.merging(toml: "state_dir = \(PodvisorConfig.quote(stateDir))") }
        if let socket { config = try config.merging(toml: "[cri]\nsocket = \(PodvisorConfig.quote(socket))") }
        return config
    }
}

/// The CRI's gRPC server on its unix socket; a graceful shutdown lets calls in flight finish.
struct CRIService: Service {
    let grpc: GRPCServer<HTTP2ServerTransport.Posix>
    let transport: HTTP2ServerTransport.Posix
    let path: String

    init(server: CRIServer, socket path: String) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        unlink(path)  // a socket left by a previous process
        transport = HTTP2ServerTransport.Posix(
            address: .unixDomainSocket(path: path), transportSecurity: .plaintext,
            // kubelet's own limit: large List answers on busy nodes.
            config: .defaults { $0.rpc.maxRequestPayloadSize = 16 << 20 })
        grpc = GRPCServer(transport: transport, services: [server.runtimeService, server.imageService], interceptors: server.interceptors)
        self.path = path
    }

    func run() async throws {
        try await withGracefulShutdownHandler {
            try await withThrowingDiscardingTaskGroup { group in
                group.addTask { try await grpc.serve() }
                _ = try await transport.listeningAddress
                chmod(path, 0o660)
                FileHandle.standardError.write(Data("podvisord: serving CRI on unix://\(path)\n".utf8))
            }
        } onGracefulShutdown: {
            grpc.beginGracefulShutdown()
        }
    }
}

/// SIGHUP: the configuration is read again and its log level applies to every logger; the rest of it takes
/// a restart (pods keep running across one).
struct LogLevelReload: Service {
    let log: Logger
    let load: @Sendable () throws -> PodvisorConfig

    func run() async throws {
        for await _ in await UnixSignalsSequence(trapping: .sighup).cancelOnGracefulShutdown() {
            do {
                let level = try load().logLevel.swiftLog
                LogOutput.setLevel(level)
                log.notice("SIGHUP: log level \(level)")
            } catch {
                log.warning("SIGHUP: configuration not reloaded, log level stays \(log.logLevel): \(error)")
            }
        }
    }
}

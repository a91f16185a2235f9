import ArgumentParser
import Foundation
import PodvisorCore
import PodvisorStreaming

/// `podvisor port-forward`: local ports to ports inside a pod VM, as `kubectl port-forward` (CRI PortForward).
struct PortForwardCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "port-forward",
        abstract: "Forward local ports to ports inside a pod VM until interrupted (SIGINT/SIGTERM end it with 0).")
    @OptionGroup var connection: ConnectionOptions
    @Option(help: "Local address to listen on.") var address = "127.0.0.1"
    @Argument(help: "Pod or container id, id prefix or name.") var target: String
    @Argument(help: "[LOCAL:]REMOTE port pairs, e.g. 8080:80 or 5432.") var ports: [String]

    func validate() throws { _ = try pairs() }

    /// (local, remote) for every argument.
    func pairs() throws -> [(local: Int, remote: Int)] {
        guard !ports.isEmpty else { throw ValidationError("give at least one [LOCAL:]REMOTE port") }
        return try ports.map { spec in
            let parts = spec.split(separator: ":", omittingEmptySubsequences: false).map { Int($0) }
            guard (1...2).contains(parts.count), parts.allSatisfy({ $0.map { (1...65535).contains($0) } ?? false }) else {
                throw ValidationError("\(spec): expected [LOCAL:]REMOTE with ports from 1 to 65535")
            }
            return (parts[0]!, parts[parts.count - 1]!)
        }
    }

    func run() async throws {
        let pairs = try pairs()
        try await runtimeCommand(connection) { runtime, _ in
            let sandboxID: String
            switch try await Target.resolve(target, runtime) {
            case .pod(let pod): sandboxID = pod.id
            case .container(let container): sandboxID = container.podSandboxID
            }
            let url = try await runtime.portForward(
                .with {
                    $0.podSandboxID = sandboxID
                    $0.port = pairs.map { Int32($0.remote) }
                }
            ).url
            let interrupted = Interruption()
            try await PortForwardClient.withSession(url: url) { client in
                var listeners: [TCPListener] = []
                for pair in pairs {
                    listeners.append(try await TCPListener.bind(host: address, port: pair.local))
                    // Unbuffered: scripts wait for this line before they connect.
                    FileHandle.standardOutput.write(Data("Forwarding from \(address):\(pair.local) -> \(pair.remote)\n".utf8))
                }
                await withDiscardingTaskGroup { group in
                    for (listener, pair) in zip(listeners, pairs) {
                        group.addTask { await listener.serve { await Self.relay($0, to: UInt16(pair.remote), through: client) } }
                    }
                    while interrupted.signal == nil { try? await Task.sleep(for: .milliseconds(100)) }
                    for listener in listeners { listener.close() }
                    group.cancelAll()
                }
            }
            return 0
        }
    }

    /// One local connection, relayed until either side closes it.
    private static func relay(_ local: TCPListener.Connection, to port: UInt16, through client: PortForwardClient) async {
        await TCPStream.with(local) { stream in
            // The session gone (interrupted) is no failure to report.
            if let failure = (try? await client.forward(port: port, send: stream.received) { await stream.send($0) }) ?? nil {
                FileHandle.standardError.write(Data("podvisor: \(failure)\n".utf8))
            }
        }
    }
}

import Foundation
import PodvisorStreaming

/// A connection to relay into a pod: a PortForward stream, or a host port's connection.
protocol RelayPeer: Sendable {
    /// What the peer sends, ending when it is done sending or failed.
    var received: AsyncStream<[UInt8]> { get }
    /// The peer abandoned the connection: nothing more will be read from the answer.
    var wasReset: Bool { get }
    func send(_ bytes: [UInt8]) async
    /// The pod's side closed.
    func finish() async
}

extension PortForwardStream: RelayPeer {}

extension CRIServer {
    /// Relays one connection to `port` inside the sandbox's VM: the agent connects to it on the guest's
    /// loopback (the containers' network namespace) and the bytes go through its Port* calls. Returns why
    /// it failed, if it did.
    func relay(_ sandboxID: String, port: UInt16, _ stream: some RelayPeer) async -> String? {
        guard let pod = pod(sandboxID) else { return "pod sandbox \(sandboxID) is not ready" }
        let connection: String
        do { connection = try await pod.portConnect(port) } catch {
            return "failed to connect to port \(port) in pod sandbox \(sandboxID): \(error.message)"
        }
        // Pod → client until the pod's side closes (or the connection is closed below); then the client
        // sees the end and stops sending too.
        let answers = Task {
            while let data = try? await pod.portRead(connection) { await stream.send([UInt8](data)) }
            await stream.finish()
        }
        for await bytes in stream.received {
            do { try await pod.portWrite(connection, Data(bytes), closeWrite: false) } catch { break }
        }
        // The client finished sending: the pod reads EOF and may still answer. A client that abandoned the
        // connection (reset), or left altogether (cancellation), gets nothing more.
        if !stream.wasReset && !Task.isCancelled {
            try? await pod.portWrite(connection, Data(), closeWrite: true)
            await withTaskCancellationHandler {
                await answers.value
            } onCancel: {
                Task { try? await pod.portClose(connection) }
            }
        }
        // Closing wakes a read blocked in the agent, which ends `answers`.
        try? await pod.portClose(connection)
        await answers.value
        return nil
    }
}

import Synchronization

/// Forwards one client connection: `stream.received` is what the client sends, `stream.send` answers it.
/// Returns an error message for the client, or nil.
public typealias PortForwardHandler = @Sendable (_ port: UInt16, _ stream: PortForwardStream) async -> String?

/// One forwarded connection as its handler sees it.
public final class PortForwardStream: Sendable {
    private let connection: SPDYConnection
    private let data: SPDYConnection.Stream
    private let finished = Mutex(false)

    init(connection: SPDYConnection, data: SPDYConnection.Stream) {
        self.connection = connection
        self.data = data
    }

    /// The client's bytes, ending when it is done sending (FIN) or abandons the connection (reset).
    public var received: AsyncStream<[UInt8]> { data.data }
    /// The client abandoned the connection: nothing more will be read from the answer.
    public var wasReset: Bool { data.wasReset }

    /// Sends to the client; returns once written; dropped once the client is gone.
    public func send(_ bytes: [UInt8]) async { try? await connection.send(bytes, on: data.id) }

    /// The pod's side closed: the client reads the end of the stream (once, however often this is called).
    public func finish() async {
        let first = finished.withLock { done in
            defer { done = true }
            return !done
        }
        if first { await connection.finish(data.id) }
    }
}

/// Kubernetes' port forwarding protocol (portforward.k8s.io) over SPDY: for every connection it forwards,
/// the client opens an error stream and a data stream that share a `requestid` (and name the `port`); the
/// server relays the data stream to the pod's port, FINs it when the pod's side closes, and reports a
/// failure as text on the error stream.
enum PortForward {
    static let protocolName = "portforward.k8s.io"

    /// Serves the connection's stream pairs until the client closes it; open forwards end with it.
    static func serve(_ spdy: SPDYConnection, _ handler: @escaping PortForwardHandler) async {
        var halves: [String: (error: SPDYConnection.Stream?, data: SPDYConnection.Stream?)] = [:]
        await withDiscardingTaskGroup { group in
            for await stream in spdy.incoming {
                let type = stream.headers[StreamType.header]?.first ?? ""
                let port = stream.headers["port"]?.first ?? ""
                let key = stream.headers["requestid"]?.first ?? port
                var pair = halves[key] ?? (nil, nil)
                switch type {
                case "error": pair.error = stream
                case "data": pair.data = stream
                default: continue
                }
                guard let error = pair.error, let data = pair.data else {
                    halves[key] = pair
                    continue
                }
                halves[key] = nil
                group.addTask {
                    let forwarded = PortForwardStream(connection: spdy, data: data)
                    let message: String?
                    if let number = UInt16(port), number > 0 {
                        message = await handler(number, forwarded)
                    } else {
                        message = "invalid port \"\(port)\""
                    }
                    await forwarded.finish()
                    if let message { try? await spdy.send(Array(message.utf8), on: error.id) }
                    await spdy.finish(error.id)
                }
            }
            // The client closed the connection: forwards still running are abandoned.
            group.cancelAll()
        }
    }
}

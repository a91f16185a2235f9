import Synchronization

/// The client side of port forwarding, as kubectl port-forward speaks it: one SPDY connection to the URL
/// of CRI PortForward, an error and a data stream per forwarded connection.
public final class PortForwardClient: Sendable {
    private let spdy: SPDYConnection
    private let nextRequest = Mutex(0)

    private init(_ spdy: SPDYConnection) { self.spdy = spdy }

    /// Connects to `url` and runs `body`; the connection closes when it returns.
    public static func withSession<T: Sendable>(url: String, _ body: @Sendable (PortForwardClient) async throws -> T) async throws -> T {
        try await RemoteCommandClient.withSPDYSession(url: url, protocols: [PortForward.protocolName]) { spdy, _ in
            try await body(PortForwardClient(spdy))
        }
    }

    /// Forwards one connection to `port` in the pod: `send` goes there (its end half-closes the connection),
    /// `receive` gets the answer until the pod's side closes. Returns the server's error message, if any.
    public func forward(port: UInt16, send: AsyncStream<[UInt8]>, receive: @escaping @Sendable ([UInt8]) async -> Void) async throws -> String? {
        let id = nextRequest.withLock { next in
            defer { next += 1 }
            return next
        }
        var headers: SPDYHeaders = [StreamType.header: ["error"], "port": ["\(port)"], "requestid": ["\(id)"]]
        let error = try await spdy.open(headers)
        await spdy.finish(error.id)
        headers[StreamType.header] = ["data"]
        let data = try await spdy.open(headers)
        let sending = Task {
            for await bytes in send { try? await spdy.send(bytes, on: data.id) }
            await spdy.finish(data.id)
        }
        defer { sending.cancel() }
        for await bytes in data.data { await receive(bytes) }
        var message: [UInt8] = []
        for await bytes in error.data { message += bytes }
        return message.isEmpty ? nil : String(decoding: message, as: UTF8.self)
    }
}

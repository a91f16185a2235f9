import Foundation
import PodvisorCore
import PodvisorStreaming

/// Prometheus's scrape target: `GET /metrics` on `[metrics] address`, the text exposition format, one
/// answer per connection. Off unless configured, like CRI-O's `enable_metrics`.
public struct MetricsEndpoint: Sendable {
    private let listener: TCPListener

    /// `render` produces the exposition (refreshed series first); it runs once per scrape.
    public static func start(address: String, render: @escaping @Sendable () -> [UInt8]) async throws(PodvisorError) -> MetricsEndpoint {
        guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]), (0...65535).contains(port) else {
            throw PodvisorError(.invalidArgument, "metrics.address \(PodvisorError.quote(address)) must be HOST:PORT")
        }
        let host = String(address[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        let listener: TCPListener
        do { listener = try await TCPListener.bind(host: host, port: port) } catch {
            throw PodvisorError(.unavailable, "metrics endpoint on \(address) cannot listen", cause: error)
        }
        Task {
            await listener.serve { connection in
                await TCPStream.with(connection) { stream in
                    var head: [UInt8] = []
                    for await bytes in stream.received {
                        head += bytes
                        // A request head is small; a peer that sends more without ending it gets nothing.
                        if head.count > 8192 || head.suffix(4) == Array("\r\n\r\n".utf8) { break }
                    }
                    let line = String(decoding: head.prefix { $0 != UInt8(ascii: "\r") }, as: UTF8.self)
                    let parts = line.split(separator: " ")
                    let (status, type, body): (String, String, [UInt8]) =
                        parts.count >= 2 && parts[0] == "GET" && (parts[1] == "/metrics" || parts[1].hasPrefix("/metrics?"))
                        ? ("200 OK", "text/plain; version=0.0.4; charset=utf-8", render())
                        : ("404 Not Found", "text/plain", Array("only /metrics is served here\n".utf8))
                    await stream.send(
                        Array("HTTP/1.1 \(status)\r\nContent-Type: \(type)\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n".utf8)
                            + body)
                }
            }
        }
        return MetricsEndpoint(listener: listener)
    }

    /// The port it listens on (what an address with port 0 got).
    public var port: Int { listener.port }
}

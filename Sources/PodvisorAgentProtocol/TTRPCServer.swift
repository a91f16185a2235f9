#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import SwiftProtobuf

/// Serves ttrpc requests on connections handed to it. Each request runs on its own thread, so a slow
/// method never holds up the others multiplexed on the same connection.
public final class TTRPCServer: Sendable {
    /// Throws RPCError to answer with a status; any other error answers `internal`.
    typealias Handler = @Sendable ([UInt8]) throws -> [UInt8]

    private let handlers: [String: Handler]

    // Only through Builder: every handler is registered for a typed AgentMethod.
    private init(handlers: [String: Handler]) {
        self.handlers = handlers
    }

    /// Registers typed handlers: `builder.add(.version) { request in … }`.
    public struct Builder {
        private var handlers: [String: Handler] = [:]

        public init() {}

        public mutating func add<Request: Message, Response: Message>(
            _ method: AgentMethod<Request, Response>, _ body: @escaping @Sendable (Request) throws -> Response
        ) {
            handlers[method.path] = { (payload: [UInt8]) throws -> [UInt8] in
                let request: Request
                do { request = try Request(serializedBytes: payload) } catch {
                    throw RPCError(.invalidArgument, "cannot decode \(Request.protoMessageName): \(error)")
                }
                let response = try body(request)
                do { return try response.serializedBytes() } catch {
                    throw RPCError(.internal, "cannot encode \(Response.protoMessageName): \(error)")
                }
            }
        }

        public func build() -> TTRPCServer { TTRPCServer(handlers: handlers) }
    }

    /// Why `serve` returned.
    public enum End: Sendable, Equatable {
        case closedByPeer
        case malformed(String)
    }

    /// Reads requests until the peer closes or sends something malformed; the caller then closes the stream.
    /// Nothing a peer sends can end more than its own connection.
    public func serve(_ connection: TTRPCConnection) -> End {
        while true {
            let frame: TTRPCFrame?
            do { frame = try connection.receive() } catch { return .malformed(error.description) }
            guard let frame else { return .closedByPeer }
            guard frame.kind == .request, frame.streamID % 2 == 1 else {
                return .malformed("unexpected \(frame.kind) frame on stream \(frame.streamID)")
            }
            let request: Ttrpc_Request
            do { request = try Ttrpc_Request(serializedBytes: frame.payload) } catch {
                return .malformed("undecodable ttrpc request: \(error)")
            }
            let handler = handlers["\(request.service)/\(request.method)"]
            startDetachedThread {
                var response = Ttrpc_Response()
                if let handler {
                    do { response.payload = Data(try handler(Array(request.payload))) } catch {
                        let status = error as? RPCError ?? RPCError(.internal, "\(error)")
                        response.status = .with {
                            $0.code = status.code.rawValue; $0.message = status.message
                        }
                    }
                } else {
                    response.status = .with {
                        $0.code = StatusCode.unimplemented.rawValue
                        $0.message = "\(request.service)/\(request.method) is not implemented"
                    }
                }
                // A response that cannot be written means the connection is gone; its reader notices.
                if let bytes: [UInt8] = try? response.serializedBytes() {
                    try? connection.send(TTRPCFrame(streamID: frame.streamID, kind: .response, payload: bytes))
                }
            }
        }
    }
}

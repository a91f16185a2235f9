import Foundation
import PodvisorAgentProtocol
import PodvisorCore
import SwiftProtobuf
import Synchronization

/// ttrpc client of one agent connection. Calls are multiplexed by stream id; a reader thread routes
/// responses to their callers. When the connection breaks, every pending and later call fails `.unavailable`.
public final class AgentClient: Sendable {
    private typealias Waiter = CheckedContinuation<Ttrpc_Response, any Error>

    private struct Calls {
        var nextStreamID: UInt32 = 1
        var waiting: [UInt32: Waiter] = [:]
        var closedReason: String?
    }

    /// A class, so the reader thread and timers can share the lock.
    private final class CallTable: Sendable {
        let state = Mutex(Calls())

        func withLock<T>(_ body: (inout Calls) throws(PodvisorError) -> T) throws(PodvisorError) -> T {
            try state.withLock { c throws(PodvisorError) in try body(&c) }
        }

        func take(_ streamID: UInt32) -> Waiter? {
            state.withLock { $0.waiting.removeValue(forKey: streamID) }
        }
    }

    /// Closes the descriptor once both the client and its reader thread are done with it: until then no
    /// shutdown or write of theirs can reach a number the kernel has meanwhile given to another file.
    private final class Descriptor: Sendable {
        let stream: FileDescriptorStream
        init(_ stream: FileDescriptorStream) { self.stream = stream }
        deinit { stream.close() }
    }

    private let connection: TTRPCConnection
    private let calls = CallTable()
    private let descriptor: Descriptor

    /// Takes ownership of `fd`, a stream connected to the agent's port.
    public init(fd: Int32) {
        connection = TTRPCConnection(stream: FileDescriptorStream(fd: fd))
        descriptor = Descriptor(connection.stream)
        let thread = Thread { [connection, calls, descriptor] in
            let reason: String
            while true {
                do {
                    guard let frame = try connection.receive() else {
                        reason = "agent closed the connection"
                        break
                    }
                    guard frame.kind == .response, let response = try? Ttrpc_Response(serializedBytes: frame.payload) else {
                        continue
                    }
                    calls.take(frame.streamID)?.resume(returning: response)
                } catch {
                    reason = "agent connection failed: \(error)"
                    break
                }
            }
            let orphans = calls.state.withLock { c -> [Waiter] in
                c.closedReason = reason
                defer { c.waiting = [:] }
                return Array(c.waiting.values)
            }
            orphans.forEach { $0.resume(throwing: PodvisorError(.unavailable, reason)) }
            // The agent sees the end too (after a framing error); closing is left to the last owner.
            descriptor.stream.shutdown()
        }
        thread.name = "agent-client"
        thread.start()
    }

    deinit { connection.stream.shutdown() }

    /// Ends the connection; pending calls fail.
    public func close() {
        connection.stream.shutdown()
    }

    /// Calls one agent method: `try await call(.version, VersionRequest())`.
    public func call<Request: Message, Response: Message>(
        _ method: AgentMethod<Request, Response>, _ request: Request, timeout: Duration = .seconds(30)
    ) async throws(PodvisorError) -> Response {
        var envelope = Ttrpc_Request()
        envelope.service = AgentAPI.service
        envelope.method = method.name
        envelope.timeoutNano = Int64(timeout.components.seconds) * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000
        let reply: Ttrpc_Response
        do {
            envelope.payload = try request.serializedData()
            let frame = TTRPCFrame(streamID: 0, kind: .request, payload: try envelope.serializedBytes())
            reply = try await exchange(frame, timeout: timeout, what: "\(AgentAPI.service)/\(method.name)")
        } catch let error as PodvisorError {
            throw error
        } catch {
            throw PodvisorError(.internalError, "\(method.name): cannot encode request", cause: error)
        }
        if reply.hasStatus && reply.status.code != 0 {
            let code = StatusCode(rawValue: reply.status.code) ?? .unknown
            throw PodvisorError(Self.code(for: code), "agent \(method.name): \(reply.status.message)", cause: RPCError(code, reply.status.message))
        }
        do {
            return try Response(serializedBytes: reply.payload)
        } catch {
            throw PodvisorError(.internalError, "agent \(method.name): undecodable response", cause: error)
        }
    }

    private func exchange(_ frame: TTRPCFrame, timeout: Duration, what: String) async throws -> Ttrpc_Response {
        var frame = frame
        let streamID = try calls.withLock { c throws(PodvisorError) -> UInt32 in
            if let reason = c.closedReason { throw PodvisorError(.unavailable, reason) }
            // Client streams are odd.
            defer { c.nextStreamID &+= 2 }
            return c.nextStreamID
        }
        frame.streamID = streamID
        // A Dispatch timer, not a Task: the cooperative pool (two threads here) may be busy with blocking work,
        // and a timeout must fire regardless.
        let timer = DispatchWorkItem { [calls] in
            calls.take(streamID)?
                .resume(throwing: PodvisorError(.timeout, "\(what): no answer within \(timeout)"))
        }
        let (seconds, attoseconds) = timeout.components
        defer { timer.cancel() }
        return try await withCheckedThrowingContinuation { (waiter: Waiter) in
            let closed = calls.state.withLock { c -> String? in
                if c.closedReason == nil { c.waiting[streamID] = waiter }
                return c.closedReason
            }
            if let closed { return waiter.resume(throwing: PodvisorError(.unavailable, closed)) }
            // Armed only now that the call is registered: a timer that fired before found nothing to fail,
            // and a short timeout (StopContainer's 0 s grace) then waited for an answer that may never come.
            DispatchQueue.global().asyncAfter(
                deadline: .now() + .nanoseconds(Int(min(seconds, 1 << 31) * 1_000_000_000 + attoseconds / 1_000_000_000)),
                execute: timer)
            do { try connection.send(frame) } catch {
                calls.take(streamID)?
                    .resume(throwing: PodvisorError(.unavailable, "\(what): cannot send: \(error)"))
            }
        }
    }

    static func code(for status: StatusCode) -> PodvisorError.Code {
        switch status {
        case .invalidArgument, .outOfRange: .invalidArgument
        case .notFound: .notFound
        case .alreadyExists: .alreadyExists
        case .failedPrecondition: .failedPrecondition
        case .unimplemented: .unsupported
        case .deadlineExceeded: .timeout
        case .unavailable, .cancelled, .aborted: .unavailable
        default: .internalError
        }
    }
}

extension AgentClient {
    public func version(timeout: Duration = .seconds(30)) async throws(PodvisorError) -> Podvisor_Agent_V1_VersionResponse {
        try await call(.version, Podvisor_Agent_V1_VersionRequest(), timeout: timeout)
    }

    public func health(timeout: Duration = .seconds(10)) async throws(PodvisorError) -> Podvisor_Agent_V1_HealthResponse {
        try await call(.health, Podvisor_Agent_V1_HealthRequest(), timeout: timeout)
    }

    /// The agent answers, then powers the VM off.
    public func shutdown(timeout: Duration = .seconds(10)) async throws(PodvisorError) {
        _ = try await call(.shutdown, Podvisor_Agent_V1_ShutdownRequest(), timeout: timeout)
    }
}

import Foundation
import GRPCCore
import Logging
import PodvisorCRI

/// One line per CRI call, as an operator reading podvisord's log (or a log shipper) needs it: the method,
/// the ids it names, how long it took and its gRPC status, at debug level; a refusal (the client's mistake)
/// at info and a failure (ours, or the VM's) at warning, each with its reason.
public struct CallLog: ServerInterceptor {
    let log: Logger

    public init(log: Logger) { self.log = log }

    public func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>, context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        let started = ContinuousClock.now
        var metadata: Logger.Metadata = ["method": "\(context.descriptor.method)"]
        // Every CRI call carries one request message: read it for its ids, then hand it on as it was.
        var iterator = request.messages.makeAsyncIterator()
        let message = try await iterator.next()
        if let identified = message as? any IdentifiedRequest { metadata.merge(identified.logMetadata) { $1 } }
        let forwarded = StreamingServerRequest(
            metadata: request.metadata,
            messages: RPCAsyncSequence(
                wrapping: AsyncThrowingStream<Input, any Error> { continuation in
                    if let message { continuation.yield(message) }
                    continuation.finish()
                }))
        let outcome: Result<StreamingServerResponse<Output>, any Error>
        do { outcome = .success(try await next(forwarded, context)) } catch { outcome = .failure(error) }
        let duration = started.duration(to: .now)
        metadata["duration_ms"] = "\(String(format: "%.1f", Self.milliseconds(duration)))"
        switch outcome {
        case .success(let response):
            switch response.accepted {
            case .success:
                metadata["status"] = "OK"
                log.debug("CRI call", metadata: metadata)
                CRIMetrics.call(context.descriptor.method, status: "OK", duration: duration)
            case .failure(let error):
                record(error, metadata)
                CRIMetrics.call(context.descriptor.method, status: "\(error.code)", duration: duration)
            }
        case .failure(let error as RPCError):
            record(error, metadata)
            CRIMetrics.call(context.descriptor.method, status: "\(error.code)", duration: duration)
        case .failure(let error):
            metadata["status"] = "UNKNOWN"
            log.warning("CRI call failed: \(error)", metadata: metadata)
            CRIMetrics.call(context.descriptor.method, status: "unknown", duration: duration)
        }
        return try outcome.get()
    }

    private func record(_ error: RPCError, _ metadata: Logger.Metadata) {
        var metadata = metadata
        metadata["status"] = "\(error.code)"
        switch error.code {
        case .invalidArgument, .notFound, .alreadyExists, .failedPrecondition, .outOfRange, .unimplemented, .cancelled:
            log.info("CRI call refused: \(error.message)", metadata: metadata)
        default:
            log.warning("CRI call failed: \(error.message)", metadata: metadata)
        }
    }

    private static func milliseconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
    }
}

/// A request that names a pod or a container: its ids go into the call's log line.
protocol IdentifiedRequest {
    var logMetadata: Logger.Metadata { get }
}

extension IdentifiedRequest {
    /// At most a full id's length (an image reference's, 256): the field is a client's to fill.
    static func id(_ value: String, limit: Int = 64) -> Logger.MetadataValue { .string(String(value.prefix(limit))) }
}

extension Runtime_V1_RunPodSandboxRequest: IdentifiedRequest {
    var logMetadata: Logger.Metadata {
        ["pod": .string("\(config.metadata.namespace.prefix(63))/\(config.metadata.name.prefix(253))")]
    }
}

extension Runtime_V1_StopPodSandboxRequest: IdentifiedRequest {
    var logMetadata: Logger.Metadata { ["sandbox": Self.id(podSandboxID)] }
}

extension Runtime_V1_RemovePodSandboxRequest: IdentifiedRequest {
    var logMetadata: Logger.Metadata { ["sandbox": Self.id(podSandboxID)] }
}

extension Runtime_V1_PodSandboxStatusRequest: IdentifiedRequest {
    var logMetadata: Logger.Metadata { ["sandbox": Self.id(podSandboxID)] }
}

extension Runtime_V1_CreateContainerRequest: IdentifiedRequest {
    var logMetadata: Logger.Metadata { ["sandbox": Self.id(podSandboxID), "container_name": Self.id(config.metadata.name)] }
}

extension Runtime_V1_StartContainerRequest: IdentifiedRequest {
    var logMetadata: Logger.Metadata { ["container": Self.id(containerID)] }
}

extension Runtime_V1_StopContainerRequest: IdentifiedRequest {
    var logMetadata: Logger.Metadata { ["container": Self.id(containerID)] }
}

extension Runtime_V1_RemoveContainerRequest: IdentifiedRequest {
    var logMetadata: Logger.Metadata { ["container": Self.id(containerID)] }
}

extension Runtime_V1_ContainerStatusRequest: IdentifiedRequest {
    var logMetadata: Logger.Metadata { ["container": Self.id(containerID)] }
}

extension Runtime_V1_ExecSyncRequest: IdentifiedRequest {
    var logMetadata: Logger.Metadata { ["container": Self.id(containerID)] }
}

extension Runtime_V1_ExecRequest: IdentifiedRequest {
    var logMetadata: Logger.Metadata { ["container": Self.id(containerID)] }
}

extension Runtime_V1_AttachRequest: IdentifiedRequest {
    var logMetadata: Logger.Metadata { ["container": Self.id(containerID)] }
}

extension Runtime_V1_PortForwardRequest: IdentifiedRequest {
    var logMetadata: Logger.Metadata { ["sandbox": Self.id(podSandboxID)] }
}

extension Runtime_V1_UpdateContainerResourcesRequest: IdentifiedRequest {
    var logMetadata: Logger.Metadata { ["container": Self.id(containerID)] }
}

extension Runtime_V1_ReopenContainerLogRequest: IdentifiedRequest {
    var logMetadata: Logger.Metadata { ["container": Self.id(containerID)] }
}

extension Runtime_V1_ContainerStatsRequest: IdentifiedRequest {
    var logMetadata: Logger.Metadata { ["container": Self.id(containerID)] }
}

extension Runtime_V1_PodSandboxStatsRequest: IdentifiedRequest {
    var logMetadata: Logger.Metadata { ["sandbox": Self.id(podSandboxID)] }
}

extension Runtime_V1_PullImageRequest: IdentifiedRequest {
    var logMetadata: Logger.Metadata { ["image": Self.id(image.image, limit: 256)] }
}

extension Runtime_V1_RemoveImageRequest: IdentifiedRequest {
    var logMetadata: Logger.Metadata { ["image": Self.id(image.image, limit: 256)] }
}

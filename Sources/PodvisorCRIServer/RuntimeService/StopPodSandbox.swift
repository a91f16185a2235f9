import Foundation
import GRPCCore
import PodvisorCRI
import PodvisorCore

extension RuntimeService {
    /// Stops every container (the guest powers off; the VM is destroyed if it takes longer than the
    /// shutdown timeout) and removes the VM. The record stays, NOTREADY, until RemovePodSandbox.
    /// Idempotent: an unknown or already stopped sandbox is not an error.
    public func stopPodSandbox(
        request: Runtime_V1_StopPodSandboxRequest, context: ServerContext
    ) async throws
        -> Runtime_V1_StopPodSandboxResponse
    {
        try await handle {
            guard let sandbox = try server.existing(server.sandboxes, request.podSandboxID, "pod_sandbox_id") else {
                return Runtime_V1_StopPodSandboxResponse()
            }
            try await server.locks.withLock(sandbox.id) { try await server.stopSandbox(sandbox.id) }
            return Runtime_V1_StopPodSandboxResponse()
        }
    }
}

extension CRIServer {
    /// The record named by a unique id prefix, or nil when there is none (Stop and Remove are idempotent).
    func existing<R>(_ store: RecordStore<R>, _ id: String, _ field: String) throws(PodvisorError) -> R? {
        try Validate.required(id, field)
        do { return try store.find(id) } catch  where error.code == .notFound { return nil }
    }

    func stopSandbox(_ id: String) async throws(PodvisorError) {
        // Out of `pods` first: the VM watcher then knows this stop was asked for.
        let pod = pods.withLock { $0.removeValue(forKey: id) }
        hostPorts.close(id)
        if let pod {
            try sandboxes.update(id) { $0.stopping = true }
            let cleanly = try await pod.stop(timeout: .seconds(config.shutdownTimeoutSeconds))
            log.info("sandbox \(id) stopped\(cleanly ? "" : " (VM destroyed after the shutdown timeout)")")
        }
        let now = Clock.nowNanoseconds()
        for container in containers.all where container.sandboxID == id && container.state != .exited {
            containerExited(container.id, code: 137, at: now, reason: "Error", message: "stopped with its pod sandbox")
        }
        try sandboxes.update(id) {
            if $0.state == .ready { $0.notReadyReason = nil }
            $0.state = .notReady
            $0.stopping = nil
        }
    }
}

import Foundation
import GRPCCore
import PodvisorCRI
import PodvisorCore
import PodvisorRuntime

extension RuntimeService {
    public func podSandboxStatus(
        request: Runtime_V1_PodSandboxStatusRequest, context: ServerContext
    ) async throws
        -> Runtime_V1_PodSandboxStatusResponse
    {
        try await handle {
            let sandbox = try server.sandboxes.find(request.podSandboxID)
            return .with {
                $0.status = server.sandboxStatus(sandbox)
                $0.containersStatuses = server.containers.all.filter { $0.sandboxID == sandbox.id }.map(server.containerStatus)
                $0.timestamp = Clock.nowNanoseconds()
                if request.verbose { $0.info = server.sandboxInfo(sandbox) }
            }
        }
    }
}

extension CRIServer {
    /// What `crictl inspectp` shows beyond the status: the VM behind the sandbox, while it is live.
    func sandboxInfo(_ sandbox: SandboxRecord) -> [String: String] {
        var vm: [String: Any] = [:]
        if let reason = sandbox.notReadyReason { vm["notReadyReason"] = reason }
        if let info = pod(sandbox.id)?.info {
            vm["domain"] = info.domain
            vm["memoryMiB"] = info.memoryMiB
            vm["vcpus"] = info.vcpus
            vm["transport"] = info.transport
            vm["hypervisor"] = info.hypervisor
            vm["pooled"] = info.pooled
            vm["bootToReadyMs"] = Double(info.bootToReady.components.attoseconds) / 1e15 + Double(info.bootToReady.components.seconds) * 1000
            vm["agentVersion"] = info.agentVersion
            vm["guestKernel"] = info.guestKernel
            vm["sharedDirectory"] = info.sharedDirectory
        }
        return Self.verboseInfo(["runtimeHandler": sandbox.runtimeHandler, "vm": vm, "hostname": hostname(sandbox.config)])
    }
}

import Foundation
import GRPCCore
import PodvisorCRI
import PodvisorCore
import PodvisorRuntime

extension RuntimeService {
    public func podSandboxStatus(request: Runtime_V1_PodSandboxStatusRequest, context: ServerContext) async throws
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
    /// What `crictl inspectp` shows beyond the status: the VM behind the sandbox.
    func sandboxInfo(_ sandbox: SandboxRecord) -> [String: String] {
        var vm: [String: Any] = [
            "domain": VMHost.domainPrefix + sandbox.vmID, "memoryMiB": sandbox.vmSize.memoryMiB, "vcpus": sandbox.vmSize.vcpus,
            "transport": sandbox.transport, "hypervisor": host.accelerator.rawValue,
        ]
        if let reason = sandbox.notReadyReason { vm["notReadyReason"] = reason }
        if let pod = pod(sandbox.id) {
            vm["bootToReadyMs"] = Double(pod.timings.ready.components.attoseconds) / 1e15 + Double(pod.timings.ready.components.seconds) * 1000
            vm["agentVersion"] = pod.version.agentVersion
            vm["guestKernel"] = pod.version.kernelVersion
            vm["sharedDirectory"] = pod.vm.sharedDirectory ?? ""
        }
        return Self.verboseInfo(["runtimeHandler": sandbox.runtimeHandler, "vm": vm, "hostname": hostname(sandbox.config)])
    }
}

import GRPCCore
import PodvisorCRI

/// runtime.v1.RuntimeService: one file per RPC in this folder, named after it (RunPodSandbox.swift, …).
public struct RuntimeService: Runtime_V1_RuntimeService.SimpleServiceProtocol {
    let server: CRIServer
}

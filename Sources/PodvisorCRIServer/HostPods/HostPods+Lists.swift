import Foundation
import GRPCCore
import PodvisorCRI

/// containerd's share of the calls that span both sides. A containerd that does not answer costs its own
/// pods only: the lists then hold the VM pods, and the log says why the rest is missing.
extension CRIServer {
    /// containerd's answer, or nil (logged) when it has none to give.
    func fromHostPods<T: Sendable>(_ what: String, _ call: (HostPods) async throws -> T) async -> T? {
        guard let hostPods else { return nil }
        do { return try await call(hostPods) } catch {
            log.warning("\(what): \(hostPods.unavailable(error).message)")
            return nil
        }
    }

    func hostSandboxes(_ filter: Runtime_V1_PodSandboxFilter) async -> [Runtime_V1_PodSandbox] {
        await fromHostPods("ListPodSandbox") { try await $0.runtime.listPodSandbox(.with { $0.filter = filter }).items } ?? []
    }

    func hostContainers(_ filter: Runtime_V1_ContainerFilter) async -> [Runtime_V1_Container] {
        await fromHostPods("ListContainers") { try await $0.runtime.listContainers(.with { $0.filter = filter }).containers } ?? []
    }

    func hostContainerStats(_ filter: Runtime_V1_ContainerStatsFilter) async -> [Runtime_V1_ContainerStats] {
        await fromHostPods("ListContainerStats") { try await $0.runtime.listContainerStats(.with { $0.filter = filter }).stats } ?? []
    }

    func hostSandboxStats(_ filter: Runtime_V1_PodSandboxStatsFilter) async -> [Runtime_V1_PodSandboxStats] {
        await fromHostPods("ListPodSandboxStats") { try await $0.runtime.listPodSandboxStats(.with { $0.filter = filter }).stats } ?? []
    }

    func hostPodMetrics() async -> [Runtime_V1_PodSandboxMetrics] {
        await fromHostPods("ListPodSandboxMetrics") { try await $0.runtime.listPodSandboxMetrics(.init()).podMetrics } ?? []
    }

    func hostMetricDescriptors() async -> [Runtime_V1_MetricDescriptor] {
        await fromHostPods("ListMetricDescriptors") { try await $0.runtime.listMetricDescriptors(.init()).descriptors } ?? []
    }
}

import GRPCCore
import PodvisorCRI

/// ListMetricDescriptors and ListPodSandboxMetrics (kubelet's PodAndContainerStatsFromCRI): the cAdvisor
/// names kubelet serves on /metrics/cadvisor, from the same guest cgroup figures as ContainerStats.
extension RuntimeService {
    static let metricLabels = ["container", "pod", "namespace"]
    static let metrics: [(name: String, help: String, type: Runtime_V1_MetricType)] = [
        ("container_cpu_usage_seconds_total", "Cumulative cpu time consumed in seconds.", .counter),
        ("container_memory_usage_bytes", "Current memory usage in bytes, including all memory regardless of when it was accessed.", .gauge),
        ("container_memory_working_set_bytes", "Current working set in bytes.", .gauge),
    ]

    public func listMetricDescriptors(
        request: Runtime_V1_ListMetricDescriptorsRequest, context: ServerContext
    ) async throws
        -> Runtime_V1_ListMetricDescriptorsResponse
    {
        let ours: [Runtime_V1_MetricDescriptor] = Self.metrics.map { metric in
            .with {
                $0.name = metric.name
                $0.help = metric.help
                $0.labelKeys = Self.metricLabels
            }
        }
        // containerd names its own; a name both serve is described once.
        let names = Set(ours.map(\.name))
        let theirs = await server.hostMetricDescriptors().filter { !names.contains($0.name) }
        return .with { $0.descriptors = ours + theirs }
    }

    public func listPodSandboxMetrics(
        request: Runtime_V1_ListPodSandboxMetricsRequest, context: ServerContext
    ) async throws
        -> Runtime_V1_ListPodSandboxMetricsResponse
    {
        let metrics = await podMetrics() + server.hostPodMetrics()
        return .with { $0.podMetrics = metrics }
    }

    public func streamPodSandboxMetrics(
        request: Runtime_V1_StreamPodSandboxMetricsRequest, response: RPCWriter<Runtime_V1_StreamPodSandboxMetricsResponse>,
        context: ServerContext
    ) async throws {
        for page in await (podMetrics() + server.hostPodMetrics()).pages() {
            try await response.write(.with { $0.podSandboxMetrics = page })
        }
    }

    private func podMetrics() async -> [Runtime_V1_PodSandboxMetrics] {
        var result: [Runtime_V1_PodSandboxMetrics] = []
        for sandbox in await server.sandboxStatsList(Runtime_V1_PodSandboxStatsFilter()) {
            let pod = sandbox.attributes.metadata
            result.append(
                .with {
                    $0.podSandboxID = sandbox.attributes.id
                    $0.containerMetrics = sandbox.linux.containers.map { container in
                        let labels = [container.attributes.metadata.name, pod.name, pod.namespace]
                        let values: [(UInt64, Int64)] = [
                            (container.cpu.usageCoreNanoSeconds.value / 1_000_000_000, container.cpu.timestamp),
                            (container.memory.usageBytes.value, container.memory.timestamp),
                            (container.memory.workingSetBytes.value, container.memory.timestamp),
                        ]
                        return .with {
                            $0.containerID = container.attributes.id
                            $0.metrics = zip(Self.metrics, values).map { metric, value in
                                .with {
                                    $0.name = metric.name
                                    $0.timestamp = value.1
                                    $0.metricType = metric.type
                                    $0.labelValues = labels
                                    $0.value = .with { $0.value = value.0 }
                                }
                            }
                        }
                    }
                })
        }
        return result
    }
}

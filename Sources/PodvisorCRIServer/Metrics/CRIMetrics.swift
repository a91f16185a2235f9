import Foundation
import Metrics
import PodvisorCRI
import PodvisorRuntime
import Synchronization

/// What podvisord tells Prometheus (Docs/operations.md lists every series with a sample query). Recorded
/// through swift-metrics, so without a backend (the CLI, tests) they cost nothing; podvisord bootstraps
/// swift-prometheus when `[metrics] address` is set.
enum CRIMetrics {
    static func call(_ method: String, status: String, duration: Duration) {
        Counter(label: "podvisor_cri_requests_total", dimensions: [("method", method), ("status", status)]).increment()
        Timer(label: "podvisor_cri_request_duration_seconds", dimensions: [("method", method)]).record(duration: duration)
    }

    /// A sandbox became ready: the VM's boot until its agent answered, and the whole RunPodSandbox.
    /// `boot` nil: the VM came from the pool, booted before the pod.
    static func sandboxStarted(boot: Duration?, total: Duration) {
        if let boot { Timer(label: "podvisor_sandbox_boot_seconds").record(duration: boot) }
        Timer(label: "podvisor_sandbox_start_seconds").record(duration: total)
    }

    /// From the sandbox's creation until this container was started: its first container's is the pod's
    /// start as users see it.
    static func containerStarted(sinceSandboxCreated duration: Duration) {
        Timer(label: "podvisor_container_start_seconds").record(duration: duration)
    }

    static func imagePulled(bytes: Int64, failed: Bool) {
        Counter(label: "podvisor_image_pulls_total", dimensions: [("status", failed ? "failed" : "ok")]).increment()
        if bytes > 0 { Counter(label: "podvisor_image_pull_bytes_total").increment(by: bytes) }
    }

    enum RecoveryOutcome: String {
        /// A ready sandbox's VM was taken back.
        case reattached
        /// A ready sandbox's VM was gone (or its stop had begun): it is NOTREADY now.
        case lost
        /// What was left of a sandbox no record owns was removed.
        case removed
    }

    static func recovered(_ outcome: RecoveryOutcome) {
        Counter(label: "podvisor_recovery_sandboxes_total", dimensions: [("outcome", outcome.rawValue)]).increment()
    }
}

/// Series whose values are read when Prometheus scrapes: how many sandboxes and containers are in each
/// state, and what each pod VM costs the host. A pod's series go when the pod does.
final class ScrapeGauges: Sendable {
    private let perPod = Mutex<[String: [Gauge]]>([:])

    func refresh(_ server: CRIServer) {
        let sandboxes = server.sandboxes.all
        let containers = server.containers.all
        for state in [SandboxRecord.State.ready, .notReady] {
            Gauge(label: "podvisor_sandboxes", dimensions: [("state", state.rawValue)]).record(sandboxes.filter { $0.state == state }.count)
        }
        for state in [ContainerRecord.State.created, .running, .exited, .unknown] {
            Gauge(label: "podvisor_containers", dimensions: [("state", state.rawValue)]).record(containers.filter { $0.state == state }.count)
        }
        let pool = server.runtime.poolCounts
        Gauge(label: "podvisor_pool_vms", dimensions: [("state", "ready")]).record(pool.ready)
        Gauge(label: "podvisor_pool_vms", dimensions: [("state", "booting")]).record(pool.booting)
        let usage = server.runtime.hostUsage()
        let live = Set(server.pods.withLock { Array($0.keys) })
        perPod.withLock { gauges in
            for (id, stale) in gauges where !live.contains(id) {
                stale.forEach { $0.destroy() }
                gauges[id] = nil
            }
            for record in sandboxes where live.contains(record.id) {
                guard let figures = usage[SandboxSpec.vmID(record.id)] else { continue }
                let labels = [("sandbox", record.id), ("pod", record.metadata.name), ("namespace", record.metadata.namespace)]
                let memory = Gauge(label: "podvisor_sandbox_host_memory_bytes", dimensions: labels)
                let cpu = Gauge(label: "podvisor_sandbox_host_cpu_seconds", dimensions: labels)
                memory.record(figures.pssBytes)
                cpu.record(figures.cpuSeconds)
                gauges[record.id] = [memory, cpu]
            }
        }
    }
}

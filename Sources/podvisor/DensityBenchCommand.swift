import ArgumentParser
import Foundation
import PodvisorCRI
import PodvisorCore
import PodvisorRuntime

/// `podvisor bench density`: idle pods started until the target or until the host says no (a refused start,
/// or less memory left than the reserve), with what each step costs: the Nth pod's start, CRI latencies,
/// PSS per pod, and the runtime's own memory, threads and descriptors; then whether removing the pods gives
/// the runtime's memory back.
struct DensityBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "density", abstract: "Idle pods until the target or the host's limit: start time, CRI latency and memory as they grow.")

    @OptionGroup var runtime: RuntimeOptions
    @Option(help: "Idle pods to reach.") var target = 150
    @Option(help: "Pods between two measurements.") var step = 10
    @Option(help: "Pods starting at a time.") var parallel = 2
    @Option(help: "Stop when the host has less memory available than this (MiB).") var reserveMiB = 2048
    @Option(help: "Image with sh and sleep, already in the store (make bench imports the demo image).") var image = "demo"
    @Option(help: "Markdown file whose density section is replaced with the results.") var report: String?

    static let startMarker = "<!-- bench:density:start -->"
    static let endMarker = "<!-- bench:density:end -->"

    struct Step {
        var pods: Int
        var lastStarts: [Duration]
        var list: [Duration]
        var status: [Duration]
        var pssPerPodKiB: Int
        var availableMiB: Int
        var own: OwnFigures
    }

    /// This process's cost: the runtime runs in it, as in podvisord.
    struct OwnFigures {
        var rssKiB: Int
        /// Heap bytes allocated and not freed: RSS that stays while this stays put is freed heap glibc holds.
        var heapInUseKiB: Int
        var threads: Int
        var descriptors: Int

        static func read() -> OwnFigures {
            let status = readProcFile("/proc/self/status")
            let descriptors = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? 0
            return OwnFigures(
                rssKiB: procField("VmRSS", in: status), heapInUseKiB: heapInUseBytes() / 1024,
                threads: procField("Threads", in: status), descriptors: descriptors)
        }
    }

    func run() async throws {
        guard target > 0, step > 0, parallel > 0 else { throw ValidationError("--target, --step and --parallel must be positive") }
        let markdown = try await BenchPods.withRuntime(runtime, image: image) { bench, host, vms in
            let empty = OwnFigures.read()
            var steps: [Step] = [], pods: [(sandbox: String, container: String)] = []
            var stopped = "reached the target"
            filling: while pods.count < target {
                var starts: [Duration] = []
                while starts.count < step && pods.count < target {
                    if Self.availableMiB() < reserveMiB {
                        stopped = "less than \(reserveMiB) MiB of host memory left"
                        break filling
                    }
                    let wave = min(parallel, target - pods.count)
                    do {
                        try await withThrowingTaskGroup(of: (Duration, String, String).self) { group in
                            for n in pods.count..<(pods.count + wave) {
                                group.addTask {
                                    let started = ContinuousClock.now
                                    let pod = try await bench.start("dense-\(n)", command: "sleep 36000")
                                    return (started.duration(to: .now), pod.sandbox, pod.container)
                                }
                            }
                            for try await (took, sandbox, container) in group {
                                starts.append(took)
                                pods.append((sandbox, container))
                            }
                        }
                    } catch {
                        stopped = "the host refused pod \(pods.count + 1): \(error)"
                        break filling
                    }
                }
                steps.append(try await measure(bench, vms, pods, starts))
                let last = steps[steps.count - 1]
                print(
                    "\(pods.count) pods: start p50 \(BootBenchResult.percentile(starts, 0.5).milliseconds) ms, ListPodSandbox p99 \(BootBenchResult.percentile(last.list, 0.99).millisecondsText) ms, PSS/pod \(last.pssPerPodKiB / 1024) MiB, available \(last.availableMiB) MiB"
                )
            }
            if pods.count % step != 0, !pods.isEmpty, steps.last?.pods != pods.count { steps.append(try await measure(bench, vms, pods, [])) }
            let full = OwnFigures.read()
            for pod in pods { try await bench.remove(pod.sandbox) }
            // RemovePodSandbox has the runtime trim its heap a second later (HeapTrimmer), as in podvisord.
            try await Task.sleep(for: .seconds(2))
            let removed = OwnFigures.read()
            // Trimming once more shows whether anything freed was left to give back.
            trimHeap()
            let trimmed = OwnFigures.read()
            return Self.markdown(
                accelerator: host.accelerator.rawValue, guestMiB: host.config.memoryMiB, steps: steps, stopped: stopped,
                own: (empty, full, removed, trimmed))
        }
        print(markdown)
        if let report { try replaceSection(of: report, between: Self.startMarker, and: Self.endMarker, with: markdown) }
    }

    private func measure(
        _ bench: BenchPods, _ vms: VMRuntime, _ pods: [(sandbox: String, container: String)], _ starts: [Duration]
    ) async throws -> Step {
        let list = try await BenchPods.latencies(100) { _ in _ = try await bench.runtime.listPodSandbox(Runtime_V1_ListPodSandboxRequest()) }
        let status = try await BenchPods.latencies(100) { i in
            _ = try await bench.runtime.containerStatus(.with { $0.containerID = pods[i % pods.count].container })
        }
        let pss = vms.hostUsage().values.reduce(0) { $0 + $1.pssBytes }
        return Step(
            pods: pods.count, lastStarts: starts, list: list, status: status, pssPerPodKiB: pss / 1024 / max(1, pods.count),
            availableMiB: Self.availableMiB(), own: .read())
    }

    static func availableMiB() -> Int {
        procField("MemAvailable", in: readProcFile("/proc/meminfo")) / 1024
    }

    static func markdown(
        accelerator: String, guestMiB: Int, steps: [Step], stopped: String,
        own: (empty: OwnFigures, full: OwnFigures, removed: OwnFigures, trimmed: OwnFigures)
    ) -> String {
        let p = BootBenchResult.percentile
        let rows = steps.map { step in
            let start = step.lastStarts.isEmpty ? "" : "\(p(step.lastStarts, 0.5).milliseconds) / \(p(step.lastStarts, 1).milliseconds) ms"
            return "| \(step.pods) | \(start) | \(p(step.list, 0.99).millisecondsText) ms | \(p(step.status, 0.99).millisecondsText) ms | "
                + "\(step.pssPerPodKiB / 1024) MiB | \(step.availableMiB) MiB | \(step.own.rssKiB / 1024) MiB | \(step.own.threads) | \(step.own.descriptors) |"
        }
        let pods = steps.last?.pods ?? 0
        let perPod = { (from: Int, to: Int) in pods == 0 ? "" : String(format: "%.2f", Double(to - from) / Double(pods)) }
        let date = ISO8601DateFormatter().string(from: Date())
        return """
            \(startMarker)
            ### Density (`podvisor bench density`)

            Measured \(date) on \(ProcessInfo.processInfo.activeProcessorCount) cores, \(accelerator), \
            \(ProcessInfo.processInfo.physicalMemory >> 30) GiB, \(guestMiB) MiB guests, one `sleep` container per pod, the CRI server in \
            process (its figures are the runtime's, as podvisord's would be). Stopped: \(stopped), at **\(pods) idle pods**. Each \
            row: the last step's pod starts (RunPodSandbox → StartContainer, p50 / slowest), then 100 ListPodSandbox and 100 \
            ContainerStatus calls, PSS of all pod VMs' QEMU and helpers per pod, the host's MemAvailable, and the runtime \
            process's RSS, threads and descriptors.

            | pods | start p50 / max | ListPodSandbox p99 | ContainerStatus p99 | PSS per pod | host available | runtime RSS | threads | fds |
            |---|---|---|---|---|---|---|---|---|
            \(rows.joined(separator: "\n"))

            The runtime per pod: \(perPod(own.empty.threads, own.full.threads)) threads, \
            \(perPod(own.empty.descriptors, own.full.descriptors)) descriptors, \
            \(perPod(own.empty.rssKiB, own.full.rssKiB)) KiB RSS. Its RSS: \(own.empty.rssKiB / 1024) MiB before the first pod, \
            \(own.full.rssKiB / 1024) MiB with all, \(own.removed.rssKiB / 1024) MiB after removing them (and the runtime's own trim), \
            \(own.trimmed.rssKiB / 1024) MiB after another `malloc_trim`. Its heap in use (allocated, not freed): \
            \(own.empty.heapInUseKiB / 1024) MiB before, \(own.full.heapInUseKiB / 1024) MiB with all, \
            \(own.removed.heapInUseKiB / 1024) MiB after removing them; \
            threads \(own.empty.threads) before and \(own.removed.threads) after, descriptors \(own.empty.descriptors) before and \
            \(own.removed.descriptors) after.
            \(endMarker)
            """
    }
}

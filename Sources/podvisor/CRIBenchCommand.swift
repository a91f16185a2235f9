import ArgumentParser
import Foundation
import Logging
import PodvisorCRI
import PodvisorCore
import PodvisorStreaming
import PodvisorCRIServer
import PodvisorRuntime

/// `podvisor bench cri`: pod start through the CRI against a bare VM boot in the same run, CRI call
/// latency with many pods, and host memory per idle pod.
struct CRIBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cri",
        abstract: "Pod start (RunPodSandbox to the first log line) vs a bare boot, CRI latency with many pods, memory per pod.")

    @OptionGroup var runtime: RuntimeOptions
    @Option(help: "Measured pod starts and bare boots (after one unmeasured warm-up).") var runs = 5
    @Option(help: "Idle pods for the latency and memory figures.") var pods = 20
    @Option(help: "Image with sh and sleep, already in the store (make bench imports the demo image).") var image = "demo"
    @Option(help: "Initramfs whose /init only prints \(VMHost.baselineMarker) and powers off.") var baselineInitrd: String
    @Option(help: "Markdown file whose CRI section is replaced with the results.") var report: String?

    static let startMarker = "<!-- bench:cri:start -->"
    static let endMarker = "<!-- bench:cri:end -->"

    func run() async throws {
        let markdown = try await BenchPods.withRuntime(runtime, image: image, poolSize: 1) { bench, host, sandboxRuntime in
            let runtime = bench.runtime
            var starts: [PodStart] = [], bare: [Duration] = []
            for i in 0...runs {
                let started = try await podStart(bench, name: "bench-\(i)", command: "echo ready")
                try await bench.remove(started.sandbox)
                let baseline = try await host.bareBoot(id: "bench-bare-\(getpid())-\(i)", initrd: baselineInitrd)
                guard i > 0 else { continue }
                starts.append(started)
                bare.append(baseline)
                print("run \(i): pod start \(started.total.milliseconds) ms (\(started.stepsText)), bare boot \(baseline.milliseconds) ms")
            }

            // The same pod start from a pool of one, each once the pool's VM is ready again (its refill never
            // overlaps a measured start).
            try sandboxRuntime.startPool()
            var pooled: [PodStart] = []
            for i in 0..<runs {
                let deadline = ContinuousClock.now + .seconds(300)
                while sandboxRuntime.poolCounts.ready < 1 {
                    guard ContinuousClock.now < deadline else { throw PodvisorError(.timeout, "the pool's VM did not boot") }
                    try await Task.sleep(for: .milliseconds(20))
                }
                let started = try await podStart(bench, name: "bench-pooled-\(i)", command: "echo ready")
                try await bench.remove(started.sandbox)
                pooled.append(started)
                print("run \(i): pod start from the pool \(started.total.milliseconds) ms (\(started.stepsText))")
            }
            await sandboxRuntime.stopPool()

            // Idle pods, four booting at a time.
            var sandboxes: [String] = [], containers: [String] = []
            for batch in stride(from: 0, to: pods, by: 4) {
                try await withThrowingTaskGroup(of: (String, String).self) { group in
                    for n in batch..<min(batch + 4, pods) {
                        group.addTask {
                            let started = try await bench.start("idle-\(n)", command: "sleep 3600")
                            return (started.sandbox, started.container)
                        }
                    }
                    for try await (sandbox, container) in group {
                        sandboxes.append(sandbox)
                        containers.append(container)
                    }
                }
            }
            print("\(pods) idle pods running")
            let list = try await BenchPods.latencies(200) { _ in _ = try await runtime.listPodSandbox(Runtime_V1_ListPodSandboxRequest()) }
            let status = try await BenchPods.latencies(200) { i in
                _ = try await runtime.containerStatus(.with { $0.containerID = containers[i % containers.count] })
            }
            // Exec of `true`: ExecSync (kubelet's probes) against the streaming path kubectl exec takes (the CRI
            // call, then an SPDY session to the URL).
            let execSync = try await BenchPods.latencies(50) { i in
                _ = try await runtime.execSync(
                    .with {
                        $0.containerID = containers[i % containers.count]; $0.cmd = ["true"]
                    })
            }
            let execStream = try await BenchPods.latencies(50) { i in
                let url = try await runtime.exec(
                    .with {
                        $0.containerID = containers[i % containers.count]
                        $0.cmd = ["true"]
                        $0.stdout = true
                        $0.stderr = true
                    }
                ).url
                let quiet = RemoteCommandClient.IO(stdin: nil, resizes: nil, stdout: { _ in }, stderr: { _ in })
                _ = try await RemoteCommandClient.run(url: url, tty: false, io: quiet)
            }
            let memory = sandboxes.map(sandboxRuntime.hostMemory(sandboxID:))
            // One at a time, as kubelet's pod deletion does after stopping the containers (here still running).
            let stops = try await BenchPods.latencies(sandboxes.count) { i in try await bench.remove(sandboxes[i]) }
            return Self.markdown(
                accelerator: host.accelerator.rawValue, guestMiB: host.config.memoryMiB, starts: starts, pooled: pooled, bare: bare, list: list,
                status: status, exec: (execSync, execStream), memory: memory, stops: stops)
        }
        print(markdown)
        if let report { try replaceSection(of: report, between: Self.startMarker, and: Self.endMarker, with: markdown) }
    }

    /// One pod start by its CRI calls: RunPodSandbox, CreateContainer, StartContainer, then the container's
    /// first line in its log.
    struct PodStart {
        var sandbox: String
        var steps: [Duration]
        var total: Duration { steps.reduce(.zero, +) }
        static let stepNames = ["RunPodSandbox", "CreateContainer", "StartContainer", "first log line"]
        var stepsText: String { zip(Self.stepNames, steps).map { "\($0) \($1.milliseconds)" }.joined(separator: ", ") }
    }

    private func podStart(_ bench: BenchPods, name: String, command: String) async throws -> PodStart {
        let started = ContinuousClock.now
        var last = started
        var steps: [Duration] = []
        let lap = {
            let now = ContinuousClock.now
            steps.append(last.duration(to: now))
            last = now
        }
        let (pod, sandbox, _) = try await bench.start(name, container: "main", command: command, afterEachCall: lap)
        let log = "\(pod.logDirectory)/main.log"
        while readFile(log)?.contains(0x0a) != true {
            guard started.duration(to: .now) < .seconds(120) else { throw PodvisorError(.timeout, "no log line from \(name)") }
            try await Task.sleep(for: .milliseconds(2))
        }
        lap()
        return PodStart(sandbox: sandbox, steps: steps)
    }

    /// Each step's median, for the table.
    static func stepMedians(_ starts: [PodStart]) -> String {
        PodStart.stepNames.indices.map { i in
            "\(PodStart.stepNames[i]) \(BootBenchResult.percentile(starts.map { $0.steps[i] }, 0.5).milliseconds) ms"
        }.joined(separator: ", ")
    }

    static func markdown(
        accelerator: String, guestMiB: Int, starts: [PodStart], pooled: [PodStart], bare: [Duration], list: [Duration], status: [Duration],
        exec: (sync: [Duration], stream: [Duration]), memory: [(qemu: UInt64, helpers: UInt64)], stops: [Duration]
    ) -> String {
        let p = BootBenchResult.percentile
        let ms = { (d: Duration) in d.millisecondsText }
        let start50 = p(starts.map(\.total), 0.5), bare50 = p(bare, 0.5)
        let ratio = Double(start50.milliseconds) / Double(max(1, bare50.milliseconds))
        let qemu = BootBenchResult.median(memory.map(\.qemu)), helpers = BootBenchResult.median(memory.map(\.helpers))
        let date = ISO8601DateFormatter().string(from: Date())
        return """
            \(startMarker)
            ### Pod start and CRI calls (`podvisor bench cri`)

            Measured \(date) on \(ProcessInfo.processInfo.activeProcessorCount) cores, \(accelerator), the CRI server in \
            process behind grpc-swift's in-process transport, image cached. Pod start: RunPodSandbox → CreateContainer → \
            StartContainer → the container's first line in its CRI log (\(starts.count) runs after a warm-up, interleaved \
            with the baseline: the same kernel booting a trivial init under libvirt).

            | | p50 | p90 |
            |---|---|---|
            | pod start (CRI) | \(start50.milliseconds) ms | \(p(starts.map(\.total), 0.9).milliseconds) ms |
            | bare libvirt boot, trivial init (baseline) | \(bare50.milliseconds) ms | \(p(bare, 0.9).milliseconds) ms |
            | **ratio pod start / baseline** | **\(String(format: "%.2f", ratio))** | |
            | pod start from the pool (`pool_size` 1, the VM booted before the pod) | \(p(pooled.map(\.total), 0.5).milliseconds) ms | \(p(pooled.map(\.total), 0.9).milliseconds) ms |
            | **ratio pod start from the pool / pod start** | **\(String(format: "%.2f", p(pooled.map(\.total), 0.5) / start50))** | |

            By step (p50 of each): cold \(stepMedians(starts)); from the pool \(stepMedians(pooled)).

            With \(memory.count) idle pods (one `sleep` container each): ListPodSandbox p50 \(ms(p(list, 0.5))) ms, \
            **p99 \(ms(p(list, 0.99))) ms**; ContainerStatus p50 \(ms(p(status, 0.5))) ms, **p99 \(ms(p(status, 0.99))) ms** \
            (200 calls each). Host memory per idle pod (median PSS): QEMU **\(qemu / 1024) MiB**, virtiofsd and vsock \
            backend \(helpers / 1024) MiB; total **\((qemu + helpers) / 1024) MiB** for a \(guestMiB) MiB guest.

            Exec of `true` in those containers (\(exec.sync.count) each): ExecSync p50 \(ms(p(exec.sync, 0.5))) ms, p99 \
            \(ms(p(exec.sync, 0.99))) ms; streaming Exec as kubectl takes it (the CRI call, then an SPDY session to its URL) \
            p50 \(ms(p(exec.stream, 0.5))) ms, p99 \(ms(p(exec.stream, 0.99))) ms: **ratio streaming / ExecSync \
            \(String(format: "%.2f", p(exec.stream, 0.5) / p(exec.sync, 0.5)))** at p50.

            Removing those pods one at a time (StopPodSandbox, its `sleep` still running, then RemovePodSandbox): \
            p50 \(p(stops, 0.5).milliseconds) ms, p90 \(p(stops, 0.9).milliseconds) ms.
            \(endMarker)
            """
    }
}

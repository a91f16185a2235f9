import ArgumentParser
import Foundation
import Logging
import PodvisorCore
import PodvisorRuntime

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench", abstract: "Benchmarks whose results go into Docs/performance.md.",
        subcommands: [Boot.self, KernelBench.self, CRIBench.self, NetworkBench.self, DensityBench.self])

    struct Boot: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Boot-to-agent-ready of pod VMs against a bare libvirt boot of the same kernel, in one run.")

        @OptionGroup var runtime: RuntimeOptions

        @Option(help: "Boots of each kind (after one unmeasured warm-up of each).")
        var runs: Int = 5

        @Option(help: "Initramfs whose /init only prints \(VMHost.baselineMarker) and powers off (make bench builds it).")
        var baselineInitrd: String

        @Option(help: "Markdown file whose boot section is replaced with the results.")
        var report: String?

        @Option(
            help:
                "A container root filesystem (make bench builds one from busybox): the agent's RSS is also measured with two idle containers from it."
        )
        var containerRootfs: String?

        func validate() throws {
            guard runs >= 1 && runs <= 100 else { throw ValidationError("--runs must be 1...100") }
        }

        func run() async throws {
            let config = try runtime.load()
            LogOutput.bootstrap(program: "podvisor", format: config.logFormat)
            let host = try VMHost(config: config)
            let root = try host.root()
            let sandboxes = try VMRuntime(host: host, imageRoot: config.effectiveImageRoot, logger: Logger(label: "bench", level: .error))
            var pod: [Duration] = [], bare: [Duration] = [], rss: [UInt64] = [], rssWithContainers: [UInt64] = []
            var guestInit: [Duration] = [], guestReady: [Duration] = []
            var guestKernel = ""
            // Interleaved, so drift of the machine's load hits both series alike.
            for i in 0...runs {
                let id = randomSandboxID()
                let booted = try await sandboxes.createSandbox(
                    SandboxSpec(
                        id: id, name: "bench", namespace: "bench", uid: id, hostname: "bench",
                        size: VMSize(memoryMiB: config.memoryMiB, vcpus: config.vcpus)))
                let ready = booted.info.bootToReady
                let (initAt, readyAt) = (booted.info.guestInitAt, booted.info.guestReadyAt)
                guestKernel = booted.info.guestKernel
                let agentRSS = try await booted.health().agentRSSBytes
                if let containerRootfs, i > 0 {
                    rssWithContainers.append(try await Self.agentRSSWithIdleContainers(booted, rootfs: containerRootfs))
                }
                _ = try await booted.stop(timeout: .seconds(config.shutdownTimeoutSeconds))
                let baseline = try await host.bareBoot(id: "bench-bare-\(getpid())-\(i)", initrd: baselineInitrd)
                guard i > 0 else { continue }
                pod.append(ready)
                bare.append(baseline)
                rss.append(agentRSS)
                guestInit.append(initAt)
                guestReady.append(readyAt)
                print(
                    "run \(i): pod VM ready \(ready.milliseconds) ms (guest clock: init \(initAt.milliseconds) ms, agent \(readyAt.milliseconds) ms),"
                        + " bare boot \(baseline.milliseconds) ms, agent RSS \(agentRSS / 1024) KiB")
            }
            let result = BootBenchResult(
                accelerator: host.accelerator, transport: host.transport, runs: runs, pod: pod, bare: bare, agentRSS: rss,
                agentRSSWithTwoContainers: rssWithContainers, guestInit: guestInit, guestReady: guestReady,
                guestKernel: guestKernel, kernel: host.config.kernelPath, root: root.path, rootKind: root.kind)
            print(result.markdown)
            if let report { try result.write(into: report) }
        }

        /// Starts two `sleep` containers on the rootfs and reads the agent's RSS (the sandbox's stop removes them).
        static func agentRSSWithIdleContainers(_ pod: any PodSandbox, rootfs: String) async throws -> UInt64 {
            for n in 0..<2 {
                var process = ProcessSpec()
                process.args = ["sleep", "3600"]
                process.env = ["PATH=/bin"]
                var spec = ContainerSpec(id: "idle\(n)-\(pod.id)", process: process, layers: [rootfs])
                spec.ownPIDNamespace = true
                try await pod.createContainer(spec)
                try await pod.startContainer(spec.id)
            }
            return try await pod.health().agentRSSBytes
        }
    }
}

/// A sandbox id of the CRI's form (64 hex digits) for VMs the CLI boots outside the CRI.
func randomSandboxID() -> String {
    (0..<4).map { _ in String(format: "%016llx", UInt64.random(in: .min ... .max)) }.joined()
}

struct BootBenchResult {
    var accelerator: Accelerator
    var transport: AgentTransportKind
    var runs: Int
    var pod: [Duration]
    var bare: [Duration]
    var agentRSS: [UInt64]
    var agentRSSWithTwoContainers: [UInt64]
    /// The guest's own clock at PID 1's start and at the agent's ready, per pod boot.
    var guestInit: [Duration]
    var guestReady: [Duration]
    var guestKernel: String
    var kernel: String
    var root: String
    var rootKind: String

    static func percentile(_ values: [Duration], _ p: Double) -> Duration {
        let sorted = values.sorted()
        return sorted[min(sorted.count - 1, Int((Double(sorted.count - 1) * p).rounded()))]
    }

    var markdown: String {
        let p50 = Self.percentile(pod, 0.5), p90 = Self.percentile(pod, 0.9)
        let b50 = Self.percentile(bare, 0.5), b90 = Self.percentile(bare, 0.9)
        let ratio = Double(p50.milliseconds) / Double(max(1, b50.milliseconds))
        let rss = Self.median(agentRSS)
        let withContainers =
            agentRSSWithTwoContainers.isEmpty
            ? "" : " With two idle containers: **\(Self.median(agentRSSWithTwoContainers) / 1024) KiB**."
        let size = { (path: String) in ((try? FileManager.default.attributesOfItem(atPath: path)[.size]) as? Int).map { "\($0 / 1024) KiB" } ?? "?" }
        let date = ISO8601DateFormatter().string(from: Date())
        // The host's and the guest's clocks share no origin: what the host waited beyond the guest's uptime at ready
        // is QEMU's start, firmware, the kernel's decompression and the agent's answer reaching the host.
        let beforeKernel = zip(pod, guestReady).map { $0 - $1 }
        let initToReady = zip(guestReady, guestInit).map { $0 - $1 }
        let step = { (values: [Duration]) in "\(Self.percentile(values, 0.5).milliseconds) ms" }
        return """
            \(BootBenchResult.startMarker)
            ### Boot to agent ready (`podvisor bench boot`)

            Measured \(date) on \(ProcessInfo.processInfo.activeProcessorCount) cores, \(accelerator.rawValue), \
            agent transport \(transport.rawValue), \(runs) boots of each kind after one warm-up, interleaved.
            Pod VM: from the boot request until the agent answered Version. Baseline: the same kernel and domain
            XML with a busybox /init that only prints a marker on the console, from the request until the marker.

            | | p50 | p90 |
            |---|---|---|
            | pod VM, boot to agent ready | \(p50.milliseconds) ms | \(p90.milliseconds) ms |
            | bare libvirt boot, trivial init (baseline) | \(b50.milliseconds) ms | \(b90.milliseconds) ms |
            | **ratio pod / baseline** | **\(String(format: "%.2f", ratio))** | \
            \(String(format: "%.2f", Double(p90.milliseconds) / Double(max(1, b90.milliseconds)))) |

            Pod VM boot by steps (p50): request → guest kernel running and the answer's way back (host clock minus
            guest clock) \(step(beforeKernel)); kernel → PID 1 \(step(guestInit)); PID 1 → agent ready \(step(initToReady))
            (guest clock).

            Agent RSS inside the guest (median VmRSS after boot): **\(rss / 1024) KiB**.\(withContainers) \
            Guest kernel \(guestKernel), \(size(kernel)); \(rootKind) \(size(root)).
            \(BootBenchResult.endMarker)
            """
    }

    static func median(_ values: [UInt64]) -> UInt64 { values.sorted()[values.count / 2] }

    static let startMarker = "<!-- bench:boot:start -->"
    static let endMarker = "<!-- bench:boot:end -->"

    func write(into path: String) throws {
        try replaceSection(of: path, between: Self.startMarker, and: Self.endMarker, with: markdown)
    }
}

/// Replaces the section between the markers (or appends it), leaving the rest of the file alone.
func replaceSection(of path: String, between startMarker: String, and endMarker: String, with markdown: String) throws {
    var text = readTextFile(path) ?? "# Performance\n"
    if let start = text.range(of: startMarker), let end = text.range(of: endMarker), start.lowerBound < end.upperBound {
        text.replaceSubrange(start.lowerBound..<end.upperBound, with: markdown)
    } else {
        text += "\n" + markdown + "\n"
    }
    try text.write(toFile: path, atomically: true, encoding: .utf8)
}

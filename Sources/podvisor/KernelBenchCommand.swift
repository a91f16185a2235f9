import ArgumentParser
import Foundation
import PodvisorCore
import PodvisorRuntime

/// The configured guest kernel (podvisor's minimal one) against another (Debian's cloud kernel), booted in
/// turn on the same host: a bare boot and a pod VM's boot of each, so that the host's drift hits both alike.
struct KernelBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kernels",
        abstract: "The configured guest kernel against another one: bare boot and pod VM boot to agent ready, in turn, in one run.")

    @OptionGroup var runtime: RuntimeOptions

    @Option(help: "The kernel to compare with (make bench builds Debian's cloud kernel into build/image-cloud/).")
    var otherKernel: String

    @Option(help: "Its initramfs: the agent as /init and the modules that kernel needs.")
    var otherInitrd: String

    @Option(help: "Initramfs whose /init only prints \(VMHost.baselineMarker) and powers off (make bench builds it).")
    var baselineInitrd: String

    @Option(help: "Boots of each kind per kernel (after one unmeasured warm-up of each).")
    var runs: Int = 6

    @Option(help: "Markdown file whose kernel section is replaced with the results.")
    var report: String?

    func validate() throws {
        guard runs >= 1 && runs <= 100 else { throw ValidationError("--runs must be 1...100") }
    }

    /// One kernel's figures: the bare boot, the pod VM's boot to agent ready, and the guest's own clock at
    /// PID 1's start and at the agent's ready.
    struct Boots {
        var kernel: String
        /// The root the pod VM boots: the configured one when nil.
        var initrd: String?
        var rootKind: String
        var release = ""
        var bare: [Duration] = []
        var ready: [Duration] = []
        var initAt: [Duration] = []
        var readyAt: [Duration] = []
    }

    static let startMarker = "<!-- bench:kernels:start -->"
    static let endMarker = "<!-- bench:kernels:end -->"

    func run() async throws {
        let config = try runtime.load()
        LogOutput.bootstrap(program: "podvisor", format: config.logFormat)
        let host = try VMHost(config: config)
        var kernels = [
            Boots(kernel: config.kernelPath, initrd: nil, rootKind: try host.root().kind),
            Boots(kernel: otherKernel, initrd: otherInitrd, rootKind: "initramfs"),
        ]
        for i in 0...runs {
            for k in kernels.indices {
                let (kernel, initrd) = (kernels[k].kernel, kernels[k].initrd)
                let pod = try await host.boot(id: "bench-kernel-\(getpid())-\(k)-\(i)", kernel: kernel, root: initrd.map { .initramfs($0) })
                let version = pod.version
                do { _ = try await pod.shutdown() } catch { try pod.destroy() }
                let bare = try await host.bareBoot(id: "bench-bare-\(getpid())-\(k)-\(i)", initrd: baselineInitrd, kernel: kernel)
                guard i > 0 else { continue }
                kernels[k].release = version.kernelVersion
                kernels[k].bare.append(bare)
                kernels[k].ready.append(pod.timings.ready)
                kernels[k].initAt.append(Duration.milliseconds(version.uptimeAtInitMs))
                kernels[k].readyAt.append(Duration.milliseconds(version.uptimeAtReadyMs))
                print(
                    "run \(i), \(version.kernelVersion): pod VM ready \(pod.timings.ready.milliseconds) ms (guest clock: init "
                        + "\(version.uptimeAtInitMs) ms, agent \(version.uptimeAtReadyMs) ms), bare boot \(bare.milliseconds) ms")
            }
        }
        let markdown = Self.markdown(kernels, accelerator: host.accelerator, runs: runs)
        print(markdown)
        if let report { try replaceSection(of: report, between: Self.startMarker, and: Self.endMarker, with: markdown) }
    }

    static func markdown(_ kernels: [Boots], accelerator: Accelerator, runs: Int) -> String {
        let (a, b) = (kernels[0], kernels[1])
        let p50 = { (values: [Duration]) in BootBenchResult.percentile(values, 0.5) }
        let row = { (name: String, of: (Boots) -> [Duration], bold: Bool) in
            let (x, y) = (p50(of(a)), p50(of(b)))
            let ratio = String(format: "%.2f", Double(x.milliseconds) / Double(max(1, y.milliseconds)))
            return "| \(name) | \(x.milliseconds) ms | \(y.milliseconds) ms | \(bold ? "**\(ratio)**" : ratio) |"
        }
        let size = { (path: String) in ((try? FileManager.default.attributesOfItem(atPath: path)[.size]) as? Int).map { "\($0 / 1024) KiB" } ?? "?" }
        // Relative to the working directory (make bench's: the checkout), as the report is read there.
        let here = FileManager.default.currentDirectoryPath + "/"
        let shown = { (path: String) in path.hasPrefix(here) ? String(path.dropFirst(here.count)) : path }
        let date = ISO8601DateFormatter().string(from: Date())
        return """
            \(startMarker)
            ### Minimal kernel against the cloud kernel (`podvisor bench kernels`)

            Measured \(date) on \(ProcessInfo.processInfo.activeProcessorCount) cores, \(accelerator.rawValue), \(runs) boots \
            of each kind per kernel after one warm-up, the kernels in turn. Both get the same domain and command line.
            Bare boot: the same busybox initramfs, from the request until its marker. Pod VM: from the request until the
            agent answered Version, from each kernel's own root (\(a.rootKind); \(b.rootKind)). Medians.

            | | \(a.release) | \(b.release) | ratio |
            |---|---|---|---|
            \(row("bare libvirt boot, trivial init", { $0.bare }, true))
            \(row("pod VM, boot to agent ready", { $0.ready }, true))
            \(row("kernel → PID 1 (guest clock)", { $0.initAt }, false))
            \(row("PID 1 → agent ready (guest clock)", { zip($0.readyAt, $0.initAt).map { $0 - $1 } }, false))

            Kernels: \(shown(a.kernel)) (\(size(a.kernel))), \(shown(b.kernel)) (\(size(b.kernel))).
            \(endMarker)
            """
    }
}

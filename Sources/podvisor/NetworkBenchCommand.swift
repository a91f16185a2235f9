import ArgumentParser
import Foundation
import Logging
import PodvisorCore
import PodvisorNetwork
import PodvisorRuntime

/// `podvisor bench network`: what the pod network costs, each figure against a baseline of the same run —
/// a sandbox's start with its network against the same VM booted without one, TCP throughput from the
/// host into a pod VM against into a plain network namespace on the same CNI network, and CNI ADD+DEL.
struct NetworkBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "network", abstract: "Pod start with and without the pod network, TCP throughput into a pod VM vs a plain netns, CNI ADD+DEL.")

    @OptionGroup var runtime: RuntimeOptions
    @Option(help: "Measured runs of each kind (after one unmeasured warm-up).") var runs = 5
    @Option(help: "A container root filesystem with busybox (make bench builds one): the pod's TCP sink.") var containerRootfs: String
    @Option(help: "MiB sent per throughput run.") var mebibytes = 64
    @Option(help: "Markdown file whose network section is replaced with the results.") var report: String?

    static let startMarker = "<!-- bench:network:start -->"
    static let endMarker = "<!-- bench:network:end -->"
    static let sinkPort = 5001

    func validate() throws {
        guard (1...100).contains(runs), (1...4096).contains(mebibytes) else { throw ValidationError("--runs 1...100, --mebibytes 1...4096") }
    }

    func run() async throws {
        let config = try runtime.load()
        LogOutput.bootstrap(program: "podvisor", format: config.logFormat)
        let host = try VMHost(config: config)
        let sandboxes = try VMRuntime(host: host, imageRoot: config.effectiveImageRoot, logger: Logger(label: "bench", level: .error))
        let size = VMSize(memoryMiB: config.memoryMiB, vcpus: config.vcpus)
        func spec(_ id: String) -> SandboxSpec { SandboxSpec(id: id, name: "bench", namespace: "bench", uid: id, hostname: "bench", size: size) }

        // Start with the network (netns, CNI ADD, tap, the guest's eth0) against the same VM without one.
        var withNetwork: [Duration] = [], without: [Duration] = []
        for i in 0...runs {
            let clock = ContinuousClock()
            var started = clock.now
            let pod = try await sandboxes.createSandbox(spec(randomSandboxID()))
            let networked = started.duration(to: clock.now)
            _ = try await pod.stop(timeout: .seconds(config.shutdownTimeoutSeconds))
            started = clock.now
            let bare = try await host.boot(id: "bench-\(getpid())-\(i)")
            let plain = started.duration(to: clock.now)
            try await bare.shutdown()
            guard i > 0 else { continue }
            withNetwork.append(networked)
            without.append(plain)
            print("run \(i): sandbox with network \(networked.milliseconds) ms, without \(plain.milliseconds) ms")
        }

        // Throughput into a pod VM (a busybox nc in a container) and into a netns on the same network.
        let pod = try await sandboxes.createSandbox(spec(randomSandboxID()))
        var podRates: [Double] = []
        do {
            let ip = try podAddress(pod)
            for n in 0...runs {
                var process = ProcessSpec()
                process.args = ["sh", "-c", "nc -l -p \(Self.sinkPort) > /dev/null"]
                process.env = ["PATH=/bin"]
                var sink = ContainerSpec(id: "sink\(n)-\(pod.id)", process: process, layers: [containerRootfs])
                sink.ownPIDNamespace = true
                try await pod.createContainer(sink)
                try await pod.startContainer(sink.id)
                let rate = try await Self.send(mebibytes: mebibytes, to: ip)
                if n > 0 { podRates.append(rate) }
                try await pod.removeContainer(sink.id)
            }
        } catch {
            _ = try? await pod.stop(timeout: .seconds(1))
            throw error
        }
        _ = try await pod.stop(timeout: .seconds(config.shutdownTimeoutSeconds))

        let cache = "\(config.stateDirectory)/bench-network-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: cache) }
        let cni = CNINetwork(confDir: config.cniConfDirectory, binDirs: config.cniBinDirectories, cacheDir: cache)
        var netnsRates: [Double] = [], cniTimes: [Duration] = []
        for n in 0...runs {
            let namespace = try NetworkNamespace.create(name: "pvbench-\(getpid())-\(n)")
            let id = randomSandboxID()
            let clock = ContinuousClock()
            let started = clock.now
            let result = try await cni.add(
                CNIAttachment(containerID: id, netnsPath: namespace.path, podNamespace: "bench", podName: "netns", podUID: id))
            let added = started.duration(to: clock.now)
            let sink = Process()
            sink.executableURL = URL(fileURLWithPath: "/usr/bin/nsenter")
            sink.arguments = ["--net=\(namespace.path)", "/bin/busybox", "sh", "-c", "busybox nc -l -p \(Self.sinkPort) > /dev/null"]
            try sink.run()
            let rate = try await Self.send(mebibytes: mebibytes, to: result.podIPs.first ?? "")
            kill(sink.processIdentifier, SIGKILL)
            sink.waitUntilExit()
            let deleting = clock.now
            try await cni.delete(containerID: id)
            try namespace.remove()
            if n > 0 {
                netnsRates.append(rate)
                cniTimes.append(added + deleting.duration(to: clock.now))
            }
        }
        let markdown = Self.markdown(
            accelerator: host.accelerator.rawValue, runs: runs, mebibytes: mebibytes, withNetwork: withNetwork, without: without,
            podRates: podRates, netnsRates: netnsRates, cniTimes: cniTimes, network: cni.status().ready ? config.cniConfDirectory : "?")
        print(markdown)
        if let report { try replaceSection(of: report, between: Self.startMarker, and: Self.endMarker, with: markdown) }
    }

    private func podAddress(_ pod: any PodSandbox) throws -> String {
        guard let ip = pod.info.ips.first else { throw PodvisorError(.failedPrecondition, "the pod got no address: is a CNI network configured?") }
        return ip
    }

    /// Sends `mebibytes` to a sink on `host` and waits for it to have read everything (it closes at our
    /// EOF); answers MiB/s. python3's socket loop keeps the sender out of the figure's way.
    static func send(mebibytes: Int, to host: String) async throws -> Double {
        let script = """
            import socket, sys, time
            host, port, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) << 20
            deadline = time.time() + 30
            while True:
                try:
                    s = socket.create_connection((host, port), 2)
                    break
                except OSError:
                    if time.time() > deadline: raise
                    time.sleep(0.05)
            chunk = b"x" * (1 << 20)
            start = time.time()
            for _ in range(total >> 20): s.sendall(chunk)
            s.shutdown(socket.SHUT_WR)
            while s.recv(65536): pass
            print(time.time() - start)
            """
        let process = Process()
        let output = Pipe()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = ["-c", script, host, "\(sinkPort)", "\(mebibytes)"]
        process.standardOutput = output
        try process.run()
        let seconds = try await Task.detached {
            process.waitUntilExit()
            return Double(
                String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                    .trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        }.value
        guard process.terminationStatus == 0, seconds > 0 else { throw PodvisorError(.unavailable, "sending to \(host):\(sinkPort) failed") }
        return Double(mebibytes) / seconds
    }

    static func markdown(
        accelerator: String, runs: Int, mebibytes: Int, withNetwork: [Duration], without: [Duration], podRates: [Double],
        netnsRates: [Double], cniTimes: [Duration], network: String
    ) -> String {
        let p50 = { (values: [Duration]) in BootBenchResult.percentile(values, 0.5) }
        let median = { (values: [Double]) in values.sorted()[values.count / 2] }
        let started = p50(withNetwork), plain = p50(without)
        let date = ISO8601DateFormatter().string(from: Date())
        return """
            \(startMarker)
            ### Pod network (`podvisor bench network`)

            Measured \(date) on \(ProcessInfo.processInfo.activeProcessorCount) cores, \(accelerator), the CNI network of \
            \(network), \(runs) runs of each kind after a warm-up.

            | | measured | baseline | ratio |
            |---|---|---|---|
            | sandbox start with its network (netns, CNI ADD, tap, guest eth0) vs the same VM booted without one, p50 \
            | \(started.milliseconds) ms | \(plain.milliseconds) ms | **\(String(format: "%.2f", Double(started.milliseconds) / Double(max(1, plain.milliseconds))))** (goal ≤ 1.1) |
            | TCP host → pod VM (busybox nc in a container) vs host → a plain netns on the same bridge, \(mebibytes) MiB, median \
            | \(String(format: "%.0f", median(podRates))) MiB/s | \(String(format: "%.0f", median(netnsRates))) MiB/s \
            | **\(String(format: "%.2f", median(podRates) / median(netnsRates)))** |
            | CNI ADD + DEL of one netns (the network's whole plugin list), p50 | \(p50(cniTimes).milliseconds) ms | | |

            Under TCG the guest's virtio-net and its TCP stack are emulated: the throughput ratio says what
            emulation costs here, not what a KVM host gets.
            \(endMarker)
            """
    }
}

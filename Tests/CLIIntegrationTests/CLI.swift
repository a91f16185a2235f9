import Foundation
import Testing
import TestSupport
import PodvisorVMM

/// The `podvisor` binary as users and CI run it, on a state directory of its own, with the fixture busybox
/// imported as `demo` (no registry).
enum CLI {
    static let binary = ProcessInfo.processInfo.environment["PODVISOR"] ?? "\(GuestImage.repositoryRoot)/.build/debug/podvisor"
    static let state = "/tmp/pvcli-test"
    static let logs = "/tmp/pvcli-test-logs"

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// The CLI's pod network: bridge pvcli0, 10.214.251.0/24 (removed when the test process exits).
    nonisolated(unsafe) static var network: TestPodNetwork?

    /// Config file (state directory, guest image, pod network) and the demo image, once per test process.
    static let prepared = Task { () throws -> String in
        for pid in HostState.processes(matching: state) { kill(pid, SIGKILL) }
        HostState.detachMounts(under: state)
        try? FileManager.default.removeItem(atPath: state)
        try? FileManager.default.removeItem(atPath: logs)
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        let podNetwork = try TestPodNetwork(directory: "\(state)/cni", bridge: "pvcli0", subnet: 251)
        network = podNetwork
        let config = "/tmp/pvcli-test.toml"
        TestCleanup.atExit {
            podNetwork.remove()
            for file in [config, "/tmp/pvcli-test-pod.yaml", "/tmp/pvcli-test-bad.yaml", "/tmp/pvcli-test-progress.toml"] { unlink(file) }
        }
        for directory in [state, logs, "/tmp/pvcli-daemon", "/tmp/pvcli-test-progress-images"] { TestCleanup.removeAtExit(directory) }
        TestCleanup.atExit { TestPodNetwork.removeNamespaces(recordedIn: state) }
        try """
        state_dir = "\(state)"
        [vm]
        \(GuestImage.configLines)
        boot_timeout_s = 180
        [cni]
        conf_dir = "\(podNetwork.confDir)"
        bin_dirs = ["/usr/lib/cni"]

        """.write(toFile: config, atomically: true, encoding: .utf8)
        let layout = try await FixtureImages.shared.layoutDirectory()
        let imported = try await run(["image", "import", "--config", config, "\(layout):busybox", "demo"])
        guard imported.status == 0 else { throw TestError("import failed: \(imported.stderr)") }
        return config
    }

    /// Runs `podvisor <arguments>` (pod commands get the test config) and collects its output.
    static func podvisor(_ arguments: [String], stdin: String? = nil) async throws -> Result {
        let config = try await prepared.value
        return try await run(withConfig(arguments, config), stdin: stdin)
    }

    private static func withConfig(_ arguments: [String], _ config: String) -> [String] {
        // Options go before `--` (what follows is the container's command).
        let split = arguments.firstIndex(of: "--") ?? arguments.endIndex
        var extra = ["--config", config]
        if arguments.first == "run" { extra += ["--log-root", logs] }
        return Array(arguments[..<split]) + extra + Array(arguments[split...])
    }

    /// Runs the binary on a thread of its own: waiting for a child must not hold one of the few threads that
    /// every test's async work shares (on 2 cores, two blocked waits stall the whole test process).
    static func run(_ arguments: [String], stdin: String? = nil, executable: String = binary) async throws -> Result {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread {
                continuation.resume(with: Swift.Result { try runBlocking(executable, arguments, stdin: stdin) })
            }
        }
    }

    /// `stdin`, when given, is what the child reads before its stdin ends; otherwise it gets /dev/null.
    private static func runBlocking(_ executable: String, _ arguments: [String], stdin: String?) throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let out = Pipe()
        let err = Pipe()
        let input = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = stdin == nil ? FileHandle.nullDevice : input
        try process.run()
        if let stdin {
            input.fileHandleForWriting.write(Data(stdin.utf8))
            try input.fileHandleForWriting.close()
        }
        // Both pipes are read while it runs: a full pipe would stall it.
        let stderrData = DataBox()
        let done = DispatchSemaphore(value: 0)
        let reader = Thread {
            stderrData.data = err.fileHandleForReading.readDataToEndOfFile()
            done.signal()
        }
        reader.start()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        done.wait()
        process.waitUntilExit()
        return Result(
            status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
            stderr: String(decoding: stderrData.data, as: UTF8.self))
    }

    private final class DataBox: @unchecked Sendable { var data = Data() }

    /// Blocking work (reading a child's pipe, waiting for it) off the shared threads, as `run` does.
    static func offThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread { continuation.resume(with: Swift.Result { try body() }) }
        }
    }

    /// Nothing of the test's pods runs or stays mounted: no QEMU or helper from the state directory.
    static func expectNothingRunning(sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(HostState.processes(matching: "\(state)/").isEmpty, "processes of \(state) still run", sourceLocation: sourceLocation)
        #expect(mountPoints(under: "\(state)/vm").isEmpty, "VM mounts left", sourceLocation: sourceLocation)
        let vms = (try? FileManager.default.contentsOfDirectory(atPath: "\(state)/vm")) ?? []
        #expect(vms.isEmpty, "VM run directories left: \(vms)", sourceLocation: sourceLocation)
    }

    static func json(_ text: String) -> Any? { try? JSONSerialization.jsonObject(with: Data(text.utf8)) }
}

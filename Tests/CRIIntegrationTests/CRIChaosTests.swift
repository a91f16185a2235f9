import Foundation
import GRPCCore
import PodvisorCRI
import PodvisorVMM
import TestSupport
import Testing

extension CRITests {
    /// kill -9 of podvisord at a random point of a pod's life (RunPodSandbox, CreateContainer, StartContainer,
    /// StopPodSandbox, RemovePodSandbox), then a restart and kubelet's clean-up: afterwards nothing of the pod
    /// may remain — no process, mount, file, network namespace, tap, lease or CNI attachment. A few cycles in
    /// `make test`; `make chaos` runs many (PODVISOR_CHAOS_CYCLES).
    @Suite struct Chaos {
        static let cycles = Int(ProcessInfo.processInfo.environment["PODVISOR_CHAOS_CYCLES"] ?? "") ?? 3

        @Test func killAtARandomPointLeavesNothingBehind() async throws {
            let d = try await CRIDaemon.shared.value
            let image = try await TestImages.busybox(d)
            for cycle in 0..<Self.cycles {
                let pod = podConfig("chaos-\(cycle)")
                let lifecycle = Task {
                    let sandbox = try await d.run(pod)
                    let container = try await d.create(sandbox, pod, containerConfig("c", image: image, ["/bin/sh", "-c", "sleep 600"]))
                    try await d.start(container)
                    try await d.removePod(sandbox)
                }
                // Anywhere from before the first plugin runs to after the last removal.
                try await Task.sleep(for: .milliseconds(Int.random(in: 0...9000)))
                d.kill9()
                _ = await lifecycle.result
                try await d.start()
                // What kubelet does next: stop and remove whatever the runtime still lists.
                for sandbox in try await d.runtime.listPodSandbox(Runtime_V1_ListPodSandboxRequest()).items {
                    try await d.removePod(sandbox.id)
                }
                try await Self.expectCensusClean(d, cycle: cycle)
            }
        }

        /// Everything the daemon's state and the host hold for pods, once no pod exists.
        static func expectCensusClean(_ d: CRIDaemon, cycle: Int) async throws {
            let state = d.stateDirectory
            let left = { (directory: String) in (try? FileManager.default.contentsOfDirectory(atPath: "\(state)/\(directory)")) ?? [] }
            let running = HostState.processes(matching: "\(state)/vm/")
            #expect(running.isEmpty, "cycle \(cycle): QEMU or helpers run: \(running.map(HostState.describe))")
            #expect(mountPoints(under: "\(state)/vm").isEmpty && mountPoints(under: "\(state)/containers").isEmpty, "cycle \(cycle): mounts left")
            for directory in ["vm", "sandboxes", "containers", "network", "cri/records/sandboxes", "cri/records/containers"] {
                #expect(left(directory).isEmpty, "cycle \(cycle): \(directory) holds \(left(directory))")
            }
            #expect(d.network.leases().isEmpty, "cycle \(cycle): leases \(d.network.leases())")
            // Every sandbox the daemon began to create (its log names each before anything exists of it).
            let log = (try? String(contentsOfFile: d.logFile, encoding: .utf8)) ?? ""
            let created = log.matches(of: /creating sandbox ([0-9a-f]{64})/).map { String($0.output.1) }
            for id in Set(created) {
                #expect(TestPodNetwork.leftovers(sandbox: id).isEmpty, "cycle \(cycle): \(TestPodNetwork.leftovers(sandbox: id))")
            }
        }
    }
}

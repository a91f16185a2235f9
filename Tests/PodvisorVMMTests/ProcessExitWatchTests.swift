import Foundation
import Synchronization
import Testing

@testable import PodvisorVMM

/// A VM's death is seen through QEMU's pidfd on libvirt's event loop: no thread per VM, and nothing of the
/// watch left once it fired.
@Suite struct ProcessExitWatchTests {
    static func pidfds() -> Int {
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        return fds.filter { (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\($0)")) == "anon_inode:[pidfd]" }
            .count
    }

    @Test func exitIsSeenOnceAndTheWatchLetsGo() async throws {
        try LibvirtEventLoop.ensureRunning()
        let before = Self.pidfds()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sleep")
        process.arguments = ["600"]
        try process.run()
        let fired = Mutex(0)
        let (exits, exited) = AsyncStream.makeStream(of: Void.self)
        ProcessExitWatch.watch(pid: process.processIdentifier) {
            fired.withLock { $0 += 1 }
            exited.yield()
        }
        #expect(Self.pidfds() == before + 1)
        #expect(fired.withLock { $0 } == 0)
        // KILL: Foundation's child inherits the test thread's signal mask, SIGTERM blocked among it.
        kill(process.processIdentifier, SIGKILL)
        // Bounded so that a missed exit fails instead of hanging the run.
        let seen = await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                for await _ in exits { return true }; return false
            }
            group.addTask {
                try? await Task.sleep(for: .seconds(20)); return false
            }
            defer { group.cancelAll() }
            return await group.next() ?? false
        }
        #expect(seen)
        process.waitUntilExit()
        // libvirt frees a removed handle on its next turn.
        for _ in 0..<200 where Self.pidfds() != before { try await Task.sleep(for: .milliseconds(10)) }
        #expect(Self.pidfds() == before)
        #expect(fired.withLock { $0 } == 1)
    }
}

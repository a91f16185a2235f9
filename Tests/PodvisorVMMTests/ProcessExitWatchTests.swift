import Foundation
import PodvisorCore
import Synchronization
import Testing

@testable import PodvisorVMM

/// A VM's death is seen through QEMU's pidfd on libvirt's event loop: no thread per VM, and nothing of the
/// watch left once it fired.
@Suite struct ProcessExitWatchTests {
    /// This process's pidfds of `pid` (fdinfo names the process; other suites' VMs have pidfds of their own).
    static func pidfds(of pid: pid_t) -> Int {
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        return fds.filter { fd in
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(fd)")) == "anon_inode:[pidfd]"
                && readProcFile("/proc/self/fdinfo/\(fd)").split(separator: "\n").contains("Pid:\t\(pid)")
        }.count
    }

    @Test func exitIsSeenOnceAndTheWatchLetsGo() async throws {
        try LibvirtEventLoop.ensureRunning()
        // Spawned directly, so that nobody reaps it before the test does: its pid stays its own meanwhile.
        var pid: pid_t = 0
        let command: [String] = ["/bin/sleep", "600"]
        let argv = command.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        try #require(posix_spawn(&pid, "/bin/sleep", nil, nil, argv, environ) == 0)
        defer {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
        }
        let fired = Mutex(0)
        let (exits, exited) = AsyncStream.makeStream(of: Void.self)
        ProcessExitWatch.watch(pid: pid) {
            fired.withLock { $0 += 1 }
            exited.yield()
        }
        #expect(Self.pidfds(of: pid) == 1)
        #expect(fired.withLock { $0 } == 0)
        kill(pid, SIGKILL)
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
        // libvirt frees a removed handle on its next turn; the zombie keeps its pid until the defer reaps it.
        for _ in 0..<200 where Self.pidfds(of: pid) != 0 { try await Task.sleep(for: .milliseconds(10)) }
        #expect(Self.pidfds(of: pid) == 0)
        #expect(fired.withLock { $0 } == 1)
    }
}

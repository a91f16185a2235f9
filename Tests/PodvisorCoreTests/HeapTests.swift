import Foundation
import PodvisorCore
import Synchronization
import Testing

// One at a time: each test reads this process's RSS or heap while the others allocate and free.
@Suite(.serialized) struct HeapTests {
    @Test func heapInUseCountsWhatIsAllocated() throws {
        let before = heapInUseBytes()
        #expect(before > 0)
        let block = try #require(malloc(64 << 20))
        memset(block, 1, 64 << 20)
        // Tests of other suites allocate and free beside this one: most of the 64 MiB is enough.
        #expect(heapInUseBytes() - before >= 48 << 20)
        free(block)
    }

    /// Foundation's readers leak 4 KiB on each empty file (kernel threads' /proc/<pid>/cmdline, read at every
    /// VM start): 40000 reads would hold ~160 MiB. The bound leaves room for tests of other suites running
    /// beside this one.
    @Test func readingEmptyFilesHoldsNoMemory() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("podvisor-empty-\(UUID().uuidString)").path
        #expect(FileManager.default.createFile(atPath: path, contents: Data()))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let before = heapInUseBytes()
        for _ in 0..<40000 { #expect(readFile(path)?.isEmpty == true) }
        #expect(heapInUseBytes() - before < 64 << 20)
    }

    /// Small blocks come from an arena, and glibc keeps them once freed unless they reach the arena's top: one
    /// block in 32 stays, so the freed runs between them hold whole pages that only a trim gives back.
    @Test func trimmingGivesFreedHeapBack() throws {
        let rssKiB = { procField("VmRSS", in: readProcFile("/proc/self/status")) }
        let blocks = (0..<100_000).map { _ in malloc(512)! }
        for block in blocks { memset(block, 1, 512) }
        let allocated = rssKiB()
        for (i, block) in blocks.enumerated() where i % 32 != 0 { free(block) }
        defer { for (i, block) in blocks.enumerated() where i % 32 == 0 { free(block) } }
        trimHeap()
        // ~47 MiB were freed; most of it lies in whole pages.
        #expect(allocated - rssKiB() > 20 << 10)
    }

    @Test func aBurstOfRemovalsTrimsOnceAfterTheDelay() async throws {
        let trims = Mutex(0)
        let trimmer = HeapTrimmer(delay: .seconds(1)) { trims.withLock { $0 += 1 } }
        let count = { trims.withLock { $0 } }
        func waitForTrims(_ wanted: Int) async throws {
            let deadline = ContinuousClock.now + .seconds(10)
            while count() < wanted, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        }
        for _ in 0..<10 { trimmer.schedule() }
        #expect(count() == 0)
        try await waitForTrims(1)
        // Had the other nine schedules each started a trim, they would have run by now too.
        try await Task.sleep(for: .milliseconds(300))
        #expect(count() == 1)
        // A later removal trims again.
        trimmer.schedule()
        try await waitForTrims(2)
        #expect(count() == 2)
    }
}

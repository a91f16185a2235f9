import Foundation
import Synchronization

/// Heap bytes this process has allocated and not freed, by glibc's own account of all arenas: `malloc_info`'s
/// totals (after the last `</heap>`), the system memory the heap holds less its free chunks (fast, and the
/// rest with each arena's top), plus mmapped chunks. RSS that stays while this falls is freed heap glibc keeps;
/// this growing is a leak. `mallinfo2` would say it directly, but it returns a struct dlsym cannot hand to
/// Swift (and Swift's Glibc module has no malloc.h). 0 where glibc's malloc is not the allocator.
public func heapInUseBytes() -> Int {
    typealias Info = @convention(c) (Int32, UnsafeMutablePointer<FILE>?) -> Int32
    var buffer: UnsafeMutablePointer<CChar>?
    var size = 0
    guard let info = dlsym(nil, "malloc_info"), let stream = open_memstream(&buffer, &size) else { return 0 }
    _ = unsafeBitCast(info, to: Info.self)(0, stream)
    fclose(stream)
    defer { free(buffer) }
    guard let buffer else { return 0 }
    let xml = String(cString: buffer)
    let totals = xml.range(of: "</heap>", options: .backwards).map { String(xml[$0.upperBound...]) } ?? xml
    func bytes(_ tag: String) -> Int {
        guard let start = totals.range(of: "<\(tag) ")?.upperBound, let value = totals[start...].range(of: "size=\"")?.upperBound else {
            return 0
        }
        return Int(totals[value...].prefix { $0.isNumber }) ?? 0
    }
    return bytes("system type=\"current\"") - bytes("total type=\"fast\"") - bytes("total type=\"rest\"") + bytes("total type=\"mmap\"")
}

/// glibc's `malloc_trim(0)`: gives the host the free pages in every arena. Swift's Glibc module has no malloc.h.
public func trimHeap() {
    typealias Trim = @convention(c) (Int) -> Int32
    if let trim = dlsym(nil, "malloc_trim") { _ = unsafeBitCast(trim, to: Trim.self)(0) }
}

/// Trims the heap once after a burst of removals. glibc keeps the heap a process freed for its next
/// allocations: after 150 pods came and went, the runtime held 128 MiB of RSS with 4 MiB of heap in use, and
/// 77 MiB once trimmed (`bench density`). A trim walks every arena under its lock, so it runs in the
/// background, a second after the first removal of a burst, and once for all of them.
public final class HeapTrimmer: Sendable {
    private let pending = Mutex(false)
    private let delay: Duration
    private let trim: @Sendable () -> Void

    public init(delay: Duration = .seconds(1), trim: @escaping @Sendable () -> Void = trimHeap) {
        self.delay = delay
        self.trim = trim
    }

    public func schedule() {
        let first = pending.withLock { pending in
            defer { pending = true }
            return !pending
        }
        guard first else { return }
        Task.detached(priority: .background) { [self] in
            try? await Task.sleep(for: delay)
            pending.withLock { $0 = false }
            trim()
        }
    }
}

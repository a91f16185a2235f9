import Foundation

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

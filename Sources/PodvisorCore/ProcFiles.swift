import Foundation

/// A /proc file in full. Foundation's `String(contentsOfFile:)` and `FileManager.contents(atPath:)` stop after
/// one page for files whose size reads as 0: /proc/self/mountinfo of a host with a few dozen mounts lost
/// its tail, and mounts that were there went unseen (measured: 3817 of 4622 bytes).
public func readProcFile(_ path: String) -> String {
    guard let handle = FileHandle(forReadingAtPath: path) else { return "" }
    defer { try? handle.close() }
    return String(decoding: handle.readDataToEndOfFile(), as: UTF8.self)
}

/// A process's command line, its arguments joined by spaces; nil when it cannot be read (the process is gone).
public func processCommandLine(_ pid: Int32) -> String? {
    FileManager.default.contents(atPath: "/proc/\(pid)/cmdline").map { String(decoding: $0.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self) }
}

/// The number after `key:` in a /proc file of `key: value [kB]` lines (status, meminfo, smaps_rollup); 0 when
/// the key is missing.
public func procField(_ key: String, in text: String) -> Int {
    let line = text.split(separator: "\n").first { $0.hasPrefix("\(key):") }
    return line.flatMap { $0.dropFirst(key.count + 1).split(whereSeparator: \.isWhitespace).first.flatMap { Int($0) } } ?? 0
}

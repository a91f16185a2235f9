import Foundation

/// A process's command line, its arguments joined by spaces; nil when it cannot be read (the process is gone).
public func processCommandLine(_ pid: Int32) -> String? {
    readFile("/proc/\(pid)/cmdline").map { String(decoding: $0.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self) }
}

/// The number after `key:` in a /proc file of `key: value [kB]` lines (status, meminfo, smaps_rollup); 0 when
/// the key is missing.
public func procField(_ key: String, in text: String) -> Int {
    let line = text.split(separator: "\n").first { $0.hasPrefix("\(key):") }
    return line.flatMap { $0.dropFirst(key.count + 1).split(whereSeparator: \.isWhitespace).first.flatMap { Int($0) } } ?? 0
}

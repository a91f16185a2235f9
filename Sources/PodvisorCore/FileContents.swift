import Foundation

// Whole-file reads for every module of the host. Foundation's own (`FileManager.contents(atPath:)`,
// `Data(contentsOf:)`, `String(contentsOfFile:)`) leak a 4 KiB buffer on every read of an empty file (Swift
// 6.3.1: 20000 reads of a kernel thread's empty /proc/<pid>/cmdline grew RSS by 80 MiB; `bench density` found
// the runtime holding ~0.3 MiB of heap per pod ever started, from scanning /proc at each VM start), and stop
// after one page of a /proc file whose size reads as 0. FileHandle's `readToEnd` does neither. `make check`
// keeps the others out of Sources.

/// A file's bytes in full; nil when it cannot be opened or read (missing, a directory, no permission).
public func readFile(_ path: String) -> Data? {
    guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
    defer { try? handle.close() }
    do { return try handle.readToEnd() ?? Data() } catch { return nil }
}

/// A text file in full (invalid UTF-8 repaired); nil when it cannot be opened or read.
public func readTextFile(_ path: String) -> String? {
    readFile(path).map { String(decoding: $0, as: UTF8.self) }
}

/// A /proc file in full; "" when it cannot be read (the process is gone).
public func readProcFile(_ path: String) -> String {
    readTextFile(path) ?? ""
}

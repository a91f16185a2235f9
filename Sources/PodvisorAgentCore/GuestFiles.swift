#if canImport(Glibc)
import Glibc
#endif

/// Small file helpers for /proc and /sys (no Foundation in the agent).
public enum GuestFiles {
    public static func read(_ path: String, limit: Int = 1 << 20) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var result = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 4096)
        while result.count < limit {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            result.append(contentsOf: chunk[0..<n])
        }
        return String(decoding: result, as: UTF8.self)
    }

    public static func listDirectory(_ path: String) -> [String] {
        guard let dir = opendir(path) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    /// One write of `value` (a cgroup or /proc/sys file takes it whole or not at all).
    static func write(_ value: String, to file: String) -> Bool {
        let fd = open(file, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        let bytes = Array(value.utf8)
        return Glibc.write(fd, bytes, bytes.count) == bytes.count
    }

    static func exists(_ path: String) -> Bool {
        access(path, F_OK) == 0
    }

    /// The value of `key:` in a /proc file such as /proc/self/status, converted from kB to bytes.
    static func kilobyteField(_ key: String, in path: String) -> UInt64 {
        guard let text = read(path) else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix(key + ":") {
            let digits = line.dropFirst(key.count + 1).filter { $0.isNumber }
            return (UInt64(String(digits)) ?? 0) * 1024
        }
        return 0
    }

    /// The first filesystem mounted on / in a /proc/mounts text, the kernel's boot root where the agent's
    /// tmpfs root is not yet over it: "<device> <type> <options>".
    static func bootRoot(mounts: String) -> String? {
        for line in mounts.split(separator: "\n") {
            let fields = line.split(separator: " ")
            if fields.count >= 4 && fields[1] == "/" { return "\(fields[0]) \(fields[2]) \(fields[3])" }
        }
        return nil
    }
}

/// Everything the agent says goes to the console, which the host keeps as the VM's console log.
public func log(_ message: String) {
    let line = "podvisor-agent: \(message)\n"
    _ = line.utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
}

import Foundation

/// Reads a CRI-format container log (`<time> <stream> <F|P> <text>`) and writes the text back to this
/// process's stdout or stderr, from where it left off: `podvisor run` streams a container this way, and
/// `podvisor logs -f` follows one.
final class ContainerLogReader {
    let path: String
    /// Put before each line (`name | `) when several containers share the terminal.
    let prefix: String
    private var offset: UInt64 = 0
    private var pending = Data()
    private var atLineStart = true

    init(path: String, prefix: String = "") {
        self.path = path
        self.prefix = prefix
    }

    /// Writes what was appended since the last call; returns whether anything was.
    @discardableResult
    func drain() -> Bool {
        guard let handle = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? handle.close() }
        // kubelet-style rotation (or ReopenContainerLog) may have started a new, shorter file.
        if let size = try? handle.seekToEnd(), size < offset { offset = 0 }
        try? handle.seek(toOffset: offset)
        guard let data = try? handle.readToEnd(), !data.isEmpty else { return false }
        offset += UInt64(data.count)
        pending += data
        while let newline = pending.firstIndex(of: 0x0a) {
            emit(pending[pending.startIndex..<newline])
            pending = Data(pending[(newline + 1)...])
        }
        return true
    }

    private func emit(_ line: Data) {
        let fields = line.split(separator: 0x20, maxSplits: 3, omittingEmptySubsequences: false)
        guard fields.count >= 3 else { return }
        let stream = String(decoding: fields[1], as: UTF8.self)
        let partial = fields[2].elementsEqual("P".utf8)
        var text = Data(atLineStart ? prefix.utf8 : "".utf8) + (fields.count > 3 ? Data(fields[3]) : Data())
        if !partial { text.append(0x0a) }
        atLineStart = !partial
        (stream == "stderr" ? FileHandle.standardError : FileHandle.standardOutput).write(text)
    }
}

#if canImport(Glibc)
import Glibc
#endif
import PodvisorAgentProtocol

/// Output of container processes that the host has not acknowledged yet, per process and stream.
/// ReadOutput answers from here first and reads the pipe only when everything here was acknowledged;
/// one reader at a time per stream, so the order of the pipe is the order of the stream.
final class OutputBuffers: Sendable {
    struct Key: Hashable {
        var containerID: String
        var execID: String
        var stderr: Bool
    }

    private struct Buffer {
        /// Stream position of data[0].
        var start: UInt64 = 0
        var data: [UInt8] = []
        var reading = false
        var eof = false
        var end: UInt64 { start + UInt64(data.count) }
    }

    private let buffers = Condition([Key: Buffer]())

    /// The next piece of the stream at or after `offset` (nil: the oldest unacknowledged), reading the
    /// pipe through `read` when none is buffered. `read` returns nil at end of stream.
    func next(_ key: Key, offset: UInt64?, max limit: Int, read: (Int) -> [UInt8]?) -> (data: [UInt8], eof: Bool, offset: UInt64) {
        // Acknowledge, then serve what is buffered, or become the one reader of the pipe.
        let served = buffers.wait { all -> (data: [UInt8], eof: Bool, offset: UInt64)?? in
            var buffer = all[key] ?? Buffer()
            if let offset, offset > buffer.start {
                let dropped = Int(min(offset - buffer.start, UInt64(buffer.data.count)))
                buffer.data.removeFirst(dropped)
                buffer.start += UInt64(dropped)
            }
            let position = max(offset ?? buffer.start, buffer.start)
            defer { all[key] = buffer }
            if position < buffer.end {
                let from = Int(position - buffer.start)
                return .some((Array(buffer.data[from..<min(from + limit, buffer.data.count)]), false, position))
            }
            if buffer.eof { return .some(([], true, buffer.end)) }
            guard !buffer.reading else { return nil }
            buffer.reading = true
            return .some(nil)
        }
        if let served { return served }
        let bytes = read(limit)
        return buffers.update { all in
            var buffer = all[key] ?? Buffer()
            buffer.reading = false
            defer { all[key] = buffer }
            guard let bytes, !bytes.isEmpty else {
                buffer.eof = true
                return ([], true, buffer.end)
            }
            let position = buffer.end
            buffer.data += bytes
            return (bytes, false, position)
        }
    }

    /// Drops the buffers of a container's processes, or of one exec.
    func forget(containerID: String, execID: String? = nil) {
        buffers.update { all in
            all = all.filter { $0.key.containerID != containerID || (execID != nil && $0.key.execID != execID) }
        }
    }
}

import PodvisorStreaming
import Synchronization

/// What a streaming session printed, for the checks.
public final class StreamOutput: Sendable {
    private let output = Mutex<(stdout: [UInt8], stderr: [UInt8])>(([], []))

    public init() {}

    public var text: (stdout: String, stderr: String) {
        output.withLock { (String(decoding: $0.stdout, as: UTF8.self), String(decoding: $0.stderr, as: UTF8.self)) }
    }

    public func io(stdin: [String]?, resizes: [TerminalSize]? = nil) -> RemoteCommandClient.IO {
        RemoteCommandClient.IO(
            stdin: stdin.map { chunks in
                AsyncStream { c in
                    for chunk in chunks { c.yield(Array(chunk.utf8)) }
                    c.finish()
                }
            },
            resizes: resizes.map { sizes in
                AsyncStream { c in
                    for size in sizes { c.yield(size) }
                    c.finish()
                }
            },
            stdout: { bytes in self.output.withLock { $0.stdout += bytes } },
            stderr: { bytes in self.output.withLock { $0.stderr += bytes } })
    }
}

import Testing

@testable import PodvisorAgentCore

/// What ReadOutput serves: unacknowledged output again, acknowledged output never, the pipe in order.
@Suite struct OutputBuffersTests {
    static let key = OutputBuffers.Key(containerID: "c", execID: "", stderr: false)

    /// A pipe that yields `chunks` one read at a time, then its end.
    final class Pipe {
        var chunks: [[UInt8]]
        var reads = 0
        init(_ chunks: [[UInt8]]) { self.chunks = chunks }
        func read(_ max: Int) -> [UInt8]? {
            reads += 1
            return chunks.isEmpty ? nil : chunks.removeFirst()
        }
    }

    @Test func unacknowledgedOutputIsServedAgain() {
        let buffers = OutputBuffers()
        let pipe = Pipe([[1, 2, 3], [4, 5]])
        let first = buffers.next(Self.key, offset: nil, max: 64, read: pipe.read)
        #expect(first.data == [1, 2, 3] && first.offset == 0 && !first.eof)
        // The host lost the answer and asks again from the oldest unacknowledged byte: same bytes, no read.
        let again = buffers.next(Self.key, offset: nil, max: 64, read: pipe.read)
        #expect(again.data == [1, 2, 3] && again.offset == 0)
        #expect(pipe.reads == 1)
        // From the middle, at most `max` bytes.
        let middle = buffers.next(Self.key, offset: 1, max: 1, read: pipe.read)
        #expect(middle.data == [2] && middle.offset == 1)
    }

    @Test func acknowledgingReadsOnThenEnds() {
        let buffers = OutputBuffers()
        let pipe = Pipe([[1, 2, 3], [4, 5]])
        _ = buffers.next(Self.key, offset: nil, max: 64, read: pipe.read)
        let second = buffers.next(Self.key, offset: 3, max: 64, read: pipe.read)
        #expect(second.data == [4, 5] && second.offset == 3)
        // Acknowledged bytes are gone: asking for the oldest gives what follows them.
        let oldest = buffers.next(Self.key, offset: nil, max: 64, read: pipe.read)
        #expect(oldest.data == [4, 5] && oldest.offset == 3)
        let end = buffers.next(Self.key, offset: 5, max: 64, read: pipe.read)
        #expect(end.data.isEmpty && end.eof && end.offset == 5)
        // The end is remembered; the pipe is not read again.
        let after = buffers.next(Self.key, offset: 5, max: 64, read: pipe.read)
        #expect(after.eof && pipe.reads == 3)
    }

    @Test func streamsAndProcessesAreApartAndForgettable() {
        let buffers = OutputBuffers()
        let stderr = OutputBuffers.Key(containerID: "c", execID: "", stderr: true)
        let exec = OutputBuffers.Key(containerID: "c", execID: "e", stderr: false)
        _ = buffers.next(Self.key, offset: nil, max: 64, read: Pipe([[1]]).read)
        _ = buffers.next(exec, offset: nil, max: 64, read: Pipe([[9]]).read)
        #expect(buffers.next(stderr, offset: nil, max: 64, read: Pipe([[2]]).read).data == [2])
        // Forgetting one exec keeps the init's buffers.
        buffers.forget(containerID: "c", execID: "e")
        #expect(buffers.next(Self.key, offset: nil, max: 64, read: Pipe([]).read).data == [1])
        #expect(buffers.next(exec, offset: nil, max: 64, read: Pipe([[8]]).read).data == [8])
        buffers.forget(containerID: "c")
        #expect(buffers.next(Self.key, offset: nil, max: 64, read: Pipe([]).read).eof)
    }
}

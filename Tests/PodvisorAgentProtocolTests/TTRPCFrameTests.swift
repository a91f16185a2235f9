import Testing

@testable import PodvisorAgentProtocol

@Suite struct TTRPCFrameTests {
    @Test func headerIsBigEndianLengthStreamTypeFlags() throws {
        let frame = TTRPCFrame(streamID: 0x0102_0304, kind: .response, flags: .remoteClosed, payload: [0xAA, 0xBB])
        #expect(try frame.encoded() == [0, 0, 0, 2, 1, 2, 3, 4, 2, 1, 0xAA, 0xBB])
    }

    @Test func roundTripsSeveralFramesFedAtOnce() throws {
        let frames = [
            TTRPCFrame(streamID: 1, kind: .request, payload: Array("hello".utf8)),
            TTRPCFrame(streamID: 3, kind: .data, flags: [.remoteOpen, .noData], payload: []),
            TTRPCFrame(streamID: 5, kind: .response, payload: [UInt8](repeating: 7, count: 70_000)),
        ]
        var decoder = TTRPCFrameDecoder()
        decoder.feed(try frames.flatMap { try $0.encoded() })
        var decoded: [TTRPCFrame] = []
        while let frame = try decoder.nextFrame() { decoded.append(frame) }
        #expect(decoded == frames)
        try decoder.finish()
    }

    @Test func partialReadsYieldNothingUntilTheFrameIsComplete() throws {
        let frame = TTRPCFrame(streamID: 9, kind: .request, payload: Array(0..<200))
        let bytes = try frame.encoded()
        var decoder = TTRPCFrameDecoder()
        for (i, byte) in bytes.enumerated() {
            #expect(try decoder.nextFrame() == nil, "complete after \(i) of \(bytes.count) bytes")
            decoder.feed([byte])
        }
        #expect(try decoder.nextFrame() == frame)
        #expect(decoder.bufferedByteCount == 0)
    }

    @Test func oversizedFrameIsRefusedFromItsHeaderAlone() {
        var decoder = TTRPCFrameDecoder()
        // Announces 4 MiB + 1 but carries nothing: the decoder must not wait for (or buffer) the payload.
        decoder.feed([0x00, 0x40, 0x00, 0x01, 0, 0, 0, 1, 1, 0])
        #expect(throws: TTRPCFramingError.oversized(4 << 20 + 1)) { try decoder.nextFrame() }
    }

    @Test func oversizedPayloadCannotBeEncoded() {
        let frame = TTRPCFrame(streamID: 1, kind: .data, payload: [UInt8](repeating: 0, count: TTRPCFrame.maxPayloadLength + 1))
        #expect(throws: TTRPCFramingError.oversized(TTRPCFrame.maxPayloadLength + 1)) { try frame.encoded() }
    }

    @Test func unknownTypeAndZeroStreamAreMalformed() {
        var unknown = TTRPCFrameDecoder()
        unknown.feed([0, 0, 0, 0, 0, 0, 0, 1, 9, 0])
        #expect(throws: TTRPCFramingError.unknownKind(9)) { try unknown.nextFrame() }
        var zero = TTRPCFrameDecoder()
        zero.feed([0, 0, 0, 0, 0, 0, 0, 0, 1, 0])
        #expect(throws: TTRPCFramingError.zeroStreamID) { try zero.nextFrame() }
    }

    @Test func endOfStreamInsideAFrameIsReported() throws {
        var decoder = TTRPCFrameDecoder()
        decoder.feed(try TTRPCFrame(streamID: 1, kind: .request, payload: [1, 2, 3]).encoded().dropLast())
        #expect(try decoder.nextFrame() == nil)
        #expect(throws: TTRPCFramingError.truncated(bufferedBytes: 12)) { try decoder.finish() }
    }
}

import Testing

@testable import PodvisorStreaming

@Suite struct SPDYFrameTests {
    /// The dictionary is fixed by SPDY/3: a peer primed with another one cannot read our header blocks.
    @Test func dictionaryIsSPDY3s() {
        let bytes = SPDYHeaderDictionary.bytes
        #expect(bytes.count == 1423)
        var a: UInt32 = 1
        var b: UInt32 = 0
        for byte in bytes {
            a = (a + UInt32(byte)) % 65521
            b = (b + a) % 65521
        }
        #expect(b << 16 | a == 0xe3c6_a7c2)
    }

    @Test func framesRoundTripEvenFedByteByByte() throws {
        let frames: [SPDYFrame] = [
            .synStream(stream: 1, fin: false, headers: ["streamtype": ["error"]]),
            .synStream(stream: 3, fin: false, headers: ["streamtype": ["stdin"], "x-multi": ["a", "b"]]),
            .synReply(stream: 1, fin: false, headers: [:]),
            .data(stream: 3, fin: false, payload: Array("hello".utf8)),
            .data(stream: 3, fin: true, payload: []),
            .headers(stream: 1, fin: true, headers: ["k": ["v"]]),
            .rstStream(stream: 5, status: 5),  // CANCEL
            .ping(id: 7),
            .windowUpdate(stream: 1, delta: 65536),
            .goAway(lastGoodStream: 3, status: 0),
        ]
        let encoder = SPDYFrameEncoder()
        let bytes = frames.flatMap { encoder.encode($0) }
        let decoder = SPDYFrameDecoder()
        var decoded: [SPDYFrame] = []
        for byte in bytes {
            decoder.feed([byte])
            while let frame = try decoder.nextFrame() { decoded.append(frame) }
        }
        #expect(decoded == frames)
    }

    @Test func dataFrameLayout() {
        let bytes = SPDYFrameEncoder().encode(.data(stream: 5, fin: true, payload: [0xAB, 0xCD]))
        #expect(bytes == [0, 0, 0, 5, 0x01, 0, 0, 2, 0xAB, 0xCD])
    }

    @Test func controlFrameLayout() {
        // Control bit, version 3, type 6 (PING), no flags, length 4.
        #expect(SPDYFrameEncoder().encode(.ping(id: 1)) == [0x80, 0x03, 0x00, 0x06, 0, 0, 0, 4, 0, 0, 0, 1])
    }

    /// Header compression is one zlib stream per connection: a repeated block costs a few bytes.
    @Test func headerCompressionKeepsItsStateAcrossFrames() {
        let encoder = SPDYFrameEncoder()
        let headers: SPDYHeaders = ["streamtype": ["stdout"], "x-stream-protocol-version": ["v4.channel.k8s.io"]]
        let first = encoder.encode(.synStream(stream: 1, fin: false, headers: headers))
        let second = encoder.encode(.synStream(stream: 3, fin: false, headers: headers))
        #expect(second.count < first.count)
    }

    @Test func otherVersionsAndTruncatedFramesAreRefused() throws {
        let decoder = SPDYFrameDecoder()
        decoder.feed([0x80, 0x02, 0x00, 0x06, 0, 0, 0, 4, 0, 0, 0, 1])
        #expect(throws: SPDYFramingError.unsupportedVersion(2)) { try decoder.nextFrame() }

        let short = SPDYFrameDecoder()
        short.feed([0x80, 0x03, 0x00, 0x03, 0, 0, 0, 2, 0, 0])
        #expect(throws: SPDYFramingError.self) { try short.nextFrame() }
    }

    @Test func unknownControlFramesAreSkipped() throws {
        let decoder = SPDYFrameDecoder()
        decoder.feed([0x80, 0x03, 0x00, 0x04, 0, 0, 0, 4, 0, 0, 0, 0] + SPDYFrameEncoder().encode(.ping(id: 2)))
        #expect(try decoder.nextFrame() == .ignored(type: 4))
        #expect(try decoder.nextFrame() == .ping(id: 2))
        #expect(try decoder.nextFrame() == nil)
    }

    @Test func headerBlockKeepsEveryValue() throws {
        let block = SPDYFrameEncoder.headerBlock(["X-Stream-Protocol-Version": ["v4.channel.k8s.io", "v3.channel.k8s.io"]])
        #expect(try SPDYFrameEncoder.parseHeaderBlock(block) == ["x-stream-protocol-version": ["v4.channel.k8s.io", "v3.channel.k8s.io"]])
        #expect(throws: SPDYFramingError.self) { try SPDYFrameEncoder.parseHeaderBlock(Array(block.dropLast())) }
    }
}

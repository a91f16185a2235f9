import Testing

@testable import PodvisorCore

@Suite struct UserNamespaceMappingTests {
    @Test func rangesEndAtTheLastValidID() throws {
        #expect(IDMapping(containerID: 0, hostID: 1000, length: 0) == nil)
        #expect(IDMapping(containerID: 0, hostID: UInt32.max - 10, length: 11) == nil, "would map 4294967295, which is no id")
        #expect(IDMapping(containerID: UInt32.max, hostID: 0, length: 1) == nil)
        let last = try #require(IDMapping(containerID: 0, hostID: UInt32.max - 11, length: 11))
        #expect(last.hostID(of: 10) == UInt32.max - 1 && last.hostID(of: 11) == nil)
    }

    @Test func hostIDsAndProcLines() throws {
        let mapping = try #require(IDMapping(containerID: 5, hostID: 65536, length: 10))
        #expect(mapping.hostID(of: 4) == nil && mapping.hostID(of: 5) == 65536 && mapping.hostID(of: 14) == 65545)
        #expect(mapping.hostID(of: 15) == nil && mapping.hostID(of: UInt32.max) == nil)
        #expect(mapping.procLine == "5 65536 10\n")
    }
}

import Foundation
import PodvisorCore
import Testing

@testable import PodvisorNetwork

@Suite struct CNICacheTests {
    @Test func roundTripsIntentAndResult() async throws {
        try await withTemporaryDirectory { dir in
            let cache = CNICache(directory: "\(dir)/results")
            #expect(try cache.entry("abc123") == nil)
            #expect(try cache.entries().isEmpty)
            var entry = CNICacheEntry(attachment: CNIInvocationTests.attachment, config: CNIInvocationTests.config)
            try cache.write(entry)
            #expect(try cache.entry("abc123") == entry)
            #expect(try cache.entry("abc123")?.result == nil)
            entry.result = try CNIResult.parse(Data(CNIResultTests.bridge10.utf8), plugin: "bridge")
            try cache.write(entry)
            let read = try #require(try cache.entry("abc123"))
            #expect(read == entry)
            #expect(read.result?.podIPs == ["10.213.0.5"])
            // The configuration comes back byte for byte, whatever the conf dir holds now.
            #expect(try read.networkConfig() == CNIInvocationTests.config)
            #expect(try cache.entries().map(\.attachment.containerID) == ["abc123"])
            // Nothing but the entry is left in the directory (no temporaries).
            #expect(try FileManager.default.contentsOfDirectory(atPath: "\(dir)/results") == ["abc123.json"])
            try cache.remove("abc123")
            try cache.remove("abc123")
            #expect(try cache.entries().isEmpty)
        }
    }

    @Test func aDamagedEntryIsDataLoss() async throws {
        try await withTemporaryDirectory { dir in
            try writeFile("\(dir)/broken.json", "{\"attachment\": ")
            #expect {
                try CNICache(directory: dir).entry("broken")
            } throws: { error in
                (error as? PodvisorError)?.code == .dataLoss
            }
        }
    }
}

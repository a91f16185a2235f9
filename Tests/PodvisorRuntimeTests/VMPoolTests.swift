import PodvisorCore
import Testing

@testable import PodvisorRuntime

@Suite struct VMPoolTests {
    /// A pool the host cannot hold is refused at start, with the numbers that say why.
    @Test func aPoolLargerThanTheHostIsRefused() throws {
        var config = PodvisorConfig()
        config.memoryMiB = 256
        config.vmmOverheadMiB = 96
        config.poolSize = 10
        try VMPool.checkFits(config, availableMiB: 3520)
        let error = #expect(throws: PodvisorError.self) { try VMPool.checkFits(config, availableMiB: 3519) }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains("10 × 352 MiB") == true && error?.message.contains("3520 MiB") == true, "\(error?.message ?? "")")
        config.poolSize = 1024
        config.memoryMiB = Int.max / 2
        #expect(throws: PodvisorError.self) { try VMPool.checkFits(config, availableMiB: .max) }
    }
}

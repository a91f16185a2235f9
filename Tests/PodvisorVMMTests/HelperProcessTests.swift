import Foundation
import Testing

@testable import PodvisorVMM

/// A helper lives as long as its VM; what the runtime holds for it must not outlive it (the density
/// benchmark found one descriptor per removed pod: the helper's log, kept open by the parent). And it must
/// stop when asked: spawned with the pool thread's signal mask, SIGTERM never reached it.
@Suite struct HelperProcessTests {
    /// The descriptors of this process that point at `path`.
    static func descriptors(to path: String) -> [String] {
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        return fds.filter { (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\($0)")) == path }
    }

    @Test func holdsNoDescriptorOfItsLogAndStopsOnSIGTERM() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("podvisor-helper-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let socket = "\(directory)/ready"
        // A stand-in daemon: announces itself the way a helper does (its socket appears), then idles.
        let helper = try HelperProcess.start(
            "stand-in", executable: "/bin/sh", arguments: ["-c", #"echo started; : >"$0"; exec sleep 600"#, socket],
            directory: directory, socket: socket, qemuGroup: nil)
        let log = "\(directory)/stand-in.log"
        #expect(Self.descriptors(to: log).isEmpty)
        // SIGTERM reaches it: no signal mask is handed on from the (pool) thread that spawned it.
        let status = try String(contentsOfFile: "/proc/\(helper.pid)/status", encoding: .utf8)
        #expect(status.split(separator: "\n").contains("SigBlk:\t0000000000000000"))
        helper.stop()
        #expect(kill(helper.pid, 0) == -1 && errno == ESRCH)
        #expect(try String(contentsOfFile: log, encoding: .utf8) == "started\n")
        #expect(Self.descriptors(to: log).isEmpty)
    }
}

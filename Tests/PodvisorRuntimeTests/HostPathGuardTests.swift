import Foundation
import PodvisorCore
import Testing

@testable import PodvisorRuntime

/// Host paths are judged by what they resolve to, whatever their spelling.
@Suite struct HostPathGuardTests {
    @Test func theStateItsInsidesAndItsParentsAreRefusedHoweverSpelled() throws {
        let root = "/tmp/podvisor-guard-\(UUID().uuidString.prefix(8))"
        let state = "\(root)/state"
        try FileManager.default.createDirectory(atPath: "\(state)/cri", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: "\(root)/volume", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: "\(root)/link", withDestinationPath: state)
        defer { try? FileManager.default.removeItem(atPath: root) }
        let protected = [HostPathGuard.resolve(state)]
        for path in [state, "\(state)/", "\(state)//cri", "\(state)/./cri", "\(root)/volume/../state", "\(root)/link", "\(root)/link/cri", root, "/"]
        {
            let error = #expect(throws: PodvisorError.self, "\(path)") { try HostPathGuard.open(path, protecting: protected) }
            #expect(error?.code == .invalidArgument)
        }
        let opened = try HostPathGuard.open("\(root)/volume", protecting: protected)
        defer { opened.close() }
        #expect(opened.resolved == "\(root)/volume" && opened.path.hasPrefix("/proc/self/fd/"))
        // A missing directory is created (as containerd does), outside the state only.
        let created = try HostPathGuard.open("\(root)/new/dir", protecting: protected)
        created.close()
        #expect(FileManager.default.fileExists(atPath: "\(root)/new/dir"))
        #expect(throws: PodvisorError.self) { try HostPathGuard.open("\(state)/made-here", protecting: protected) }
        #expect(!FileManager.default.fileExists(atPath: "\(state)/made-here"))
    }

    @Test func aLongPathIsQuotedShortInTheError() {
        let long = "/" + String(repeating: "x", count: 1 << 20)
        let error = #expect(throws: PodvisorError.self) { try HostPathGuard.open(long, protecting: ["/nonexistent"]) }
        #expect((error?.message.utf8.count ?? 0) < 300)
    }
}

@Suite struct PodCgroupTests {
    @Test func cgroupfsPathsAndSystemdSlices() throws {
        #expect(try PodCgroup.path("/kubepods/burstable/pod1") == "/kubepods/burstable/pod1")
        #expect(try PodCgroup.path("kubepods") == "/kubepods")
        #expect(try PodCgroup.path("kubepods-burstable-pod1.slice") == "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice")
        #expect(throws: PodvisorError.self) { try PodCgroup.path("/kubepods/../../etc") }
    }
}

import Foundation
import PodvisorAgentProtocol
import Testing

@testable import PodvisorAgentCore

/// Names resolve against the container's own /etc/passwd and /etc/group.
@Suite struct UserDatabaseTests {
    static let passwd = """
        root:x:0:0:root:/root:/bin/sh
        # a comment
        app:x:1000:1000:App:/home/app:/bin/sh
        broken:x:not-a-number:0::/:/bin/false
        """
    static let group = """
        root:x:0:
        wheel:x:10:other,app
        app:x:1000:
        audio:x:29:app
        staff:x:50:
        """
    static let database = UserDatabase(passwd: passwd, group: group)

    static func process(_ body: (inout Podvisor_Agent_V1_ProcessSpec) -> Void) -> Podvisor_Agent_V1_ProcessSpec {
        .with(body)
    }

    @Test func userNameGivesUidPrimaryGroupAndTheGroupsListingIt() throws {
        let identity = try Self.database.resolve(Self.process { $0.username = "app" })
        #expect(identity == UserDatabase.Identity(uid: 1000, gid: 1000, additionalGIDs: [10, 29]))
    }

    @Test func groupNameAndExtraGroupsWin() throws {
        let identity = try Self.database.resolve(
            Self.process {
                $0.username = "app"
                $0.groupname = "staff"
                $0.additionalGids = [29, 7]
            })
        // 29 is already there through the group file: listed once.
        #expect(identity == UserDatabase.Identity(uid: 1000, gid: 50, additionalGIDs: [10, 29, 7]))
    }

    @Test func numericIdsNeedNoEntry() throws {
        let unknown = try Self.database.resolve(
            Self.process {
                $0.uid = 4242
                $0.gid = 4343
            })
        #expect(unknown == UserDatabase.Identity(uid: 4242, gid: 4343, additionalGIDs: []))
        // A uid that has an entry still gets that user's supplementary groups.
        let known = try Self.database.resolve(Self.process { $0.uid = 1000 })
        #expect(known.additionalGIDs == [10, 29])
    }

    /// Kubernetes' SupplementalGroupsPolicy, as critest checks it: a numeric uid takes its primary group from
    /// passwd unless one is given; Merge adds the groups listing the user, Strict only those asked for.
    @Test func numericUidTakesItsPrimaryGroupAndStrictLeavesTheGroupFileOut() throws {
        let merged = try Self.database.resolve(
            Self.process {
                $0.uid = 1000; $0.additionalGids = [1234]
            })
        #expect(merged == UserDatabase.Identity(uid: 1000, gid: 1000, additionalGIDs: [10, 29, 1234]))
        #expect(merged.groups == [1000, 10, 29, 1234])
        let strict = try Self.database.resolve(
            Self.process {
                $0.uid = 1000
                $0.additionalGids = [1234]
                $0.strictSupplementalGroups = true
            })
        #expect(strict.groups == [1000, 1234])
        // An explicit group 0 stays 0 (root's group asked for), unlike an absent one.
        #expect(
            try Self.database.resolve(
                Self.process {
                    $0.uid = 1000; $0.gid = 0
                }
            ).gid == 0)
    }

    @Test func unknownNamesAreRefused() {
        let user = #expect(throws: RPCError.self) { try Self.database.resolve(Self.process { $0.username = "nobody" }) }
        #expect(user?.code == .invalidArgument)
        #expect(user?.message == "user nobody not found in the container's /etc/passwd")
        let group = #expect(throws: RPCError.self) { try Self.database.resolve(Self.process { $0.groupname = "nogroup" }) }
        #expect(group?.message == "group nogroup not found in the container's /etc/group")
        // A malformed line is skipped, not matched.
        #expect(throws: RPCError.self) { try Self.database.resolve(Self.process { $0.username = "broken" }) }
    }

    @Test func readsTheFilesOfARootfs() throws {
        let rootfs = FileManager.default.temporaryDirectory.appending(path: "pv-userdb-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: rootfs) }
        try FileManager.default.createDirectory(at: rootfs.appending(path: "etc"), withIntermediateDirectories: true)
        try Self.passwd.write(to: rootfs.appending(path: "etc/passwd"), atomically: true, encoding: .utf8)
        try Self.group.write(to: rootfs.appending(path: "etc/group"), atomically: true, encoding: .utf8)
        let identity = try UserDatabase.resolve(Self.process { $0.username = "app" }, rootfs: rootfs.path)
        #expect(identity.uid == 1000 && identity.additionalGIDs == [10, 29])
        // A rootfs without the files knows numeric ids only.
        #expect(try UserDatabase.resolve(Self.process { $0.uid = 5 }, rootfs: rootfs.appending(path: "missing").path).uid == 5)
    }

    /// The host pins the identity it resolved: resolving the pinned process again reads neither file and
    /// gives the same identity; a process that needs a file reads only that one.
    @Test func aPinnedProcessReadsNoFile() throws {
        let spec = Self.process {
            $0.username = "app"
            $0.additionalGids = [1234]
        }
        var reads: [String] = []
        let resolve = { (spec: Podvisor_Agent_V1_ProcessSpec) throws(RPCError) in
            try UserDatabase.resolve(
                spec,
                passwd: {
                    reads.append("passwd"); return Self.passwd
                },
                group: {
                    reads.append("group"); return Self.group
                })
        }
        let identity = try resolve(spec)
        #expect(identity == UserDatabase.Identity(uid: 1000, gid: 1000, additionalGIDs: [10, 29, 1234]) && reads == ["passwd", "group"])
        reads = []
        #expect(try resolve(spec.pinned(to: identity)) == identity && reads.isEmpty)
        // Strict groups and a numeric uid without a gid: the primary group comes from passwd, and group is not read.
        _ = try resolve(
            Self.process {
                $0.uid = 1000; $0.strictSupplementalGroups = true
            })
        #expect(reads == ["passwd"])
    }
}

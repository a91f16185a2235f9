/// Resolves a process's user and group names against its container's own /etc/passwd and /etc/group. The
/// host resolves a container's identity from the image's layers, as containerd does, and sends numbers
/// only (`pinned`); the agent resolves what the host left to it (a file it could not read), with the same code.
public struct UserDatabase: Sendable {
    public struct Identity: Equatable, Sendable {
        public var uid: UInt32
        public var gid: UInt32
        public var additionalGIDs: [UInt32]

        public init(uid: UInt32, gid: UInt32, additionalGIDs: [UInt32]) {
            self.uid = uid
            self.gid = gid
            self.additionalGIDs = additionalGIDs
        }

        /// The primary group, then the supplementary ones: what `id -G` prints.
        public var groups: [UInt32] { [gid] + additionalGIDs.filter { $0 != gid } }
    }

    var passwd: [(name: String, uid: UInt32, gid: UInt32)]
    var groups: [(name: String, gid: UInt32, members: [String])]

    public init(passwd: String?, group: String?) {
        self.passwd = Self.records(passwd).compactMap { f in
            guard f.count >= 4, let uid = UInt32(f[2]), let gid = UInt32(f[3]) else { return nil }
            return (f[0], uid, gid)
        }
        self.groups = Self.records(group).compactMap { f in
            guard f.count >= 3, let gid = UInt32(f[2]) else { return nil }
            return (f[0], gid, f.count > 3 ? f[3].split(separator: ",").map(String.init) : [])
        }
    }

    /// Resolves `spec`, reading each file (`passwd`, `group`: nil when the container has none) only when
    /// it needs it: a pinned process (numbers, strict groups) needs neither.
    public static func resolve(
        _ spec: Podvisor_Agent_V1_ProcessSpec, passwd: () -> String?, group: () -> String?
    ) throws(RPCError) -> Identity {
        let groupsFromFiles = !spec.strictSupplementalGroups
        let readsPasswd = !spec.username.isEmpty || (!spec.hasGid && spec.groupname.isEmpty) || groupsFromFiles
        let readsGroup = !spec.groupname.isEmpty || groupsFromFiles
        return try UserDatabase(passwd: readsPasswd ? passwd() : nil, group: readsGroup ? group() : nil).resolve(spec)
    }

    private static func records(_ text: String?) -> [[String]] {
        (text ?? "").split(separator: "\n").filter { !$0.hasPrefix("#") }
            .map { $0.split(separator: ":", omittingEmptySubsequences: false).map(String.init) }
    }

    /// The identity a process runs as: names win over numbers; a user's primary group comes from passwd
    /// when no group is given (as runc resolves it); supplementary groups are those listing the user
    /// (unless strict), plus the ones asked for.
    public func resolve(_ spec: Podvisor_Agent_V1_ProcessSpec) throws(RPCError) -> Identity {
        var uid = spec.uid
        var gid = spec.gid
        var entry: (name: String, uid: UInt32, gid: UInt32)?
        if !spec.username.isEmpty {
            guard let named = passwd.first(where: { $0.name == spec.username }) else {
                throw RPCError(.invalidArgument, "user \(spec.username) not found in the container's /etc/passwd")
            }
            entry = named
            uid = named.uid
        } else {
            entry = passwd.first(where: { $0.uid == uid })
        }
        let userName = entry?.name
        if !spec.hasGid && spec.groupname.isEmpty { gid = entry?.gid ?? 0 }
        if !spec.groupname.isEmpty {
            guard let entry = groups.first(where: { $0.name == spec.groupname }) else {
                throw RPCError(.invalidArgument, "group \(spec.groupname) not found in the container's /etc/group")
            }
            gid = entry.gid
        }
        var additional = spec.strictSupplementalGroups ? [] : userName.map { name in groups.filter { $0.members.contains(name) }.map(\.gid) } ?? []
        for extra in spec.additionalGids where !additional.contains(extra) { additional.append(extra) }
        return Identity(uid: uid, gid: gid, additionalGIDs: additional)
    }
}

extension Podvisor_Agent_V1_ProcessSpec {
    /// The process with `identity` in numbers: resolving it again reads no file and gives `identity`.
    public func pinned(to identity: UserDatabase.Identity) -> Self {
        var pinned = self
        pinned.username = ""
        pinned.groupname = ""
        pinned.uid = identity.uid
        pinned.gid = identity.gid
        pinned.additionalGids = identity.additionalGIDs
        pinned.strictSupplementalGroups = true
        return pinned
    }
}

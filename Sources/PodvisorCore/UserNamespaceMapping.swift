/// Ids `containerID ..< containerID + length` inside a user namespace are `hostID ..< hostID + length` outside.
public struct IDMapping: Sendable, Equatable, Codable {
    public var containerID: UInt32
    public var hostID: UInt32
    public var length: UInt32

    /// nil when empty or when either range passes the last valid id (4294967294: -1 is no id).
    public init?(containerID: UInt32, hostID: UInt32, length: UInt32) {
        let end = UInt64(UInt32.max)
        guard length > 0, UInt64(containerID) + UInt64(length) <= end, UInt64(hostID) + UInt64(length) <= end else { return nil }
        self.containerID = containerID
        self.hostID = hostID
        self.length = length
    }

    /// A line of /proc/<pid>/uid_map or gid_map.
    public var procLine: String { "\(containerID) \(hostID) \(length)\n" }

    /// The host id of `id` inside, nil when it is not mapped.
    public func hostID(of id: UInt32) -> UInt32? {
        id >= containerID && id - containerID < length ? hostID + (id - containerID) : nil
    }
}

/// A pod's user namespace (CRI userns mode POD): one uid and one gid range, kubelet's choice.
public struct UserNamespaceMapping: Sendable, Equatable, Codable {
    public var uids: IDMapping
    public var gids: IDMapping

    public init(uids: IDMapping, gids: IDMapping) {
        self.uids = uids
        self.gids = gids
    }
}

import CLinuxSupport
import Foundation
import PodvisorCore

/// The one host directory a VM sees through virtio-fs (tag `share`), served by Debian's C virtiofsd.
///
/// virtiofsd starts in a mount namespace of the VM's own (unshare, pinned at `<run>/mntns` so that it outlives
/// virtiofsd's own sandboxing and this process), where the share is made a shared mount point of its own
/// *before* virtiofsd starts: mounts added under it later (container rootfs, volumes) propagate into
/// virtiofsd's sandbox and reach the guest; `announce_submounts` keeps their inode numbers apart. Those
/// mounts are made in that namespace, never in the host's: the host sees none of a pod's mounts (a volume's
/// submount stays removable there), and they all go with the namespace, whatever happened to the runtime.
struct SharedDirectory {
    static let tag = "share"

    let path: String
    let socket: String
    let virtiofsd: HelperProcess
    /// The bind mount (in the host's namespace) that keeps the VM's mount namespace alive.
    let namespacePin: String

    static func start(executable: String, runDirectory: String, qemuGroup: gid_t?) throws(PodvisorError) -> SharedDirectory {
        let path = "\(runDirectory)/share"
        guard mkdir(path, 0o755) == 0 || errno == EEXIST else {
            throw PodvisorError(.internalError, "cannot create \(path): errno \(errno)")
        }
        let socket = socketPath(runDirectory)
        let pin = namespacePin(runDirectory)
        FileManager.default.createFile(atPath: pin, contents: nil)
        do {
            let virtiofsd = try HelperProcess.start(
                "virtiofsd", executable: executable,
                // xattr: file capabilities and overlay metadata must survive the trip into the guest.
                // --socket-group: virtiofsd sets its socket's mode itself, ignoring the umask; QEMU needs access.
                arguments: [
                    "--socket-path=\(socket)", "--socket-group=libvirt-qemu", "-o", "source=\(path)",
                    "-o", "announce_submounts", "-o", "xattr",
                ],
                directory: "\(runDirectory)/fs", socket: socket, qemuGroup: qemuGroup,
                // Private: no host mount propagates in (the pin itself would, and keep its namespace forever);
                // volumes still follow their sources, as peers of them.
                wrapper: [
                    "/usr/bin/unshare", "--mount=\(pin)", "--propagation", "private", "--", "/bin/sh", "-c",
                    #"/usr/bin/mount --bind "$0" "$0" && /usr/bin/mount --make-shared "$0" && exec "$@""#, path,
                ])
            return SharedDirectory(path: path, socket: socket, virtiofsd: virtiofsd, namespacePin: pin)
        } catch {
            Self.unpin(pin)
            throw error
        }
    }

    /// The share of a VM started by an earlier runtime process; its mount and virtiofsd outlived that process.
    static func adopt(runDirectory: String) throws(PodvisorError) -> SharedDirectory {
        SharedDirectory(
            path: "\(runDirectory)/share", socket: socketPath(runDirectory),
            virtiofsd: try HelperProcess.adopt("virtiofsd", directory: "\(runDirectory)/fs"), namespacePin: namespacePin(runDirectory))
    }

    /// Stops virtiofsd and lets the VM's mount namespace go, and every mount in it.
    func stop() {
        virtiofsd.stop()
        Self.removePidFile(socket: socket)
        Self.unpin(namespacePin)
    }

    static func namespacePin(_ runDirectory: String) -> String { "\(runDirectory)/mntns" }

    private static func unpin(_ pin: String) {
        detachMount(pin)
        unlink(pin)
    }

    /// Binds `source` (with what is mounted below it) at `target` in the VM's namespace; a read-only bind is
    /// read-only, an idmapped one (`idmap`: a pod's user namespace) shifted, before it is attached. The
    /// source is resolved here, in this process's namespace.
    func bind(_ source: String, at target: String, _ mode: BindMode, idmap: UserNamespaceMapping? = nil) throws(PodvisorError) {
        try makeMountPoint(target, like: source)
        try Self.withUserNamespace(idmap) { userns throws(PodvisorError) in
            try inNamespace(.bind, source: source, target: target, mode: mode, userns: userns) { "cannot bind \(source) on \(target)" }
        }
    }

    /// An overlay of `lower` (top first) at `target` in the VM's namespace, writes going to `upper`.
    ///
    /// With `idmap` (a pod's user namespace) the guest must see the image's files owned by the pod's ids.
    /// overlayfs cannot be idmapped itself, its layers can (Linux 5.19): each is bound idmapped at
    /// `<work>.layers/<n>` in the VM's namespace and detached once the overlay holds its own clone. The upper
    /// layer stays plain and belongs to the pod's root: what the guest writes keeps the ids it has there.
    func mountOverlay(
        lower: [String], upper: String, work: String, at target: String, idmap: UserNamespaceMapping? = nil
    ) throws(PodvisorError) {
        for directory in [upper, work, target] { try makeDirectory(directory) }
        var layers = lower
        var staged: [String] = []
        defer { detach(staged) }
        if let idmap {
            guard let root = idmap.uids.hostID(of: 0), let group = idmap.gids.hostID(of: 0) else {
                throw PodvisorError(.invalidArgument, "a user namespace must map id 0")
            }
            guard chown(upper, root, group) == 0 else {
                throw PodvisorError(.internalError, "cannot give \(upper) to the pod's root: \(String(cString: strerror(errno)))")
            }
            let staging = "\(work).layers"
            try makeDirectory(staging)
            layers = []
            try Self.withUserNamespace(idmap) { userns throws(PodvisorError) in
                for (index, layer) in lower.enumerated() {
                    let point = "\(staging)/\(index)"
                    try makeDirectory(point)
                    try inNamespace(.bind, source: layer, target: point, mode: .readonlyTop, userns: userns) {
                        "cannot bind layer \(layer) idmapped"
                    }
                    staged.append(point)
                    layers.append(point)
                }
            }
        }
        let options = "lowerdir=\(layers.joined(separator: ":")),upperdir=\(upper),workdir=\(work)"
        try inNamespace(.overlay, target: target, options: options) { "cannot mount an overlay on \(target)" }
    }

    /// Runs `body` with a descriptor of a user namespace holding `mapping` (-1 without one).
    private static func withUserNamespace(
        _ mapping: UserNamespaceMapping?, _ body: (Int32) throws(PodvisorError) -> Void
    ) throws(PodvisorError) {
        guard let mapping else { return try body(-1) }
        let userns = pv_user_namespace(mapping.uids.procLine, mapping.gids.procLine)
        guard userns >= 0 else {
            throw PodvisorError(.internalError, "cannot create a user namespace for idmapped mounts: \(String(cString: strerror(errno)))")
        }
        defer { close(userns) }
        try body(userns)
    }

    /// Detaches the mounts at `targets` in the VM's namespace, with what is below them (virtiofsd may still
    /// hold handles the guest used: a plain umount would fail with EBUSY). Not mount points: nothing to do.
    func detach(_ targets: [String]) {
        for target in targets { try? inNamespace(.detach, target: target) { "cannot detach \(target)" } }
    }

    private enum Operation {
        case bind, overlay, detach
        var raw: Int32 {
            switch self {
            case .bind: Int32(PV_NS_BIND)
            case .overlay: Int32(PV_NS_OVERLAY)
            case .detach: Int32(PV_NS_DETACH)
            }
        }
    }

    private func inNamespace(
        _ operation: Operation, source: String = "", target: String, options: String = "", mode: BindMode = .readWrite,
        userns: Int32 = -1, _ what: () -> String
    ) throws(PodvisorError) {
        let namespace = open(namespacePin, O_RDONLY | O_CLOEXEC)
        guard namespace >= 0 else {
            throw PodvisorError(.unavailable, "\(what()): the VM's mount namespace (\(namespacePin)) is gone")
        }
        defer { close(namespace) }
        guard pv_mount_in_namespace(namespace, operation.raw, source, target, options, mode.raw, userns) == 0 else {
            if userns >= 0 && errno == EINVAL {
                throw PodvisorError(
                    .failedPrecondition,
                    "\(what()): its filesystem cannot be idmapped, which a pod with a user namespace needs (Docs/limitations.md)")
            }
            throw PodvisorError(.internalError, "\(what()): \(String(cString: strerror(errno)))")
        }
    }

    static func socketPath(_ runDirectory: String) -> String { "\(runDirectory)/fs/virtiofsd.sock" }

    /// Debian's C virtiofsd leaves `/run/virtiofsd/<socket path, '/' as '.'>.pid` behind when it is stopped:
    /// one file per VM ever started, unless whoever stops it removes it.
    static func removePidFile(socket: String) {
        unlink("/run/virtiofsd/\(socket.replacingOccurrences(of: "/", with: ".")).pid")
    }
}

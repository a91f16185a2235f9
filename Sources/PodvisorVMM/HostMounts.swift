import CLinuxSupport
import Foundation
import PodvisorCore

// Mount points, and the one way the host side deletes directories: never through a mount. The mounts of a
// VM's share (rootfs overlays, volumes) are made in the VM's own mount namespace (SharedDirectory).

/// Mount points at or below `path` in this process's mount namespace, deepest first.
public func mountPoints(under path: String) -> [String] {
    readProcFile("/proc/self/mountinfo").split(separator: "\n").compactMap { line -> String? in
        let fields = line.split(separator: " ")
        return fields.count > 4 ? String(fields[4]) : nil
    }.filter { $0 == path || $0.hasPrefix(path + "/") }.sorted { $0.count > $1.count }
}

/// The processes and every descendant of them (a helper that forked: virtiofsd's sandboxed child).
public func processTrees(_ roots: [pid_t]) -> [pid_t] {
    var parents: [pid_t: pid_t] = [:]
    for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
        guard let pid = pid_t(entry) else { continue }
        let stat = readProcFile("/proc/\(entry)/stat")
        guard let close = stat.lastIndex(of: ")") else { continue }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        if fields.count > 1, let parent = pid_t(fields[1]) { parents[pid] = parent }
    }
    var found = roots
    var index = 0
    while index < found.count {
        let parent = found[index]
        found += parents.filter { $0.value == parent && !found.contains($0.key) }.map(\.key)
        index += 1
    }
    return found
}

/// Deletes a directory tree, but never through a mount: a rootfs or volume still mounted below it would
/// have its host files deleted.
public func removeUnmountedDirectory(_ path: String) throws(PodvisorError) {
    guard FileManager.default.fileExists(atPath: path) else { return }
    let mounted = mountPoints(under: path)
    guard mounted.isEmpty else {
        throw PodvisorError(.internalError, "\(path) still has mounts (\(mounted.joined(separator: ", "))); not removing it")
    }
    do { try FileManager.default.removeItem(atPath: path) } catch {
        throw PodvisorError(.internalError, "cannot remove \(path)", cause: error)
    }
}

/// Read-only modes of a bind into a VM's share (`VirtualMachine.bind`): everything below too, or the top mount only (its submounts stay writable).
public enum BindMode: Sendable {
    case readWrite, readonlyRecursive, readonlyTop

    var raw: Int32 {
        switch self {
        case .readWrite: Int32(PV_READWRITE)
        case .readonlyRecursive: Int32(PV_READONLY_RECURSIVE)
        case .readonlyTop: Int32(PV_READONLY_TOP)
        }
    }
}

/// Detaches the mount at `path` and everything below it, even while busy (virtiofsd may still hold handles).
public func detachMount(_ path: String) {
    _ = pv_umount_detach(path)
}

/// Detaches every mount at or below `path`, deepest first.
public func detachMounts(under path: String) {
    for mountPoint in mountPoints(under: path) { detachMount(mountPoint) }
}

public func makeDirectory(_ path: String) throws(PodvisorError) {
    do { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
        throw PodvisorError(.internalError, "cannot create \(path)", cause: error)
    }
}

/// An empty directory, or an empty file when `source` is a file (a bind needs the same kind).
func makeMountPoint(_ path: String, like source: String) throws(PodvisorError) {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: source, isDirectory: &isDirectory) else {
        throw PodvisorError(.notFound, "\(source) does not exist")
    }
    if isDirectory.boolValue { return try makeDirectory(path) }
    try makeDirectory((path as NSString).deletingLastPathComponent)
    guard FileManager.default.fileExists(atPath: path) || FileManager.default.createFile(atPath: path, contents: nil) else {
        throw PodvisorError(.internalError, "cannot create \(path)")
    }
}

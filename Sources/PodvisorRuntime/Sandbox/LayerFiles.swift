import CLinuxSupport
import Foundation

/// A file of a container's rootfs read on the host from the image's unpacked layers (the overlay's lower
/// directories, top first), as overlayfs shows it: the top layer that has the path wins; a whiteout (a 0/0
/// character device) or an opaque directory (`trusted.overlay.opaque=y`) hides what lies below.
enum LayerFiles {
    enum Lookup: Equatable {
        case file(String)
        case absent
        /// Not a plain file through plain directories (a symlink on the way, an unreadable entry): only the
        /// mounted rootfs can tell.
        case undecided
    }

    /// `path` relative to the root, e.g. `etc/passwd`; at most `limit` bytes of it.
    static func read(_ path: String, layers: [String], limit: Int = 1 << 20) -> Lookup {
        let components = path.split(separator: "/").map(String.init)
        guard !components.isEmpty, !components.contains(".."), !components.contains(".") else { return .undecided }
        layers: for layer in layers {
            var directory = layer
            for (index, name) in components.enumerated() {
                let entry = "\(directory)/\(name)"
                var info = stat()
                guard lstat(entry, &info) == 0 else {
                    guard errno == ENOENT else { return .undecided }
                    if isOpaque(directory) { return .absent }
                    continue layers
                }
                switch info.st_mode & S_IFMT {
                case S_IFCHR where info.st_rdev == 0:
                    return .absent
                case S_IFDIR where index < components.count - 1:
                    directory = entry
                case S_IFREG where index == components.count - 1:
                    guard let handle = FileHandle(forReadingAtPath: entry), let data = try? handle.read(upToCount: limit) else { return .undecided }
                    try? handle.close()
                    return .file(String(decoding: data, as: UTF8.self))
                default:
                    return .undecided
                }
            }
        }
        return .absent
    }

    private static func isOpaque(_ directory: String) -> Bool {
        var value: UInt8 = 0
        return getxattr(directory, "trusted.overlay.opaque", &value, 1) == 1 && value == UInt8(ascii: "y")
    }
}

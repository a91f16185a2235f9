import Foundation
import PodvisorCore

/// libvirt puts each VM into `machine/<driver>-<id>-<domain name>.libvirt-qemu` of every cgroup hierarchy
/// (with `emulator` and `vcpuN` below it) and removes that when the domain stops, but only the libvirt that
/// started the VM does: after a kill -9 of podvisord (its embedded libvirt with it), the restarted one
/// destroys the VM and leaves the empty directories, a few per restart, for the host's life. Under load
/// libvirt's own removal can also come while QEMU's threads are still leaving.
public enum MachineCgroups {
    /// The VM's directories: in the one v2 hierarchy or in each v1 one.
    public static func directories(domain name: String) -> [String] {
        let root = HostCgroups.root
        let hierarchies =
            HostCgroups.unified ? [root] : ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).map { "\(root)/\($0)" }
        return hierarchies.flatMap { hierarchy in
            ((try? FileManager.default.contentsOfDirectory(atPath: "\(hierarchy)/machine")) ?? [])
                .filter { $0.hasSuffix("-\(name).libvirt-qemu") }.map { "\(hierarchy)/machine/\($0)" }
        }
    }

    /// Removes the directories of a VM that no longer runs, now and, for any still busy, again in the
    /// background over the next seconds. A cgroup directory goes only when it holds no process and no
    /// child: one in use stays.
    static func remove(domain name: String) {
        guard !removeNow(domain: name) else { return }
        Task.detached {
            for delay in [1, 2, 4] {
                try? await Task.sleep(for: .seconds(delay))
                if removeNow(domain: name) { return }
            }
        }
    }

    /// Whether none is left.
    private static func removeNow(domain name: String) -> Bool {
        for directory in directories(domain: name) {
            for child in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] {
                rmdir("\(directory)/\(child)")
            }
            rmdir(directory)
        }
        return directories(domain: name).isEmpty
    }
}

import Foundation

/// One process per state directory: a second one would take the first one's VMs for orphans, and the
/// embedded libvirt root and the image store are not shareable. The lock lives as long as the process.
public enum StateDirectoryLock {
    public static func acquire(_ stateDirectory: String) throws(PodvisorError) {
        let path = "\(stateDirectory)/lock"
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw PodvisorError(.internalError, "cannot open \(path): \(String(cString: strerror(errno)))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let holder = readTextFile(path)?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "?"
            close(fd)
            throw PodvisorError(
                .unavailable,
                "state directory \(stateDirectory) is in use by another podvisor process (pid \(holder)); "
                    + "talk to podvisord with --endpoint, or give this command its own --state-dir")
        }
        ftruncate(fd, 0)
        let pid = "\(getpid())\n"
        _ = pid.withCString { write(fd, $0, strlen($0)) }
    }
}

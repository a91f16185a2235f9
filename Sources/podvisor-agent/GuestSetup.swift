#if canImport(Glibc)
import Glibc
#endif
import CLinuxSupport
import PodvisorAgentCore

/// The early boot work of PID 1: filesystems, console, kernel modules.
enum GuestSetup {
    /// Must run before any thread exists: the Swift runtime reads /proc when it starts threads.
    static func mountProc() {
        mkdir("/proc", 0o555)
        if pv_mount("proc", "/proc", "proc", pv_ms_nosuid() | pv_ms_nodev() | pv_ms_noexec(), nil) != 0 {
            log("mount /proc failed: errno \(errno)")
        }
    }

    /// Moves PID 1 from the boot root onto a tmpfs root, as switch_root does: the kernel refuses pivot_root
    /// while the caller's root is the initramfs itself, and every container needs pivot_root (a chroot would
    /// leave the agent's root reachable to CAP_SYS_CHROOT); on the read-only rootfs disk the tmpfs gives the
    /// agent the same writable root. An initramfs's files are deleted first so their memory returns to the
    /// guest; the running agent stays mapped. Call after the modules are loaded and with only /proc mounted.
    static func switchToTmpfsRoot() {
        let newRoot = "/newroot"
        mkdir(newRoot, 0o755)
        guard pv_mount("tmpfs", newRoot, "tmpfs", 0, "mode=0755") == 0 else {
            log("cannot mount the tmpfs root: errno \(errno); containers will not start")
            return
        }
        mkdir("\(newRoot)/proc", 0o555)
        guard pv_move_mount("/proc", "\(newRoot)/proc") == 0 else {
            log("cannot move /proc: errno \(errno)")
            return
        }
        // A disk root is read-only, and of it the guest holds only the pages read.
        if pv_on_ramfs("/") == 1 {
            var rootStat = stat()
            lstat("/", &rootStat)
            for entry in GuestFiles.listDirectory("/") where entry != "newroot" {
                removeTree("/\(entry)", device: rootStat.st_dev)
            }
        }
        guard chdir(newRoot) == 0, pv_move_mount(".", "/") == 0, chroot(".") == 0, chdir("/") == 0 else {
            log("cannot switch to the tmpfs root: errno \(errno)")
            return
        }
    }

    /// Deletes a tree without crossing into other filesystems.
    private static func removeTree(_ path: String, device: dev_t) {
        var st = stat()
        guard lstat(path, &st) == 0, st.st_dev == device else { return }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            for entry in GuestFiles.listDirectory(path) { removeTree("\(path)/\(entry)", device: device) }
            rmdir(path)
        } else {
            unlink(path)
        }
    }

    static func mountBaseFilesystems() {
        let mounts: [(source: String, target: String, type: String, flags: UInt, data: String?)] = [
            ("sysfs", "/sys", "sysfs", pv_ms_nosuid() | pv_ms_nodev() | pv_ms_noexec(), nil),
            ("devtmpfs", "/dev", "devtmpfs", pv_ms_nosuid(), "mode=0755"),
            ("devpts", "/dev/pts", "devpts", pv_ms_nosuid() | pv_ms_noexec(), "newinstance,ptmxmode=0666,mode=0620"),
            ("shm", "/dev/shm", "tmpfs", pv_ms_nosuid() | pv_ms_nodev(), "mode=1777"),
            ("tmpfs", "/run", "tmpfs", pv_ms_nosuid() | pv_ms_nodev(), "mode=0755"),
            ("tmpfs", "/tmp", "tmpfs", pv_ms_nosuid() | pv_ms_nodev(), "mode=1777"),
            ("cgroup2", "/sys/fs/cgroup", "cgroup2", pv_ms_nosuid() | pv_ms_nodev() | pv_ms_noexec(), nil),
        ]
        for m in mounts {
            mkdir(m.target, 0o755)
            if pv_mount(m.source, m.target, m.type, m.flags, m.data) != 0 {
                log("mount \(m.type) on \(m.target) failed: errno \(errno)")
            }
        }
    }

    /// Free page reporting (virtio-balloon, `freePageReporting` in the domain) hands the host only free blocks
    /// of at least `page_reporting_order`, which the kernel sets to its pageblock order: 4 MiB here. The
    /// memory a boot touches and frees (the compressed kernel, init sections, the agent's first allocations)
    /// lies in smaller free blocks (14 MiB in 64 KiB–2 MiB blocks of an idle pod) and would stay the host's
    /// cost for the pod's life, and a container's freed memory as well. Order 5: blocks of 128 KiB and up, 4 MiB
    /// per report of 32. Order 0 (every page, 128 KiB per report) twice came with a VM that said ready and never
    /// answered the host's vsock CONNECT: in a full `make test`, and at pod 106 of `bench density`.
    static func reportSmallFreeBlocks() {
        let path = "/sys/module/page_reporting/parameters/page_reporting_order"
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        // No balloon driver built in (another kernel): nothing to report to.
        guard fd >= 0 else { return }
        defer { close(fd) }
        if write(fd, "5", 1) != 1 { log("cannot set \(path): errno \(errno)") }
    }

    /// The kernel may start init without stdio when the initramfs has no /dev/console node.
    static func attachConsole() {
        let fd = open("/dev/console", O_RDWR | O_NOCTTY)
        guard fd >= 0 else { return }
        for target in Int32(0)...2 where fd != target { dup2(fd, target) }
        if fd > 2 { close(fd) }
    }

    /// Mounts the VM's shared directory (virtio-fs tag `share`) when the host attached one.
    static func mountSharedDirectory(at path: String = "/run/podvisor/share") -> String? {
        mkdir("/run/podvisor", 0o755)
        mkdir(path, 0o755)
        guard pv_mount("share", path, "virtiofs", 0, nil) == 0 else { return nil }
        // Shared, so that containers' rslave/rshared volumes see mounts made below it later.
        if pv_make_shared(path) != 0 { log("cannot make \(path) shared: errno \(errno)") }
        return path
    }

    /// Loads the modules listed in /lib/modules/load-order (written by Images/build-image.sh with
    /// dependencies first). A module that is already present is not an error.
    static func loadModules(directory: String = "/lib/modules") -> (loaded: Int, failed: [String]) {
        guard let order = GuestFiles.read("\(directory)/load-order") else { return (0, []) }
        var loaded = 0
        var failed: [String] = []
        for name in order.split(separator: "\n").map(String.init) where !name.isEmpty {
            let fd = open("\(directory)/\(name)", O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else {
                failed.append("\(name) (open errno \(errno))")
                continue
            }
            if pv_finit_module(fd) == 0 || errno == EEXIST {
                loaded += 1
            } else {
                failed.append("\(name) (errno \(errno))")
            }
            close(fd)
        }
        return (loaded, failed)
    }
}

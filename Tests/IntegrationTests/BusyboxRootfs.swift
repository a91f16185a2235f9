import Foundation

/// A container root filesystem made from Debian's busybox-static: every applet as a symlink, a user `app`
/// (1000) that is also a member of group `extra` (2000), and `/bin/euid`, a static setuid-root program that
/// prints its effective uid (busybox's own applets drop setuid privileges, so they cannot show it).
enum BusyboxRootfs {
    /// Suites build it concurrently: one at a time, and the first one's is everybody's.
    private static let lock = NSLock()

    static func make(at path: String) throws -> String {
        lock.lock()
        defer { lock.unlock() }
        let fm = FileManager.default
        // The last file made: a rootfs from an earlier run with fewer probes is made again.
        if fm.fileExists(atPath: "\(path)/bin/vsockdial") { return path }
        // What a killed run left half made.
        try? fm.removeItem(atPath: path)
        let staging = path + ".tmp"
        try? fm.removeItem(atPath: staging)
        for dir in ["bin", "etc", "tmp", "proc", "sys", "dev", "root", "home/app"] {
            try fm.createDirectory(atPath: "\(staging)/\(dir)", withIntermediateDirectories: true)
        }
        chmod("\(staging)/tmp", 0o1777)
        try fm.copyItem(atPath: "/bin/busybox", toPath: "\(staging)/bin/busybox")
        let applets = try run("/bin/busybox", "--list").split(separator: "\n").map(String.init)
        for applet in applets where applet != "busybox" {
            try fm.createSymbolicLink(atPath: "\(staging)/bin/\(applet)", withDestinationPath: "busybox")
        }
        // Probes busybox has no applet for: the effective uid (set-uid below), a vsock dial of the agent.
        let probes = [
            "euid": "#include <stdio.h>\n#include <unistd.h>\nint main(void) { printf(\"%d\\n\", (int)geteuid()); return 0; }\n",
            // Dials the agent's vsock port from inside the guest (the loopback CID, then the guest's own):
            // "open" if something there kept the connection waiting for a request.
            "vsockdial": """
            #include <errno.h>
            #include <fcntl.h>
            #include <poll.h>
            #include <stdio.h>
            #include <string.h>
            #include <unistd.h>
            #include <sys/ioctl.h>
            #include <sys/socket.h>
            #include <linux/vm_sockets.h>
            int main(void) {
                unsigned int own = 0;
                int dev = open("/dev/vsock", O_RDONLY);
                if (dev >= 0) ioctl(dev, IOCTL_VM_SOCKETS_GET_LOCAL_CID, &own);
                unsigned int cids[] = {1, own};
                for (int i = 0; i < 2; i++) {
                    int fd = socket(AF_VSOCK, SOCK_STREAM, 0);
                    struct sockaddr_vm addr = {.svm_family = AF_VSOCK, .svm_cid = cids[i], .svm_port = 1024};
                    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
                        printf("refused: %s\\n", strerror(errno));
                        continue;
                    }
                    struct pollfd p = {.fd = fd, .events = POLLIN};
                    char byte;
                    printf("%s\\n", poll(&p, 1, 3000) == 0 ? "open" : read(fd, &byte, 1) <= 0 ? "closed" : "answered");
                }
                return 0;
            }
            """,
        ]
        for (name, program) in probes {
            let source = "\(staging)/\(name).c"
            try program.write(toFile: source, atomically: true, encoding: .utf8)
            try run("/usr/bin/env", "clang", "-static", "-O2", "-o", "\(staging)/bin/\(name)", source)
            try fm.removeItem(atPath: source)
        }
        chmod("\(staging)/bin/euid", 0o4755)
        try "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n"
            .write(toFile: "\(staging)/etc/passwd", atomically: true, encoding: .utf8)
        try "root:x:0:\napp:x:1000:\nextra:x:2000:app\n".write(toFile: "\(staging)/etc/group", atomically: true, encoding: .utf8)
        chown("\(staging)/home/app", 1000, 1000)
        try fm.moveItem(atPath: staging, toPath: path)
        return path
    }

    @discardableResult
    static func run(_ executable: String, _ arguments: String...) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw CocoaError(.executableLoad, userInfo: [NSLocalizedDescriptionKey: "\(executable) \(arguments) failed"])
        }
        return String(decoding: output, as: UTF8.self)
    }
}

import Foundation
import PodvisorAgentClient
import PodvisorAgentProtocol
import PodvisorCore
import PodvisorRuntime
import PodvisorVMM
import Testing
import TestSupport

/// Boots one pod VM around a whole suite (a sandbox reused across cases) and destroys it afterwards.
struct SharedPodVM: SuiteTrait, TestScoping {
    @TaskLocal static var current: PodVM?

    func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        let pod = try await TestHost.host().boot(id: TestHost.uniqueID("c"), transport: .hybridVsock)
        defer { try? pod.destroy() }
        try await Self.$current.withValue(pod) { try await function() }
    }
}

/// Containers inside one real pod VM: one boot for the whole suite.
@Suite(.serialized, SharedPodVM()) struct ContainerTests {
    let pod: PodVM
    let rootfs: String

    init() throws {
        rootfs = try BusyboxRootfs.make(at: "/tmp/podvisor-test/busybox-rootfs")
        pod = try #require(SharedPodVM.current)
        #expect(pod.version.sharedDirectory == "/run/podvisor/share")
    }

    struct Outcome {
        var stdout: String
        var stderr: String
        var exitCode: Int32
        var oomKilled: Bool
    }

    typealias Configure = (inout Podvisor_Agent_V1_CreateContainerRequest) -> Void

    /// Places the rootfs, then creates and starts the container (its own PID namespace, PATH=/bin).
    /// The caller unmounts it (`pod.unmountContainer`) when done.
    func start(_ args: [String], id: String, configure: Configure = { _ in }) async throws {
        let relative = try pod.mountRootfs(containerID: id, from: rootfs)
        var request = Podvisor_Agent_V1_CreateContainerRequest.with {
            $0.containerID = id
            $0.rootfs = relative
            $0.ownPidNamespace = true
            $0.process.args = args
            $0.process.env = ["PATH=/bin"]
        }
        configure(&request)
        try await pod.agent.createContainer(request)
        try await pod.agent.startContainer(id)
    }

    /// Creates, starts and waits for a container, collecting its output; removes it afterwards.
    func run(_ args: [String], id: String = TestHost.uniqueID("ctr"), configure: Configure = { _ in }) async throws -> Outcome {
        let agent = pod.agent
        defer { try? pod.unmountContainer(containerID: id) }
        try await start(args, id: id, configure: configure)
        let ref = AgentClient.process(id)
        async let out = agent.readAllOutput(ref)
        async let err = agent.readAllOutput(ref, stderr: true)
        let exit = try await agent.wait(ref)
        let outcome = Outcome(
            stdout: String(decoding: try await out, as: UTF8.self), stderr: String(decoding: try await err, as: UTF8.self),
            exitCode: exit.exitCode, oomKilled: exit.oomKilled)
        try await agent.removeContainer(id)
        return outcome
    }

    @Test func outputAndExitCode() async throws {
        let outcome = try await run(["sh", "-c", "echo hello; echo oops >&2; exit 3"])
        #expect(outcome.stdout == "hello\n")
        #expect(outcome.stderr == "oops\n")
        #expect(outcome.exitCode == 3)
    }

    @Test func environmentWorkingDirectoryUserGroupsAndHostname() async throws {
        let outcome = try await run(["sh", "-c", "echo $GREETING; pwd; id -u; id -g; id -G; hostname"]) {
            $0.process.env.append("GREETING=hi there")
            $0.process.cwd = "/home/app"
            $0.process.username = "app"
            $0.hostname = "pod-a"
        }
        #expect(outcome.stdout == "hi there\n/home/app\n1000\n1000\n1000 2000\npod-a\n")
        #expect(outcome.exitCode == 0)
    }

    @Test func ownPIDNamespaceAndContainerMounts() async throws {
        let outcome = try await run([
            "sh", "-c", "echo $$; ls /proc/1/exe >/dev/null && ls -d /dev/pts /dev/shm; cat /proc/mounts | grep -c ' /sys sysfs ro'",
        ])
        #expect(outcome.stdout == "1\n/dev/pts\n/dev/shm\n1\n", "stderr: \(outcome.stderr)")
    }

    @Test func readOnlyRootfsRefusesWrites() async throws {
        let outcome = try await run(["sh", "-c", "touch /newfile"]) { $0.readonlyRootfs = true }
        #expect(outcome.exitCode != 0)
        #expect(outcome.stderr.contains("Read-only file system"))
    }

    @Test func noNewPrivilegesDefeatsSetuid() async throws {
        let escalate = ["/bin/euid"]
        let allowed = try await run(escalate) { $0.process.username = "app" }
        #expect(allowed.stdout == "0\n", "setuid should work without no_new_privs: \(allowed.stderr)")
        let refused = try await run(escalate) {
            $0.process.username = "app"
            $0.process.noNewPrivileges = true
        }
        #expect(refused.stdout == "1000\n")
    }

    @Test func capabilitiesDroppedAndAdded() async throws {
        // Root without CAP_SYS_ADMIN cannot rename its UTS namespace; with it, it can.
        let withoutAdmin = try await run(["hostname", "renamed"]) {
            $0.process.capabilities.names = ["CAP_CHOWN", "CAP_SETUID", "CAP_SETGID"]
        }
        #expect(withoutAdmin.exitCode != 0)
        let withAdmin = try await run(["sh", "-c", "hostname renamed && hostname"]) {
            $0.process.capabilities.names = ["CAP_SYS_ADMIN"]
        }
        #expect(withAdmin.stdout == "renamed\n")
        // An unprivileged user gets exactly the capability it is given (ambient), here NET_ADMIN.
        let probe = ["sh", "-c", "grep CapEff /proc/self/status; ip link set lo mtu 65536"]
        let user = try await run(probe) {
            $0.process.username = "app"; $0.process.capabilities.names = []
        }
        #expect(user.stdout == "CapEff:\t0000000000000000\n")
        #expect(user.exitCode != 0, "NET_ADMIN was not given")
        let admin = try await run(probe) {
            $0.process.username = "app"; $0.process.capabilities.names = ["NET_ADMIN"]
        }
        #expect(admin.stdout == "CapEff:\t0000000000001000\n")
        #expect(admin.exitCode == 0, "stderr: \(admin.stderr)")
    }

    @Test func maskedAndReadOnlyPathsAndSysctls() async throws {
        let outcome = try await run(["sh", "-c", "cat /etc/passwd; ls /home; touch /tmp/x || echo ro; cat /proc/sys/kernel/shmmax"]) {
            $0.maskedPaths = ["/etc/passwd", "/home", "/no/such/path"]
            $0.readonlyPaths = ["/tmp"]
            $0.sysctls = ["kernel.shmmax": "123456"]
        }
        #expect(outcome.stdout == "ro\n123456\n", "stderr: \(outcome.stderr)")
        // The sysctl belonged to that container's IPC namespace only.
        let other = try await run(["cat", "/proc/sys/kernel/shmmax"])
        #expect(other.stdout != "123456\n")
    }

    @Test func memoryLimitEndsInOOMKilled() async throws {
        let hog = ["sh", "-c", "x=$(head -c 40000000 /dev/zero | tr '\\0' a); echo survived"]
        let limited = try await run(hog) { $0.resources.memoryLimitBytes = 16 << 20 }
        #expect(limited.exitCode == 137)
        #expect(limited.oomKilled)
        #expect(!limited.stdout.contains("survived"))
    }

    @Test func statsAndResourceUpdates() async throws {
        let agent = pod.agent
        let id = TestHost.uniqueID("stats")
        defer { try? pod.unmountContainer(containerID: id) }
        try await start(["sh", "-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; sleep 60"], id: id)
        try await Task.sleep(for: .milliseconds(500))
        let stats = try await agent.containerStats(id)
        #expect(stats.pids >= 1)
        #expect(stats.memoryUsageBytes > 0 && stats.memoryWorkingSetBytes <= stats.memoryUsageBytes)
        #expect(stats.cpuUsageNs > 0)
        // pids.max at what runs, plus the exec's own shell (joining a cgroup is not limited, forking in it is):
        // the shell cannot fork (the last command it would exec in place); with the limit lifted it can.
        try await agent.updateResources(id, .with { $0.pidsLimit = Int64(stats.pids) + 1 })
        try await agent.exec(
            id, execID: "limited",
            .with {
                $0.args = ["sh", "-c", "/bin/true; /bin/true"]; $0.env = ["PATH=/bin"]
            })
        #expect(try await agent.wait(AgentClient.process(id, exec: "limited")).exitCode != 0)
        try await agent.updateResources(id, .with { $0.pidsLimit = 0 })
        try await agent.exec(
            id, execID: "again",
            .with {
                $0.args = ["sh", "-c", "/bin/true; /bin/true"]; $0.env = ["PATH=/bin"]
            })
        #expect(try await agent.wait(AgentClient.process(id, exec: "again")).exitCode == 0)
        await #expect { try await agent.containerStats("no-such") } throws: { ($0 as? PodvisorError)?.code == .notFound }
        try await agent.removeContainer(id)
    }

    /// The three virtio-fs properties: volumes mounted after boot reach the guest, guest writes land in the
    /// volume's host directory, and a read-only volume stays read-only even to a guest that remounts it.
    /// Propagation: rshared volumes are shared; rslave ones are not (nothing flows back out of the container).
    /// Host mounts below a volume reach the guest as virtio-fs submounts whatever the guest-side flags.
    @Test func volumesAfterBootReadWriteReadOnlyAndPropagation() async throws {
        let base = "/tmp/podvisor-test/volumes-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: base) }
        let fm = FileManager.default
        try fm.createDirectory(atPath: "\(base)/rw", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: "\(base)/ro", withIntermediateDirectories: true)
        try "from host\n".write(toFile: "\(base)/rw/hello.txt", atomically: true, encoding: .utf8)
        try "read only\n".write(toFile: "\(base)/ro/ro.txt", atomically: true, encoding: .utf8)
        // A mount inside the read-only volume must be read-only too (recursive read-only).
        try fm.createDirectory(atPath: "\(base)/ro/sub", withIntermediateDirectories: true)
        try BusyboxRootfs.run("/bin/mount", "-t", "tmpfs", "tmpfs", "\(base)/ro/sub")
        defer { _ = try? BusyboxRootfs.run("/bin/umount", "-l", "\(base)/ro/sub") }
        let id = TestHost.uniqueID("vol")
        let rw = try pod.mountVolume(containerID: id, name: "rw", from: "\(base)/rw", readonly: false)
        let ro = try pod.mountVolume(containerID: id, name: "ro", from: "\(base)/ro", readonly: true)
        // CRI's plain readonly: the volume's own mount only; the tmpfs inside stays writable.
        let top = try pod.mountVolume(containerID: id, name: "top", from: "\(base)/ro", readonly: true, recursive: false)
        let script = """
            cat /data/hello.txt /config/ro.txt; echo guest > /data/new.txt
            touch /config/x 2>/dev/null && echo ro-writable || echo ro-refused
            touch /config/sub/x 2>/dev/null && echo sub-writable || echo sub-refused
            mount -o remount,rw /config 2>/dev/null; touch /config/y 2>/dev/null && echo remount-writable || echo remount-refused
            touch /top/x 2>/dev/null && echo top-writable || echo top-refused
            touch /top/sub/x 2>/dev/null && echo topsub-writable || echo topsub-refused
            grep -q ' /shared .*shared:' /proc/self/mountinfo && echo rshared
            grep ' /slave ' /proc/self/mountinfo | grep -vq 'shared:' && echo rslave
            """
        let outcome = try await run(["sh", "-c", script], id: id) {
            $0.mounts = [
                .with {
                    $0.source = rw; $0.destination = "/data"
                },
                .with {
                    $0.source = ro; $0.destination = "/config"; $0.readonly = true; $0.recursiveReadonly = true
                },
                .with {
                    $0.source = top; $0.destination = "/top"; $0.readonly = true; $0.submounts = ["sub"]
                },
                .with {
                    $0.source = rw; $0.destination = "/shared"; $0.propagation = .rshared
                },
                .with {
                    $0.source = rw; $0.destination = "/slave"; $0.propagation = .rslave
                },
            ]
        }
        #expect(
            outcome.stdout == "from host\nread only\nro-refused\nsub-refused\nremount-refused\ntop-refused\ntopsub-writable\nrshared\nrslave\n",
            "stderr: \(outcome.stderr)")
        #expect((try? String(contentsOfFile: "\(base)/rw/new.txt", encoding: .utf8)) == "guest\n")
        #expect(try fm.contentsOfDirectory(atPath: "\(base)/ro").sorted() == ["ro.txt", "sub"])
        #expect(try fm.contentsOfDirectory(atPath: "\(base)/ro/sub") == ["x"])
        try pod.unmountContainer(containerID: id)
        #expect(mountPoints(under: pod.vm.configuration.runDirectory + "/share/" + id).isEmpty)
    }

    /// A pod's rootfs and volumes live in its VM's mount namespace: the host sees none of them, and a mount
    /// below a volume's source can be undone and removed on the host while the pod uses the volume (what
    /// critest's read-only mount specs do when they clean up).
    @Test func theHostNeverSeesAPodsMounts() throws {
        let base = "/tmp/podvisor-test/hidden-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: "\(base)/volume/sub", withIntermediateDirectories: true)
        try BusyboxRootfs.run("/bin/mount", "-t", "tmpfs", "tmpfs", "\(base)/volume/sub")
        let id = TestHost.uniqueID("hid")
        defer {
            try? pod.unmountContainer(containerID: id)
            _ = try? BusyboxRootfs.run("/bin/umount", "-l", "\(base)/volume/sub")
            try? FileManager.default.removeItem(atPath: base)
        }
        _ = try pod.mountRootfs(containerID: id, from: rootfs)
        _ = try pod.mountVolume(containerID: id, name: "v", from: "\(base)/volume", readonly: true)
        #expect(mountPoints(under: "\(pod.vm.configuration.runDirectory)/share").isEmpty)
        try BusyboxRootfs.run("/bin/umount", "\(base)/volume/sub")
        #expect(rmdir("\(base)/volume/sub") == 0, "errno \(errno)")
    }

    @Test func privilegedSeesTheGuestsDevicesOnly() async throws {
        let probe = ["sh", "-c", "ls /dev/kmsg 2>/dev/null || echo no-kmsg; grep -q ' /sys sysfs rw' /proc/mounts && echo sys-rw || echo sys-ro"]
        #expect(try await run(probe).stdout == "no-kmsg\nsys-ro\n")
        #expect(try await run(probe) { $0.privileged = true }.stdout == "/dev/kmsg\nsys-rw\n")
    }

    @Test func rlimitsApply() async throws {
        let outcome = try await run(["sh", "-c", "ulimit -n; ulimit -Hn"]) {
            $0.process.rlimits = [
                .with {
                    $0.type = "RLIMIT_NOFILE"; $0.soft = 123; $0.hard = 456
                }
            ]
        }
        #expect(outcome.stdout == "123\n456\n")
    }

    @Test func execIntoRunningContainerThenStopWithSignal() async throws {
        let agent = pod.agent
        let id = TestHost.uniqueID("svc")
        defer { try? pod.unmountContainer(containerID: id) }
        try await start(["sh", "-c", "trap 'exit 42' TERM; while true; do sleep 0.1; done"], id: id) { $0.hostname = "svc" }
        try await agent.exec(
            id, execID: "probe",
            .with {
                $0.args = ["sh", "-c", "hostname; cat /proc/1/cmdline | tr '\\0' ' '"]
                $0.env = ["PATH=/bin"]
            })
        let probe = AgentClient.process(id, exec: "probe")
        let output = String(decoding: try await agent.readAllOutput(probe), as: UTF8.self)
        #expect(output.hasPrefix("svc\nsh -c trap"))
        #expect(try await agent.wait(probe).exitCode == 0)
        // A finished exec is forgotten on request (kubelet's exec probes must not pile up in the guest).
        try await agent.releaseProcess(probe)
        await #expect(throws: PodvisorError.self) { try await agent.wait(probe) }
        try await agent.releaseProcess(probe)
        try await agent.exec(
            id, execID: "busy",
            .with {
                $0.args = ["sleep", "30"]; $0.env = ["PATH=/bin"]
            })
        let busy = AgentClient.process(id, exec: "busy")
        let running = await #expect(throws: PodvisorError.self) { try await agent.releaseProcess(busy) }
        #expect(running?.code == .failedPrecondition)
        let main = await #expect(throws: PodvisorError.self) { try await agent.releaseProcess(AgentClient.process(id)) }
        #expect(main?.code == .invalidArgument)

        try await agent.signal(AgentClient.process(id), SIGTERM)
        #expect(try await agent.wait(AgentClient.process(id)).exitCode == 42)
        try await agent.removeContainer(id)
    }

    @Test func stopSendsTermThenKillAfterGrace() async throws {
        let agent = pod.agent
        for (script, expected) in [
            ("trap 'exit 7' TERM; echo armed; while true; do sleep 0.1; done", Int32(7)),
            ("trap '' TERM; echo armed; while true; do sleep 0.1; done", Int32(137)),
        ] {
            let id = TestHost.uniqueID("stop")
            defer { try? pod.unmountContainer(containerID: id) }
            try await start(["sh", "-c", script], id: id)
            // Stopped once the shell says its trap is set, not after a fixed wait: a loaded TCG guest took
            // longer than 300 ms once, and the TERM found the shell (its PID namespace's init) without a handler.
            let armed = try await agent.readOutput(AgentClient.process(id))
            #expect(String(decoding: armed.data, as: UTF8.self).contains("armed"))
            let clock = ContinuousClock()
            let started = clock.now
            let exit = try await agent.stop(AgentClient.process(id), grace: .seconds(1))
            #expect(exit.exitCode == expected)
            // Exit 7 proves TERM was handled; when TERM is ignored, KILL comes only after the grace period.
            if expected == 137 { #expect(started.duration(to: clock.now) >= .seconds(1)) }
            try await agent.removeContainer(id)
        }
    }

    /// Free page reporting gives the host back what the guest frees, in blocks of 128 KiB and up (the agent
    /// sets order 5; with the kernel's own, 4 MiB, this waited in vain): 60 MiB written to a tmpfs reach
    /// QEMU's guest RAM and leave it again within seconds of the file's removal.
    @Test func memoryTheGuestFreesGoesBackToTheHost() async throws {
        #expect(try await run(["cat", "/sys/module/page_reporting/parameters/page_reporting_order"]).stdout == "5\n")
        let qemu = try #require(pod.vm.processIDs.first)
        let before = Self.guestRAMResidentMiB(qemu)
        let agent = pod.agent
        let id = TestHost.uniqueID("fill")
        defer { try? pod.unmountContainer(containerID: id) }
        try await start(["sh", "-c", "dd if=/dev/zero of=/dev/shm/fill bs=1M count=60 2>/dev/null; exec sleep 600"], id: id)
        try await Self.waitFor("60 MiB written in the guest to reach QEMU (from \(before) MiB)") {
            Self.guestRAMResidentMiB(qemu) >= before + 48
        }
        try await agent.exec(
            id, execID: "rm",
            .with {
                $0.args = ["rm", "/dev/shm/fill"]; $0.env = ["PATH=/bin"]
            })
        #expect(try await agent.wait(AgentClient.process(id, exec: "rm")).exitCode == 0)
        try await Self.waitFor("the freed 60 MiB to leave QEMU (from \(before) MiB)") {
            Self.guestRAMResidentMiB(qemu) <= before + 12
        }
        _ = try await agent.stop(AgentClient.process(id), grace: .zero)
        try await agent.removeContainer(id)
    }

    /// Resident guest RAM: QEMU's memfd mapping (memory-backend-memfd), in MiB.
    static func guestRAMResidentMiB(_ qemu: pid_t) -> Int {
        HostTraces.mapped(qemu, "memfd:memory-backend").resident / 1024
    }

    static func waitFor(_ what: String, seconds: Int = 60, _ done: () throws -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while try !done() {
            guard ContinuousClock.now < deadline else { throw TestError("waited \(seconds) s for \(what)") }
            try await Task.sleep(for: .milliseconds(200))
        }
    }

    @Test func stdinIsWrittenAndClosed() async throws {
        let agent = pod.agent
        let id = TestHost.uniqueID("cat")
        defer { try? pod.unmountContainer(containerID: id) }
        try await start(["cat"], id: id) { $0.process.stdin = true }
        let ref = AgentClient.process(id)
        try await agent.writeStdin(ref, Data("abc\n".utf8))
        try await agent.closeStdin(ref)
        #expect(String(decoding: try await agent.readAllOutput(ref), as: UTF8.self) == "abc\n")
        #expect(try await agent.wait(ref).exitCode == 0)
        try await agent.removeContainer(id)
    }

    @Test func terminalSessionWithResizeAndInput() async throws {
        let agent = pod.agent
        let id = TestHost.uniqueID("tty")
        defer { try? pod.unmountContainer(containerID: id) }
        try await start(["sh", "-c", "read line; [ -t 0 ] && tty; stty size; echo got $line"], id: id) {
            $0.process.terminal = true
            $0.process.stdin = true
        }
        let ref = AgentClient.process(id)
        try await agent.resizeTTY(ref, rows: 33, columns: 101)
        try await agent.writeStdin(ref, Data("hello\n".utf8))
        let output = String(decoding: try await agent.readAllOutput(ref), as: UTF8.self)
        // The terminal echoes the input and turns \n into \r\n; it lives in the container's own /dev/pts.
        #expect(output == "hello\r\n/dev/pts/0\r\n33 101\r\ngot hello\r\n")
        #expect(try await agent.readAllOutput(ref, stderr: true).isEmpty)
        #expect(try await agent.wait(ref).exitCode == 0)
        try await agent.removeContainer(id)
    }

    @Test func badSpecsGetClearErrorsAndTheSandboxLivesOn() async throws {
        let agent = pod.agent
        // A container running all along: no bad request may disturb it.
        let bystander = TestHost.uniqueID("bystander")
        defer { try? pod.unmountContainer(containerID: bystander) }
        try await start(["sleep", "600"], id: bystander)
        let id = TestHost.uniqueID("bad")
        let relative = try pod.mountRootfs(containerID: id, from: rootfs)
        defer { try? pod.unmountContainer(containerID: id) }
        func create(_ configure: (inout Podvisor_Agent_V1_CreateContainerRequest) -> Void) async throws(PodvisorError) {
            var request = Podvisor_Agent_V1_CreateContainerRequest.with {
                $0.containerID = id
                $0.rootfs = relative
                $0.process.args = ["true"]
                $0.process.env = ["PATH=/bin"]
            }
            configure(&request)
            try await agent.createContainer(request)
        }
        await #expect { try await create { $0.process.username = "nobody-here" } } throws: {
            ($0 as? PodvisorError)?.code == .invalidArgument && "\($0)".contains("nobody-here")
        }
        await #expect { try await create { $0.rootfs = "../etc" } } throws: { ($0 as? PodvisorError)?.code == .invalidArgument }
        await #expect { try await create { $0.containerID = "a/b" } } throws: { ($0 as? PodvisorError)?.code == .invalidArgument }
        await #expect { try await create { $0.process.args = [] } } throws: { ($0 as? PodvisorError)?.code == .invalidArgument }
        await #expect { try await create { $0.sysctls = ["kernel.panic": "1"] } } throws: {
            ($0 as? PodvisorError)?.code == .invalidArgument && "\($0)".contains("kernel.panic")
        }
        await #expect { try await create { $0.maskedPaths = ["relative"] } } throws: { ($0 as? PodvisorError)?.code == .invalidArgument }
        await #expect { try await create { $0.process.capabilities.names = ["CAP_FLY"] } } throws: {
            ($0 as? PodvisorError)?.code == .invalidArgument && "\($0)".contains("CAP_FLY")
        }
        await #expect {
            try await create {
                $0.process.rlimits = [
                    .with {
                        $0.type = "RLIMIT_NOFILE"; $0.soft = 2; $0.hard = 1
                    }
                ]
            }
        } throws: {
            ($0 as? PodvisorError)?.code == .invalidArgument
        }
        // A missing binary is found at start, and the container can then be removed and re-created.
        try await create { $0.process.args = ["no-such-binary"] }
        await #expect { try await agent.startContainer(id) } throws: { "\($0)".contains("no-such-binary") }
        try await agent.removeContainer(id)
        await #expect { try await agent.removeContainer(id) } throws: { ($0 as? PodvisorError)?.code == .notFound }
        try await create { _ in }
        try await agent.startContainer(id)
        #expect(try await agent.wait(AgentClient.process(id)).exitCode == 0)
        try await agent.removeContainer(id)
        #expect(try await agent.health().status == .serving)
        try await agent.exec(
            bystander, execID: "alive",
            .with {
                $0.args = ["true"]; $0.env = ["PATH=/bin"]
            })
        #expect(try await agent.wait(AgentClient.process(bystander, exec: "alive")).exitCode == 0)
        try await agent.removeContainer(bystander)
    }
}

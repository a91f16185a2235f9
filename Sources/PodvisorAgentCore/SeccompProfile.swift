#if canImport(Glibc)
import Glibc
#endif
import CCap
import CSeccomp
// JSONDecoder: FoundationEssentials is linked into the agent already (SwiftProtobuf uses it).
import FoundationEssentials
import PodvisorAgentProtocol
import Synchronization

/// A seccomp profile in the OCI runtime-spec shape (`LinuxSeccomp`), compiled with libseccomp into the BPF
/// program that CContainerSpawn loads just before exec. Compiled in the agent before clone, so a bad profile
/// is refused with a clear error and nothing is created.
struct SeccompProfile: Decodable {
    struct Syscall: Decodable {
        var names: [String]
        var action: String
        var errnoRet: UInt32?
        var args: [Argument]?
    }

    struct Argument: Decodable {
        var index: UInt32
        var value: UInt64
        var valueTwo: UInt64?
        var op: String
    }

    var defaultAction: String
    var defaultErrnoRet: UInt32?
    var architectures: [String]?
    var syscalls: [Syscall]?

    /// What a program was compiled from: RuntimeDefault depends on the capabilities, Localhost on its JSON.
    struct CacheKey: Hashable {
        var runtimeDefault: Bool
        var json: String
        var capabilities: UInt64?
    }

    /// Programs compiled already. libseccomp takes ~12 ms to compile RuntimeDefault on the host, several times
    /// that under TCG, and every create and exec needs a program, while a pod uses a handful of profiles.
    /// Emptied when full: distinct Localhost profiles cannot make it grow without bound.
    static let compiled = Mutex<[CacheKey: [UInt8]]>([:])
    static let cacheLimit = 16

    /// The BPF program (`struct sock_filter[]`) for a process; empty when it runs unconfined.
    /// `capabilities` is the process's capability mask, nil for all of them.
    static func program(for spec: Podvisor_Agent_V1_Seccomp, capabilities: UInt64?) throws(RPCError) -> [UInt8] {
        let key: CacheKey
        switch spec.kind {
        case .unconfined: return []
        case .runtimeDefault: key = CacheKey(runtimeDefault: true, json: "", capabilities: capabilities)
        case .localhost: key = CacheKey(runtimeDefault: false, json: spec.localhostProfileJson, capabilities: nil)
        case .UNRECOGNIZED(let kind): throw RPCError(.invalidArgument, "unknown seccomp profile kind \(kind)")
        }
        if let program = compiled.withLock({ $0[key] }) { return program }
        let profile: SeccompProfile
        if key.runtimeDefault {
            profile = runtimeDefault(capabilities: capabilities)
        } else {
            do { profile = try JSONDecoder().decode(SeccompProfile.self, from: Data(key.json.utf8)) } catch {
                throw RPCError(.invalidArgument, "malformed seccomp profile: \(error)")
            }
        }
        let program = try profile.compile()
        compiled.withLock {
            if $0.count >= cacheLimit { $0.removeAll() }
            $0[key] = program
        }
        return program
    }

    // MARK: RuntimeDefault

    /// containerd's default profile (contrib/seccomp/seccomp_default.go) for x86_64, as our own table: deny with
    /// EPERM, allow this list, and allow more where the process holds the capability that guards it.
    static func runtimeDefault(capabilities: UInt64?) -> SeccompProfile {
        func holds(_ capability: Int32) -> Bool { capabilities.map { $0 & (1 << UInt64(capability)) != 0 } ?? true }
        func allow(_ names: [String], _ args: [Argument]? = nil) -> Syscall {
            Syscall(names: names, action: "SCMP_ACT_ALLOW", args: args)
        }
        func argument0(_ op: String, _ value: UInt64, _ valueTwo: UInt64? = nil) -> [Argument] {
            [Argument(index: 0, value: value, valueTwo: valueTwo, op: op)]
        }
        // process_vm_* and ptrace: allowed on kernels from 4.8 (the guest's is newer); arch_prctl, modify_ldt: x86_64's.
        var syscalls = [allow(allowed + ["process_vm_readv", "process_vm_writev", "ptrace", "arch_prctl", "modify_ldt"])]
        // socket(): every family but AF_ALG (38) and AF_VSOCK (40), as three single conditions (one rule with
        // two "not equal" conditions on one argument would become two ORed rules, allowing both).
        syscalls += [argument0("SCMP_CMP_LT", 38), argument0("SCMP_CMP_EQ", 39), argument0("SCMP_CMP_GT", 40)]
            .map { allow(["socket"], $0) }
        // personality(): PER_LINUX, PER_LINUX32, UNAME26, PER_LINUX32|UNAME26, and the query 0xffffffff.
        syscalls += [0, 0x8, 0x20000, 0x20008, 0xffff_ffff].map { allow(["personality"], argument0("SCMP_CMP_EQ", $0)) }
        syscalls += guarded.filter { holds($0.capability) }.map { allow($0.names) }
        if !holds(CAP_SYS_ADMIN) {
            // clone() without namespace flags; clone3 (flags out of reach in memory) answers ENOSYS so libcs fall back.
            let namespaces = UInt64(
                CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWCGROUP)
            syscalls.append(allow(["clone"], argument0("SCMP_CMP_MASKED_EQ", namespaces, 0)))
            syscalls.append(Syscall(names: ["clone3"], action: "SCMP_ACT_ERRNO", errnoRet: UInt32(ENOSYS)))
        }
        return SeccompProfile(
            defaultAction: "SCMP_ACT_ERRNO", architectures: ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            syscalls: syscalls)
    }

    private static let guarded: [(capability: Int32, names: [String])] = [
        (CAP_DAC_READ_SEARCH, ["open_by_handle_at"]),
        (
            CAP_SYS_ADMIN,
            [
                "bpf", "clone", "clone3", "fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick", "lookup_dcookie",
                "mount", "mount_setattr", "move_mount", "open_tree", "perf_event_open", "quotactl", "quotactl_fd",
                "setdomainname", "sethostname", "setns", "syslog", "umount", "umount2", "unshare",
            ]
        ),
        (CAP_SYS_BOOT, ["reboot"]),
        (CAP_SYS_CHROOT, ["chroot"]),
        (CAP_SYS_MODULE, ["delete_module", "init_module", "finit_module"]),
        (CAP_SYS_PACCT, ["acct"]),
        (CAP_SYS_PTRACE, ["kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev", "ptrace"]),
        (CAP_SYS_RAWIO, ["iopl", "ioperm"]),
        (CAP_SYS_TIME, ["settimeofday", "stime", "clock_settime", "clock_settime64"]),
        (CAP_SYS_TTY_CONFIG, ["vhangup"]),
        (CAP_SYS_NICE, ["get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"]),
        (CAP_SYSLOG, ["syslog"]),
        (CAP_BPF, ["bpf"]),
        (CAP_PERFMON, ["perf_event_open"]),
    ]

    private static let allowed = """
        accept accept4 access adjtimex alarm bind brk cachestat capget capset chdir chmod chown chown32 clock_adjtime
        clock_adjtime64 clock_getres clock_getres_time64 clock_gettime clock_gettime64 clock_nanosleep
        clock_nanosleep_time64 close close_range connect copy_file_range creat dup dup2 dup3 epoll_create epoll_create1
        epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old eventfd eventfd2 execve execveat exit
        exit_group faccessat faccessat2 fadvise64 fadvise64_64 fallocate fanotify_mark fchdir fchmod fchmodat fchmodat2
        fchown fchown32 fchownat fcntl fcntl64 fdatasync fgetxattr flistxattr flock fork fremovexattr fsetxattr fstat
        fstat64 fstatat64 fstatfs fstatfs64 fsync ftruncate ftruncate64 futex futex_requeue futex_time64 futex_wait
        futex_waitv futex_wake futimesat getcpu getcwd getdents getdents64 getegid getegid32 geteuid geteuid32 getgid
        getgid32 getgroups getgroups32 getitimer getpeername getpgid getpgrp getpid getppid getpriority getrandom
        getresgid getresgid32 getresuid getresuid32 getrlimit get_robust_list getrusage getsid getsockname getsockopt
        get_thread_area gettid gettimeofday getuid getuid32 getxattr getxattrat inotify_add_watch inotify_init
        inotify_init1 inotify_rm_watch io_cancel ioctl io_destroy io_getevents io_pgetevents io_pgetevents_time64
        ioprio_get ioprio_set io_setup io_submit ipc kill landlock_add_rule landlock_create_ruleset
        landlock_restrict_self lchown lchown32 lgetxattr link linkat listen listmount listxattr listxattrat llistxattr
        _llseek lremovexattr lseek lsetxattr lsm_get_self_attr lsm_list_modules lsm_set_self_attr lstat lstat64 madvise
        membarrier memfd_create memfd_secret mincore mkdir mkdirat mknod mknodat mlock mlock2 mlockall map_shadow_stack
        mmap mmap2 mprotect mq_getsetattr mq_notify mq_open mq_timedreceive mq_timedreceive_time64 mq_timedsend
        mq_timedsend_time64 mq_unlink mremap mseal msgctl msgget msgrcv msgsnd msync munlock munlockall munmap
        name_to_handle_at nanosleep newfstatat _newselect open openat openat2 pause pidfd_open pidfd_send_signal pipe
        pipe2 pkey_alloc pkey_free pkey_mprotect poll ppoll ppoll_time64 prctl pread64 preadv preadv2 prlimit64
        process_mrelease pselect6 pselect6_time64 pwrite64 pwritev pwritev2 read readahead readlink readlinkat readv
        recv recvfrom recvmmsg recvmmsg_time64 recvmsg remap_file_pages removexattr removexattrat rename renameat
        renameat2 restart_syscall rmdir rseq rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn
        rt_sigsuspend rt_sigtimedwait rt_sigtimedwait_time64 rt_tgsigqueueinfo sched_getaffinity sched_getattr
        sched_getparam sched_get_priority_max sched_get_priority_min sched_getscheduler sched_rr_get_interval
        sched_rr_get_interval_time64 sched_setaffinity sched_setattr sched_setparam sched_setscheduler sched_yield
        seccomp select semctl semget semop semtimedop semtimedop_time64 send sendfile sendfile64 sendmmsg sendmsg
        sendto setfsgid setfsgid32 setfsuid setfsuid32 setgid setgid32 setgroups setgroups32 setitimer setpgid
        setpriority setregid setregid32 setresgid setresgid32 setresuid setresuid32 setreuid setreuid32 setrlimit
        set_robust_list setsid setsockopt set_thread_area set_tid_address setuid setuid32 setxattr setxattrat shmat
        shmctl shmdt shmget shutdown sigaltstack signalfd signalfd4 sigprocmask sigreturn socketcall socketpair splice
        stat stat64 statfs statfs64 statmount statx symlink symlinkat sync sync_file_range syncfs sysinfo tee tgkill
        time timer_create timer_delete timer_getoverrun timer_gettime timer_gettime64 timer_settime timer_settime64
        timerfd_create timerfd_gettime timerfd_gettime64 timerfd_settime timerfd_settime64 times tkill truncate
        truncate64 ugetrlimit umask uname unlink unlinkat uretprobe utime utimensat utimensat_time64 utimes vfork
        vmsplice wait4 waitid waitpid write writev
        """.split(whereSeparator: \.isWhitespace).map(String.init)

    // MARK: compiling

    /// The BPF program libseccomp makes of the profile. Syscall names this libseccomp does not know are
    /// skipped, as runc does; unknown actions, operators and architectures are errors.
    func compile() throws(RPCError) -> [UInt8] {
        let fallback = try Self.action(defaultAction, errno: defaultErrnoRet)
        guard let context = seccomp_init(fallback) else { throw RPCError(.internal, "seccomp_init failed") }
        defer { seccomp_release(context) }
        for name in architectures ?? [] {
            let bare = name.hasPrefix("SCMP_ARCH_") ? String(name.dropFirst(10)) : name
            let arch = seccomp_arch_resolve_name(bare.lowercased())
            guard arch != 0 else { throw RPCError(.invalidArgument, "unknown seccomp architecture \(name)") }
            let rc = seccomp_arch_add(context, arch)
            guard rc == 0 || rc == -EEXIST else { throw RPCError(.internal, "seccomp_arch_add \(name): \(Self.describe(rc))") }
        }
        for syscall in syscalls ?? [] {
            let action = try Self.action(syscall.action, errno: syscall.errnoRet)
            let conditions = try (syscall.args ?? []).map(Self.condition)
            // libseccomp refuses a rule that repeats the default action; it would change nothing anyway.
            guard action != fallback else { continue }
            // Several conditions on one argument: each its own rule (ORed), as runc does; libseccomp refuses them in one.
            let indexes = conditions.map(\.arg)
            let rules = Set(indexes).count == indexes.count ? [conditions] : conditions.map { [$0] }
            for name in syscall.names {
                let number = seccomp_syscall_resolve_name(name)
                guard number != __NR_SCMP_ERROR else { continue }
                for rule in rules {
                    let rc = rule.withUnsafeBufferPointer {
                        seccomp_rule_add_array(context, action, number, UInt32($0.count), $0.baseAddress)
                    }
                    guard rc == 0 else { throw RPCError(.invalidArgument, "seccomp rule for \(name): \(Self.describe(rc))") }
                }
            }
        }
        return try Self.export(context)
    }

    private static func action(_ name: String, errno: UInt32?) throws(RPCError) -> UInt32 {
        guard let code = UInt16(exactly: errno ?? UInt32(EPERM)) else {
            throw RPCError(.invalidArgument, "seccomp errnoRet \(errno ?? 0) out of range")
        }
        switch name {
        case "SCMP_ACT_ALLOW": return SCMP_ACT_ALLOW
        case "SCMP_ACT_ERRNO": return pv_scmp_act_errno(code)
        case "SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD": return SCMP_ACT_KILL_THREAD
        case "SCMP_ACT_KILL_PROCESS": return SCMP_ACT_KILL_PROCESS
        case "SCMP_ACT_TRAP": return SCMP_ACT_TRAP
        case "SCMP_ACT_LOG": return SCMP_ACT_LOG
        case "SCMP_ACT_TRACE": return pv_scmp_act_trace(code)
        default: throw RPCError(.invalidArgument, "unsupported seccomp action \(name)")
        }
    }

    private static let operators: [String: scmp_compare] = [
        "SCMP_CMP_NE": SCMP_CMP_NE, "SCMP_CMP_LT": SCMP_CMP_LT, "SCMP_CMP_LE": SCMP_CMP_LE, "SCMP_CMP_EQ": SCMP_CMP_EQ,
        "SCMP_CMP_GE": SCMP_CMP_GE, "SCMP_CMP_GT": SCMP_CMP_GT, "SCMP_CMP_MASKED_EQ": SCMP_CMP_MASKED_EQ,
    ]

    private static func condition(_ argument: Argument) throws(RPCError) -> scmp_arg_cmp {
        guard let op = operators[argument.op] else { throw RPCError(.invalidArgument, "unknown seccomp operator \(argument.op)") }
        guard argument.index < 6 else { throw RPCError(.invalidArgument, "seccomp argument index \(argument.index) out of range") }
        return scmp_arg_cmp(arg: argument.index, op: op, datum_a: argument.value, datum_b: argument.valueTwo ?? 0)
    }

    /// libseccomp 2.5 exports only to a file descriptor: a memfd, read back whole.
    private static func export(_ context: scmp_filter_ctx) throws(RPCError) -> [UInt8] {
        let fd = pv_memfd("seccomp")
        guard fd >= 0 else { throw RPCError(.internal, "memfd_create: errno \(errno)") }
        defer { close(fd) }
        let rc = seccomp_export_bpf(context, fd)
        guard rc == 0 else { throw RPCError(.internal, "seccomp_export_bpf: \(describe(rc))") }
        let size = Int(lseek(fd, 0, SEEK_END))
        // The kernel loads at most BPF_MAXINSNS (4096) instructions of 8 bytes.
        guard size > 0, size % 8 == 0, size / 8 <= 4096 else {
            throw RPCError(.invalidArgument, "seccomp filter of \(size / 8) instructions cannot be loaded (at most 4096)")
        }
        var program = [UInt8](repeating: 0, count: size)
        let read = program.withUnsafeMutableBytes { pread(fd, $0.baseAddress, size, 0) }
        guard read == size else { throw RPCError(.internal, "reading the seccomp filter: errno \(errno)") }
        return program
    }

    private static func describe(_ rc: Int32) -> String { String(cString: strerror(-rc)) }
}

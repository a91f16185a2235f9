#define _GNU_SOURCE
#include "CContainerSpawn.h"
#include "CLinuxSupport.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>

// ---- child side: async-signal-safe only ------------------------------------------------------------

// Reports "E<step>: <strerror>" on the status pipe and exits.
static void fail(int status, const char *step) {
    int saved = errno;
    char message[512];
    size_t n = 0;
    message[n++] = 'E';
    for (const char *p = step; *p && n < sizeof(message) - 64; p++) message[n++] = *p;
    message[n++] = ':';
    message[n++] = ' ';
    const char *reason = strerror(saved);
    for (const char *p = reason; *p && n < sizeof(message) - 1; p++) message[n++] = *p;
    (void)!write(status, message, n);
    _exit(127);
}

static size_t join(char *out, size_t size, const char *a, const char *b) {
    size_t n = 0;
    for (const char *p = a; *p && n < size - 1; p++) out[n++] = *p;
    for (const char *p = b; *p && n < size - 1; p++) out[n++] = *p;
    out[n] = 0;
    return n;
}

static void mount_or_fail(int status, const char *root, const char *target, const char *type,
                          unsigned long flags, const char *data, const char *step) {
    char path[4096];
    join(path, sizeof(path), root, target);
    mkdir(path, 0755);
    if (mount(type, path, type, flags, data) != 0) fail(status, step);
}

struct device { const char *name; mode_t mode; unsigned major, minor; };

// In a user namespace nothing may be created that the namespace does not own: no mknod, no devtmpfs or
// sysfs (the guest's network namespace is not the pod's own). The guest's nodes and /sys are bound instead,
// as runc does for a container in a user namespace.
static void bind_or_fail(int status, const char *root, const char *source, int directory, const char *step) {
    char path[4096];
    join(path, sizeof(path), root, source);
    if (directory) {
        mkdir(path, 0755);
    } else {
        int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
        if (fd >= 0) close(fd);
    }
    if (mount(source, path, NULL, MS_BIND | MS_REC, NULL) != 0) fail(status, step);
}

static void populate_dev(int status, const char *root, int privileged, int user_namespace) {
    static const struct device devices[] = {
        {"/dev/null", 0666, 1, 3}, {"/dev/zero", 0666, 1, 5}, {"/dev/full", 0666, 1, 7},
        {"/dev/random", 0666, 1, 8}, {"/dev/urandom", 0666, 1, 9}, {"/dev/tty", 0666, 5, 0},
    };
    char path[4096];
    if (privileged && user_namespace) {
        bind_or_fail(status, root, "/dev", 1, "bind the guest's /dev");
    } else if (privileged) {
        mount_or_fail(status, root, "/dev", "devtmpfs", MS_NOSUID, "mode=755", "mount /dev");
    } else {
        mount_or_fail(status, root, "/dev", "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k", "mount /dev");
    }
    for (size_t i = 0; !privileged && i < sizeof(devices) / sizeof(devices[0]); i++) {
        if (user_namespace) {
            bind_or_fail(status, root, devices[i].name, 0, "bind a device of the guest");
            continue;
        }
        join(path, sizeof(path), root, devices[i].name);
        if (mknod(path, S_IFCHR | devices[i].mode, makedev(devices[i].major, devices[i].minor)) != 0) fail(status, "mknod");
        chmod(path, devices[i].mode);  // umask must not narrow them
    }
    mount_or_fail(status, root, "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620", "mount /dev/pts");
    mount_or_fail(status, root, "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=65536k", "mount /dev/shm");
    mount_or_fail(status, root, "/dev/mqueue", "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, "mount /dev/mqueue");
    static const char *const links[][2] = {
        {"pts/ptmx", "/dev/ptmx"}, {"/proc/self/fd", "/dev/fd"}, {"/proc/self/fd/0", "/dev/stdin"},
        {"/proc/self/fd/1", "/dev/stdout"}, {"/proc/self/fd/2", "/dev/stderr"},
    };
    for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++) {
        join(path, sizeof(path), root, links[i][1]);
        if (symlink(links[i][0], path) != 0 && errno != EEXIST) fail(status, "symlink in /dev");
    }
}

static void write_sysctls(int status, const struct pv_spawn_config *c) {
    for (size_t i = 0; c->sysctl_files && c->sysctl_files[i]; i++) {
        int fd = open(c->sysctl_files[i], O_WRONLY | O_CLOEXEC);
        if (fd < 0) fail(status, c->sysctl_files[i]);
        size_t length = strlen(c->sysctl_values[i]);
        if (write(fd, c->sysctl_values[i], length) != (ssize_t)length) fail(status, c->sysctl_files[i]);
        close(fd);
    }
}

// Masked: an empty read-only tmpfs over a directory, /dev/null over anything else. Paths the image lacks
// need no masking.
static void mask_paths(int status, const struct pv_spawn_config *c) {
    for (size_t i = 0; c->masked_paths && c->masked_paths[i]; i++) {
        const char *path = c->masked_paths[i];
        struct stat st;
        if (stat(path, &st) != 0) {
            if (errno == ENOENT) continue;
            fail(status, path);
        }
        int rc = S_ISDIR(st.st_mode) ? mount("tmpfs", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=0")
                                     : mount("/dev/null", path, NULL, MS_BIND, NULL);
        if (rc != 0) fail(status, path);
    }
    for (size_t i = 0; c->readonly_paths && c->readonly_paths[i]; i++) {
        const char *path = c->readonly_paths[i];
        if (mount(path, path, NULL, MS_BIND | MS_REC, NULL) != 0) {
            if (errno == ENOENT) continue;
            fail(status, path);
        }
        if (pv_make_readonly(path) != 0) fail(status, path);
    }
}

// Creates the mount point (a directory, or an empty file for a file volume), then binds. Read-only is applied
// here too, but the guarantee comes from the host: a read-only volume is already read-only on the host side
// of virtio-fs, so not even a remount inside the guest can write to it.
static void bind_volumes(int status, const struct pv_spawn_config *c) {
    for (size_t i = 0; i < c->mount_count; i++) {
        const struct pv_mount *m = &c->mounts[i];
        char target[4096];
        join(target, sizeof(target), c->rootfs, m->destination);
        struct stat st;
        if (stat(m->source, &st) != 0) fail(status, m->source);
        // mkdir -p of the parents, then the mount point itself.
        for (char *slash = target + strlen(c->rootfs) + 1; (slash = strchr(slash, '/')); slash++) {
            *slash = 0;
            mkdir(target, 0755);
            *slash = '/';
        }
        if (S_ISDIR(st.st_mode)) {
            mkdir(target, 0755);
        } else {
            int fd = open(target, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
            if (fd >= 0) close(fd);
        }
        if (mount(m->source, target, NULL, MS_BIND | MS_REC, NULL) != 0) fail(status, m->destination);
        if (m->readonly == PV_READONLY_RECURSIVE && pv_make_readonly_recursive(target) != 0) fail(status, m->destination);
        if (m->readonly == PV_READONLY_TOP && pv_make_readonly(target) != 0) fail(status, m->destination);
        if (mount(NULL, target, NULL, m->propagation | MS_REC, NULL) != 0) fail(status, m->destination);
    }
}

static void enter_rootfs(int status, const struct pv_spawn_config *c) {
    // Slave: nothing done here propagates back into the agent's namespace, while mounts the agent makes
    // in the (shared) VM share still reach volumes that ask for rslave or rshared.
    if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) != 0) fail(status, "make / a slave");
    if (mount(c->rootfs, c->rootfs, NULL, MS_BIND | MS_REC, NULL) != 0) fail(status, "bind rootfs");
    mount_or_fail(status, c->rootfs, "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, "mount /proc");
    if (c->user_namespace) {
        bind_or_fail(status, c->rootfs, "/sys", 1, "bind /sys");
        char path[4096];
        join(path, sizeof(path), c->rootfs, "/sys");
        if (!c->privileged && pv_make_readonly_recursive(path) != 0) fail(status, "make /sys read-only");
    } else {
        mount_or_fail(status, c->rootfs, "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | (c->privileged ? 0 : MS_RDONLY),
                      NULL, "mount /sys");
    }
    populate_dev(status, c->rootfs, c->privileged, c->user_namespace);
    bind_volumes(status, c);
    if (chdir(c->rootfs) != 0) fail(status, "chdir rootfs");
    // pivot_root(".", ".") stacks the old root on the new one; detaching it leaves only the new root.
    if (syscall(SYS_pivot_root, ".", ".") != 0) fail(status, "pivot_root");
    if (umount2(".", MNT_DETACH) != 0) fail(status, "detach old root");
    if (chdir("/") != 0) fail(status, "chdir /");
    // Sysctls before read-only paths: /proc/sys is usually one of them.
    write_sysctls(status, c);
    mask_paths(status, c);
    if (c->readonly_rootfs && pv_make_readonly("/") != 0) fail(status, "remount rootfs read-only");
}

// Root of the user namespace, whatever the process was outside it: files it creates from here on (mount
// points in the rootfs) belong to the pod's root, an id the host's idmapped mounts know.
static void become_namespace_root(int status) {
    if (syscall(SYS_setgroups, 0, NULL) != 0 || syscall(SYS_setresgid, 0, 0, 0) != 0 || syscall(SYS_setresuid, 0, 0, 0) != 0)
        fail(status, "become root of the pod's user namespace");
}

// unshare(CLONE_NEWPID) places only later children in the new namespace: the container's init is a child
// of this process, which sends its pid on `pid_pipe` and leaves (the guest's PID 1 reaps it, and adopts
// the container's init).
static void fork_into_pid_namespace(int status, int pid_pipe) {
    pid_t pid = (pid_t)syscall(SYS_clone, SIGCHLD, 0, NULL, NULL, 0);
    if (pid < 0) fail(status, "fork into the new PID namespace");
    if (pid == 0) {
        close(pid_pipe);
        return;
    }
    (void)!write(pid_pipe, &pid, sizeof(pid));
    _exit(0);
}

// Joins `pid`'s IPC, UTS and (count 3) mount namespaces, its user namespace first when asked. Every
// descriptor is opened before any is joined: once in the pod's user namespace, /proc/<pid>/ns of a process
// that the guest's own namespace created is no longer ours to open.
static void join_namespaces(int status, pid_t pid, size_t count, int user_namespace) {
    // In this order, so that joining the mount namespace (which changes what /proc is) comes last.
    static const char *const kinds[] = {"user", "ipc", "uts", "mnt"};
    int fds[4] = {-1, -1, -1, -1};
    char path[64];
    for (size_t i = user_namespace ? 0 : 1; i <= count; i++) {
        snprintf(path, sizeof(path), "/proc/%d/ns/%s", (int)pid, kinds[i]);
        if ((fds[i] = open(path, O_RDONLY | O_CLOEXEC)) < 0) fail(status, "open the namespaces to join");
    }
    for (size_t i = user_namespace ? 0 : 1; i <= count; i++) {
        if (setns(fds[i], 0) != 0) fail(status, i == 0 ? "join the pod's user namespace" : "join container namespaces");
        close(fds[i]);
        if (i == 0) become_namespace_root(status);
    }
}

// Bounding set first (needs CAP_SETPCAP, still held); then, after the uid change kept them (KEEPCAPS),
// permitted/effective/inheritable, and ambient so a non-root user keeps them across exec.
static void drop_bounding(int status, const struct pv_spawn_config *c) {
    if (!c->set_capabilities) return;
    for (int cap = 0; cap <= CAP_LAST_CAP; cap++)
        if (!(c->capabilities & (1ULL << cap)) && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL)
            fail(status, "drop bounding capability");
    if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0) fail(status, "keep capabilities");
}

static void set_capabilities(int status, const struct pv_spawn_config *c) {
    if (!c->set_capabilities) return;
    struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    for (int i = 0; i < 2; i++) {
        uint32_t word = (uint32_t)(c->capabilities >> (32 * i));
        data[i].effective = data[i].permitted = data[i].inheritable = word;
    }
    if (syscall(SYS_capset, &header, data) != 0) fail(status, "set capabilities");
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0) fail(status, "clear ambient capabilities");
    if (c->uid == 0) return;
    for (int cap = 0; cap <= CAP_LAST_CAP; cap++)
        if ((c->capabilities & (1ULL << cap)) && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) != 0)
            fail(status, "raise ambient capability");
}

// Without no_new_privs the kernel only lets a process holding CAP_SYS_ADMIN install a filter, so the filter
// goes in before capabilities are reduced; with it, as late as possible. Either way what follows must be
// allowed by the profile (capset, prctl, chdir, read, write, execve: containerd's default allows them).
static void load_seccomp(int status, const struct pv_spawn_config *c) {
    if (!c->seccomp_filter) return;
    struct sock_fprog program = {c->seccomp_instructions, (struct sock_filter *)c->seccomp_filter};
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program, 0, 0) != 0) fail(status, "load seccomp filter");
}

static const char *find_env(const char *const *envp, const char *name) {
    size_t n = strlen(name);
    for (; envp && *envp; envp++)
        if (strncmp(*envp, name, n) == 0 && (*envp)[n] == '=') return *envp + n + 1;
    return NULL;
}

static void exec_program(int status, const struct pv_spawn_config *c) {
    const char *file = c->argv[0];
    if (strchr(file, '/')) {
        execve(file, (char *const *)c->argv, (char *const *)c->envp);
        fail(status, "exec");
    }
    const char *path = find_env(c->envp, "PATH");
    if (!path) path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    int last = ENOENT;
    while (*path) {
        const char *end = strchrnul(path, ':');
        char candidate[4096];
        size_t n = (size_t)(end - path);
        if (n == 0 || n + strlen(file) + 2 > sizeof(candidate)) {
            path = *end ? end + 1 : end;
            continue;
        }
        memcpy(candidate, path, n);
        candidate[n] = '/';
        strcpy(candidate + n + 1, file);
        execve(candidate, (char *const *)c->argv, (char *const *)c->envp);
        if (errno != ENOENT && errno != ENOTDIR) last = errno;
        path = *end ? end + 1 : end;
    }
    errno = last;
    fail(status, file);
}

// The container's terminal, from its own /dev/pts (runc does the same through its console socket).
static void open_terminal(int status, const struct pv_spawn_config *c) {
    int master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0) fail(status, "open /dev/ptmx");
    char name[64];
    if (unlockpt(master) != 0 || ptsname_r(master, name, sizeof(name)) != 0) fail(status, "unlock the terminal");
    int slave = open(name, O_RDWR | O_NOCTTY);
    if (slave < 0) fail(status, "open the terminal");
    for (int i = 0; i < 3; i++)
        if (dup2(slave, i) < 0) fail(status, "dup2 terminal");
    if (slave > 2) close(slave);
    if (ioctl(0, TIOCSCTTY, 0) != 0) fail(status, "set controlling terminal");
    if (pv_send_fd(c->console_socket, master) != 0) fail(status, "send the terminal");
    close(master);
    close(c->console_socket);
}

static void noop(int signal) { (void)signal; }

static void exit_now(int signal) { _exit(128 + signal); }

// PID 1 of a pod: reaps orphans until the VM stops. SIGCHLD must have a handler for pause() to return.
// SIGTERM and SIGINT end it, as they end Kubernetes' pause: a namespace's init ignores signals it has no
// handler for, and the agent's power-off (TERM to every process, KILL after 2 s) would wait out its grace.
// In a new user namespace it first waits (`handoff`) until the parent has written the namespace's maps.
static void sandbox_init(int status, int handoff, const struct pv_spawn_config *c) {
    if (c->user_namespace) {
        char byte;
        if (read(handoff, &byte, 1) != 1) _exit(127);
        close(handoff);
        become_namespace_root(status);
    }
    if (c->hostname && sethostname(c->hostname, strlen(c->hostname)) != 0) fail(status, "sethostname");
    write_sysctls(status, c);
    struct sigaction action;
    memset(&action, 0, sizeof(action));
    action.sa_handler = noop;
    sigaction(SIGCHLD, &action, NULL);
    action.sa_handler = exit_now;
    sigaction(SIGTERM, &action, NULL);
    sigaction(SIGINT, &action, NULL);
    (void)!write(status, "R", 1);
    close(status);
    for (int i = 0; i < 3; i++) close(i);
    for (;;) {
        while (waitpid(-1, NULL, WNOHANG) > 0) {
        }
        pause();
    }
}

static void child(int status, int handoff, const struct pv_spawn_config *c) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);  // the agent blocks signals for sigwait; containers must not inherit that
    if (c->sandbox_init) sandbox_init(status, handoff, c);
    // The cgroup first, so that everything the container does from here on is accounted and limited.
    if (c->cgroup_procs_fd >= 0 && write(c->cgroup_procs_fd, "0", 1) != 1) fail(status, "join the container's cgroup");
    for (int i = 0; i < 3; i++)
        if (dup2(c->stdio[i], i) < 0) fail(status, "dup2 stdio");
    if (setsid() < 0) fail(status, "setsid");
    // Limits before any user namespace: raising a hard limit takes CAP_SYS_RESOURCE in the guest's own.
    for (size_t i = 0; i < c->rlimit_count; i++) {
        struct rlimit limit = {c->rlimits[i].soft, c->rlimits[i].hard};
        if (setrlimit(c->rlimits[i].resource, &limit) != 0) fail(status, "setrlimit");
    }
    if (c->join_pid > 0) {
        join_namespaces(status, c->join_pid, 3, c->user_namespace);
    } else {
        if (c->sandbox_pid > 0) join_namespaces(status, c->sandbox_pid, 2, c->user_namespace);
        if (c->user_namespace) {
            if (unshare(CLONE_NEWNS | (c->new_pid_namespace ? CLONE_NEWPID : 0)) != 0) fail(status, "unshare mount and PID namespaces");
            if (c->new_pid_namespace) fork_into_pid_namespace(status, handoff);
        }
        enter_rootfs(status, c);
        if (c->hostname && sethostname(c->hostname, strlen(c->hostname)) != 0) fail(status, "sethostname");
    }
    if (c->console_socket >= 0) open_terminal(status, c);
    drop_bounding(status, c);
    // Without no_new_privs the kernel lets only CAP_SYS_ADMIN load a filter: load it while still root with
    // every capability (as runc does), before the switch to the container's user drops them.
    if (!c->no_new_privileges) load_seccomp(status, c);
    // Raw system calls: glibc's setgroups/setgid/setuid broadcast the change to every thread it believes the
    // process has, and after a raw clone() of a multithreaded agent it waits forever for threads that
    // do not exist in the child.
    if (syscall(SYS_setgroups, c->group_count, c->groups) != 0) fail(status, "setgroups");
    if (syscall(SYS_setresgid, c->gid, c->gid, c->gid) != 0) fail(status, "setgid");
    if (syscall(SYS_setresuid, c->uid, c->uid, c->uid) != 0) fail(status, "setuid");
    set_capabilities(status, c);
    if (c->no_new_privileges) {
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) fail(status, "no_new_privs");
        load_seccomp(status, c);
    }
    if (chdir(c->cwd ? c->cwd : "/") != 0) fail(status, "chdir to working directory");
    if (c->start_fd >= 0) {
        (void)!write(status, "R", 1);
        char go;
        if (read(c->start_fd, &go, 1) != 1) _exit(127);  // created but never started: removed
    }
    exec_program(status, c);
}

// ---- parent side ----------------------------------------------------------------------------------

static void set_error(char *error, size_t length, const char *step) {
    snprintf(error, length, "%s: %s", step, strerror(errno));
}

static void close_pair(int fds[2]) {
    for (int i = 0; i < 2; i++)
        if (fds[i] >= 0) close(fds[i]);
}

// After the clone, on the parent's side of `handoff`: a new sandbox's user namespace gets its maps, then the
// child may go on; a container in a new PID namespace of the pod's user namespace is the child's child,
// whose pid arrives here (EOF: the child failed before, its error is on the status pipe).
static pid_t settle_child(const struct pv_spawn_config *c, pid_t pid, int handoff[2], char *error, size_t error_length) {
    if (c->sandbox_init) {
        if (pv_write_id_maps(pid, c->uid_map, c->gid_map) != 0) {
            set_error(error, error_length, "write the user namespace's maps");
            kill(pid, SIGKILL);
            return -1;
        }
        (void)!write(handoff[1], "G", 1);
        return pid;
    }
    close(handoff[1]);
    handoff[1] = -1;
    pid_t init = 0;
    ssize_t n;
    do {
        n = read(handoff[0], &init, sizeof(init));
    } while (n < 0 && errno == EINTR);
    return n == (ssize_t)sizeof(init) ? init : pid;
}

pid_t pv_spawn(const struct pv_spawn_config *c, int *status_fd, char *error, size_t error_length) {
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) != 0) {
        set_error(error, error_length, "pipe");
        return -1;
    }
    int handoff[2] = {-1, -1};
    int settle = c->user_namespace && (c->sandbox_init || (c->join_pid == 0 && c->new_pid_namespace));
    if (settle && pipe2(handoff, O_CLOEXEC) != 0) {
        set_error(error, error_length, "pipe");
        close_pair(pipefd);
        return -1;
    }
    unsigned long flags = SIGCHLD;
    int pidns = -1, ownns = -1;
    // An exec joins its container's PID namespace, a pod-shared container the sandbox's.
    pid_t pid_owner = c->join_pid > 0 ? c->join_pid : (c->sandbox_pid > 0 && !c->new_pid_namespace ? c->sandbox_pid : 0);
    if (c->sandbox_init) {
        flags |= CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | (c->user_namespace ? CLONE_NEWUSER : 0);
    } else if (c->join_pid == 0 && !c->user_namespace) {
        // With a sandbox, IPC and UTS are joined in the child; without one the container gets its own. In a
        // user namespace the child makes its namespaces itself, once inside it.
        flags |= CLONE_NEWNS | (c->sandbox_pid > 0 ? 0 : CLONE_NEWIPC | CLONE_NEWUTS) | (c->new_pid_namespace ? CLONE_NEWPID : 0);
    }
    if (pid_owner > 0) {
        // setns(CLONE_NEWPID) changes only where this thread's next child is born; put it back afterwards.
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/ns/pid", (int)pid_owner);
        pidns = open(path, O_RDONLY | O_CLOEXEC);
        ownns = open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC);
        if (pidns < 0 || ownns < 0 || setns(pidns, CLONE_NEWPID) != 0) {
            set_error(error, error_length, "enter the PID namespace to join");
            if (pidns >= 0) close(pidns);
            if (ownns >= 0) close(ownns);
            close_pair(pipefd);
            close_pair(handoff);
            return -1;
        }
    }
    // Raw clone without a new stack behaves like fork(), with the namespaces asked for.
    pid_t pid = (pid_t)syscall(SYS_clone, flags, 0, NULL, NULL, 0);
    if (pid == 0) {
        close(pipefd[0]);
        if (handoff[0] >= 0) close(c->sandbox_init ? handoff[1] : handoff[0]);
        child(pipefd[1], c->sandbox_init ? handoff[0] : handoff[1], c);
    }
    int saved = errno;
    if (ownns >= 0) {
        setns(ownns, CLONE_NEWPID);
        close(ownns);
        close(pidns);
    }
    close(pipefd[1]);
    if (pid < 0) {
        errno = saved;
        set_error(error, error_length, "clone");
        close(pipefd[0]);
        close_pair(handoff);
        return -1;
    }
    if (settle) pid = settle_child(c, pid, handoff, error, error_length);
    close_pair(handoff);
    if (pid < 0) {
        close(pipefd[0]);
        return -1;
    }
    *status_fd = pipefd[0];
    return pid;
}

int pv_spawn_wait(int status_fd, char stage, char *error, size_t error_length) {
    char buffer[512];
    ssize_t n;
    do {
        n = read(status_fd, buffer, stage == 'R' ? 1 : sizeof(buffer) - 1);
    } while (n < 0 && errno == EINTR);
    if (n == 0) {
        if (stage == 'X') return 0;  // the pipe closed on exec
        snprintf(error, error_length, "container process exited during setup");
        return -1;
    }
    if (n < 0) {
        set_error(error, error_length, "read status");
        return -1;
    }
    if (buffer[0] == stage) return 0;
    if (buffer[0] == 'E' && stage == 'R') {
        // Read the rest of the message.
        ssize_t more = read(status_fd, buffer + 1, sizeof(buffer) - 2);
        if (more > 0) n += more;
    }
    buffer[n] = 0;
    snprintf(error, error_length, "%s", buffer[0] == 'E' ? buffer + 1 : buffer);
    return -1;
}

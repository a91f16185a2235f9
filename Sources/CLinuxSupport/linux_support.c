#define _GNU_SOURCE
#include "CLinuxSupport.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/vfs.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <linux/magic.h>
#include <linux/vm_sockets.h>

static int fill_unix(struct sockaddr_un *addr, const char *path) {
    memset(addr, 0, sizeof(*addr));
    addr->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(addr->sun_path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    strcpy(addr->sun_path, path);
    return 0;
}

int pv_unix_connect(const char *path) {
    struct sockaddr_un addr;
    if (fill_unix(&addr, path) < 0) return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

int pv_unix_listen(const char *path, int backlog) {
    struct sockaddr_un addr;
    if (fill_unix(&addr, path) < 0) return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, backlog) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

static void fill_vsock(struct sockaddr_vm *addr, uint32_t cid, uint32_t port) {
    memset(addr, 0, sizeof(*addr));
    addr->svm_family = AF_VSOCK;
    addr->svm_cid = cid;
    addr->svm_port = port;
}

int pv_vsock_connect(uint32_t cid, uint32_t port) {
    struct sockaddr_vm addr;
    fill_vsock(&addr, cid, port);
    int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

int pv_vsock_listen(uint32_t port, int backlog) {
    struct sockaddr_vm addr;
    fill_vsock(&addr, VMADDR_CID_ANY, port);
    int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, backlog) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

int pv_vsock_accept_host(int fd, uint32_t *refused_cid) {
    struct sockaddr_vm peer;
    socklen_t length = sizeof(peer);
    int conn;
    do {
        conn = accept4(fd, (struct sockaddr *)&peer, &length, SOCK_CLOEXEC);
    } while (conn < 0 && errno == EINTR);
    if (conn < 0) return -1;
    if (peer.svm_cid != VMADDR_CID_HOST) {
        close(conn);
        *refused_cid = peer.svm_cid;
        errno = EACCES;
        return -1;
    }
    return conn;
}

int pv_pidfd_open(pid_t pid) {
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

int pv_set_child_subreaper(void) {
    return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
}

pid_t pv_spawn_daemon(const char *path, char *const argv[], int log) {
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attributes;
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, log, 1);
    posix_spawn_file_actions_adddup2(&actions, log, 2);
    // Nothing else of ours reaches it, whether or not it was opened close-on-exec.
    posix_spawn_file_actions_addclosefrom_np(&actions, 3);
    posix_spawnattr_init(&attributes);
    posix_spawnattr_setsigmask(&attributes, &none);
    posix_spawnattr_setsigdefault(&attributes, &all);
    posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSID);
    pid_t pid;
    int error = posix_spawn(&pid, path, &actions, &attributes, argv, environ);
    posix_spawnattr_destroy(&attributes);
    posix_spawn_file_actions_destroy(&actions);
    if (error != 0) {
        errno = error;
        return -1;
    }
    return pid;
}

int pv_pipe(int fds[2]) {
    return pipe2(fds, O_CLOEXEC);
}

int pv_send_fd(int socket, int fd) {
    char byte = 0;
    struct iovec iov = {&byte, 1};
    char control[CMSG_SPACE(sizeof(int))];
    memset(control, 0, sizeof(control));
    struct msghdr message = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof(control)};
    struct cmsghdr *header = CMSG_FIRSTHDR(&message);
    header->cmsg_level = SOL_SOCKET;
    header->cmsg_type = SCM_RIGHTS;
    header->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(header), &fd, sizeof(int));
    return sendmsg(socket, &message, MSG_NOSIGNAL) == 1 ? 0 : -1;
}

int pv_recv_fd(int socket) {
    char byte;
    struct iovec iov = {&byte, 1};
    char control[CMSG_SPACE(sizeof(int))];
    struct msghdr message = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof(control)};
    ssize_t n;
    do n = recvmsg(socket, &message, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n <= 0) {
        if (n == 0) errno = 0;
        return -1;
    }
    struct cmsghdr *header = CMSG_FIRSTHDR(&message);
    if (!header || header->cmsg_level != SOL_SOCKET || header->cmsg_type != SCM_RIGHTS) {
        errno = EPROTO;
        return -1;
    }
    int fd;
    memcpy(&fd, CMSG_DATA(header), sizeof(int));
    return fd;
}

int pv_set_window_size(int fd, unsigned short rows, unsigned short columns) {
    struct winsize size = {rows, columns, 0, 0};
    return ioctl(fd, TIOCSWINSZ, &size);
}

int pv_finit_module(int fd) {
    return (int)syscall(SYS_finit_module, fd, "", 0);
}

int pv_poweroff(void) {
    sync();
    return reboot(RB_POWER_OFF);
}

int pv_mount(const char *source, const char *target, const char *fstype, unsigned long flags, const char *data) {
    return mount(source, target, fstype, flags, data);
}

int pv_make_shared(const char *path) {
    return mount(NULL, path, NULL, MS_SHARED | MS_REC, NULL);
}

// <linux/mount.h> clashes with glibc 2.36's <sys/mount.h>; the few definitions needed are spelled here.
struct pv_mount_attr {
    uint64_t attr_set, attr_clr, propagation, userns_fd;
};
#define PV_MOUNT_ATTR_RDONLY 0x1
#define PV_MOUNT_ATTR_IDMAP 0x100000
#define PV_AT_RECURSIVE 0x8000
#define PV_OPEN_TREE_CLONE 1
#define PV_MOVE_MOUNT_F_EMPTY_PATH 0x4

static int make_readonly(const char *path, unsigned int depth) {
    struct pv_mount_attr attr = {PV_MOUNT_ATTR_RDONLY, 0, 0, 0};
    if (syscall(SYS_mount_setattr, AT_FDCWD, path, depth, &attr, sizeof(attr)) == 0) return 0;
    if (errno != ENOSYS) return -1;
    return mount(NULL, path, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY, NULL);
}

int pv_make_readonly_recursive(const char *path) { return make_readonly(path, PV_AT_RECURSIVE); }

int pv_make_readonly(const char *path) { return make_readonly(path, 0); }

// The child's work; its exit status is 0 or the errno that stopped it. Only system calls: the child shares
// the parent's memory, whose other threads run on, so nothing that takes a lock may run in it.
static int in_namespace(int ns_fd, int operation, const char *source, const char *target, const char *options, int readonly,
                        int userns_fd) {
    int tree = -1;
    if (operation == PV_NS_BIND) {
        // Cloned here, where the source was judged (a /proc/self/fd/N link: the descriptor is inherited); attached there.
        tree = (int)syscall(SYS_open_tree, AT_FDCWD, source, PV_OPEN_TREE_CLONE | O_CLOEXEC | PV_AT_RECURSIVE);
        if (tree < 0) return errno;
        if (readonly != PV_READWRITE) {
            struct pv_mount_attr private = {0, 0, MS_PRIVATE, 0};
            struct pv_mount_attr rdonly = {PV_MOUNT_ATTR_RDONLY, 0, 0, 0};
            if (syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH | PV_AT_RECURSIVE, &private, sizeof(private)) != 0) return errno;
            unsigned int depth = readonly == PV_READONLY_RECURSIVE ? PV_AT_RECURSIVE : 0;
            if (syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH | depth, &rdonly, sizeof(rdonly)) != 0) return errno;
        }
        struct pv_mount_attr idmap = {PV_MOUNT_ATTR_IDMAP, 0, 0, (uint64_t)userns_fd};
        if (userns_fd >= 0 && syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH | PV_AT_RECURSIVE, &idmap, sizeof(idmap)) != 0)
            return errno;
    }
    if (setns(ns_fd, CLONE_NEWNS) != 0) return errno;
    switch (operation) {
    case PV_NS_BIND:
        if (syscall(SYS_move_mount, tree, "", AT_FDCWD, target, PV_MOVE_MOUNT_F_EMPTY_PATH) != 0) return errno;
        return 0;
    case PV_NS_OVERLAY:
        return mount("overlay", target, "overlay", 0, options) == 0 ? 0 : errno;
    case PV_NS_DETACH:
        return umount2(target, MNT_DETACH) == 0 ? 0 : errno;
    default:
        return EINVAL;
    }
}

struct namespace_job {
    int ns_fd, operation, readonly, userns_fd;
    const char *source, *target, *options;
};

static int namespace_child(void *argument) {
    struct namespace_job *job = argument;
    return in_namespace(job->ns_fd, job->operation, job->source, job->target, job->options, job->readonly, job->userns_fd);
}

int pv_mount_in_namespace(int ns_fd, int operation, const char *source, const char *target, const char *options, int readonly,
                          int userns_fd) {
    // setns(CLONE_NEWNS) refuses a multithreaded caller: a child process does it, as posix_spawn makes one. It
    // shares the parent's memory (CLONE_VM) and the parent waits until it has ended (CLONE_VFORK), so the
    // runtime's address space is never copied: a fork of it cost 3-7 ms per mount and COW faults after. Its
    // signals stay blocked, so no handler of the parent's runs on its stack.
    struct namespace_job job = {ns_fd, operation, readonly, userns_fd, source, target, options};
    size_t stack_size = 64 * 1024;
    char *stack = mmap(NULL, stack_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED) return -1;
    sigset_t all, saved;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &saved);
    pid_t child = clone(namespace_child, stack + stack_size, CLONE_VM | CLONE_VFORK | SIGCHLD, &job);
    int clone_error = errno;
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    munmap(stack, stack_size);
    if (child < 0) {
        errno = clone_error;
        return -1;
    }
    int status = 0;
    while (waitpid(child, &status, 0) < 0) {
        if (errno != EINTR) return -1;
    }
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : EIO;
    if (code == 0) return 0;
    errno = code;
    return -1;
}

static int write_file(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    size_t length = strlen(text);
    ssize_t written = write(fd, text, length);
    int saved = errno;
    close(fd);
    if (written == (ssize_t)length) return 0;
    errno = written < 0 ? saved : EIO;
    return -1;
}

int pv_write_id_maps(pid_t pid, const char *uid_map, const char *gid_map) {
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/uid_map", (int)pid);
    if (write_file(path, uid_map) != 0) return -1;
    snprintf(path, sizeof(path), "/proc/%d/gid_map", (int)pid);
    return write_file(path, gid_map);
}

int pv_user_namespace(const char *uid_map, const char *gid_map) {
    int hold[2];
    if (pipe2(hold, O_CLOEXEC) != 0) return -1;
    // The child only waits for the pipe to close: a namespace lives while a process or descriptor holds it.
    pid_t child = (pid_t)syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
    if (child == 0) {
        char byte;
        close(hold[1]);
        (void)!read(hold[0], &byte, 1);
        _exit(0);
    }
    close(hold[0]);
    int fd = -1, saved = 0;
    if (child < 0) {
        saved = errno;
    } else {
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/ns/user", (int)child);
        if (pv_write_id_maps(child, uid_map, gid_map) == 0) fd = open(path, O_RDONLY | O_CLOEXEC);
        saved = errno;
    }
    close(hold[1]);
    while (child > 0 && waitpid(child, NULL, 0) < 0 && errno == EINTR) {
    }
    errno = saved;
    return fd;
}

int pv_move_mount(const char *source, const char *target) {
    return mount(source, target, NULL, MS_MOVE, NULL);
}

int pv_umount_detach(const char *path) {
    return umount2(path, MNT_DETACH);
}

unsigned long pv_ms_nosuid(void) { return MS_NOSUID; }
unsigned long pv_ms_private(void) { return MS_PRIVATE; }
unsigned long pv_ms_slave(void) { return MS_SLAVE; }
unsigned long pv_ms_shared(void) { return MS_SHARED; }
unsigned long pv_ms_nodev(void) { return MS_NODEV; }
unsigned long pv_ms_noexec(void) { return MS_NOEXEC; }

static void init_signal_set(sigset_t *set) {
    sigemptyset(set);
    sigaddset(set, SIGCHLD);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGPWR);
    sigaddset(set, SIGUSR1);
}

int pv_block_init_signals(void) {
    sigset_t set;
    init_signal_set(&set);
    return pthread_sigmask(SIG_BLOCK, &set, NULL);
}

int pv_wait_init_signal(void) {
    sigset_t set;
    init_signal_set(&set);
    int sig = 0;
    while (sigwait(&set, &sig) != 0) {
    }
    return sig;
}

int pv_unblock_all_signals(void) {
    sigset_t set;
    sigemptyset(&set);
    return pthread_sigmask(SIG_SETMASK, &set, NULL);
}

int pv_on_ramfs(const char *path) {
    struct statfs fs;
    if (statfs(path, &fs) != 0) return 0;
    return fs.f_type == RAMFS_MAGIC || fs.f_type == TMPFS_MAGIC;
}

uint64_t pv_boottime_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_BOOTTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t pv_monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

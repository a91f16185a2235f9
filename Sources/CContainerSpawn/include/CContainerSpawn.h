// Creates container processes inside the guest: namespaces, root filesystem, identity, exec.
// C because this runs between clone() and execve() in a child of a multithreaded process, where only
// async-signal-safe system calls are allowed (no allocation, no Swift runtime): no fork in Swift code.
#ifndef CCONTAINERSPAWN_H
#define CCONTAINERSPAWN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct pv_mount {
    const char *source;            // absolute guest path (inside the shared directory)
    const char *destination;       // absolute path inside the container
    int readonly;                  // PV_READWRITE, PV_READONLY_RECURSIVE or PV_READONLY_TOP
    unsigned long propagation;     // MS_PRIVATE, MS_SLAVE or MS_SHARED, applied recursively
};

struct pv_rlimit {
    int resource;
    uint64_t soft, hard;
};

struct pv_spawn_config {
    // New container: rootfs is an absolute guest path; it is bind-mounted, pivoted into and given /proc,
    // /dev, /dev/pts, /dev/shm and /sys. Exec: join_pid names the container's init, whose namespaces
    // (mnt, ipc, uts, pid) the new process joins; rootfs is then ignored.
    const char *rootfs;
    pid_t join_pid;
    // The pod's sandbox process (see sandbox_init), 0 if none: a new container joins its IPC and UTS
    // namespaces, and its PID namespace unless new_pid_namespace.
    pid_t sandbox_pid;
    int new_pid_namespace;
    // Start the sandbox process itself instead: new PID, IPC and UTS namespaces, hostname and sysctls set,
    // then it only reaps what is orphaned in its PID namespace, for the life of the pod.
    int sandbox_init;
    // The pod's user namespace (CRI userns mode POD). With sandbox_init the sandbox is made in a new one,
    // uid_map and gid_map ("<inside> <outside> <count>\n") written by the parent; otherwise the process
    // joins the sandbox's (a new container: its mount and PID namespaces are then made inside it, so that
    // it owns them) or join_pid's (an exec), and runs as that namespace's root until it takes its identity.
    int user_namespace;
    const char *uid_map;
    const char *gid_map;
    int readonly_rootfs;
    // The guest's devtmpfs as /dev and a writable /sys: every device *of the guest* (never of the host).
    int privileged;
    const struct pv_mount *mounts;
    size_t mount_count;
    const char *const *masked_paths;     // NULL-terminated; inside the container
    const char *const *readonly_paths;   // NULL-terminated; inside the container
    const char *const *sysctl_files;     // NULL-terminated /proc/sys/… paths, written with sysctl_values
    const char *const *sysctl_values;
    const char *hostname;          // NULL: inherit
    const char *cwd;               // NULL: "/"
    const char *const *argv;       // NULL-terminated; argv[0] is looked up in envp's PATH when it has no '/'
    const char *const *envp;       // NULL-terminated
    uid_t uid;
    gid_t gid;
    const gid_t *groups;
    size_t group_count;
    int no_new_privileges;
    // Capability bit mask (bit n = capability n) applied to every set; ignored unless set_capabilities.
    int set_capabilities;
    uint64_t capabilities;
    const struct pv_rlimit *rlimits;
    size_t rlimit_count;
    // A compiled seccomp BPF program (struct sock_filter[]), loaded just before exec; NULL: unconfined.
    const void *seccomp_filter;
    unsigned short seccomp_instructions;
    int stdio[3];                  // become the child's fds 0, 1, 2
    // A terminal: the child opens one in the container's own /dev/pts (where `tty` and ps look for it),
    // makes it stdio and its controlling terminal, and sends the master over this unix socket. -1: none.
    int console_socket;
    int cgroup_procs_fd;           // the container cgroup's cgroup.procs, joined first; -1: stay
    int start_fd;                  // the child reads one byte from it before exec; -1: exec at once
};

// Starts the child. Returns its pid and, in *status_fd, a pipe on which it reports: setup done (see
// pv_spawn_wait_ready) and, after start, exec success (EOF) or failure. -1 with `error` filled on failure.
pid_t pv_spawn(const struct pv_spawn_config *config, int *status_fd, char *error, size_t error_length);

// Reads the child's report: 0 when it reached `stage` ('R' ready to exec, 'X' exec done), -1 with `error`.
int pv_spawn_wait(int status_fd, char stage, char *error, size_t error_length);

#endif

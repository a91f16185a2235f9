// Thin wrappers over Linux calls that Swift cannot import directly (variadic syscall(),
// sockaddr_vm / sockaddr_un construction, macros) or that must not be spelled twice.
#ifndef CLINUXSUPPORT_H
#define CLINUXSUPPORT_H

#include <stdint.h>
#include <sys/types.h>
// getxattr: overlay whiteouts and opaque directories in image layers.
#include <sys/xattr.h>

// Sockets. All return a file descriptor (close-on-exec) or -1 with errno set.
int pv_unix_connect(const char *path);
int pv_unix_listen(const char *path, int backlog);
int pv_vsock_connect(uint32_t cid, uint32_t port);
int pv_vsock_listen(uint32_t port, int backlog);
// Accepts a vsock connection from the host (CID 2) only: one from anywhere else (a process in the guest,
// over the loopback transport or the guest's own CID) is closed at once, its CID in *refused_cid, and -1
// returned with errno EACCES.
int pv_vsock_accept_host(int fd, uint32_t *refused_cid);
// pipe2(O_CLOEXEC): descriptors never leak into processes the agent starts.
int pv_pipe(int fds[2]);

// Processes we did not spawn (QEMU, daemonized by libvirt): a pidfd turns readable when the process exits.
int pv_pidfd_open(pid_t pid);
int pv_set_child_subreaper(void);
// A daemon of ours (virtiofsd, the vsock backend): stdin /dev/null, stdout and stderr `log`, its own session
// (a terminal's Ctrl-C is for the runtime, which stops it in order), every signal unblocked and at its default:
// a thread of a Swift process blocks most signals, and posix_spawn would hand that mask on, SIGTERM included.
// The pid, or -1 with errno.
pid_t pv_spawn_daemon(const char *path, char *const argv[], int log);

// A descriptor over a unix socket (SCM_RIGHTS): 0, or -1 with errno; the received one (close-on-exec),
// or -1 (errno 0: the peer closed without sending).
int pv_send_fd(int socket, int fd);
int pv_recv_fd(int socket);
int pv_set_window_size(int fd, unsigned short rows, unsigned short columns);

// Network configuration over rtnetlink (netlink.c), in the calling thread's network namespace. Each returns
// 0 or -errno. Addresses are in network byte order, 4 bytes (AF_INET) or 16 (AF_INET6).
// The index of the link carrying this Ethernet address, or -ENODEV.
int pv_link_index_by_mac(const uint8_t mac[6]);
// Renames the link and sets its MAC (NULL: keep; it goes down first, as both require of most drivers), sets
// its MTU (0: keep), brings it up.
int pv_link_set(int ifindex, const char *name, const uint8_t mac[6], uint32_t mtu, int up);
// Adds (or replaces) an address; IPv6 ones skip duplicate address detection and are usable at once.
int pv_addr_add(int ifindex, int family, const uint8_t *address, uint8_t prefix_length);
// Adds (or replaces) a route in the main table: via `gateway`, or on-link when it is NULL; `ifindex` 0 lets
// the kernel choose the link that reaches the gateway.
int pv_route_add(int family, const uint8_t *destination, uint8_t prefix_length, const uint8_t *gateway, int ifindex);
// setns(fd, CLONE_NEWNET): moves the calling thread (only) into the network namespace `fd` refers to;
// 0, or -1 with errno.
int pv_enter_network_namespace(int fd);

// A link as the kernel has it in the network namespace pinned at a path (netlink.c): its MAC and MTU, its
// addresses and the main table's routes through it. `truncated`: there were more than the arrays hold.
#define PV_LINK_MAX_ADDRESSES 32
#define PV_LINK_MAX_ROUTES 64
struct pv_link_address {
    int family;
    uint8_t address[16];
    uint8_t prefix_length;
    uint8_t scope;
};
struct pv_link_route {
    int family;
    uint8_t destination[16];
    uint8_t destination_length;
    uint8_t gateway[16];
    uint8_t has_gateway;
    uint8_t protocol;
};
struct pv_link_state {
    int ifindex;
    uint8_t mac[6];
    uint32_t mtu;
    int truncated;
    int address_count;
    struct pv_link_address addresses[PV_LINK_MAX_ADDRESSES];
    int route_count;
    struct pv_link_route routes[PV_LINK_MAX_ROUTES];
};
int pv_netns_read_link(const char *netns_path, const char *name, struct pv_link_state *out);
// Gives the link `name` in that namespace its MTU (0: keeps it) and brings it up; 0 or -errno.
int pv_netns_link_up(const char *netns_path, const char *name, uint32_t mtu);

// Kernel modules and power.
int pv_finit_module(int fd);
int pv_poweroff(void);

// Filesystems.
int pv_mount(const char *source, const char *target, const char *fstype, unsigned long flags, const char *data);
// mount --make-rshared on an existing mount point.
int pv_make_shared(const char *path);
// Makes a mount and every mount below it read-only (mount_setattr with AT_RECURSIVE; a plain read-only
// remount, which leaves submounts writable, only where the kernel lacks it). Async-signal-safe.
int pv_make_readonly_recursive(const char *path);
// Makes one mount read-only and changes nothing else: mount_setattr leaves its atime, nosuid and nodev
// flags alone, which a remount must repeat (in a user namespace they are locked and a remount without
// them fails). Async-signal-safe.
int pv_make_readonly(const char *path);
// Read-only modes of volumes (a VM's share, a container's mounts): everything below too, or the top mount
// only (its submounts stay writable, as CRI's plain readonly).
enum { PV_READWRITE = 0, PV_READONLY_RECURSIVE = 1, PV_READONLY_TOP = 2 };
// Mount operations in another mount namespace (a pod VM's, which its virtiofsd holds): a forked child joins
// the namespace `ns_fd` and does one of them; a multithreaded process cannot join one itself.
//   PV_NS_BIND: clones the tree at `source` (resolved in this namespace, where it was judged) with what
//     is mounted below it, makes the clone read-only per `readonly` (a PV_* mode; private first, so the
//     change stays on the clone) and, when `userns_fd` is not -1, idmapped with that user namespace's
//     mapping (MOUNT_ATTR_IDMAP: on-disk id n appears as the id n maps to), while it is still detached,
//     and attaches it at `target`.
//   PV_NS_OVERLAY: mounts an overlay with `options` at `target`.
//   PV_NS_DETACH: umount2(MNT_DETACH) of `target`.
// 0, or -1 with errno (the child's).
enum { PV_NS_BIND = 1, PV_NS_OVERLAY = 2, PV_NS_DETACH = 3 };
int pv_mount_in_namespace(int ns_fd, int operation, const char *source, const char *target, const char *options, int readonly,
                          int userns_fd);

// User namespaces. Writes the lines ("<inside> <outside> <count>\n") of /proc/<pid>/uid_map and gid_map; a
// writer with CAP_SETGID leaves setgroups allowed. 0, or -1 with errno.
int pv_write_id_maps(pid_t pid, const char *uid_map, const char *gid_map);
// A descriptor (close-on-exec) of a new user namespace with these maps, for MOUNT_ATTR_IDMAP; the process
// that made it is gone when this returns. -1 with errno.
int pv_user_namespace(const char *uid_map, const char *gid_map);
// mount(MS_MOVE): moves a mount (with its submounts) to another place.
int pv_move_mount(const char *source, const char *target);
// umount2(MNT_DETACH): detaches the mount and everything below it, even while busy.
int pv_umount_detach(const char *path);
unsigned long pv_ms_nosuid(void);
unsigned long pv_ms_private(void);
unsigned long pv_ms_slave(void);
unsigned long pv_ms_shared(void);
unsigned long pv_ms_nodev(void);
unsigned long pv_ms_noexec(void);

// Network namespaces pinned by a bind mount (netns.c). `pv_netns_prepare_dir` creates the pin directory and
// makes it a shared mount point, as `ip netns add` does; `pv_netns_create` creates a network namespace and
// bind-mounts it on `path` (an existing file) without moving any thread of the caller. 0, or -1 with errno.
int pv_netns_prepare_dir(const char *dir);
int pv_netns_create(const char *path);
// 1 when `path` is an nsfs file (a namespace, pinned or under /proc), 0 when it is another file, -1 with errno.
int pv_is_nsfs(const char *path);

// Signals: block the set PID 1 handles itself (so every later thread inherits the mask), then wait for one.
int pv_block_init_signals(void);
int pv_wait_init_signal(void);
int pv_unblock_all_signals(void);

// 1 when `path` is on the boot's initramfs (ramfs or tmpfs), 0 otherwise or on error.
int pv_on_ramfs(const char *path);
// Seconds since boot including suspend (CLOCK_BOOTTIME), in milliseconds.
uint64_t pv_boottime_ms(void);
// Monotonic clock in nanoseconds.
uint64_t pv_monotonic_ns(void);

#endif

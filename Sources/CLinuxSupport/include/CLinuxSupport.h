// Thin wrappers over Linux calls that Swift cannot import directly (variadic syscall(),
// sockaddr_vm / sockaddr_un construction, macros) or that must not be spelled twice.
#ifndef CLINUXSUPPORT_H
#define CLINUXSUPPORT_H

#include <stdint.h>
#include <sys/types.h>

// Sockets. All return a file descriptor (close-on-exec) or -1 with errno set.
int pv_unix_connect(const char *path);
int pv_unix_listen(const char *path, int backlog);
int pv_vsock_connect(uint32_t cid, uint32_t port);
int pv_vsock_listen(uint32_t port, int backlog);
int pv_accept(int fd);

// Processes we did not spawn (QEMU, daemonized by libvirt): a pidfd turns readable when the process exits.
int pv_pidfd_open(pid_t pid);
// Reaps the process behind a pidfd if it is our child (we are a subreaper); 0, or -1 with errno (ECHILD otherwise).
int pv_pidfd_reap(int pidfd);
int pv_set_child_subreaper(void);

// Kernel modules and power.
int pv_finit_module(int fd);
int pv_poweroff(void);

// Filesystems.
int pv_mount(const char *source, const char *target, const char *fstype, unsigned long flags, const char *data);
unsigned long pv_ms_nosuid(void);
unsigned long pv_ms_nodev(void);
unsigned long pv_ms_noexec(void);

// Signals: block the set PID 1 handles itself (so every later thread inherits the mask), then wait for one.
int pv_block_init_signals(void);
int pv_wait_init_signal(void);
int pv_unblock_all_signals(void);

// Seconds since boot including suspend (CLOCK_BOOTTIME), in milliseconds.
uint64_t pv_boottime_ms(void);
// Monotonic clock in nanoseconds.
uint64_t pv_monotonic_ns(void);

#endif

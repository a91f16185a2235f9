#include <seccomp.h>
#include <linux/memfd.h>
#include <linux/sched.h>
#include <sys/syscall.h>
#include <unistd.h>

// Function-like macros Swift cannot import.
static inline uint32_t pv_scmp_act_errno(uint16_t e) { return SCMP_ACT_ERRNO(e); }
static inline uint32_t pv_scmp_act_trace(uint16_t msg) { return SCMP_ACT_TRACE(msg); }

// seccomp_export_bpf writes to a file descriptor (libseccomp 2.5 has no export to memory); glibc declares
// memfd_create only under _GNU_SOURCE.
static inline int pv_memfd(const char *name) { return (int)syscall(SYS_memfd_create, name, MFD_CLOEXEC); }

#include <archive.h>
#include <archive_entry.h>

// Also what layer unpacking needs beside libarchive that Swift's Glibc module does not import.
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

// unshare(CLONE_FS): the calling thread gets its own working directory. Glibc declares unshare() only
// under _GNU_SOURCE, which its Swift module is not built with.
static inline int podvisor_unshare_fs(void) { return (int)syscall(SYS_unshare, 0x00000200 /* CLONE_FS */); }

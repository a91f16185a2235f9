#define _GNU_SOURCE
#include "CLinuxSupport.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#define PV_NSFS_MAGIC 0x6e736673

int pv_netns_prepare_dir(const char *dir) {
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) return -1;
    // As `ip netns add`: a shared mount point, so pins made later propagate to mount namespaces that copied it
    // (and unmounts too, so no copy keeps a namespace alive); bind it onto itself only when it is none yet.
    if (pv_make_shared(dir) == 0) return 0;
    if (errno != EINVAL) return -1;
    if (mount(dir, dir, "none", MS_BIND | MS_REC, NULL) != 0) return -1;
    return pv_make_shared(dir);
}

struct netns_job {
    const char *path;
    int error;
};

static void *netns_thread(void *argument) {
    struct netns_job *job = argument;
    if (unshare(CLONE_NEWNET) != 0 || mount("/proc/thread-self/ns/net", job->path, "none", MS_BIND, NULL) != 0) {
        job->error = errno;
    }
    return NULL;
}

int pv_netns_create(const char *path) {
    // unshare(CLONE_NEWNET) moves only the calling thread: a thread of its own takes the new namespace, pins it
    // and ends, so no thread of the caller (nor of Swift's cooperative pool) ever runs in it.
    struct netns_job job = {path, 0};
    pthread_t thread;
    int rc = pthread_create(&thread, NULL, netns_thread, &job);
    if (rc != 0) {
        errno = rc;
        return -1;
    }
    pthread_join(thread, NULL);
    if (job.error != 0) {
        errno = job.error;
        return -1;
    }
    return 0;
}

int pv_is_nsfs(const char *path) {
    struct statfs info;
    if (statfs(path, &info) != 0) return -1;
    return info.f_type == PV_NSFS_MAGIC;
}

// A pod's infrastructure process for the tests' containerd (what Kubernetes' pause image runs): holds the
// pod's namespaces, exits 0 on SIGINT/SIGTERM, reaps the zombies of a shared PID namespace. Built static by
// make-pause-image.sh.
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void quit(int sig) { (void)sig; _exit(0); }

static void reap(int sig) {
    (void)sig;
    while (waitpid(-1, NULL, WNOHANG) > 0) {}
}

int main(void) {
    struct sigaction quitting = {.sa_handler = quit};
    struct sigaction reaping = {.sa_handler = reap, .sa_flags = SA_NOCLDSTOP | SA_RESTART};
    if (sigaction(SIGINT, &quitting, NULL) || sigaction(SIGTERM, &quitting, NULL) || sigaction(SIGCHLD, &reaping, NULL))
        return 1;
    for (;;) pause();
}

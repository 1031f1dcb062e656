/*
 * The sandbox ("pause") process of the pods karp's tests run under containerd: it holds the pod's
 * namespaces open, reaps the orphans its PID namespace hands it, and exits on SIGINT or SIGTERM.
 * Test infrastructure only (the real one cannot be pulled here); built with gcc -static by pause.ts.
 */
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>

int main(void) {
	sigset_t wanted;
	sigemptyset(&wanted);
	sigaddset(&wanted, SIGINT);
	sigaddset(&wanted, SIGTERM);
	sigaddset(&wanted, SIGCHLD);
	/* Blocked signals stay pending even for PID 1 of a namespace, which would drop unhandled ones. */
	if (sigprocmask(SIG_BLOCK, &wanted, NULL) != 0) {
		perror("pause: sigprocmask");
		return 1;
	}
	for (;;) {
		int sig;
		if (sigwait(&wanted, &sig) != 0) continue;
		if (sig != SIGCHLD) return 0;
		while (waitpid(-1, NULL, WNOHANG) > 0) {
		}
	}
}

/*
 * karp-node-lock: a lock for one network namespace (one node, for host-network pods), held for as long as
 * the process that started it lives.
 *
 *   karp-node-lock --name NAME --parent PID
 *
 * Binds an AF_UNIX socket in the abstract namespace under NAME (e.g. karp-agent/vhid/42). Abstract names
 * belong to the network namespace, so every host-network pod of a node sees the same ones, and the kernel
 * frees a name as soon as the last descriptor of its socket closes: when this process ends, however it ends.
 * Once bound it prints "held" on stdout, closes its standard descriptors and waits. It ends with its
 * parent, which must be PID (prctl PR_SET_PDEATHSIG, SIGKILL: also when the parent is SIGKILLed), so the
 * lock lives exactly as long as the process that took it.
 * Exit codes: 2 usage, 3 NAME is held by another process (the name is bound), 4 PID is not its parent
 * (already gone), 5 the socket could not be made.
 */
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static const char usage[] = "usage: karp-node-lock --name NAME --parent PID";

static _Noreturn void fail(int code, const char *what)
{
	fprintf(stderr, "karp-node-lock: %s\n", what);
	exit(code);
}

int main(int argc, char **argv)
{
	const char *name = NULL, *parent = NULL;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--name")) name = argv[i + 1];
		else if (!strcmp(argv[i], "--parent")) parent = argv[i + 1];
		else fail(2, usage);
	}
	if (argc != 5 || !name || !parent) fail(2, usage);
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	size_t len = strlen(name);
	/* The abstract name: a NUL, then NAME (not NUL-terminated; its length is the address length). */
	if (len == 0 || len > sizeof addr.sun_path - 1) fail(2, "NAME must be 1-107 bytes");
	char *end;
	long ppid = strtol(parent, &end, 10);
	/* 1 too: in a container the agent's shell is the pid namespace's first process. */
	if (*parent == '\0' || *end != '\0' || ppid < 1) fail(2, "PID must be a process id");

	/* Before anything is held: from here on a parent that dies takes this process with it. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) fail(5, "prctl(PR_SET_PDEATHSIG) failed");
	if (getppid() != (pid_t)ppid) fail(4, "the parent PID is not this process's parent (it has exited)");

	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0) fail(5, "cannot make an AF_UNIX socket");
	memcpy(addr.sun_path + 1, name, len);
	if (bind(s, (struct sockaddr *)&addr, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + len)) != 0) {
		if (errno == EADDRINUSE) fail(3, "the name is held by another process");
		fail(5, "cannot bind the name");
	}
	if (printf("held\n") < 0 || fflush(stdout) != 0) fail(5, "cannot write to stdout");
	close(STDIN_FILENO);
	close(STDOUT_FILENO);
	close(STDERR_FILENO);
	for (;;) pause();
}

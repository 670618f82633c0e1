/* rawfork.c - holds MB, then forks with the raw syscall (no atfork handlers,
 * so the child keeps the agent's connection to the manager) and exits at
 * once; the child lives on for SECONDS touching nothing. The manager must
 * still notice the parent's exit: through its pidfd, not the connection. */
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

int main(int argc, char **argv)
{
	size_t len = (size_t)(argc > 1 ? atol(argv[1]) : 16) << 20;
	double secs = argc > 2 ? atof(argv[2]) : 3.0;
	unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		DIE("mmap failed");
	fill(p, len, 3);
	if (verify(p, len, 3) >= 0)
		DIE("memory changed");
	printf("holding %zu MB, forking\n", len >> 20);
	fflush(stdout);
	long pid = syscall(SYS_fork);
	if (pid == 0) {
		/* Only raw syscalls here: the child has no agent of its own. */
		struct timespec ts = {(time_t)secs, (long)((secs - (time_t)secs) * 1e9)};
		syscall(SYS_nanosleep, &ts, NULL);
		syscall(SYS_exit, 0);
	}
	return pid > 0 ? 0 : 1;
}

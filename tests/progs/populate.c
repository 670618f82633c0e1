/* populate.c - a mapping filled inside mmap (MAP_POPULATE, MAP_LOCKED), as stress-ng's mmap stressor makes them. */
/*
 * Usage: prog_populate MB [lock]
 *
 * Maps MB MiB with MAP_POPULATE (and MAP_LOCKED with "lock"), writes a
 * pattern into every page, checks it, and prints "populate ok: locked KB"
 * with the process's VmLck. The kernel fills such a mapping inside the
 * mmap call, before the agent can register it: the agent used to find the
 * pages present and charge them all at once, past the limit, with nothing
 * evicted first (test_run.sh "populate").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "common.h"
#include "rss.h"

int main(int argc, char **argv)
{
	if (argc < 2)
		DIE("usage: prog_populate MB [lock]");
	size_t len = strtoul(argv[1], NULL, 10) << 20;
	int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE;
	if (argc > 2 && strcmp(argv[2], "lock") == 0)
		flags |= MAP_LOCKED;
	unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, flags, -1, 0);
	if (p == MAP_FAILED)
		DIE("mmap: %m");
	fill(p, len, 7);
	long bad = verify(p, len, 7);
	if (bad >= 0)
		DIE("byte %ld wrong", bad);
	printf("populate ok: locked %ld\n", status_kb("VmLck:"));
	return 0;
}

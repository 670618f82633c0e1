/* agent.c - the agent's start-up: the global state, the log, the constructor and the atfork hooks. */
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "account.h"
#include "agent.h"
#include "options.h"
#include "victim.h"
#include "os.h"
#include "proto.h"
#include "size.h"
#include "trace.h"
#include "start.h"

/*
 * Loaded with LD_PRELOAD by `memgrp run` (and inherited by children through
 * the environment). Start-up, in the constructor, before main():
 *   1. connect to the manager (MEMGRP_SOCKET), say HELLO, receive a slot
 *      and the group's segment (a memfd) and map it;
 *   2. open a userfaultfd, reserve the arena, start the handler thread on
 *      a stack of its own; the handler registers the address space's
 *      anonymous regions and charges the pages already present;
 *   3. from then on faults are charged and resolved by the handler, and
 *      new memory is caught by interpose.c.
 * fork: with UFFD_EVENT_FORK the child keeps our registration on a uffd the
 * kernel hands to our handler, which lets the child keep its copy of our
 * store (or, when that copy may be torn, copies into the child every page
 * it holds evicted) and then lets go (fork.c, forkchild.c). The child, in an atfork
 * handler, waits for that and starts over with steps 1-2: new slot, new
 * userfaultfd, new handler, a fresh scan that charges what the child has
 * and marks what its kept store holds as evicted.
 */

void mgi_agent_log(const char *fmt, ...)
{
	char line[512];
	int n = snprintf(line, sizeof(line), "memgrp[%d]: ", (int)getpid());
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	strcat(line, "\n");
	mgi_write_str(STDERR_FILENO, line);
}

static void fork_prepare(void)
{
	if (mgi_agent_deferred())
		mgi_lazyfork_prepare();
	if (atomic_load(&mgi_agent_active))
		mgi_fork_prepare();
}

static void fork_parent(void)
{
	if (atomic_load(&mgi_agent_active))
		mgi_fork_parent();
}

__attribute__((constructor)) static void mgi_agent_init(void)
{
	/* Resolve the allocator's next definitions before any thread exists. */
	free(malloc(1));
	/* glibc's MALLOC_PERTURB_ makes malloc write whole blocks before they
	 * reach us, i.e. before the mapping under them is registered: memory
	 * the limit could not stop. Accounting beats that debugging aid. */
	mallopt(M_PERTURB, 0);
	mgi_agent_start();
	pthread_atfork(fork_prepare, fork_parent, mgi_agent_child_after_fork);
}

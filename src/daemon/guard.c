/* guard.c - the manager survives a truncated accounting file (see guard.h for why it is sound). */
#include "guard.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Written by the manager's thread, read by the handler on any thread:
 * atomics. A slot is live while start != 0; end is set before start. */
static struct watched {
	_Atomic uintptr_t start, end;
	atomic_bool hit;
} watched[MGI_GUARD_MAX];

static struct sigaction previous;
static atomic_bool installed;
static uintptr_t page_mask; /* set before the handler is: sysconf is not for handlers */

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	uintptr_t a = (uintptr_t)si->si_addr;
	uintptr_t page = a & ~page_mask;

	for (unsigned i = 0; i < MGI_GUARD_MAX; i++) {
		uintptr_t s = atomic_load(&watched[i].start), e = atomic_load(&watched[i].end);
		if (!s || a < s || a >= e)
			continue;
		/* The cut is a tail of the file: everything from here on. */
		if (mmap((void *)page, e - page, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED)
			break; /* the read faults again: no worse than without the guard */
		atomic_store(&watched[i].hit, true);
		return;
	}
	if ((previous.sa_flags & SA_SIGINFO) && previous.sa_sigaction) {
		previous.sa_sigaction(sig, si, uc);
		return;
	}
	if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN) {
		previous.sa_handler(sig);
		return;
	}
	/* Not ours: die of it as before (the access runs again, unhandled). */
	signal(SIGBUS, SIG_DFL);
}

int mgi_guard_install(void)
{
	struct sigaction sa;

	if (atomic_exchange(&installed, true))
		return 0;
	page_mask = (uintptr_t)sysconf(_SC_PAGESIZE) - 1;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigbus;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGBUS, &sa, &previous) != 0) {
		atomic_store(&installed, false);
		return -errno;
	}
	return 0;
}

int mgi_guard_watch(void *start, size_t len)
{
	for (unsigned i = 0; i < MGI_GUARD_MAX; i++) {
		if (atomic_load(&watched[i].start))
			continue;
		atomic_store(&watched[i].hit, false);
		atomic_store(&watched[i].end, (uintptr_t)start + len);
		atomic_store(&watched[i].start, (uintptr_t)start);
		return 0;
	}
	return -ENOSPC;
}

void mgi_guard_forget(void *start)
{
	for (unsigned i = 0; i < MGI_GUARD_MAX; i++)
		if (atomic_load(&watched[i].start) == (uintptr_t)start) {
			atomic_store(&watched[i].start, 0);
			atomic_store(&watched[i].hit, false);
		}
}

bool mgi_guard_take(void *start)
{
	for (unsigned i = 0; i < MGI_GUARD_MAX; i++)
		if (atomic_load(&watched[i].start) == (uintptr_t)start)
			return atomic_exchange(&watched[i].hit, false);
	return false;
}

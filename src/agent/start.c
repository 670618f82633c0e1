/* start.c - the agent's start: deferred (charged at size) or full (arena, threads, scan), and again in a forked child. */
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
#include "fault.h"
#include "inject.h"
#include "options.h"
#include "victim.h"
#include "os.h"
#include "proto.h"
#include "size.h"
#include "thp.h"
#include "trace.h"
#include "start.h"

/* What a start sets up and a forked child's start sets up anew. */
_Atomic bool mgi_agent_active;
mgi_arena_t mgi_arena;
int mgi_maps_fd = -1;

/* The deferred start ("A start that costs nothing", docs/design.md):
 * joined, what the process maps charged at its size, no userfaultfd and
 * no agent thread until it outgrows MEMGRP_START_ALLOWANCE. */
static bool lazy;
static uint64_t lazy_pages;     /* charged at size */
static uint64_t lazy_cap_pages; /* MEMGRP_START_ALLOWANCE */
static mgi_range_t lazy_known[MGI_LAZY_RANGES_MAX]; /* charged, disjoint */
static unsigned nlazy;


/*
 * A start that costs nothing (issue 17, part 2). Most processes a shell or
 * a build runs are small and short: for them the userfaultfd, three
 * threads and the walk that registers every region cost more than their
 * whole run (measured in docs/benchmarks.md, "Process start"), and a
 * process with a second thread takes glibc's multi-threaded paths for
 * ever. So a process first only joins: every private anonymous writable
 * region it has is charged at its size (an upper bound of what it can
 * hold there: a page the kernel faults in without us is already paid for),
 * all or nothing, within MEMGRP_START_ALLOWANCE (4 MiB by default; 0:
 * never). Nothing is registered and no thread runs. Memory it adds is
 * seen where interpose.c sees it (mmap, brk, mprotect, the malloc
 * family's blocks) and charged at its size the same way; a new thread,
 * a region that does not fit in the allowance or a charge the group
 * refuses start the agent for good (mgi_agent_start_now): the charge at
 * size is given back and the ordinary start follows (userfaultfd, threads,
 * a scan that registers everything and charges what is present). So the
 * limit holds from the first page: every byte the process can touch is
 * charged before it can touch it. The one exception is the main thread's
 * stack growing past the extent it had at start (no call to see it): that
 * growth is bounded by the kernel backstop as all memory the agent does
 * not see (docs/design.md, "Kernel backstop").
 */
#define LAZY_DEFAULT_BYTES (4UL << 20)

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* Whether pages more charged at size leave every level of the path (and a
 * nested group's grant) at most half full. Charged at size, a process
 * holds more than it uses (its heap's and stack's untouched pages): many
 * small processes in a group near its limit would crowd out the memory
 * in use (measured: 100 `sleep`s under -m 32M, each charged 636 KiB at
 * size against 150 KiB present, and the group killed them at its limit).
 * Past half, processes start as before, charged for what they hold. */
static bool lazy_room(uint64_t pages)
{
	const mgi_counter_path_t *path = mgi_account_path();

	for (unsigned i = 0; i < path->depth; i++)
		if (mgi_counter_read(path->level[i]) + pages > mgi_counter_read_max(path->limit[i]) / 2)
			return false;
	if (path->grant && path->depth &&
	    mgi_counter_read(path->level[0]) + pages >
		    atomic_load_explicit(path->grant, memory_order_relaxed) / 2)
		return false;
	return true;
}

/* Pages of [s, e) not charged yet; charges them and records the range.
 * False (nothing changed) when they do not fit or the group refuses. */
static bool lazy_cover(uintptr_t s, uintptr_t e)
{
	uint64_t add = (e - s) / MGI_PAGE_SIZE;

	for (unsigned i = 0; i < nlazy; i++) {
		const mgi_range_t *r = &lazy_known[i];
		uintptr_t lo = s > r->start ? s : r->start, hi = e < r->end ? e : r->end;
		if (lo < hi)
			add -= (hi - lo) / MGI_PAGE_SIZE;
	}
	if (!add)
		return true;
	if (lazy_pages + add > lazy_cap_pages ||
	    nlazy >= MGI_LAZY_RANGES_MAX || !lazy_room(add) || !mgi_charge(add, NULL))
		return false;
	lazy_pages += add;
	/* kept disjoint: the ranges [s, e) meets or touches merge into it */
	for (unsigned i = 0; i < nlazy;) {
		mgi_range_t *r = &lazy_known[i];
		if (r->start <= e && s <= r->end) {
			s = s < r->start ? s : r->start;
			e = e > r->end ? e : r->end;
			*r = lazy_known[--nlazy];
		} else {
			i++;
		}
	}
	lazy_known[nlazy++] = (mgi_range_t){s, e};
	return true;
}

/* Charges the regions the process has at start, at their size: true if
 * they all fit (the process then runs in its deferred start). */
static bool start_lazy(void)
{
	const char *v = mgi_env_str(MGI_ENV_START_ALLOWANCE);
	uint64_t bytes = LAZY_DEFAULT_BYTES;
	uintptr_t addr = 0;
	char err[128];
	mgi_vma_t vma;

	if (v && mgi_size_parse(v, &bytes, err, sizeof(err)) != 0) {
		mgi_agent_log("MEMGRP_START_ALLOWANCE=%s: %s; using 4M", v, err);
		bytes = LAZY_DEFAULT_BYTES;
	}
	lazy_cap_pages = bytes / MGI_PAGE_SIZE;
	lazy_pages = 0;
	nlazy = 0;
	if (!lazy_cap_pages)
		return false;
	/* The same regions as the full start's scan (learn.c), without
	 * the bss of the objects the handler runs: not the application's,
	 * and not counted by the full start either. */
	mgi_exclude_objects();
	while (mgi_vma_query(mgi_maps_fd, addr, &vma) == 0 && vma.end > addr) {
		addr = vma.end;
		if (!mgi_vma_is_anon_private(&vma) || !(vma.flags & MGI_VMA_WRITE) ||
		    vma.end - vma.start > MGI_REGION_MAX_BYTES || mgi_agent_excluded(vma.start, vma.end))
			continue;
		if (vma.name[0] == '[' && strcmp(vma.name, "[heap]") != 0 &&
		    strcmp(vma.name, "[stack]") != 0)
			continue;
		if (!lazy_cover(vma.start, vma.end)) {
			mgi_uncharge(lazy_pages);
			lazy_pages = 0;
			nlazy = 0;
			return false;
		}
	}
	lazy = true;
	return true;
}

static void start_full(void);

bool mgi_agent_deferred(void)
{
	return lazy;
}

void mgi_agent_lazy_grow(uintptr_t start, uintptr_t end)
{
	if (!lazy || start >= end || end - start > MGI_REGION_MAX_BYTES ||
	    lazy_cover(start, end))
		return;
	mgi_agent_start_now();
}

void mgi_agent_start_now(void)
{
	if (!lazy)
		return;
	/* Given back first, then the scan charges what is present: for
	 * those few hundred microseconds the process holds pages the group
	 * does not count, rather than counting them twice (a spurious
	 * reclaim, or a refusal, at the limit). */
	lazy = false;
	mgi_lazyfork_give_back(-1);
	mgi_uncharge(lazy_pages);
	lazy_pages = 0;
	nlazy = 0;
	/* The program may have closed the userfaultfd opened at start (one
	 * that tampers: tests/test_backstop.sh 'unreg'): then it goes on
	 * joined but unmanaged, bounded by the backstop, as when it closes
	 * the userfaultfd of a handler that runs. */
	char fdpath[32], target[32];
	ssize_t n;
	snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%d", mgi_handler.uffd);
	n = readlink(fdpath, target, sizeof(target) - 1);
	if (n <= 0 || (target[n] = '\0', !strstr(target, "userfaultfd"))) {
		mgi_agent_log("the userfaultfd opened at start is gone: this process is not managed");
		return;
	}
	start_full();
}

void mgi_agent_start(void)
{
	const char *sock = mgi_env_str(MGI_ENV_SOCKET);
	char why[256];
	int rc;

	mgi_join.pid = getpid();
	lazy = false;
	if (!sock) {
		mgi_agent_log("MEMGRP_SOCKET is not set: this process is not managed "
			      "(start it with `memgrp run`)");
		return;
	}
	if (strlen(sock) < sizeof(mgi_join.sockpath))
		strcpy(mgi_join.sockpath, sock);
	rc = mgi_join_group(sock);
	if (rc != 0) {
		mgi_agent_log("cannot join the group's manager at %s (%s): this process is "
			      "not managed", sock, strerror(-rc));
		return;
	}
	mgi_maps_fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	/* A forked child's uffd, handed over by its parent's agent
	 * (forkchild.c): its address space is registered on it already. */
	int handed_uffd = mgi_fork_take_uffd();
	bool handed = handed_uffd >= 0;
	if (handed) {
		mgi_handler.uffd = handed_uffd; /* negotiated by our parent: the same features */
	} else {
		/* Opened now even when its use is deferred: the process may
		 * drop its privileges before it needs one (measured:
		 * tests/test_security.sh 'mixed', a process that setuid()s to
		 * a user and then grows was left unmanaged). Two system calls
		 * as root. */
		mgi_handler.uffd = mgi_uffd_open(&mgi_handler.fork_events, mgi_join_features, why,
					       sizeof(why));
	}
	if (mgi_maps_fd < 0 || mgi_handler.uffd < 0) {
		mgi_agent_log("%s: this process is not managed",
			      mgi_handler.uffd < 0 ? why : "cannot open /proc/self/maps");
		close(mgi_join.conn);
		mgi_join.conn = -1;
		return;
	}
	/* A child that kept its parent's store has evicted pages registered
	 * on the handed uffd: only the full start's handler can serve them
	 * (and stop the early fault server). */
	if (!handed && start_lazy())
		return;
	start_full();
}

/* A deferred process's child that took its parent's spare slot
 * (lazyfork.c): its own /proc/self/maps and userfaultfd, then the
 * parent's table of what it charged at size (the same address space),
 * charged into the child's slot; if that does not fit, the full start. */
static void child_start_lazy(void)
{
	char why[256];

	close_fd(&mgi_maps_fd);
	close_fd(&mgi_handler.uffd); /* the parent's */
	mgi_maps_fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	mgi_handler.uffd = mgi_uffd_open(&mgi_handler.fork_events, mgi_join_features, why, sizeof(why));
	if (mgi_maps_fd < 0 || mgi_handler.uffd < 0) {
		mgi_agent_log("%s: this process is not managed",
			      mgi_handler.uffd < 0 ? why : "cannot open /proc/self/maps");
		close_fd(&mgi_join.conn); /* the manager releases the slot */
		return;
	}
	if (lazy_room(lazy_pages) && mgi_charge(lazy_pages, NULL)) {
		lazy = true;
		return;
	}
	lazy_pages = 0;
	nlazy = 0;
	start_full();
}

/* The rest of the start: arena, threads, the scan. */
static void start_full(void)
{
	int rc;
	if (mgi_arena_init(&mgi_arena, MGI_ARENA_BYTES) != 0)
		goto nomem;
	mgi_registry_init(&mgi_reg,
			  (mgi_allocator_t){(void *(*)(void *, size_t))mgi_arena_alloc,
					    (void (*)(void *, void *, size_t))mgi_arena_free,
					    &mgi_arena});
	if (mgi_handler_init(&mgi_arena) != 0 || mgi_watchdog_init(&mgi_arena) != 0)
		goto nomem;
	mgi_inject_init();
	mgi_exclude_objects();
	mgi_exclude_handler_data();
	if (mgi_request_init() != 0 || mgi_handover_init() != 0 || mgi_est_init() != 0)
		goto nomem;
	mgi_vrange_child_start(); /* (a forked child: the parent's marks) */
	mgi_trace_init();
	mgi_evict_init(); /* before the scan: its ranges are the agent's own */
	mgi_handler_guards_reset();
	/* The watchdog, like the releaser, starts before the handler's scan
	 * registers anything: its thread start-up (library code) could
	 * otherwise fault on managed memory at the limit, and in a forked
	 * child we wait for it (measured under ASan: children stuck there,
	 * the group killed at its limit). It idles until `active`. */
	mgi_watchdog_start();
	mgi_thp_init(); /* its worker, like the watchdog, before the scan */
	rc = mgi_handler_start();
	if (rc != 0) {
		mgi_agent_log("cannot start the fault handler: %s", strerror(-rc));
		goto fail;
	}
	mgi_creds_init();
	atomic_store_explicit(&mgi_agent_active, true, memory_order_release);
	return;
nomem:
	mgi_agent_log("out of memory while starting: this process is not managed");
fail:
	/* Closing the connection tells the manager to release our slot. */
	if (mgi_join.conn >= 0)
		close(mgi_join.conn);
	mgi_join.conn = -1;
}


/* In the child of a fork: everything the parent's handler owned is a stale
 * copy (and may have been mid-update), so start over from scratch. */
void mgi_agent_child_after_fork(void)
{
	if (lazy) {
		/* The parent was in its deferred start: nothing of the agent
		 * runs, so nothing is stale but the connection and slot, which
		 * are the parent's: the child joins on its own (and starts
		 * deferred again if it fits). Decided on the parent's state:
		 * the agent_start below may make this child deferred too. */
		lazy = false;
		if (mgi_lazyfork_child() == 0) {
			child_start_lazy();
			return;
		}
		mgi_join_child_reset();
		close_fd(&mgi_maps_fd);
		close_fd(&mgi_handler.uffd); /* the parent's: ours is opened anew */
		mgi_agent_start();
		return;
	}
	if (!atomic_load(&mgi_agent_active))
		return;
	atomic_store(&mgi_agent_active, false);
	mgi_agent_child_resets(); /* every module's, in order (childreset.c) */
	mgi_agent_start();
}

/* childreset.c - a forked child's resets: every module's copy of its parent's state dropped, in one ordered list. */
#include <stdatomic.h>
#include <unistd.h>

#include "account.h"
#include "agent.h"
#include "cow.h"
#include "fault.h"
#include "pageout.h"
#include "start.h"

/*
 * In the child of a fork, every module's file-scope state is a copy of the
 * parent's, taken while the parent's threads (the handler among them) may
 * have been mid-update. Each module that keeps such state has a
 * mgi_*_child_reset in its own file, listed below in the order they run;
 * a field a reset forgets is to be seen in the module that owns it.
 *
 * Why this order:
 *  1. fork.c, forkchild.c first: the child waits until its parent's agent
 *     has let go of its memory, and, when the parent hands over the uffd
 *     with the store, starts the early fault server, which takes the
 *     staged pages before the staging area (evict.c) is forgotten. Until
 *     then nothing that may touch evicted memory runs.
 *  2. exclude.c, swapfile.c, releaser.c, evict.c: the parent's reclaim
 *     ranges unmapped but for a kept store and its file meta (forkchild.c
 *     says which: they read its hand-over), then the eviction state
 *     forgotten (the clock kept with the store); cow.c's owed pages and
 *     pagemap fd (the parent's), this process marked a child.
 *  3. The parent's uffd (handler.c), connection and slot (join.c), the
 *     requests' pipe (request.c), /proc/self/maps (start.c).
 *  4. vrange.c saves its marks out of the arena before the arena goes
 *     (the start that follows takes them back: mgi_vrange_child_start).
 *  5. What lived in the arena or referred to the parent's threads: learn,
 *     handler, parked faults, room, account, the agent's thread count.
 *
 * Not on the list, and why:
 *  - re-initialised by the start that follows (start.c start_full):
 *    estimate.c (mgi_est_init), guards.c (mgi_handler_guards_reset),
 *    handover.c (mgi_handover_init), inject.c (mgi_inject_init), trace.c
 *    (mgi_trace_init unmaps the parent's ring), thp.c (mgi_thp_init),
 *    watchdog.c (mgi_watchdog_init), creds.c (mgi_creds_init: the wrapped
 *    signal handler survives fork and is seen as ours);
 *  - inherited on purpose, each said at its state: estimate_admit.c,
 *    fault.c (last_fault_pages), interpose.c, interpose_malloc.c,
 *    lazyfork.c, restore.c, thread.c (mgi_agent_attr);
 *  - a deferred parent (start.c, `lazy`) ran none of these modules: its
 *    child only drops the connection, slot and the two fds (start.c
 *    mgi_agent_child_after_fork), then starts on its own.
 */

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* handler.c's uffd: the parent's (a handed one replaces it at the start). */
static void handler_uffd_close(void)
{
	close_fd(&mgi_handler.uffd);
}

/* start.c's /proc/self/maps: read through the parent's open file. */
static void maps_close(void)
{
	close_fd(&mgi_maps_fd);
}

/* The parent's arena (registry, handler stack) is of no use here;
 * nothing in it is registered in the child. */
static void arena_drop(void)
{
	mgi_arena_destroy(&mgi_arena);
}

/* thread.c: the parent's threads are not here. */
static void threads_forget(void)
{
	atomic_store(&mgi_agent_threads, 0);
}

static void (*const child_resets[])(void) = {
	mgi_fork_close_inflight, /* fork.c: a sibling's uffd held as we forked */
	mgi_fork_child_start,    /* forkchild.c: the parent lets go; the kept store */
	mgi_exclude_child_reset, /* exclude.c */
	mgi_swapfile_child_reset, /* swapfile.c */
	mgi_releaser_child_reset, /* releaser.c */
	mgi_evict_child_reset,   /* evict.c */
	mgi_cow_child_start,     /* cow.c: frames shared with the parent, charged once */
	handler_uffd_close,      /* handler.c */
	mgi_join_child_reset,    /* join.c */
	mgi_request_child_reset, /* request.c */
	maps_close,              /* start.c */
	mgi_vrange_child_save,   /* vrange.c: before the arena goes */
	arena_drop,              /* arena.c */
	mgi_learn_child_reset,   /* learn.c */
	mgi_handler_child_reset, /* handler.c */
	mgi_fault_forget_parked, /* fault.c */
	mgi_room_child_reset,    /* room.c */
	mgi_account_child_reset, /* account.c */
	threads_forget,          /* thread.c */
};

void mgi_agent_child_resets(void)
{
	for (size_t i = 0; i < sizeof(child_resets) / sizeof(child_resets[0]); i++)
		child_resets[i]();
}

/* pageout.h - what eviction, restore, the releaser, the write-back file and fork share inside the agent. */
#ifndef MGI_AGENT_PAGEOUT_H
#define MGI_AGENT_PAGEOUT_H

#include "agent.h"

/* All run by the handler thread, except where said. The public entry
 * points of these modules are in agent.h; these are the calls they make
 * into each other. */

/*
 * The state they share, owned by evict.c (set up by mgi_evict_init, reset
 * in a forked child by mgi_evict_child_reset): a plain struct, read on the
 * fault path (restore) as a global's fields are.
 */
struct mgi_pageout {
	bool can_evict;          /* set up, and fork-safe */
	bool evicting;           /* inside mgi_evict: faults do not reclaim */
	const char *no_evict_why;
	uintptr_t stage_base;    /* MGI_STAGE_SLOTS pages, registered (WP) on uffd */
	uintptr_t beacon;        /* one page registered on uffd (a child's signal) */
	void *store_mem;
	size_t store_bytes;
	mgi_store_t *store;
	mgi_staging_t staging;
	uint32_t evict_clock;    /* pages compressed so far: refault distances */
	void *restore_buf;       /* MGI_RESTORE_MAX pages */
};
extern struct mgi_pageout mgi_pageout;

/* evict.c: a forked child, once its parent's store is kept or not: all of
 * the above forgotten (the parent's), but the eviction clock when the
 * store is kept (its stamps are on that clock). */
void mgi_evict_child_reset(void);

/* The store's and the staging table's key of a page: its page number. */
static inline uint64_t key_of(uintptr_t addr)
{
	return addr >> MGI_PAGE_SHIFT;
}

/* Where staging slot `slot` lies. */
static inline void *slot_addr(uint32_t slot)
{
	return (void *)(mgi_pageout.stage_base + (uintptr_t)slot * MGI_PAGE_SIZE);
}

/* evict.c: a reservation of fresh pages for the agent's own ranges
 * (mgi_own_range, exclude.c). */
void *mgi_reserve(size_t len);

/* releaser.c: the queue of requests to the releaser thread. */
/* Starts its thread on stack (MGI_RELEASER_STACK, in the arena). */
int mgi_releaser_start(void *stack);
/* Sends the queued requests, as many as the pipe takes; lazily: once they
 * are worth a round trip. */
void mgi_releaser_flush(void);
void mgi_releaser_flush_lazily(void);
/* A retired slot's frame is to be dropped. */
void mgi_releaser_release(uint32_t slot);
/* n pages from addr shared with a child are to be made our own. */
void mgi_releaser_unshare(uintptr_t addr, size_t n);
/* Unshare requests outstanding; whether [addr, addr + n pages) is among them. */
unsigned mgi_releaser_unshares_pending(void);
bool mgi_releaser_unsharing_range(uintptr_t addr, size_t n);
/* Waits up to ms for the releaser's answers, following events meanwhile. */
void mgi_releaser_wait(int ms);
/* A forked child: the queue emptied, the pipes closed. */
void mgi_releaser_child_reset(void);

/* swapfile.c: the write-back file behind the store (--swap-file). */
void mgi_swapfile_init(void);
/* The store's file operations (mgi_store_ops_t). */
int mgi_swapfile_write(void *ctx, uint64_t off, const void *buf, size_t len);
int mgi_swapfile_read(void *ctx, uint64_t off, void *buf, size_t len);
void mgi_swapfile_discard(void *ctx, uint64_t off, size_t len);
/* Writes the oldest compressed pages back when the group's pass the size. */
void mgi_swapfile_write_back(void);
/* The file's meta reservation (a forked child keeps it with the store). */
void mgi_swapfile_meta(void **meta, size_t *bytes);
void mgi_swapfile_child_reset(void);

/* restore.c: a page present though its data was held evicted (said once). */
void mgi_restore_conflict(uintptr_t page);

/* fork.c: every change to what a forked child may keep (the store, the
 * staged slots' keys, the write-back file) is made between these (see
 * fork.c, "what a forked child may keep"). */
void mgi_fork_change_begin(void);
void mgi_fork_change_end(void);
/* The application's forks under way (prepare to parent handler). */
unsigned mgi_fork_under_way(void);
/* A forked child: fork.c's state reset; returns our socket end or -1. */
int mgi_fork_child_reset(void);

/* forkchild.c: whether a child's early fault server runs (a thread of
 * the agent's, for fork_prepare's count). */
bool mgi_fork_early_serving(void);
/* What a forked child kept of its parent's, owned by forkchild.c (its
 * start fills it; set-up takes from it): the store's mapping, the store
 * itself, the write-back file's meta. */
/* Whether a store is kept; *mem, *bytes: its mapping (either may be NULL). */
bool mgi_kept_store(void **mem, size_t *bytes);
/* The kept store handed over to eviction's set-up (evict_setup.c): from
 * then on it is adopted once the scan has registered the address space. */
mgi_store_t *mgi_kept_take_store(void);
/* The kept file meta, or NULL: looked at (evict_setup.c), or taken by a
 * new write-back file (swapfile.c). */
void *mgi_kept_meta(size_t *bytes);
void *mgi_kept_take_meta(size_t *bytes);

#endif

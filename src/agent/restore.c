/* restore.c - restore: evicted pages brought back on fault (activate, decompress), dropped or rekeyed on events. */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <linux/futex.h>
#include <time.h>
#include <unistd.h>

#include "account.h"
#include "agent.h"
#include "options.h"
#include "os.h"
#include "trace.h"
#include "pageout.h"

#define PAGE MGI_PAGE_SIZE

static bool warned_conflict; /* said once a process line: a forked child inherits it */


/* Whether the out page at addr is in the store (not staged). */
static bool stored(uintptr_t addr)
{
	return mgi_staging_find(&mgi_pageout.staging, key_of(addr)) < 0 &&
	       mgi_store_contains(mgi_pageout.store, key_of(addr));
}

void mgi_restore_conflict(uintptr_t page)
{
	mgi_trace(MGI_TR_CONFLICT, page, 0, 0, 0);
	if (!warned_conflict) {
		warned_conflict = true;
		mgi_agent_log("page %#lx was present though its data was held evicted "
			      "(please report it); the present page was kept",
			      (unsigned long)page);
	}
}

/* A staged page touched again: moved straight back. */
static enum mgi_resolved activate(mgi_vregion_t *r, uintptr_t page, int32_t slot)
{
	size_t moved = 0, copied;
	bool frame_left = false;
	int rc = mgi_uffd_move(mgi_handler.uffd, page, (uintptr_t)slot_addr((uint32_t)slot), PAGE,
			       false, &moved);

	mgi_trace(MGI_TR_ACTIVATE, page, (uint64_t)slot, 0, rc);
	if (rc == -EAGAIN)
		return MGI_RETRY;
	if (rc == -ENOENT) {
		/* The staged frame is gone (a page the process had freed with
		 * MADV_FREE, which the kernel then reclaimed): it reads as zeros,
		 * as it would have in place. */
		rc = mgi_uffd_copy(mgi_handler.uffd, page, mgi_handler.zeros, PAGE, &copied);
	} else if (rc != 0 && rc != -EEXIST) {
		/* EBUSY: the frame is shared with a forked child's copy of the
		 * staging area (until the child drops it). Copy it in instead;
		 * the frame stays with the slot, to be dropped. */
		rc = mgi_uffd_copy(mgi_handler.uffd, page, slot_addr((uint32_t)slot), PAGE, &copied);
		frame_left = true;
	}
	if (rc == -EAGAIN)
		return MGI_RETRY;
	if (rc == -EEXIST) {
		mgi_restore_conflict(page);
		frame_left = true;
	} else if (rc != 0) {
		/* the range went away: its event drops the slot */
		mgi_uffd_wake(mgi_handler.uffd, page, PAGE);
		return MGI_DONE;
	}
	if (frame_left) {
		mgi_staging_retire(&mgi_pageout.staging, (uint32_t)slot);
		mgi_releaser_release((uint32_t)slot);
		mgi_releaser_flush();
	} else {
		mgi_staging_release(&mgi_pageout.staging, (uint32_t)slot);
	}
	mgi_registry_restore(&mgi_reg, r, page, 1, true);
	atomic_fetch_add_explicit(&mgi_join.seg->acct.pgactivate, 1, memory_order_relaxed);
	mgi_evict_publish();
	return MGI_DONE;
}

/* A stored (or staged) page faulted on: brought back with its stored
 * neighbours when access is sequential, charged up to what fits. Long
 * (~100 lines): the readahead's pages are gathered, copied and accounted
 * as one batch, and each outcome of the copy (partial, EEXIST, a VMA's
 * edge) unwinds that batch's charges in place. */
static enum mgi_resolved restore(mgi_vregion_t *r, uintptr_t page, bool sequential,
				 size_t *restored, unsigned *level)
{
	mgi_store_t *store = mgi_pageout.store;
	char *buf = mgi_pageout.restore_buf;
	uint32_t stamps[MGI_RESTORE_MAX];
	size_t n = 1, copied = 0, k;
	int32_t slot;
	int rc;

	*restored = 0;
	if (!store)
		return MGI_ABSENT;
	slot = mgi_staging_find(&mgi_pageout.staging, key_of(page));
	if (slot >= 0) {
		*restored = 1;
		return activate(r, page, slot);
	}
	if (!mgi_store_contains(store, key_of(page))) {
		/* held nowhere (cannot happen): a new page, not a wrong one */
		mgi_restore_conflict(page);
		mgi_registry_each_out(&mgi_reg, page, page + PAGE, true, NULL, NULL);
		return MGI_ABSENT;
	}
	/* The fault latency on evicted pages: from here (held in the store)
	 * to the copy that wakes the thread; one vDSO read each end. */
	uint64_t t0 = mgi_now_ns();
	/* Readahead: the stored pages right after, when access is sequential. */
	if (sequential)
		while (n < MGI_RESTORE_MAX && page + n * PAGE < r->end &&
		       mgi_registry_is_out(r, page + n * PAGE) && stored(page + n * PAGE))
			n++;
	/* near the limit, the readahead that fits */
	n = mgi_charge_upto(n, level);
	if (n == 0)
		return MGI_NEED_ROOM;
	for (size_t i = 0; i < n; i++) {
		rc = mgi_store_get(store, key_of(page + i * PAGE), buf + i * PAGE, &stamps[i]);
		if (rc != 0) { /* -EIO: never seen; stop before a page we cannot give */
			mgi_agent_log("page %#lx cannot be restored from the store: %s",
				      (unsigned long)(page + i * PAGE), strerror(-rc));
			if (i == 0)
				abort();
			n = i;
			break;
		}
	}
	rc = mgi_uffd_copy(mgi_handler.uffd, page, buf, n * PAGE, &copied);
	if (rc == -ENOENT && copied == 0 && n > 1) {
		/* The readahead crossed a VMA's edge (a region may span two
		 * VMAs; one ioctl cannot): the page alone. Woken to fault
		 * again instead, the thread would meet the same window. */
		mgi_uncharge(n - 1);
		n = 1;
		rc = mgi_uffd_copy(mgi_handler.uffd, page, buf, PAGE, &copied);
	}
	k = copied / PAGE;
	mgi_trace(MGI_TR_RESTORE, page, k, (uint32_t)n, rc);
	if (rc == -EEXIST && k == 0) {
		/* present though we hold it out: keep the live page */
		mgi_restore_conflict(page);
		mgi_store_drop(store, key_of(page));
		mgi_swap_uncharge(1);
		mgi_registry_restore(&mgi_reg, r, page, 1, false);
		k = 0;
		mgi_uncharge(n - 1);
		mgi_uffd_wake(mgi_handler.uffd, page, PAGE);
		*restored = 1;
		return MGI_DONE;
	}
	uint64_t ws = 0;
	for (size_t i = 0; i < k; i++) {
		/* The refault distance: pages compressed since this one was. If
		 * that is within what is resident, a little more memory would
		 * have kept it: it is part of the working set. */
		bool hot = (uint32_t)(mgi_pageout.evict_clock - stamps[i]) <= mgi_reg.present;
		mgi_store_drop(store, key_of(page + i * PAGE));
		mgi_registry_restore(&mgi_reg, r, page + i * PAGE, 1, hot);
		ws += hot;
	}
	if (k) {
		mgi_segment_t *seg = mgi_join.seg;
		mgi_swap_uncharge(k);
		atomic_fetch_add_explicit(&seg->acct.pswpin, k, memory_order_relaxed);
		atomic_fetch_add_explicit(&seg->acct.refault, k, memory_order_relaxed);
		atomic_fetch_add_explicit(&seg->acct.workingset_activate, ws, memory_order_relaxed);
		atomic_fetch_add_explicit(&seg->acct.pgmajfault, 1, memory_order_relaxed);
		mgi_segment_count_restore(seg, mgi_now_ns() - t0);
		mgi_evict_publish();
	}
	if (n > k)
		mgi_uncharge(n - k);
	*restored = k;
	if (k)
		return MGI_DONE;
	if (rc == -EAGAIN)
		return MGI_RETRY;
	/* The range went away (ENOENT, EFAULT): its UNMAP event drops what we
	 * hold; let the thread fault again and meet whatever is there. */
	mgi_uffd_wake(mgi_handler.uffd, page, PAGE);
	return MGI_DONE;
}

enum mgi_resolved mgi_restore(mgi_vregion_t *r, uintptr_t page, bool sequential,
			      size_t *restored, unsigned *level)
{
	enum mgi_resolved res;

	mgi_fork_change_begin();
	res = restore(r, page, sequential, restored, level);
	mgi_fork_change_end();
	return res;
}

/* ---- events ---- */

struct dropped {
	uint64_t memory, swap;
};

static void drop_one(void *ctx, uintptr_t addr)
{
	struct dropped *d = ctx;
	int32_t slot = mgi_staging_find(&mgi_pageout.staging, key_of(addr));

	if (slot >= 0) {
		mgi_trace(MGI_TR_DROP_STAGED, addr, (uint64_t)slot, 0, 0);
		mgi_staging_retire(&mgi_pageout.staging, (uint32_t)slot);
		mgi_releaser_release((uint32_t)slot);
		d->memory++;
	} else if (mgi_pageout.store && mgi_store_drop(mgi_pageout.store, key_of(addr))) {
		mgi_trace(MGI_TR_DROP_STORED, addr, 0, 0, 0);
		d->swap++;
	}
}

void mgi_restore_drop(uintptr_t start, uintptr_t end)
{
	struct dropped d = {0, 0};

	if (!mgi_reg.nout)
		return;
	mgi_fork_change_begin();
	mgi_registry_each_out(&mgi_reg, start, end, true, drop_one, &d);
	mgi_fork_change_end();
	if (d.memory)
		mgi_uncharge(d.memory);
	mgi_swap_uncharge(d.swap);
	mgi_releaser_flush();
	mgi_evict_publish();
}

struct remap {
	uintptr_t from, to;
};

static void rekey_one(void *ctx, uintptr_t addr)
{
	const struct remap *m = ctx;
	uint64_t from = key_of(addr - m->to + m->from), to = key_of(addr);

	if (mgi_staging_rekey(&mgi_pageout.staging, from, to) == 0)
		return;
	if (mgi_pageout.store)
		mgi_store_rekey(mgi_pageout.store, from, to);
}

void mgi_restore_moved(uintptr_t from, uintptr_t to, size_t len)
{
	struct remap m = {from, to};

	if (!mgi_reg.nout)
		return;
	mgi_fork_change_begin();
	mgi_registry_each_out(&mgi_reg, to, to + len, false, rekey_one, &m);
	mgi_fork_change_end();
}

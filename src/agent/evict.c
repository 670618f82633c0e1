/* evict.c - eviction: deactivate (to staging), compress (to the store), purge; the figures published. */
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
#include "inject.h"
#include "options.h"
#include "os.h"
#include "thp.h"
#include "trace.h"
#include "pageout.h"
#include "cow.h"

/*
 * How a page leaves the process and comes back (seed 002 section 2.1, seed
 * 003 "Compressed swap"):
 *
 *  deactivate  the clock (registry.h) picks runs of present pages that no
 *              fault has shown in use since it last passed, and each run is
 *              moved with one UFFDIO_MOVE into consecutive slots of the
 *              staging area. The move is atomic for the process: a write
 *              before it is in the page, a touch after it faults. The page
 *              is still memory (charged) but no longer mapped: this is its
 *              second chance, and the staging area is the inactive list.
 *  activate    a fault on a staged page moves it straight back (one MOVE,
 *              no copy) and sets its ref bit: it is in use.
 *  compress    the oldest staged pages go into the compressed store (swap
 *              charged, memory uncharged) and their slots are retired. The
 *              releaser thread drops their frames: MADV_DONTNEED on a range
 *              registered with our uffd waits until the uffd's reader has
 *              read the REMOVE event, and that reader is the handler, which
 *              therefore must not do it itself (pitfall 1).
 *  restore     a fault on a stored page decompresses it (with its stored
 *              neighbours when the access is sequential: swap readahead)
 *              and copies it in (UFFDIO_COPY), charging memory, uncharging
 *              swap. Its refault distance (pages compressed since it was)
 *              below the resident size marks it part of the working set.
 *
 * The staging area is registered with our uffd in write-protect mode only:
 * a MOVE needs its destination registered on the uffd it goes through, and
 * going through ours makes every move fail with EAGAIN while an event of
 * the process (munmap, madvise, mremap, fork) is unread, so a move never
 * acts on an address space the registry has not caught up with. A hole
 * there reads as zeros, never as a fault nobody would answer.
 *
 * Fork (UFFD_EVENT_FORK): the child keeps our registration on a uffd of
 * its own that the kernel hands us, so a page we hold out of the address
 * space cannot be read as zeros there: the child's thread waits. The
 * child's memory is a copy-on-write snapshot of ours, the store and the
 * staging table included: when that snapshot is whole (see "What a forked
 * child may keep"), we tell the child so through its verdict page and
 * close its uffd, and the child keeps the store and restores from it
 * lazily, as we do from ours: pages evicted stay evicted on both sides.
 * Else we copy every held page into the child through that uffd and close
 * it. Either way the child's agent waits for the close (the beacon) and
 * starts over with its own uffd. Between the child's snapshot and our
 * reading of the event, every copy or move through our uffd fails with
 * EAGAIN, so what we hold cannot change under the child. Without
 * EVENT_FORK (it needs CAP_SYS_PTRACE) the agent does not evict at all: a
 * child would read zeros.
 *
 * The handler thread does all of it: it owns the registry, the staging
 * slots and the store.
 */

#define PAGE MGI_PAGE_SIZE
#define RUN_MAX 64            /* pages per deactivating move */
#define STAGE_MIN 64          /* the staging area's target, at least... */
#define STAGE_MAX (MGI_STAGE_SLOTS / 2) /* ...and at most */

static bool warned_no_evict;

struct mgi_pageout mgi_pageout;

void mgi_evict_child_reset(void)
{
	uint32_t clock = mgi_kept_store(NULL, NULL) ? mgi_pageout.evict_clock : 0;

	/* (The fork may have caught our parent's handler inside an eviction:
	 * its flag, copied, would keep this process from ever evicting.) */
	mgi_pageout = (struct mgi_pageout){.evict_clock = clock};
}

bool mgi_evict_running(void)
{
	return mgi_pageout.evicting;
}

static mgi_counter_path_t swap_path(void)
{
	return mgi_segment_swap_path(mgi_account_path());
}

/* ---- accounting ---- */

void mgi_evict_publish(void)
{
	mgi_proc_slot_t *me = mgi_join.me;
	mgi_store_stats_t st;
	int32_t oldest;

	if (!mgi_pageout.store || !me)
		return;
	mgi_store_stats(mgi_pageout.store, &st);
	oldest = mgi_staging_oldest(&mgi_pageout.staging);
	atomic_store_explicit(&me->staged, mgi_pageout.staging.used, memory_order_relaxed);
	atomic_store_explicit(&me->staged_since_ns,
			      oldest >= 0 ? mgi_pageout.staging.slot[oldest].when : 0,
			      memory_order_relaxed);
	atomic_store_explicit(&me->stored_bytes, st.compressed_bytes, memory_order_relaxed);
	atomic_store_explicit(&me->file_bytes, st.file_bytes, memory_order_relaxed);
	atomic_store_explicit(&me->same_filled, st.same_filled, memory_order_relaxed);
}

bool mgi_evict_allowed(unsigned level)
{
	mgi_counter_path_t sp;

	if (!mgi_pageout.can_evict) {
		if (mgi_pageout.no_evict_why && !warned_no_evict &&
		    atomic_load(&mgi_join.seg->ctl.swap.max) > 0) {
			warned_no_evict = true;
			mgi_agent_log("this process cannot evict pages: %s", mgi_pageout.no_evict_why);
		}
		return false;
	}
	if (level >= mgi_join.nsegs ||
	    atomic_load_explicit(&mgi_join.seg->ctl.swappiness, memory_order_relaxed) == 0)
		return false;
	sp = swap_path();
	for (unsigned l = 0; l < sp.depth; l++)
		if (mgi_counter_margin(sp.level[l], sp.limit[l]) == 0)
			return false;
	return true;
}

/* ---- deactivate, compress ---- */

/*
 * The slot at the staging area's head is retired (its frame is being
 * dropped): waits for the releaser, following events meanwhile (its
 * madvise waits until we read the REMOVE event it causes). Returns whether
 * there is room now; gives up after a second (the releaser is stuck).
 */
static bool wait_for_room(void)
{
	mgi_staging_t *st = &mgi_pageout.staging;
	uint32_t first;

	for (int i = 0; i < 1000; i++) {
		if (st->slot[st->head].key != MGI_STAGING_RETIRED)
			return mgi_staging_room(st, 1, &first) > 0;
		mgi_releaser_wait(1);
	}
	return false;
}

/*
 * A UFFDIO_MOVE that fails may have moved pages past the count it reports.
 * Measured on Linux 6.18 (tracing bench/coop, MEMGRP_TRACE): a run of 8
 * pages came back -EEXIST with `move` 0 while all 8 had gone into their
 * slots; taking them for pages left behind, the handler had the slots'
 * frames dropped and later gave the application zeros. So after a failure
 * the pages after the reported count are looked at: one whose source is
 * now empty and whose slot holds a frame has moved. (A source page the
 * kernel had emptied otherwise, by a discard, is not evicted at all: the
 * clock leaves recently discarded ranges alone.) Returns how many of the n
 * pages from src (to slots from slot) moved, counting from the first.
 */
static size_t moved_unreported(uintptr_t src, uint32_t slot, size_t n)
{
	unsigned char at_src[RUN_MAX], at_dst[RUN_MAX];
	size_t i;

	if (n > RUN_MAX || mincore((void *)src, n * PAGE, at_src) != 0 ||
	    mincore(slot_addr(slot), n * PAGE, at_dst) != 0)
		return 0;
	for (i = 0; i < n && !(at_src[i] & 1) && (at_dst[i] & 1); i++)
		;
	if (i)
		mgi_trace(MGI_TR_UNREPORTED, src, slot, i, 0);
	return i;
}

/* Moves up to `want` pages the clock chooses into the staging area.
 * Returns how many it moved; stops early when the staging area has no
 * room at its head or the address space is changing (events first).
 * Long (~120 lines): one loop over the clock's runs whose every outcome
 * of the move (moved, EAGAIN, EEXIST, EBUSY, the rest) sets the clock's
 * hand and the loop's counters in place; apart, each would take them all. */
static uint64_t deactivate_shared; /* pages the last deactivate passed over as shared */

static uint64_t deactivate(uint64_t want, bool unshare)
{
	mgi_registry_t *reg = &mgi_reg;
	uint64_t moved_total = 0, now = mgi_now_ns();
	unsigned calls = 0, eagain = 0;
	uint64_t busy = 0, unshared = 0;
	static unsigned misreports;

	deactivate_shared = 0;
	while (moved_total < want && calls++ < 4 * (want / RUN_MAX + 4) + 2 * (reg->present / RUN_MAX)) {
		uintptr_t run;
		size_t max = want - moved_total < RUN_MAX ? want - moved_total : RUN_MAX;
		/* one revolution at most per call */
		size_t n = mgi_registry_clock(reg, (reg->bytes >> MGI_PAGE_SHIFT) + 64, max, &run);
		uint32_t first, room;
		size_t moved = 0, k;
		int rc;

		if (!n)
			break;
		size_t owed = mgi_cow_clip(run, &n);
		if (owed) {
			/* shared with our parent, not charged: evicting frees
			 * nothing of the group's (cow.c) */
			reg->hand = run + owed * PAGE;
			continue;
		}
		if (mgi_releaser_unsharing_range(run, n)) {
			reg->hand = run + n * PAGE; /* not yet ours alone */
			continue;
		}
		if (mgi_recently_removed(run, run + n * PAGE)) {
			reg->hand = run + n * PAGE; /* old pages may still be there */
			continue;
		}
		room = mgi_staging_room(&mgi_pageout.staging, (uint32_t)n, &first);
		if (!room) {
			reg->hand = run; /* these pages wait for room */
			if (!wait_for_room())
				break;
			continue;
		}
		rc = mgi_uffd_move(mgi_handler.uffd, (uintptr_t)slot_addr(first), run, room * PAGE, true,
				   &moved);
		if (mgi_inject.misreport_moves && rc == 0 && room > 1 && ++misreports % 4 == 0) {
			/* Fault injection: report a run that moved as the kernel
			 * was seen to (moved_unreported). */
			rc = -EEXIST;
			moved = 0;
		}
		k = moved / PAGE;
		mgi_trace(MGI_TR_EVICT, run, first, (uint32_t)n, (int32_t)(k << 8) | (-rc & 0xff));
		if (rc != 0 && k < room) {
			k += moved_unreported(run + k * PAGE, first + (uint32_t)k, room - k);
			if (k == room)
				rc = 0; /* all of it went after all */
		}
		mgi_vregion_t *r = mgi_registry_find(reg, run);
		if (k) {
			mgi_staging_fill(&mgi_pageout.staging, first, (uint32_t)k, key_of(run), now);
			mgi_registry_evict(reg, r, run, k);
			mgi_thp_gone(run, run + k * PAGE);
			moved_total += k;
		}
		uintptr_t at = run + k * PAGE;
		if (rc == 0) {
			reg->hand = at; /* the rest of the run, if room was short */
			continue;
		}
		if (rc == -EAGAIN) {
			/* The address space is changing: follow it, then go on
			 * (the clock looks at the registry afresh). */
			reg->hand = at;
			if (eagain++ > 200)
				break;
			/* (the forking or unmapping thread has yet to run after
			 * we read its event: give it a moment) */
			mgi_releaser_wait(eagain > 2 ? 1 : 0);
			continue;
		}
		if (rc == -EEXIST) {
			/* the slot still holds a frame: have it dropped */
			mgi_trace(MGI_TR_BLOCK, *(volatile uint64_t *)slot_addr(first + (uint32_t)k),
				  first + k, 0, 0);
			mgi_staging_block(&mgi_pageout.staging, first + (uint32_t)k);
			mgi_releaser_release(first + (uint32_t)k);
			reg->hand = at;
			continue;
		}
		if (rc == -EBUSY) {
			/* Shared with a child (copy-on-write after fork), or
			 * pinned. Evicting a shared page frees no frame (the
			 * other side keeps it), and the child, which owes it
			 * (cow.c), is charged for it only at its next check: so
			 * it is passed over, unless nothing else moves (unshare:
			 * the helper gives us our own copies of the rest of the
			 * run). Their ref bits keep the clock off them until its
			 * next pass. (Pinned pages stay pinned and are passed
			 * over again.) */
			if (unshare && unshared < want) {
				mgi_releaser_unshare(at, n - k);
				unshared += n - k;
			} else {
				deactivate_shared += n - k;
			}
			for (size_t i = 0; i < n - k && r; i++)
				mgi_registry_set_ref(r, at + i * PAGE);
			reg->hand = run + n * PAGE;
			busy += n - k;
			if (busy > reg->present)
				break; /* a whole pass of shared pages */
			continue;
		}
		/* EINVAL: the range's protection changed (mprotect) or it is
		 * mlocked; ENOENT: gone. Passed over this time round. */
		for (size_t i = 0; i < n - k && r; i++)
			mgi_registry_set_ref(r, at + i * PAGE);
		reg->hand = run + n * PAGE;
	}
	if (moved_total)
		atomic_fetch_add_explicit(&mgi_join.seg->acct.pgdeactivate, moved_total,
					  memory_order_relaxed);
	return moved_total;
}

/* Compresses the page in `slot` into the store. Returns 0 or -ENOSPC (the
 * swap limit or the store is full). */
static int compress(uint32_t slot)
{
	uint64_t key = mgi_pageout.staging.slot[slot].key;
	int rc;

	if (mgi_vrange_take_staged(key << MGI_PAGE_SHIFT)) {
		/* volatile (vrange.c): purged, never stored */
		mgi_staging_retire(&mgi_pageout.staging, slot);
		mgi_releaser_release(slot);
		return 1;
	}
	if (!mgi_swap_charge(1))
		return -ENOSPC;
	rc = mgi_store_put(mgi_pageout.store, key, slot_addr(slot), mgi_pageout.evict_clock);
	if (rc == -EEXIST) {
		/* an entry left for this address (cannot happen: unmaps and
		 * discards drop them); the staged page is the live one */
		mgi_store_drop(mgi_pageout.store, key);
		mgi_swap_uncharge(1);
		rc = mgi_store_put(mgi_pageout.store, key, slot_addr(slot), mgi_pageout.evict_clock);
	}
	if (rc != 0) {
		mgi_swap_uncharge(1);
		return -ENOSPC;
	}
	mgi_pageout.evict_clock++;
	mgi_trace(MGI_TR_COMPRESS, key << MGI_PAGE_SHIFT, slot, 0,
		  (int32_t)(*(volatile uint64_t *)slot_addr(slot) & 0x7fffffff));
	mgi_staging_retire(&mgi_pageout.staging, slot);
	mgi_releaser_release(slot);
	return 0;
}

/* The staging area's target: an eighth of what the process has mapped,
 * so that a page spends a while there before it is compressed. */
static uint64_t stage_target(void)
{
	uint64_t t = mgi_reg.present / 8;
	return t < STAGE_MIN ? STAGE_MIN : t > STAGE_MAX ? STAGE_MAX : t;
}

/* After compressing `freed` staged pages: they are swap now, not memory;
 * the store may have to write back, and the slots' frames go. */
static void evicted(uint64_t freed)
{
	if (freed) {
		atomic_fetch_add_explicit(&mgi_join.seg->acct.pswpout, freed, memory_order_relaxed);
		mgi_uncharge(freed); /* memory: it is in the store now (swap) */
	}
	mgi_swapfile_write_back();
	mgi_releaser_flush_lazily();
}

uint64_t mgi_evict(uint64_t pages)
{
	mgi_staging_t *st = &mgi_pageout.staging;
	uint64_t freed = 0, purged = 0;

	if (!mgi_pageout.can_evict || !pages || mgi_pageout.evicting)
		return 0;
	mgi_fork_change_begin();
	mgi_pageout.evicting = true;
	mgi_releaser_answers();
	/* Volatile pages first (vrange.c): dropped, not stored. */
	purged = mgi_vrange_purge(pages);
	freed = purged;
	for (int waits = 0; freed < pages;) {
		int32_t s = mgi_staging_oldest(st);
		if (s < 0) {
			if (deactivate(pages - freed, false) > 0)
				continue;
			/* Only pages shared with a child were left: made ours
			 * (unshared) to evict them, the last resort. */
			if (deactivate_shared && !mgi_releaser_unshares_pending() &&
			    deactivate(pages - freed, true) > 0)
				continue;
			/* Nothing could move: if pages shared with a child are
			 * being made ours, wait for that (at most 200 ms: the
			 * helper may itself wait on a fault we cannot serve
			 * from in here). */
			if (!mgi_releaser_unshares_pending() || waits++ >= 200)
				break;
			mgi_releaser_wait(1);
			continue;
		}
		int rc = compress((uint32_t)s);
		if (rc < 0)
			break;
		freed++;
		purged += rc == 1;
	}
	mgi_uncharge(purged); /* memory given back, not swap */
	evicted(freed - purged);
	/* The next round's second chances. */
	if (st->used < stage_target())
		deactivate(stage_target() - st->used, false);
	mgi_evict_publish();
	mgi_pageout.evicting = false;
	mgi_fork_change_end();
	return freed;
}

uint64_t mgi_evict_ahead(void)
{
	mgi_staging_t *st = &mgi_pageout.staging;
	int32_t s;

	if (!mgi_pageout.can_evict || mgi_pageout.evicting || (s = mgi_staging_oldest(st)) < 0 ||
	    mgi_fork_under_way())
		return 0; /* nothing staged: the fault that needs room evicts; or a
			   * fork waits to find us still */
	mgi_fork_change_begin();
	mgi_pageout.evicting = true;
	mgi_releaser_answers();
	int rc = compress((uint32_t)s);
	bool done = rc >= 0;
	if (rc == 1)
		mgi_uncharge(1); /* purged (vrange.c): memory given back, not swap */
	evicted(rc == 0);
	/* topped up a run at a time: one move per page would cost more than
	 * the compression it precedes */
	if (st->used + RUN_MAX <= stage_target())
		deactivate(RUN_MAX, false);
	mgi_evict_publish();
	mgi_pageout.evicting = false;
	mgi_fork_change_end();
	return done;
}

void mgi_evict_age(void)
{
	mgi_staging_t *st = &mgi_pageout.staging;

	if (!mgi_pageout.can_evict || mgi_pageout.evicting || st->used >= stage_target() ||
	    mgi_fork_under_way())
		return;
	mgi_fork_change_begin();
	mgi_pageout.evicting = true;
	mgi_releaser_answers();
	deactivate(stage_target() - st->used, false);
	mgi_releaser_flush_lazily();
	mgi_evict_publish();
	mgi_pageout.evicting = false;
	mgi_fork_change_end();
}

/* ---- purge (volatile ranges, vrange.c) ---- */

/*
 * Drops the data of n present pages from run: moved into staging slots
 * that are retired at once (never compressed), so the frames go with the
 * next release batch. This is the handler's way to discard a page of a
 * registered range: its own MADV_DONTNEED would wait on itself reading the
 * REMOVE event. Returns how many went, counted from the first; the caller
 * clears and uncharges them. 0 when the staging area has no room at its
 * head even after waiting, the address space is changing, or eviction is
 * not set up.
 */
uint64_t mgi_evict_purge(uintptr_t run, size_t n)
{
	uint32_t first, room;
	size_t moved = 0, k;
	int rc;

	if (!mgi_pageout.can_evict || !n || mgi_fork_under_way())
		return 0;
	if (n > RUN_MAX)
		n = RUN_MAX;
	mgi_fork_change_begin();
	room = mgi_staging_room(&mgi_pageout.staging, (uint32_t)n, &first);
	/* No room at the head: a staged page is there (the oldest: it goes
	 * on as it would next, stored, or purged if volatile), or retired
	 * slots whose frames the helper is dropping (waited for, following
	 * events: faults meanwhile park, as inside mgi_evict). */
	bool was_evicting = mgi_pageout.evicting;
	mgi_pageout.evicting = true;
	for (int tries = 0; !room && tries < 4; tries++) {
		int32_t s = mgi_staging_oldest(&mgi_pageout.staging);
		if (s >= 0 && (uint32_t)s == mgi_pageout.staging.head) {
			int crc = compress((uint32_t)s);
			if (crc < 0)
				break;
			if (crc == 1)
				mgi_uncharge(1);
			else
				evicted(1);
		}
		if (!wait_for_room() && mgi_staging_oldest(&mgi_pageout.staging) < 0)
			break;
		room = mgi_staging_room(&mgi_pageout.staging, (uint32_t)n, &first);
	}
	mgi_pageout.evicting = was_evicting;
	/* (events followed while waiting may have changed the run: only
	 * what the registry still holds present moves) */
	mgi_vregion_t *r = room ? mgi_registry_find(&mgi_reg, run) : NULL;
	size_t still = 0;
	while (r && still < room && run + still * PAGE < r->end &&
	       mgi_registry_test(r, run + still * PAGE))
		still++;
	room = (uint32_t)still;
	if (!room) {
		mgi_fork_change_end();
		return 0;
	}
	rc = mgi_uffd_move(mgi_handler.uffd, (uintptr_t)slot_addr(first), run, room * PAGE, true,
			   &moved);
	k = moved / PAGE;
	if (rc != 0 && k < room)
		k += moved_unreported(run + k * PAGE, first + (uint32_t)k, room - k);
	mgi_trace(MGI_TR_EVICT, run, first, (uint32_t)n, (int32_t)(k << 8) | (-rc & 0xff));
	if (k) {
		mgi_staging_fill(&mgi_pageout.staging, first, (uint32_t)k, key_of(run), mgi_now_ns());
		for (uint32_t i = 0; i < k; i++) {
			mgi_staging_retire(&mgi_pageout.staging, first + i);
			mgi_releaser_release(first + i);
		}
	}
	if (rc == -EEXIST && k < room) {
		mgi_staging_block(&mgi_pageout.staging, first + (uint32_t)k);
		mgi_releaser_release(first + (uint32_t)k);
	} else if (rc == -EBUSY && k < room) {
		mgi_releaser_unshare(run + k * PAGE, room - k); /* shared with a child: ours next time */
	}
	mgi_releaser_flush_lazily();
	mgi_fork_change_end();
	return k;
}

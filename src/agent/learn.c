/* learn.c - learning ranges: the start-up scan, learn requests, resync after ENOENT, ranges left to the kernel. */
#include <errno.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "account.h"
#include "agent.h"
#include "os.h"
#include "proto.h"
#include "recent.h"
#include "size.h"
#include "thp.h"
#include "trace.h"
#include "fault.h"
#include "cow.h"

#define PAGE MGI_PAGE_SIZE
#define MINCORE_CHUNK 16384                         /* pages per mincore call */

static unsigned char *mincore_vec;

/* The managed ranges with their present pages, in the arena. */
mgi_registry_t mgi_reg;
/* Eligible memory left unmanaged (not registered): published. */
static uint64_t untracked_bytes;

void mgi_learn_untracked(uint64_t bytes)
{
	untracked_bytes += bytes;
}

void mgi_learn_child_reset(void)
{
	memset(&mgi_reg, 0, sizeof(mgi_reg));
	untracked_bytes = 0;
	mincore_vec = NULL; /* (the parent's arena's: learn_init takes anew) */
}

int mgi_learn_init(void)
{
	mincore_vec = mgi_arena_alloc(&mgi_arena, MINCORE_CHUNK);
	return mincore_vec ? 0 : -ENOMEM;
}

void mgi_learn_publish_sizes(void)
{
	mgi_est_publish();
	atomic_store_explicit(&mgi_join.me->tracked_bytes, mgi_reg.bytes,
			      memory_order_relaxed);
	atomic_store_explicit(&mgi_join.me->untracked_bytes,
			      untracked_bytes +
				      (mgi_arena.committed - mgi_arena.base),
			      memory_order_relaxed);
}

/* Adds an uncovered range to the registry and charges the pages already
 * present in it (memory touched before it was registered is real). The
 * charge cannot be refused: the pages exist; a later fault meets the
 * limit instead. Without charge, the caller holds their charge already
 * (estimate mode: a fast region turning slow). Returns the pages found. */
static uint64_t learn_gap(uintptr_t start, uintptr_t end, bool charge, uintptr_t vma_start)
{
	mgi_vregion_t *r;
	uint64_t found = 0;

	/* Memory that continues a region of the same mapping (a block or a
	 * heap grown in place: mremap, brk) grows that region. */
	r = start > vma_start ? mgi_registry_find(&mgi_reg, start - PAGE) : NULL;
	if (!(r && r->start >= vma_start && end - r->start <= MGI_REGION_MAX_BYTES &&
	      mgi_registry_extend(&mgi_reg, r, end) > 0) &&
	    mgi_registry_add(&mgi_reg, start, end) <= 0)
		return 0;
	for (uintptr_t a = start; a < end;) {
		size_t pages = (end - a) / PAGE;
		if (pages > MINCORE_CHUNK)
			pages = MINCORE_CHUNK;
		if (mincore((void *)a, pages * PAGE, mincore_vec) == 0) {
			for (size_t i = 0; i < pages; i++) {
				if (!(mincore_vec[i] & 1))
					continue;
				r = mgi_registry_find(&mgi_reg, a + i * PAGE);
				if (r)
					found += mgi_registry_mark(&mgi_reg, r, a + i * PAGE, 1);
				if (r)
					mgi_thp_filled(a + i * PAGE, a + (i + 1) * PAGE);
			}
		}
		a += pages * PAGE;
	}
	if (found && charge) {
		/* (frames shared with our parent after a fork: charged at the
		 * first write, cow.c) */
		mgi_charge_anyway(found - mgi_cow_learn(start, end));
		/* Pages that were there before we could see them (a forked
		 * child's, a thread's first touches) may have put the group over
		 * its limit: this process brought them, so it evicts the excess
		 * now if it may; else the OOM path, now, not at the next fault. */
		const mgi_counter_path_t *path = mgi_account_path();
		for (unsigned l = 0; l < path->depth; l++) {
			const mgi_counter_t *c = path->level[l];
			uint64_t usage = mgi_counter_read(c);
			uint64_t max = mgi_counter_read_max(path->limit[l]);
			/* estimate mode: fast regions give back first */
			while (usage > max && mgi_est_demote())
				usage = mgi_counter_read(c);
			if (usage <= max)
				continue;
			if (mgi_evict_allowed(l)) {
				/* what this process cannot evict now (another
				 * holds the rest) waits for the next faults,
				 * which make room the usual way; so does all of
				 * it in a forked child that kept its parent's
				 * store: its pages are frames it shares with
				 * its parent, each unshared (copied) before it
				 * could go, and a child that execs or exits at
				 * once would pay that in its start */
				if (!mgi_fork_adopting())
					mgi_evict(usage - max + RECLAIM_BATCH);
				continue;
			}
			mgi_oom_wait(l);
			break;
		}
	}
	return found;
}

/* Learns [start, end), which lies in one mapping that starts at vma_start
 * (UINTPTR_MAX: not known): only the parts not yet in the registry. */
static uint64_t learn_range_in(uintptr_t start, uintptr_t end, bool charge, uintptr_t vma_start)
{
	uintptr_t cur = start;
	uint64_t found = 0;

	while (cur < end) {
		mgi_vregion_t *r = mgi_registry_next(&mgi_reg, cur);
		if (r && r->start <= cur) {
			cur = r->end;
			continue;
		}
		uintptr_t gap_end = r && r->start < end ? r->start : end;
		found += learn_gap(cur, gap_end, charge, vma_start);
		cur = gap_end;
	}
	mgi_learn_publish_sizes();
	return found;
}

uint64_t mgi_learn_range(uintptr_t start, uintptr_t end, bool charge)
{
	return learn_range_in(start, end, charge, UINTPTR_MAX);
}

/*
 * Learns what of [start, end) the kernel maps now. A learn request comes
 * through a pipe, apart from the uffd's events: an application thread
 * registers a range and sends the request, and its malloc may trim the
 * heap (an UNMAP event) before the handler reads that request. Taken at
 * its word, the request put pages past the heap's new end in the
 * registry; a fault-around window that reached them failed with ENOENT,
 * was woken and faulted again, for ever (the parallel-build livelock:
 * cc1 at 100 % CPU in _int_malloc, ~250 000 faults a second). What the
 * kernel maps when the handler looks is right whichever way the race
 * went: a trim before the look is seen in it, one after comes as an
 * UNMAP event that the handler reads later.
 */
void mgi_learn_mapped(uintptr_t start, uintptr_t end)
{
	uintptr_t cur = start;
	mgi_vma_t v;

	if (mgi_handover_any())
		mgi_handover_gone(start, end, false);
	while (cur < end && mgi_vma_query(mgi_maps_fd, cur, &v) == 0 && v.start < end) {
		uintptr_t s = v.start > cur ? v.start : cur, e = v.end < end ? v.end : end;
		/* estimate mode keeps its regions as it admitted them */
		if (mgi_vma_is_anon_private(&v))
			learn_range_in(s, e, true, mgi_est_on() ? UINTPTR_MAX : v.start);
		cur = v.end;
	}
}

/*
 * A fill at page failed with ENOENT: the registry holds memory the kernel
 * does not map there as one registered range (a range learned before the
 * learn fix above could not be; a region may span two VMAs, which one
 * ioctl cannot cross). Drops from the region around page the stretches no
 * mapping covers and sets [*lo, *hi) to the mapping that holds page
 * within the region (empty if none). Returns false, changing nothing, if
 * events are waiting: an unmap or a move read after the look would make
 * it wrong (a moved range's evicted pages must follow its REMAP, not be
 * dropped), so the caller reads them first.
 */
bool mgi_learn_resync_at(uintptr_t page, uintptr_t *lo, uintptr_t *hi)
{
	mgi_vregion_t *r = mgi_registry_find(&mgi_reg, page);
	struct { uintptr_t start, end; } gap[8];
	unsigned ngap = 0;
	struct pollfd p = {.fd = mgi_handler.uffd, .events = POLLIN};

	*lo = *hi = 0;
	if (!r)
		return true;
	uintptr_t cur = r->start, end = r->end;
	while (cur < end && ngap < 8) {
		mgi_vma_t v;
		uintptr_t stop = end;
		if (mgi_vma_query(mgi_maps_fd, cur, &v) == 0 && v.start < end) {
			if (v.start <= cur) {
				if (v.start <= page && page < v.end) {
					*lo = cur;
					*hi = v.end < end ? v.end : end;
				}
				cur = v.end;
				continue;
			}
			stop = v.start;
		}
		gap[ngap].start = cur;
		gap[ngap++].end = stop;
		cur = stop;
	}
	if (poll(&p, 1, 0) != 0)
		return false;
	for (unsigned i = 0; i < ngap; i++) {
		long n;
		mgi_trace(MGI_TR_UNMAP, gap[i].start, gap[i].end, 2, 0);
		mgi_est_forget(gap[i].start, gap[i].end);
		mgi_restore_drop(gap[i].start, gap[i].end);
		mgi_vrange_gone(gap[i].start, gap[i].end);
		n = mgi_registry_remove(&mgi_reg, gap[i].start, gap[i].end);
		if (n < 0)
			n = (long)mgi_registry_clear(&mgi_reg, gap[i].start, gap[i].end);
		mgi_uncharge(mgi_cow_forget(gap[i].start, gap[i].end, (uint64_t)n));
	}
	if (ngap)
		mgi_learn_publish_sizes();
	return true;
}

/* A fault in a range we have not heard of: the kernel says it is ours
 * (registered), e.g. grown in place by mremap or brk. Ask which VMA. */
void mgi_learn_vma(uintptr_t addr)
{
	mgi_vma_t v;

	if (mgi_vma_query(mgi_maps_fd, addr, &v) != 0 || v.start > addr ||
	    !mgi_vma_is_anon_private(&v) || v.end - v.start > MGI_REGION_MAX_BYTES)
		return;
	if (mgi_arena_contains(&mgi_arena, v.start) ||
	    mgi_arena_contains(&mgi_arena, v.end - 1))
		return; /* never the agent's own memory */
	if (mgi_est_fast_at(addr))
		return; /* a fast region's: mgi_learn_unwatch() below */
	mgi_learn_mapped(v.start, v.end);
}

/*
 * The kernel reported a fault at page and the handler will not manage it
 * (a fast region's in estimate mode, memory it may not register, no room
 * in the registry). Waking the thread alone would bring the same fault
 * back for ever while the range stays registered (the "lost fault" lines
 * of redis in estimate mode): the range is unregistered, so the kernel
 * serves its faults. Estimate mode's fast region already charges its
 * size; anything else goes unmanaged, said once.
 */
void mgi_learn_unwatch(uintptr_t page)
{
	static bool said;
	mgi_vma_t v;

	if (mgi_est_fast_at(page)) {
		mgi_est_fault_on_fast(page);
		return;
	}
	if (mgi_vma_query(mgi_maps_fd, page, &v) != 0 || v.start > page)
		return; /* unmapped since: the thread meets whatever is there */
	if (mgi_uffd_unregister(mgi_handler.uffd, v.start, v.end - v.start) == 0 && !said) {
		said = true;
		mgi_agent_log("%#lx-%#lx (%s) cannot be managed: left to the kernel",
			      (unsigned long)v.start, (unsigned long)v.end, v.name[0] ? v.name : "anonymous");
	}
}


/* Subtracts the agent's arena and the loaded objects' extents from
 * [start, end) and registers what is left. [heap] and [stack] are never
 * inside an object's extent, so they pass whole. */
static bool rescanning; /* estimate mode's tick: excluded parts counted already */

static void register_pieces(uintptr_t start, uintptr_t end, bool stack)
{
	uintptr_t cur = start;

	while (cur < end) {
		uintptr_t stop = end, skip_to;
		bool own;

		mgi_exclude_next(cur, &stop, &skip_to, &own);
		if (skip_to) { /* cur is excluded */
			uintptr_t e = skip_to < end ? skip_to : end;
			/* the agent's own reservations are not the
			 * application's memory: not even untracked */
			if (!own && !rescanning)
				untracked_bytes += e - cur;
			cur = e;
			continue;
		}
		if (mgi_est_on()) {
			/* Estimate mode: charged at its size, or slow if need
			 * be; the main stack grows unseen, so it is slow. */
			mgi_est_admit(cur, stop, stack);
			cur = stop;
			continue;
		}
		if (!mgi_thp_on()) /* with huge pages on, MADV_COLLAPSE needs it unmarked */
			mgi_raw_madvise((void *)cur, stop - cur, MADV_NOHUGEPAGE);
		if (mgi_cow_register(cur, stop - cur) == 0)
			mgi_learn_mapped(cur, stop);
		else
			untracked_bytes += stop - cur;
		cur = stop;
	}
}

/* Estimate mode, once a second: regions that appeared with no call we
 * see (a library's own mmap syscall, glibc's internal ones whose blocks
 * have not reached the malloc wrappers yet) enter like any other: what of
 * each eligible VMA is not known yet is admitted (Algorithm 2). */
void mgi_rescan(void)
{
	rescanning = true;
	mgi_scan_and_register();
	rescanning = false;
}

void mgi_scan_and_register(void)
{
	uintptr_t addr = 0;
	mgi_vma_t v;

	while (mgi_vma_query(mgi_maps_fd, addr, &v) == 0 && v.end > addr) {
		addr = v.end;
		if (!mgi_vma_is_anon_private(&v) || !(v.flags & MGI_VMA_WRITE))
			continue;
		/* [vvar], [vdso], [vsyscall] and the like are not memory of
		 * the application's; [heap] and [stack] are. */
		if (v.name[0] == '[' && strcmp(v.name, "[heap]") != 0 &&
		    strcmp(v.name, "[stack]") != 0)
			continue;
		if (v.end - v.start > MGI_REGION_MAX_BYTES)
			continue;
		register_pieces(v.start, v.end, strcmp(v.name, "[stack]") == 0);
	}
	mgi_learn_publish_sizes();
}

/* fault.c - the fault loop: resolves faults (resolve), follows the uffd's events, parks and retries. */
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
#include "inject.h"
#include "os.h"
#include "proto.h"
#include "recent.h"
#include "size.h"
#include "thp.h"
#include "trace.h"
#include "fault.h"
#include "cow.h"

#define PAGE MGI_PAGE_SIZE
#define PENDING_MAX 4096
#define MSGS_PER_READ 64

/* A fault waiting for a retry (memory, or events first), and since when
 * its charge has been refused (0: it has not): the reclaim stall. */
struct parked {
	uintptr_t addr;
	uint64_t since;
};
static struct parked pending[PENDING_MAX];
static unsigned npending;
/* npending, for the watchdog (another thread) to read. */
static _Atomic unsigned parked;
/* Pages the last resolved fault brought in (wait_for_work's evict-ahead
 * serves single-page faults only). A forked child inherits it: a hint
 * for its first wait only (childreset.c). */
static size_t last_fault_pages;

static void park(uintptr_t addr, uint64_t since)
{
	if (npending < PENDING_MAX) {
		pending[npending++] = (struct parked){addr, since};
		atomic_store_explicit(&parked, npending, memory_order_relaxed);
	}
	/* Full cannot happen in practice: each thread has at most one fault
	 * outstanding, so this holds every fault of PENDING_MAX threads. */
}

/* Whether page is right after (or, for stacks, right before) one of the
 * region's recent runs: what a sequential scan faults on next. */
static bool continues_a_stream(const mgi_vregion_t *r, uintptr_t page)
{
	for (unsigned i = 0; i < MGI_STREAMS; i++)
		if (r->run_end[i] && (page == r->run_end[i] || page + PAGE == r->run_start[i]))
			return true;
	return false;
}

/* The last run of the forward stream page continues, in pages (0: none):
 * how far the stream has gone lately, which sets how far to fill ahead. */
static size_t stream_run_pages(const mgi_vregion_t *r, uintptr_t page)
{
	for (unsigned i = 0; i < MGI_STREAMS; i++)
		if (r->run_end[i] && page == r->run_end[i])
			return (r->run_end[i] - r->run_start[i]) / PAGE;
	return 0;
}

/*
 * Fill-ahead for a long sequential stream. Each fault is a round trip to
 * this thread (two thread wake-ups, each onto a CPU that may be halted: a
 * VM whose idle vCPUs do not poll pays tens of us each). A stream that goes
 * on gets, like readahead's ramp, twice its last run (up to
 * FILL_AHEAD_FACTOR windows; none with a window of one page): after the
 * window that woke the faulting thread, more chunks of at most a window
 * each (each its own charge, so a charge in flight stays
 * within a window: the segment checks' slack), only while the group has
 * room to spare (no eviction for pages not asked for yet), stopping at the
 * first page present, evicted, or recently given back, and at any error.
 * Measured: see docs/benchmarks.md, "The fault path's round trips".
 * Returns the pages filled after `from`.
 */
#define FILL_AHEAD_FACTOR 8 /* runs up to 8 windows (512 pages by default) */
#define FILL_AHEAD_ROOM (4 * FILL_AHEAD_FACTOR * MGI_FAULT_AROUND_MAX) /* margin kept */

static size_t fill_ahead(mgi_vregion_t *r, uintptr_t from, size_t want, size_t window)
{
	size_t done = 0;

	while (done < want) {
		uintptr_t s = from + done * PAGE;
		size_t n = want - done < window ? want - done : window, copied;

		n = mgi_registry_absent_run(r, s, n);
		if (n == 0 || mgi_recently_removed(s, s + n * PAGE) ||
		    mgi_counter_path_margin(mgi_account_path()) < FILL_AHEAD_ROOM + n ||
		    !mgi_charge(n, NULL))
			break;
		int rc = mgi_uffd_copy(mgi_handler.uffd, s, mgi_handler.zeros, n * PAGE, &copied);
		size_t k = copied / PAGE;
		mgi_trace(MGI_TR_ZFILL, s, k, (uint32_t)n, rc);
		if (k) {
			mgi_registry_mark(&mgi_reg, r, s, k);
			mgi_thp_filled(s, s + k * PAGE);
		}
		mgi_uncharge(n - k);
		done += k;
		if (rc != 0 || k < n)
			break; /* the fault path meets whatever stopped it */
	}
	return done;
}

/* Records a resolved run: it extends the stream it continues, or replaces
 * the oldest. Counts the fault too (a slow region's rate, estimate mode). */
static void remember_run(mgi_vregion_t *r, uintptr_t start, uintptr_t end)
{
	r->faults++;
	for (unsigned i = 0; i < MGI_STREAMS; i++) {
		if (r->run_end[i] && (start == r->run_end[i] || end == r->run_start[i])) {
			r->run_start[i] = start;
			r->run_end[i] = end;
			return;
		}
	}
	r->run_start[r->next_stream] = start;
	r->run_end[r->next_stream] = end;
	r->next_stream = (r->next_stream + 1) % MGI_STREAMS;
}

static void count_stall(uint64_t since)
{
	if (since)
		mgi_segment_count_stall(mgi_join.seg, mgi_now_ns() - since);
}

/*
 * Resolves the fault at addr: restores an evicted page, or fills the run of
 * absent pages around it with zeros (fault-around), charging first and
 * making room when the charge is refused. Returns MGI_DONE, or MGI_RETRY
 * (park it: room or events first). Long (~170 lines): the attempts loop
 * shares its state (the region, the window, the mapping found after an
 * ENOENT, whether a resync was done) across restore, charge and copy, and
 * each error of the copy decides the next attempt in place; its pieces are
 * written out where they are simplest to check against the kernel's
 * answers (docs/design.md, "The fault path").
 */
static enum mgi_resolved resolve(uintptr_t addr, uint64_t *since)
{
	mgi_registry_t *reg = &mgi_reg;
	uintptr_t page = addr & ~(PAGE - 1), s, ws;
	size_t window = atomic_load_explicit(&mgi_join.seg->ctl.fault_around, memory_order_relaxed);
	size_t n, copied, k;
	mgi_vregion_t *r = mgi_registry_find(reg, page);
	unsigned level = 0;
	uintptr_t lo = 0, hi = 0; /* after an ENOENT: the mapping holding page */
	bool resynced = false;
	int rc;

	if (addr & 1) {
		/* a write-protect fault (on_event): a frame shared after fork */
		if (mgi_cow_fault(page, since) == MGI_RETRY)
			return MGI_RETRY;
		goto done;
	}
	if (mgi_vrange_fault(page))
		return MGI_DONE; /* purged, SIGBUS mode: poisoned */
	if (!r) {
		mgi_learn_vma(page);
		r = mgi_registry_find(reg, page);
		if (!r) {
			mgi_learn_unwatch(page);
			mgi_uffd_wake(mgi_handler.uffd, page, PAGE);
			return MGI_DONE;
		}
	}
	if (mgi_registry_test(r, page)) {
		/* We thought it present; the kernel found it missing (an
		 * MADV_FREE page the kernel reclaimed sends no event). */
		mgi_trace(MGI_TR_MISSING, page, 0, 0, 0);
		mgi_uncharge(mgi_cow_forget(page, page + PAGE, mgi_registry_clear(reg, page, page + PAGE)));
	}
	if (window < 1)
		window = 1;
	if (window > MGI_FAULT_AROUND_MAX)
		window = MGI_FAULT_AROUND_MAX;
	/* Fault-around only for access that looks sequential (this fault is
	 * next to the last run resolved in the region, either side): a sparse
	 * pattern would otherwise get up to `window` times the memory the
	 * kernel would give it. Like readahead, the first fault of a run is
	 * served alone. */
	bool sequential = continues_a_stream(r, page);
	/* A fault on a region's first page: allocators and runtimes write a
	 * new mapping from its start (malloc's chunks, V8's pages, Python's
	 * arenas), so it gets the window at once, not one page and then the
	 * rest. Not remembered as a stream: a strided reader's next fault,
	 * past the window, starts over with one page. */
	bool at_start = !sequential && page == r->start && r->present == 0 && r->nout == 0;
	/* (none with fault-around 1: one page per fault, as asked) */
	size_t ahead = sequential && window > 1 ? 2 * stream_run_pages(r, page) : 0;
	if (ahead > FILL_AHEAD_FACTOR * window)
		ahead = FILL_AHEAD_FACTOR * window;
	if (!sequential && !at_start)
		window = 1;
	if (window > 1 && mgi_recently_removed(page - (window - 1) * PAGE, page + window * PAGE))
	{
		window = 1; /* not into a range whose old pages may still be there */
		ahead = 0;
	}
	/* nor over a SIGBUS-mode volatile range: a purged page there must
	 * fault (and raise SIGBUS) when touched, not be filled with zeros */
	if (window > 1) {
		uintptr_t from = page - (window - 1) * PAGE < r->start ? r->start : page - (window - 1) * PAGE;
		if (mgi_vrange_sigbus_within(from, page + (window + ahead) * PAGE))
			window = 1, ahead = 0;
	}

	for (int attempt = 0; attempt < 8; attempt++) {
		if (attempt) {
			/* make_room may have followed events (an unmap, an
			 * mremap elsewhere): the registry may have moved. */
			r = mgi_registry_find(reg, page);
			if (!r) {
				mgi_uffd_wake(mgi_handler.uffd, page, PAGE);
				goto done;
			}
		}
		if (mgi_registry_is_out(r, page)) {
			/* Evicted: its data comes back from the staging area or
			 * the store. */
			enum mgi_resolved res = mgi_restore(r, page, sequential, &k, &level);
			if (res == MGI_NEED_ROOM) {
				if (mgi_room_make(level, since))
					continue;
				return MGI_RETRY;
			}
			if (res == MGI_RETRY)
				return MGI_RETRY;
			if (res == MGI_DONE) {
				if (k)
					remember_run(r, page, page + k * PAGE);
				mgi_thp_filled(page, page + k * PAGE);
				last_fault_pages = k;
				goto done;
			}
			/* MGI_ABSENT: held nowhere, a new page after all */
		}
		/* The aligned window around the fault, clipped to the region,
		 * and in it the run of absent pages containing the fault. */
		ws = r->start + ((page - r->start) / PAGE / window) * window * PAGE;
		if (hi && ws < lo)
			ws = lo; /* one ioctl cannot cross a VMA's edge */
		s = page;
		while (s > ws && !mgi_registry_test(r, s - PAGE) && !mgi_registry_is_out(r, s - PAGE))
			s -= PAGE;
		n = mgi_registry_absent_run(r, s, window - (s - ws) / PAGE);
		if (hi && s + n * PAGE > hi)
			n = (hi - s) / PAGE;

		if (!mgi_charge(n, NULL)) {
			/* Near the limit: the part of the run from the fault
			 * on that fits. Measured: falling back to one page made
			 * most faults of a sequential writer at its limit single
			 * pages, each a round trip (16 171 of them against 638
			 * full windows for 256 MiB under 64M). */
			size_t from_fault = n - (page - s) / PAGE;
			s = page;
			n = mgi_charge_upto(from_fault, &level);
			if (n == 0 && mgi_releaser_unsharing(page)) {
				/* The helper's MADV_POPULATE_WRITE met a page
				 * removed since its range was queued. It cannot
				 * wait for room: the room would come from pages
				 * it is unsharing. One page over, then evicted. */
				n = 1;
				mgi_charge_anyway(1);
			} else if (n == 0) {
				if (mgi_room_make(level, since))
					continue;
				return MGI_RETRY;
			}
		}
		last_fault_pages = n;

		rc = mgi_uffd_copy(mgi_handler.uffd, s, mgi_handler.zeros, n * PAGE, &copied);
		k = copied / PAGE;
		mgi_trace(MGI_TR_ZFILL, s, k, (uint32_t)n, rc);
		if (k) {
			mgi_registry_mark(reg, r, s, k);
			mgi_thp_filled(s, s + k * PAGE);
		}
		mgi_uncharge(n - k);
		if (rc == 0 && k == n && ahead > k) {
			/* ending on a window's edge, where the next fault's
			 * window starts whole */
			size_t to = (s - r->start) / PAGE + ahead;
			to -= to % window;
			if (r->start + to * PAGE > s + k * PAGE)
				k += fill_ahead(r, s + k * PAGE, to - (s - r->start) / PAGE - k, window);
		}
		if (k && at_start)
			r->faults++; /* (counted, not remembered as a stream) */
		else if (k)
			remember_run(r, s, s + k * PAGE);
		if (rc == 0 || page < s + copied)
			goto done;
		if (rc == -EEXIST && mgi_recently_removed(s + copied, s + copied + PAGE)) {
			/* An old page of a range just given back, about to be
			 * zapped: not counted. The faulting thread goes on
			 * (racing the madvise, it may see either). */
			mgi_trace(MGI_TR_EEXIST, s + copied, 0, 0, 1);
			mgi_uffd_wake(mgi_handler.uffd, page, PAGE);
			goto done;
		}
		if (rc == -EEXIST) {
			/* Present though we did not put it there (the kernel
			 * sent no event for it): it is real memory, so count
			 * it, and go round again without it. */
			uintptr_t there = s + copied;
			mgi_trace(MGI_TR_EEXIST, there, 0, 0, 0);
			mgi_charge_anyway(1);
			mgi_registry_mark(reg, r, there, 1);
			mgi_thp_filled(there, there + PAGE);
			if (there == page) {
				mgi_uffd_wake(mgi_handler.uffd, page, PAGE);
				goto done;
			}
			continue;
		}
		if (rc == -EAGAIN && k)
			continue; /* a partial copy stopped short of the fault */
		if (rc == -EAGAIN)
			return MGI_RETRY; /* the address space is changing: events first */
		if (rc == -ENOENT && !resynced) {
			/* No events are waiting (they would give EAGAIN), yet
			 * the kernel does not map [s, s + n) as one registered
			 * range: the registry is wrong, or the window crosses
			 * a VMA's edge. Waking the thread to fault again would
			 * meet the same window for ever. */
			resynced = true;
			if (!mgi_learn_resync_at(page, &lo, &hi))
				return MGI_RETRY;
			if (!hi) {
				mgi_uffd_wake(mgi_handler.uffd, page, PAGE);
				goto done;
			}
			continue;
		}
		/* The range went away (ENOENT, EFAULT): let the thread fault
		 * again and meet whatever is there now. */
		mgi_uffd_wake(mgi_handler.uffd, page, PAGE);
		goto done;
	}
	return MGI_RETRY;
done:
	count_stall(*since);
	atomic_fetch_add_explicit(&mgi_join.me->pgfault, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&mgi_join.seg->acct.pgfault, 1, memory_order_relaxed);
	return MGI_DONE;
}

static void on_event(const struct uffd_msg *m)
{
	uint64_t dropped, since = 0;
	long n;

	switch (m->event) {
	case UFFD_EVENT_PAGEFAULT:
		mgi_trace(MGI_TR_FAULT, m->arg.pagefault.address, 0, 0, 0);
		if (mgi_inject.drop_fault) {
			/* Fault injection: lose this fault, as a handler bug
			 * would, for the watchdog to find. */
			mgi_inject.drop_fault = false;
			break;
		}
		{
			/* a write-protect fault is marked in the address's bit 0
			 * (page-aligned otherwise), parked and retried as such */
			uintptr_t a = (uintptr_t)m->arg.pagefault.address;
			if (m->arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP)
				a = (a & ~(uintptr_t)(PAGE - 1)) | 1;
			if (resolve(a, &since) == MGI_RETRY)
				park(a, since);
		}
		break;
	case UFFD_EVENT_REMOVE:
		/* (the releaser's own madvise of staging slots lands here too:
		 * the registry does not cover them, so nothing happens) */
		mgi_trace(MGI_TR_REMOVE, m->arg.remove.start, m->arg.remove.end, 0, 0);
		if (mgi_registry_find(&mgi_reg, m->arg.remove.start) ||
		    mgi_registry_find(&mgi_reg, m->arg.remove.end - PAGE))
			mgi_guard_note_removed(m->arg.remove.start, m->arg.remove.end);
		mgi_restore_drop(m->arg.remove.start, m->arg.remove.end);
		mgi_uncharge(mgi_cow_forget(m->arg.remove.start, m->arg.remove.end,
					    mgi_registry_clear(&mgi_reg, m->arg.remove.start,
							       m->arg.remove.end)));
		mgi_thp_gone(m->arg.remove.start, m->arg.remove.end);
		break;
	case UFFD_EVENT_UNMAP:
		if (mgi_guard_claim_vacated(m->arg.remove.start, m->arg.remove.end)) {
			/* a move's old range: what is held there now is a
			 * newcomer's (n=1 in the trace) */
			mgi_trace(MGI_TR_UNMAP, m->arg.remove.start, m->arg.remove.end, 1, 0);
			mgi_est_forget(m->arg.remove.start, m->arg.remove.end);
			mgi_thp_gone(m->arg.remove.start, m->arg.remove.end);
			mgi_interpose_unmapped(m->arg.remove.start);
			break;
		}
		mgi_trace(MGI_TR_UNMAP, m->arg.remove.start, m->arg.remove.end, 0, 0);
		mgi_est_forget(m->arg.remove.start, m->arg.remove.end);
		mgi_vrange_gone(m->arg.remove.start, m->arg.remove.end);
		mgi_restore_drop(m->arg.remove.start, m->arg.remove.end);
		n = mgi_registry_remove(&mgi_reg, m->arg.remove.start, m->arg.remove.end);
		if (n < 0) /* no memory to split: at least drop the charges */
			n = (long)mgi_registry_clear(&mgi_reg, m->arg.remove.start,
						     m->arg.remove.end);
		mgi_uncharge(mgi_cow_forget(m->arg.remove.start, m->arg.remove.end, (uint64_t)n));
		mgi_thp_gone(m->arg.remove.start, m->arg.remove.end);
		mgi_learn_publish_sizes();
		mgi_interpose_unmapped(m->arg.remove.start);
		break;
	case UFFD_EVENT_REMAP: {
		uintptr_t from = m->arg.remap.from, to = m->arg.remap.to;
		size_t len = m->arg.remap.len;
		mgi_trace(MGI_TR_REMAP, from, to, (uint32_t)(len / PAGE), 0);
		/* What we held for the destination is stale: it was unmapped. */
		mgi_restore_drop(to, to + len);
		/* Volatile marks do not follow a move (docs/design.md). */
		mgi_vrange_gone(from, from + len);
		mgi_vrange_gone(to, to + len);
		/* owed pages do not follow a move: charged now (cow.c) */
		mgi_cow_settle(from, from + len);
		int rc = mgi_registry_move(&mgi_reg, from, to, len, &dropped);
		mgi_uncharge(mgi_cow_forget(to, to + len, dropped));
		if (rc == 0) {
			mgi_restore_moved(from, to, len);
			mgi_thp_moved(from, to, len);
		} else {
			mgi_thp_gone(from, from + len);
			/* Could not follow (the arena is exhausted): drop the
			 * source's charges; the destination is learned again
			 * (with mincore) on its first fault. Evicted pages of
			 * the range cannot be found there any more: say so. */
			if (mgi_reg.nout)
				mgi_agent_log("mremap of %#lx could not be followed (out of agent "
					      "memory): its evicted pages are lost", (unsigned long)from);
			mgi_restore_drop(from, from + len);
			mgi_uncharge(mgi_registry_clear(&mgi_reg, from, from + len));
			mgi_registry_remove(&mgi_reg, from, from + len);
		}
		mgi_guard_note_vacated(from, from + len);
		mgi_learn_publish_sizes();
		mgi_interpose_unmapped(from);
		break;
	}
	case UFFD_EVENT_FORK:
		mgi_fork_event((int)m->arg.fork.ufd);
		break;
	default:
		break;
	}
}

void mgi_fault_drain_requests(void)
{
	mgi_learn_req_t req[64];
	ssize_t n;

	while ((n = read(mgi_request_fd(), req, sizeof(req))) > 0)
		for (size_t i = 0; i < (size_t)n / sizeof(req[0]); i++) {
			if (req[i].kind == MGI_REQ_LEARN)
				mgi_learn_mapped(req[i].start, req[i].end);
			else if (req[i].kind == MGI_REQ_VRANGE)
				mgi_vrange_request(&req[i]);
			else if (req[i].kind == MGI_REQ_HAND_OVER)
				mgi_request_answer(req[i].waiter,
						   mgi_hand_over(req[i].start, req[i].end));
			else
				mgi_est_request(&req[i]);
		}
}

/*
 * Reads what the uffd has, a batch at a time. Within a batch the events
 * (remove, unmap, remap, fork) are followed before any fault is resolved:
 * once an event is read the kernel stops refusing UFFDIO_COPY and MOVE for
 * it (mmap_changing), so resolving a fault (which may evict) ahead of an
 * unmap read in the same batch would move pages of whatever now lies at
 * the unmapped addresses as if they were the old range's. Faults may be
 * resolved in any order; events keep theirs.
 */
static void drain_uffd(void)
{
	struct uffd_msg msgs[MSGS_PER_READ];
	ssize_t n;

	for (;;) {
		mgi_fork_read_begin();
		n = read(mgi_handler.uffd, msgs, sizeof(msgs));
		mgi_fork_read_end(msgs, n > 0 ? (size_t)n / sizeof(msgs[0]) : 0);
		if (n <= 0)
			break;
		size_t count = (size_t)n / sizeof(msgs[0]);
		for (size_t i = 0; i < count; i++)
			if (msgs[i].event != UFFD_EVENT_PAGEFAULT)
				on_event(&msgs[i]);
		for (size_t i = 0; i < count; i++)
			if (msgs[i].event == UFFD_EVENT_PAGEFAULT)
				on_event(&msgs[i]);
	}
}

void mgi_handler_follow_events(void)
{
	drain_uffd(); /* faults that need room are parked (make_room) */
}

void mgi_fault_retry_parked(void)
{
	static struct parked retrying[PENDING_MAX];
	unsigned count = npending;

	/* Work from a copy: faults parked while we retry (by drain_uffd's
	 * new events, or by a retry that fails again) go into the emptied
	 * list and must not overwrite entries not yet retried. An earlier
	 * version reset the list in place and lost faults that way: their
	 * threads stayed blocked for ever (caught by tests/progs/stress.c). */
	memcpy(retrying, pending, count * sizeof(pending[0]));
	npending = 0;
	/* (the watchdog reads `parked` only to tell lost faults from waiting
	 * ones; it stays at count until the retries below settle) */
	for (unsigned i = 0; i < count; i++) {
		/* Events first: a parked fault may be waiting on one. */
		drain_uffd();
		if (resolve(retrying[i].addr, &retrying[i].since) == MGI_RETRY)
			park(retrying[i].addr, retrying[i].since);
	}
	atomic_store_explicit(&parked, npending, memory_order_relaxed);
}

unsigned mgi_fault_parked(void)
{
	return npending;
}

unsigned mgi_fault_parked_any(void)
{
	return atomic_load_explicit(&parked, memory_order_relaxed);
}

void mgi_fault_forget_parked(void)
{
	npending = 0;
	atomic_store_explicit(&parked, 0, memory_order_relaxed);
}

size_t mgi_fault_last_pages(void)
{
	return last_fault_pages;
}

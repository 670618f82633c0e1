/* vrange.c - volatile ranges (mg_vrange): the application's calls, the handler's table, purging first under pressure. */
#include <errno.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include "account.h"
#include "agent.h"
#include "os.h"
#include "pageout.h"
#include "vrange.h"
#include "vrange_int.h"
#include "cow.h"

/*
 * An application lends pages back (include/memgrp.h, mg_vrange): while a
 * range is volatile its present pages stay charged, and when this process
 * must make room (a refused charge, or the manager's EVICT: every way into
 * mgi_evict) they go first, dropped, never compressed or written back
 * (evict.c mgi_evict_purge moves them out of the address space into
 * staging slots retired at once). A staged volatile page reaching the head
 * of the staging area is dropped the same way instead of being compressed.
 * Each purged page is marked in its range's bitmap (core/vrange.c), so the
 * application learns exactly which pages it must rebuild.
 *
 * A touch of a purged page while the range is still volatile: in zero mode
 * the page is absent to the registry, so the fault path gives it a fresh
 * zero page (as MADV_FREE); in SIGBUS mode the purge leaves a poison
 * marker (UFFDIO_POISON, Linux 6.6+): the access gets SIGBUS from the
 * kernel, no fault reaches us. Making the range non-volatile again clears
 * the markers (the calling thread's MADV_DONTNEED of the purged pages).
 *
 * The table is shared by the handler and the application's calls, under
 * tab_lock: a call is a few microseconds of bookkeeping on the calling
 * thread, not a round trip to the handler (21.4 us a call measured when
 * every call was a request: bench/coop makes one per entry pinned or
 * unpinned). What a call may do under tab_lock: bookkeeping in agent
 * memory only (the table lives in a block of the agent's arena of its own,
 * vr_arena, since the arena is the handler's), never touch managed memory,
 * never wait on the handler; the handler may then take tab_lock anywhere
 * (it is recursive: a purge follows events and compresses staged pages,
 * both of which look at the table, while it holds the lock). The handler
 * holds it through a whole purge, so a range made non-volatile while pages
 * of it are being moved out waits for the move and is told they went:
 * a page is never taken from a range that is no longer volatile.
 *
 * Making a range volatile needs to know the range is managed (in the
 * registry, the handler's alone): the handler answers the first call in a
 * registry region (a request, request.c) and notes the region as known;
 * later calls in a known region are answered on the calling thread. Any
 * region the registry lets go of (unmap, mremap, an unmap found by a
 * scan, a handover, estimate mode turning it fast) is forgotten first.
 * Calls are serialized among themselves by call_lock, which the handler
 * never takes, and the per-page report travels through `report` in the
 * agent's own bss (never managed memory: the handler must never fault).
 */

#ifndef UFFDIO_POISON
struct uffdio_poison {
	struct uffdio_range range;
	__u64 mode;
	__s64 updated;
};
#define _UFFDIO_POISON (0x08)
#define UFFDIO_POISON _IOWR(UFFDIO, _UFFDIO_POISON, struct uffdio_poison)
#endif

#define PAGE MGI_PAGE_SIZE
#define RUN_PAGES 64
#define REPORT_BYTES (64u << 10)
#define MAX_PAGES ((size_t)REPORT_BYTES * 8) /* one call: 2 GiB */
#define VR_ARENA_BYTES (128UL << 20) /* address space only, in the agent's arena */
#define KNOWN_MAX 32
#define PICK 16 /* ranges a purge takes from the table at a time */
#define ASK_HANDLER 0x100 /* not an answer (ANS_*) */

/* OP_UNPIN: NONVOLATILE that also gives the report as it stood when the
 * range stopped being volatile (one step under tab_lock: a purge either
 * took a page before, and it is reported, or cannot take it after). */
enum { OP_VOLATILE = 1, OP_NONVOLATILE = 2, OP_PURGED = 3, OP_UNPIN = 4 };
/* The answer to NONVOLATILE: bit 0, something was purged; bit 1, purged
 * pages hold poison markers, listed in `report`. */
enum { ANS_PURGED = 1, ANS_POISONED = 2 };

mgi_vrtab_t mgi_vr_tab;
bool mgi_vr_tab_ready;
static bool blocked; /* the last purge found volatile pages it could not move yet */
static mgi_vrcur_t cursor; /* the purge's: the last range it took */
static pthread_mutex_t call_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t tab_lock = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
static mgi_arena_t vr_arena;
/* Registry regions the handler found managed (under tab_lock). */
static struct {
	uintptr_t start, end;
} known[KNOWN_MAX];
static uint32_t known_next;
static uint8_t report[REPORT_BYTES];

/*
 * The handler's whole stack committed (the handler's own call, its first
 * VOLATILE): a purge may be asked for while the group waits at its kernel
 * limit, where a fault of the handler on a fresh page of its stack sleeps
 * in the kernel until the limit is relieved, which only the purge would do
 * (measured: the handler in mem_cgroup_oom_synchronize, faulting in
 * mgi_agent_on_manager_message's frame). Each page's first byte is written
 * back as it is: the frames above us are live, and only this thread uses
 * this stack.
 */
__attribute__((no_sanitize("address"), noinline)) static void commit_handler_stack(void)
{
	uintptr_t base = (uintptr_t)mgi_handler_stack(), sp = (uintptr_t)__builtin_frame_address(0);

	if (!base || sp < base || sp >= base + MGI_HANDLER_STACK)
		return; /* (not on the handler's stack: a start) */
	for (uintptr_t a = base; a < base + MGI_HANDLER_STACK; a += PAGE) {
		volatile char *p = (volatile char *)a;
		*p = *p;
	}
}

/*
 * The staging area's page tables made ahead (the handler's call), for the
 * same reason: a purge moves pages into staging slots, and a move whose
 * destination has no page table yet needs one charged to the group, which
 * the kernel refuses (-ENOMEM) while the group waits at its kernel limit
 * (measured: the holder's purges there moved nothing after its stack was
 * committed). A free slot every 1 MiB is written (its table made) and
 * handed to the releaser, which drops the frame and frees the slot; the
 * tables stay.
 */
static void commit_staging_tables(void)
{
	if (!mgi_pageout.can_evict)
		return;
	for (uint32_t s = 0; s < MGI_STAGE_SLOTS; s += 256) {
		if (mgi_pageout.staging.slot[s].key != 0)
			continue; /* in use: its table is there */
		*(volatile char *)slot_addr(s) = 1;
		mgi_staging_block(&mgi_pageout.staging, s);
		mgi_releaser_release(s);
	}
	mgi_releaser_flush_lazily();
}

/* The handler's (or a start's, before the handler runs): the table's
 * memory is taken from the agent's arena, which only they may use. */
bool mgi_vr_ensure_tab(void)
{
	void *block;

	if (mgi_vr_tab_ready)
		return true;
	block = mgi_arena_alloc(&mgi_arena, VR_ARENA_BYTES);
	if (!block)
		return false;
	/* a block of the arena, committed already: its own size classes */
	memset(&vr_arena, 0, sizeof(vr_arena));
	vr_arena.base = vr_arena.bump = (uintptr_t)block;
	vr_arena.end = vr_arena.committed = vr_arena.base + VR_ARENA_BYTES;
	mgi_vrtab_init(&mgi_vr_tab, (mgi_allocator_t){(void *(*)(void *, size_t))mgi_arena_alloc,
					       (void (*)(void *, void *, size_t))mgi_arena_free,
					       &vr_arena});
	cursor = (mgi_vrcur_t){0, 0};
	mgi_vr_tab_ready = true;
	commit_handler_stack();
	if (mgi_handler_stack() && (uintptr_t)__builtin_frame_address(0) - (uintptr_t)mgi_handler_stack() <
				       MGI_HANDLER_STACK)
		commit_staging_tables(); /* (on the handler only) */
	return true;
}

static bool known_covers(uintptr_t start, uintptr_t end)
{
	for (uint32_t i = 0; i < KNOWN_MAX; i++)
		if (known[i].start <= start && end <= known[i].end && known[i].end)
			return true;
	return false;
}

static void known_forget(uintptr_t start, uintptr_t end)
{
	for (uint32_t i = 0; i < KNOWN_MAX; i++)
		if (known[i].start < end && start < known[i].end)
			known[i].start = known[i].end = 0;
}

/* The slot's figure: volatile pages not purged yet (what a purge could
 * still give back; the manager asks this process first while it has any). */
static void publish(void)
{
	atomic_store_explicit(&mgi_join.me->vrange_pages, mgi_vr_tab.pages - mgi_vr_tab.purged,
			      memory_order_relaxed);
}

static void poison(uintptr_t start, size_t n)
{
	struct uffdio_poison p = {.range = {.start = start, .len = n * PAGE}};

	/* A failure (the address space changing) leaves the pages absent:
	 * the fault path poisons them when touched (mgi_vrange_fault). */
	(void)ioctl(mgi_handler.uffd, UFFDIO_POISON, &p);
}

/* Whether every page of [start, end) lies in the registry's ranges. */
static bool managed(uintptr_t start, uintptr_t end)
{
	uintptr_t a = start;

	while (a < end) {
		mgi_vregion_t *r = mgi_registry_find(&mgi_reg, a);
		if (!r)
			return false;
		a = r->end;
	}
	return true;
}

static int op_volatile(uintptr_t start, uintptr_t end, uint32_t mode)
{
	int rc;

	/* Estimate mode: the fast regions there are turned slow (registered),
	 * and kept slow while a volatile range lies in them (docs/design.md
	 * "Volatile ranges", estimate mode). */
	if (!managed(start, end) && mgi_est_on())
		(void)mgi_est_slow_for(start, end);
	if (!managed(start, end))
		return -EFAULT;
	if (!mgi_vr_ensure_tab())
		return -ENOMEM;
	rc = mgi_vrtab_add(&mgi_vr_tab, start, end, mode);
	if (rc == 0)
		publish();
	/* the region, when one holds the whole range: calls there are
	 * answered on the calling thread from now on */
	mgi_vregion_t *r = mgi_registry_find(&mgi_reg, start);
	if (r && end <= r->end && !known_covers(start, end)) {
		known[known_next].start = r->start;
		known[known_next].end = r->end;
		known_next = (known_next + 1) % KNOWN_MAX;
	}
	return rc;
}

static int op_nonvolatile(uintptr_t start, uintptr_t end, bool want_report)
{
	mgi_vrange_t *r = mgi_vr_tab_ready ? mgi_vrtab_within(&mgi_vr_tab, start, end) : NULL;
	uint64_t purged;
	bool sigbus;

	if (!r)
		return -ENOENT;
	purged = mgi_vrange_count(r, start, end);
	sigbus = r->mode == MGI_VR_SIGBUS;
	if (purged && (sigbus || want_report))
		mgi_vrange_report(r, start, end, report);
	else if (want_report)
		memset(report, 0, (size_t)((end - start) / PAGE + 7) / 8);
	if (mgi_vrtab_cut(&mgi_vr_tab, start, end) < 0)
		return -ENOMEM;
	publish();
	return (purged ? ANS_PURGED : 0) | (purged && sigbus ? ANS_POISONED : 0);
}

static int op_purged(uintptr_t start, uintptr_t end)
{
	mgi_vrange_t *r = mgi_vr_tab_ready ? mgi_vrtab_within(&mgi_vr_tab, start, end) : NULL;

	if (!r)
		return -ENOENT;
	mgi_vrange_report(r, start, end, report);
	return 0;
}

void mgi_vrange_request(const mgi_learn_req_t *req)
{
	uint32_t op = (uint32_t)(req->vstart & 0xff), mode = (uint32_t)(req->vstart >> 8);
	int rc;

	pthread_mutex_lock(&tab_lock);
	if (op == OP_VOLATILE)
		rc = op_volatile(req->start, req->end, mode);
	else if (op == OP_NONVOLATILE || op == OP_UNPIN)
		rc = op_nonvolatile(req->start, req->end, op == OP_UNPIN);
	else if (op == OP_PURGED)
		rc = op_purged(req->start, req->end);
	else
		rc = -EINVAL;
	pthread_mutex_unlock(&tab_lock);
	mgi_request_answer(req->waiter, rc);
}

/* n pages from start were purged: marked in their ranges (looked up page
 * by page: events followed meanwhile may have cut the table), counted,
 * and poisoned in SIGBUS mode. vrange_purged_pages counts page purges of
 * volatile pages: each page dropped from a range still volatile once per
 * purge, so a zero-mode page purged, touched again (a fresh zero page,
 * its report bit stays) and purged again counts twice, as it gave back a
 * frame twice; a page whose range went meanwhile (unmapped during the
 * move) is not counted. */
static void purged_pages(uintptr_t start, size_t n)
{
	uint64_t counted = 0;

	for (size_t j = 0; j < n; j++) {
		uintptr_t a = start + j * PAGE;
		mgi_vrange_t *v = mgi_vrtab_find(&mgi_vr_tab, a);
		if (!v)
			continue;
		mgi_vrtab_mark(&mgi_vr_tab, v, a);
		counted++;
		if (v->mode == MGI_VR_SIGBUS)
			poison(a, 1);
	}
	atomic_fetch_add_explicit(&mgi_join.seg->acct.vrange_purged_pages, counted,
				  memory_order_relaxed);
	publish();
}

/* Purges the present pages of [start, end), a range taken from the table
 * (it may have been cut since), until *done reaches want. Returns false
 * when nothing could move (no staging slot free yet, the address space
 * changing). Under tab_lock. */
static bool purge_range(uintptr_t start, uintptr_t end, uint64_t want, uint64_t *done)
{
	mgi_registry_t *reg = &mgi_reg;
	uintptr_t a = start;

	if (!mgi_registry_count(reg, start, end, NULL, NULL, false))
		return true;
	while (a < end && *done < want) {
		/* (events followed during a move may have cut the table: only
		 * what is volatile still goes) */
		mgi_vrange_t *v = mgi_vrtab_next(&mgi_vr_tab, a);
		if (!v || v->start >= end)
			break;
		if (v->start > a)
			a = v->start;
		mgi_vregion_t *r = mgi_registry_next(reg, a);
		if (!r || r->start >= end)
			break;
		if (r->start > a) {
			a = r->start;
			continue;
		}
		uintptr_t lim = r->end < v->end ? r->end : v->end;
		if (lim > end)
			lim = end;
		if (!mgi_registry_test(r, a)) {
			a += PAGE;
			continue;
		}
		size_t n = 1;
		while (n < RUN_PAGES && a + n * PAGE < lim && mgi_registry_test(r, a + n * PAGE))
			n++;
		uint64_t k = mgi_evict_purge(a, n);
		if (!k)
			return false;
		mgi_uncharge(mgi_cow_forget(a, a + k * PAGE, mgi_registry_clear(reg, a, a + k * PAGE)));
		purged_pages(a, k);
		*done += k;
		a += k * PAGE;
	}
	return true;
}

uint64_t mgi_vrange_purge(uint64_t want)
{
	uint64_t done = 0;
	bool wrapped = false;

	pthread_mutex_lock(&tab_lock);
	blocked = false;
	if (!mgi_vr_tab_ready || !mgi_vr_tab.n || mgi_vr_tab.purged == mgi_vr_tab.pages)
		goto out;
	/* Coldest first: the ranges made volatile longest ago (core/vrange.c
	 * mgi_vrtab_coldest), going on from the last one taken, once round;
	 * ranges purged whole or with nothing present are passed over. */
	while (done < want) {
		uint32_t idx[PICK], n = mgi_vrtab_coldest(&mgi_vr_tab, &cursor, idx, PICK);
		mgi_vrange_t pick[PICK];

		if (!n) {
			if (wrapped)
				break;
			wrapped = true;
			cursor = (mgi_vrcur_t){0, 0};
			continue;
		}
		for (uint32_t i = 0; i < n; i++)
			pick[i] = mgi_vr_tab.v[idx[i]]; /* (the table may change during a move) */
		for (uint32_t i = 0; i < n && done < want; i++) {
			cursor = (mgi_vrcur_t){pick[i].seq, pick[i].start};
			if (!purge_range(pick[i].start, pick[i].end, want, &done)) {
				/* no staging slot free until the helper has
				 * dropped the last ones, or the address space is
				 * changing: a moment later (this range again) */
				blocked = !done;
				cursor = (mgi_vrcur_t){pick[i].seq, pick[i].start ? pick[i].start - 1 : 0};
				goto out;
			}
		}
	}
out:
	pthread_mutex_unlock(&tab_lock);
	return done;
}

bool mgi_vrange_blocked(void)
{
	return blocked;
}

bool mgi_vrange_take_staged(uintptr_t page)
{
	pthread_mutex_lock(&tab_lock);
	mgi_vrange_t *v = mgi_vr_tab_ready && mgi_vr_tab.n ? mgi_vrtab_find(&mgi_vr_tab, page) : NULL;

	if (v) {
		mgi_registry_each_out(&mgi_reg, page, page + PAGE, true, NULL, NULL);
		purged_pages(page, 1);
	}
	pthread_mutex_unlock(&tab_lock);
	return v != NULL;
}

bool mgi_vrange_fault(uintptr_t page)
{
	mgi_vregion_t *r;
	bool poisoned = false;

	pthread_mutex_lock(&tab_lock);
	mgi_vrange_t *v = mgi_vr_tab_ready && mgi_vr_tab.n ? mgi_vrtab_find(&mgi_vr_tab, page) : NULL;
	if (!v || v->mode != MGI_VR_SIGBUS || !mgi_vrange_purged(v, page))
		goto out;
	r = mgi_registry_find(&mgi_reg, page);
	if (r && (mgi_registry_test(r, page) || mgi_registry_is_out(r, page)))
		goto out; /* (cannot be: a purged page is absent) */
	poison(page, 1);
	mgi_uffd_wake(mgi_handler.uffd, page, PAGE);
	poisoned = true;
out:
	pthread_mutex_unlock(&tab_lock);
	return poisoned;
}

void mgi_vr_child_reset(void)
{
	pthread_mutexattr_t attr;

	/* a parent's thread may have held them (the table then may be
	 * mid-update, as the handler's state may be: see docs/design.md) */
	pthread_mutex_init(&call_lock, NULL);
	pthread_mutexattr_init(&attr);
	pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&tab_lock, &attr);
	pthread_mutexattr_destroy(&attr);
	memset(known, 0, sizeof(known)); /* the child's registry is made anew */
}

bool mgi_vrange_within(uintptr_t start, uintptr_t end)
{
	bool any;

	pthread_mutex_lock(&tab_lock);
	mgi_vrange_t *v = mgi_vr_tab_ready && mgi_vr_tab.n ? mgi_vrtab_next(&mgi_vr_tab, start) : NULL;
	any = v && v->start < end;
	pthread_mutex_unlock(&tab_lock);
	return any;
}

bool mgi_vrange_sigbus_within(uintptr_t start, uintptr_t end)
{
	bool any = false;

	pthread_mutex_lock(&tab_lock);
	if (mgi_vr_tab_ready && mgi_vr_tab.n)
		for (mgi_vrange_t *v = mgi_vrtab_next(&mgi_vr_tab, start);
		     v && v < mgi_vr_tab.v + mgi_vr_tab.n && v->start < end && !any; v++)
			any = v->mode == MGI_VR_SIGBUS;
	pthread_mutex_unlock(&tab_lock);
	return any;
}

void mgi_vrange_unmanaged(uintptr_t start, uintptr_t end)
{
	pthread_mutex_lock(&tab_lock);
	known_forget(start, end);
	pthread_mutex_unlock(&tab_lock);
}

void mgi_vrange_gone(uintptr_t start, uintptr_t end)
{
	pthread_mutex_lock(&tab_lock);
	known_forget(start, end);
	if (mgi_vr_tab_ready && mgi_vr_tab.n) {
		if (mgi_vrtab_cut(&mgi_vr_tab, start, end) < 0)
			mgi_agent_log("volatile range %#lx-%#lx unmapped: no agent memory to split it",
				      (unsigned long)start, (unsigned long)end);
		publish();
	}
	pthread_mutex_unlock(&tab_lock);
}

/* ---- the application's side ---- */

/* A call answered on the calling thread, or ASK_HANDLER (a range to make
 * volatile in a region not known yet, or the table not made yet). */
static int local_call(int op, uintptr_t start, uintptr_t end, uint32_t mode)
{
	int rc = ASK_HANDLER;

	pthread_mutex_lock(&tab_lock);
	if (op == OP_VOLATILE) {
		if (mgi_vr_tab_ready && known_covers(start, end)) {
			rc = mgi_vrtab_add(&mgi_vr_tab, start, end, mode);
			if (rc == 0)
				publish();
		}
	} else if (op == OP_NONVOLATILE || op == OP_UNPIN) {
		rc = op_nonvolatile(start, end, op == OP_UNPIN);
	} else {
		rc = op_purged(start, end);
	}
	pthread_mutex_unlock(&tab_lock);
	return rc;
}

/*
 * mg_vrange's and mg_vrange_purged's way into the agent (libmemgrp finds it
 * with dlsym; include/memgrp.h documents the calls). op: 1 volatile (mode
 * 0 zero page, 1 SIGBUS), 2 non-volatile (*purged), 3 the report into
 * bitmap, 4 non-volatile with the report into bitmap (and *purged).
 * Returns 0 or a negative errno.
 */
__attribute__((visibility("default"))) int memgrp_agent_vrange(int op, void *addr, size_t len,
								int mode, int *purged,
								uint8_t *bitmap);
int memgrp_agent_vrange(int op, void *addr, size_t len, int mode, int *purged, uint8_t *bitmap)
{
	uintptr_t start = (uintptr_t)addr, end;
	size_t pages;
	mgi_learn_req_t req;
	int rc;

	if (op < OP_VOLATILE || op > OP_UNPIN || (op == OP_VOLATILE && (mode < 0 || mode > 1)))
		return -EINVAL;
	if (start % PAGE || !len || len > SIZE_MAX - PAGE || start + len < start)
		return -EINVAL;
	pages = (len + PAGE - 1) / PAGE;
	end = start + pages * PAGE;
	if (end < start)
		return -EINVAL;
	if (pages > MAX_PAGES)
		return -E2BIG;
	if ((op == OP_PURGED || op == OP_UNPIN) && !bitmap)
		return -EINVAL;
	if (!atomic_load_explicit(&mgi_agent_active, memory_order_acquire) && mgi_agent_deferred())
		mgi_agent_start_now(); /* the deferred start: volatile pages need the handler */
	if (!atomic_load_explicit(&mgi_agent_active, memory_order_acquire))
		return -ENOTSUP; /* this process is not managed */
	pthread_mutex_lock(&call_lock);
	rc = local_call(op, start, end, (uint32_t)mode);
	if (rc == ASK_HANDLER) {
		memset(&req, 0, sizeof(req));
		req.start = start;
		req.end = end;
		req.vstart = (uintptr_t)op | (uintptr_t)(op == OP_VOLATILE ? mode : 0) << 8;
		req.kind = MGI_REQ_VRANGE;
		rc = mgi_request_call(&req);
	}
	if (rc >= 0 && op == OP_PURGED) {
		memcpy(bitmap, report, (pages + 7) / 8);
		rc = 0;
	} else if (rc >= 0 && (op == OP_NONVOLATILE || op == OP_UNPIN)) {
		if (op == OP_UNPIN)
			memcpy(bitmap, report, (pages + 7) / 8);
		/* Poison markers of purged pages go, so that they read as
		 * zeros again (the REMOVE event finds nothing to uncharge). */
		for (size_t k = 0; (rc & ANS_POISONED) && k < pages; k++) {
			size_t n = 0;
			while (k + n < pages && (report[(k + n) / 8] >> ((k + n) % 8) & 1))
				n++;
			if (n)
				madvise((void *)(start + k * PAGE), n * PAGE, MADV_DONTNEED);
			k += n;
		}
		if (purged)
			*purged = rc & ANS_PURGED;
		rc = 0;
	}
	pthread_mutex_unlock(&call_lock);
	return rc;
}

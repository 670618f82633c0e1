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
#include "vrange.h"

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
 * The table is the handler's alone (like the registry); the application's
 * calls go to it as requests (request.c) and wait for the answer. They are
 * serialized among themselves by call_lock, which the handler never takes,
 * and the per-page report travels through `report` in the agent's own bss
 * (never managed memory: the handler must never fault).
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

enum { OP_VOLATILE = 1, OP_NONVOLATILE = 2, OP_PURGED = 3 };
/* The answer to NONVOLATILE: bit 0, something was purged; bit 1, purged
 * pages hold poison markers, listed in `report`. */
enum { ANS_PURGED = 1, ANS_POISONED = 2 };

static mgi_vrtab_t tab;
static bool tab_ready;
static bool blocked; /* the last purge found volatile pages it could not move yet */
static pthread_mutex_t call_lock = PTHREAD_MUTEX_INITIALIZER;
static uint8_t report[REPORT_BYTES];
/* A forked child's copy of the table between its fork handler (the
 * parent's arena goes) and its start (a new arena): a raw mapping. */
static mgi_vrtab_t saved;
static void *saved_mem;
static size_t saved_bytes, saved_used;

static void ensure_tab(void)
{
	if (tab_ready)
		return;
	mgi_vrtab_init(&tab, (mgi_allocator_t){(void *(*)(void *, size_t))mgi_arena_alloc,
					       (void (*)(void *, void *, size_t))mgi_arena_free,
					       &mgi_arena});
	tab_ready = true;
}

/* The slot's figure: volatile pages not purged yet (what a purge could
 * still give back; the manager asks this process first while it has any). */
static void publish(void)
{
	atomic_store_explicit(&mgi_join.me->vrange_pages, tab.pages - tab.purged,
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

	if (!managed(start, end))
		return mgi_est_fast_at(start) ? -EOPNOTSUPP : -EFAULT;
	ensure_tab();
	rc = mgi_vrtab_add(&tab, start, end, mode);
	if (rc == 0)
		publish();
	return rc;
}

static int op_nonvolatile(uintptr_t start, uintptr_t end)
{
	mgi_vrange_t *r = tab_ready ? mgi_vrtab_within(&tab, start, end) : NULL;
	uint64_t purged;
	bool sigbus;

	if (!r)
		return -ENOENT;
	purged = mgi_vrange_count(r, start, end);
	sigbus = r->mode == MGI_VR_SIGBUS;
	if (purged && sigbus)
		mgi_vrange_report(r, start, end, report);
	if (mgi_vrtab_cut(&tab, start, end) < 0)
		return -ENOMEM;
	publish();
	return (purged ? ANS_PURGED : 0) | (purged && sigbus ? ANS_POISONED : 0);
}

static int op_purged(uintptr_t start, uintptr_t end)
{
	mgi_vrange_t *r = tab_ready ? mgi_vrtab_within(&tab, start, end) : NULL;

	if (!r)
		return -ENOENT;
	mgi_vrange_report(r, start, end, report);
	return 0;
}

void mgi_vrange_request(const mgi_learn_req_t *req)
{
	uint32_t op = (uint32_t)(req->vstart & 0xff), mode = (uint32_t)(req->vstart >> 8);
	int rc;

	if (op == OP_VOLATILE)
		rc = op_volatile(req->start, req->end, mode);
	else if (op == OP_NONVOLATILE)
		rc = op_nonvolatile(req->start, req->end);
	else if (op == OP_PURGED)
		rc = op_purged(req->start, req->end);
	else
		rc = -EINVAL;
	mgi_request_answer(req->waiter, rc);
}

/* n pages from start were purged: marked in their ranges (looked up page
 * by page: events followed meanwhile may have cut the table), counted,
 * and poisoned in SIGBUS mode. */
static void purged_pages(uintptr_t start, size_t n)
{
	for (size_t j = 0; j < n; j++) {
		uintptr_t a = start + j * PAGE;
		mgi_vrange_t *v = mgi_vrtab_find(&tab, a);
		if (!v)
			continue;
		mgi_vrtab_mark(&tab, v, a);
		if (v->mode == MGI_VR_SIGBUS)
			poison(a, 1);
	}
	atomic_fetch_add_explicit(&mgi_join.seg->acct.vrange_purged_pages, n,
				  memory_order_relaxed);
	publish();
}

uint64_t mgi_vrange_purge(uint64_t want)
{
	mgi_registry_t *reg = &mgi_reg;
	uint64_t done = 0;

	blocked = false;
	if (!tab_ready || !tab.n || tab.purged == tab.pages)
		return 0;
	/* From the range after the last one purged, round the table (the
	 * ranges made volatile longest ago first, roughly), passing over the
	 * ranges purged whole and those with nothing present. */
	for (uint32_t seen = 0; seen < tab.n && done < want; seen++) {
		uint32_t i = (tab.hand + seen) % tab.n;
		mgi_vrange_t *v = &tab.v[i];
		uintptr_t a = v->start;

		tab.hand = i;
		if (v->npurged == (v->end - v->start) / PAGE ||
		    !mgi_registry_count(reg, v->start, v->end, NULL, NULL, false))
			continue;

		while (a < v->end && done < want) {
			mgi_vregion_t *r = mgi_registry_next(reg, a);
			if (!r || r->start >= v->end)
				break;
			if (r->start > a)
				a = r->start;
			uintptr_t lim = r->end < v->end ? r->end : v->end;
			if (!mgi_registry_test(r, a)) {
				a += PAGE;
				continue;
			}
			size_t n = 1;
			while (n < RUN_PAGES && a + n * PAGE < lim && mgi_registry_test(r, a + n * PAGE))
				n++;
			uint64_t k = mgi_evict_purge(a, n);
			if (!k) {
				/* no staging slot free until the helper has
				 * dropped the last ones, or the address space is
				 * changing: a moment later */
				blocked = !done;
				return done;
			}
			mgi_uncharge(mgi_registry_clear(reg, a, a + k * PAGE));
			purged_pages(a, k);
			/* (events followed meanwhile may have cut the table) */
			v = mgi_vrtab_find(&tab, a);
			if (!v)
				return done + k;
			done += k;
			a += k * PAGE;
		}
	}
	return done;
}

bool mgi_vrange_blocked(void)
{
	return blocked;
}

bool mgi_vrange_take_staged(uintptr_t page)
{
	mgi_vrange_t *v = tab_ready && tab.n ? mgi_vrtab_find(&tab, page) : NULL;

	if (!v)
		return false;
	mgi_registry_each_out(&mgi_reg, page, page + PAGE, true, NULL, NULL);
	purged_pages(page, 1);
	return true;
}

bool mgi_vrange_fault(uintptr_t page)
{
	mgi_vrange_t *v = tab_ready && tab.n ? mgi_vrtab_find(&tab, page) : NULL;
	mgi_vregion_t *r;

	if (!v || v->mode != MGI_VR_SIGBUS || !mgi_vrange_purged(v, page))
		return false;
	r = mgi_registry_find(&mgi_reg, page);
	if (r && (mgi_registry_test(r, page) || mgi_registry_is_out(r, page)))
		return false; /* (cannot be: a purged page is absent) */
	poison(page, 1);
	mgi_uffd_wake(mgi_handler.uffd, page, PAGE);
	return true;
}

void mgi_vrange_gone(uintptr_t start, uintptr_t end)
{
	if (!tab_ready || !tab.n)
		return;
	if (mgi_vrtab_cut(&tab, start, end) < 0)
		mgi_agent_log("volatile range %#lx-%#lx unmapped: no agent memory to split it",
			      (unsigned long)start, (unsigned long)end);
	publish();
}

/* ---- fork: the child inherits the marks ---- */

static void *bump_alloc(void *ctx, size_t bytes)
{
	(void)ctx;
	bytes = (bytes + 15) & ~(size_t)15;
	if (saved_used + bytes > saved_bytes)
		return NULL;
	saved_used += bytes;
	return (char *)saved_mem + saved_used - bytes; /* zeroed: a fresh mapping */
}

static void bump_free(void *ctx, void *p, size_t bytes)
{
	(void)ctx, (void)p, (void)bytes;
}

void mgi_vrange_child_save(void)
{
	size_t bytes = 16 + tab.n * (sizeof(mgi_vrange_t) + 16);

	pthread_mutex_init(&call_lock, NULL); /* a parent's thread may have held it */
	saved_mem = NULL;
	if (!tab_ready)
		return;
	tab_ready = false;
	if (!tab.n)
		return;
	for (uint32_t i = 0; i < tab.n; i++)
		bytes += tab.v[i].nwords * sizeof(uint64_t);
	bytes = (bytes + PAGE - 1) & ~(PAGE - 1);
	saved_mem = mgi_raw_mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
				 -1, 0);
	if (saved_mem == MAP_FAILED) {
		saved_mem = NULL;
		return;
	}
	saved_bytes = bytes;
	saved_used = 0;
	saved.a = (mgi_allocator_t){bump_alloc, bump_free, NULL};
	if (mgi_vrtab_copy(&saved, &tab) != 0) {
		mgi_raw_munmap(saved_mem, saved_bytes);
		saved_mem = NULL;
	}
}

void mgi_vrange_child_start(void)
{
	if (!saved_mem)
		return;
	ensure_tab();
	if (mgi_vrtab_copy(&tab, &saved) != 0)
		mgi_agent_log("fork: no agent memory for the parent's volatile ranges: "
			      "the child's are not volatile");
	mgi_raw_munmap(saved_mem, saved_bytes);
	saved_mem = NULL;
}

/* ---- the application's side ---- */

/*
 * mg_vrange's and mg_vrange_purged's way into the agent (libmemgrp finds it
 * with dlsym; include/memgrp.h documents the calls). op: 1 volatile (mode
 * 0 zero page, 1 SIGBUS), 2 non-volatile (*purged), 3 the report into
 * bitmap. Returns 0 or a negative errno.
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

	if (op < OP_VOLATILE || op > OP_PURGED || (op == OP_VOLATILE && (mode < 0 || mode > 1)))
		return -EINVAL;
	if (start % PAGE || !len || len > SIZE_MAX - PAGE || start + len < start)
		return -EINVAL;
	pages = (len + PAGE - 1) / PAGE;
	end = start + pages * PAGE;
	if (end < start)
		return -EINVAL;
	if (pages > MAX_PAGES)
		return -E2BIG;
	if ((op == OP_PURGED && !bitmap))
		return -EINVAL;
	if (!atomic_load_explicit(&mgi_agent_active, memory_order_acquire) && mgi_agent_deferred())
		mgi_agent_start_now(); /* the deferred start: volatile pages need the handler */
	if (!atomic_load_explicit(&mgi_agent_active, memory_order_acquire))
		return -ENOTSUP; /* this process is not managed */
	pthread_mutex_lock(&call_lock);
	memset(&req, 0, sizeof(req));
	req.start = start;
	req.end = end;
	req.vstart = (uintptr_t)op | (uintptr_t)(op == OP_VOLATILE ? mode : 0) << 8;
	req.kind = MGI_REQ_VRANGE;
	rc = mgi_request_call(&req);
	if (rc >= 0 && op == OP_PURGED) {
		memcpy(bitmap, report, (pages + 7) / 8);
		rc = 0;
	} else if (rc >= 0 && op == OP_NONVOLATILE) {
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

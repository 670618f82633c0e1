/* estimate_admit.c - estimate mode's admission: new memory recorded fast or slow; the application threads' side. */
#include <errno.h>
#include <stdatomic.h>

#include "account.h"
#include "agent.h"
#include "estimate.h"
#include "estimate_int.h"

/*
 * The records overlapping an admission's range, by address, found with one
 * scan of the table for the whole admission. known_at used to scan the
 * table twice per known or unknown stretch: admitting python3's heap (a
 * record per brk growth, thousands of them) was quadratic, 84 % of the
 * process's time in find_at, 25 s for 500 MB against 1.2 s unmanaged.
 * Records an admission adds lie in the stretches already passed, so the
 * list stays right while the walk goes on. The handler alone admits.
 */
/* (Scratch, refilled by each admission: a forked child inherits nothing
 * of use or harm in it.) */
static struct span {
	uintptr_t start, end;
} spans[EST_CAPACITY];
static unsigned nspans, span_next;

static void sift_down(struct span *a, unsigned root, unsigned n)
{
	for (unsigned child; (child = 2 * root + 1) < n; root = child) {
		if (child + 1 < n && a[child + 1].start > a[child].start)
			child++;
		if (a[root].start >= a[child].start)
			return;
		struct span t = a[root];
		a[root] = a[child];
		a[child] = t;
	}
}

/* In place, no allocation (the handler never calls malloc). */
static void sort_spans(struct span *a, unsigned n)
{
	unsigned k = 1;

	while (k < n && a[k - 1].start <= a[k].start)
		k++;
	if (k >= n)
		return; /* slots are mostly handed out in address order */
	for (unsigned i = n / 2; i-- > 0;)
		sift_down(a, i, n);
	for (unsigned end = n; end-- > 1;) {
		struct span t = a[0];
		a[0] = a[end];
		a[end] = t;
		sift_down(a, 0, end);
	}
}

static void collect_spans(uintptr_t start, uintptr_t end)
{
	nspans = span_next = 0;
	for (uint32_t i = 0; i < mgi_est->used_slots && nspans < EST_CAPACITY; i++) {
		const mgi_region_t *r = &mgi_est->regions[i];
		if (r->used && (uintptr_t)r->key < end && mgi_est_rend(r) > start)
			spans[nspans++] = (struct span){(uintptr_t)r->key, mgi_est_rend(r)};
	}
	sort_spans(spans, nspans);
}

/* Whether the memory at cur is known (a record, or a registered range);
 * *stop: where that known, or unknown, stretch ends (at most end). Asked
 * with cur rising, after collect_spans over a range holding [cur, end). */
static bool known_at(uintptr_t cur, uintptr_t end, uintptr_t *stop)
{
	mgi_vregion_t *v;

	while (span_next < nspans && spans[span_next].end <= cur)
		span_next++;
	if (span_next < nspans && spans[span_next].start <= cur) {
		*stop = spans[span_next].end < end ? spans[span_next].end : end;
		return true;
	}
	v = mgi_registry_next(&mgi_reg, cur);
	if (v && v->start <= cur) {
		*stop = v->end < end ? v->end : end;
		return true;
	}
	*stop = v && v->start < end ? v->start : end;
	if (span_next < nspans && spans[span_next].start < *stop)
		*stop = spans[span_next].start;
	return false;
}

/* Registers [start, end) as slow memory outside the table (no room in it). */
static void admit_untabled(uintptr_t start, uintptr_t end)
{
	if (mgi_est_register_slow(start, end, true) < 0)
		mgi_learn_untracked(end - start);
}

/* One piece no record and no registered range covers. charged: the
 * application thread already charged its M (it fitted). */
static void admit_piece(uintptr_t start, uintptr_t end, bool charged, bool slow)
{
	uint64_t pages = (end - start) / PAGE;
	uint32_t idx;
	int rc;

	if (charged) {
		rc = mgi_estimate_add_charged(mgi_est, pages, start, false, &idx);
		if (rc == 0)
			return; /* (charged by the thread, in full) */
		mgi_uncharge(pages);
		admit_untabled(start, end);
		return;
	}
	rc = mgi_estimate_map(mgi_est, &mgi_est_acct, pages, start, slow, &mgi_est_ops, NULL, &idx);
	if (rc != 0) {
		admit_untabled(start, end);
		return;
	}
	if (mgi_est->regions[idx].slow)
		mgi_est_register_slow(start, end, true); /* created slow (or forced) */
}

/* Admits what of [start, end) is not known yet, in pieces. */
static void admit(uintptr_t start, uintptr_t end, bool charged, bool slow)
{
	uintptr_t cur = start;

	if (charged) {
		/* Anything recorded there is stale: the kernel just gave these
		 * addresses out afresh (glibc's munmap of them went unseen). */
		mgi_est_forget(start, end);
		admit_piece(start, end, true, false);
		mgi_est_settle();
		return;
	}
	collect_spans(start, end);
	while (cur < end) {
		uintptr_t stop;
		if (!known_at(cur, end, &stop))
			admit_piece(cur, stop, false, slow);
		cur = stop;
	}
	mgi_est_settle();
}

/* MGI_REQ_FOUND: the block's pages [bs, be) were charged by the thread
 * that found them; what of them was known already gives that back. */
static void admit_found(uintptr_t bs, uintptr_t be, uintptr_t vs, uintptr_t ve)
{
	uint64_t known = 0;

	collect_spans(bs, be);
	for (uintptr_t a = bs, stop; a < be; a = stop) {
		if (known_at(a, be, &stop))
			known += (stop - a) / PAGE;
		else
			admit_piece(a, stop, true, false); /* charged by the thread */
	}
	mgi_uncharge(known);
	admit(vs, ve, false, false); /* the rest of the VMA, by Algorithm 2 */
}

void mgi_est_admit(uintptr_t start, uintptr_t end, bool slow)
{
	if (mgi_est && start < end)
		admit(start, end, false, slow);
}

void mgi_est_request(const mgi_learn_req_t *req)
{
	switch (req->kind) {
	case MGI_REQ_FAST:
		admit(req->start, req->end, true, false);
		break;
	case MGI_REQ_ADMIT:
		admit(req->start, req->end, false, false);
		mgi_request_answer(req->waiter, 0);
		break;
	case MGI_REQ_GONE:
		mgi_est_forget(req->start, req->end);
		break;
	case MGI_REQ_FOUND:
		admit_found(req->start, req->end, req->vstart, req->vend);
		break;
	default:
		break;
	}
}

/* ---- application threads ---- */

static bool send_req4(uintptr_t start, uintptr_t end, uintptr_t vs, uintptr_t ve, uint32_t kind,
		      int32_t waiter)
{
	mgi_learn_req_t req = {.start = start, .end = end, .vstart = vs, .vend = ve,
			       .kind = kind, .waiter = waiter};

	return mgi_request_send(&req);
}

static bool send_req(uintptr_t start, uintptr_t end, uint32_t kind, int32_t waiter)
{
	return send_req4(start, end, 0, 0, kind, waiter);
}

/* Asks the handler to admit [start, end) and waits for the answer.
 * Returns false if it could not be asked. */
static bool admit_and_wait(uintptr_t start, uintptr_t end)
{
	mgi_learn_req_t req = {.start = start, .end = end, .kind = MGI_REQ_ADMIT, .waiter = -1};
	int rc = mgi_request_call(&req);

	if (rc == -EDEADLK)
		/* (a library the handler calls mapped memory: never wait) */
		return send_req(start, end, MGI_REQ_ADMIT, -1);
	return rc == 0 || rc == -ETIMEDOUT;
}

void mgi_est_found_for_app(uintptr_t bs, uintptr_t be, uintptr_t vs, uintptr_t ve)
{
	uint64_t pages = (be - bs) / PAGE;

	if (pages && mgi_charge(pages, NULL)) {
		if (send_req4(bs, be, vs, ve, MGI_REQ_FOUND, -1))
			return;
		mgi_uncharge(pages);
	}
	if (!admit_and_wait(vs, ve))
		mgi_register_exact(vs, ve); /* never unaccounted */
}

void mgi_est_map_for_app(uintptr_t start, uintptr_t end)
{
	uint64_t pages = (end - start) / PAGE;

	/* The common case: it fits; charge here, tell the handler. */
	if (mgi_charge(pages, NULL)) {
		if (send_req(start, end, MGI_REQ_FAST, -1))
			return;
		mgi_uncharge(pages); /* the handler cannot be told: exact instead */
	} else if (admit_and_wait(start, end)) {
		return;
	}
	mgi_register_exact(start, end); /* never unaccounted */
}

void mgi_est_unmap_for_app(uintptr_t start, uintptr_t end)
{
	/* Before the unmapping: the handler must hear of it ahead of any mmap
	 * that gets these addresses next. If it cannot be told, the tick's
	 * check finds it. */
	send_req(start, end, MGI_REQ_GONE, -1);
}

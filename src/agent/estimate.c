/* estimate.c - seed 001's estimate accounting in the agent: fast regions are not registered. */
#include <errno.h>
#include <stdlib.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "account.h"
#include "agent.h"
#include "options.h"
#include "estimate.h"
#include "os.h"
#include "thp.h"

/*
 * In estimate mode (`--mode estimate`) a region of new anonymous memory is
 * *fast*: it is not registered with userfaultfd, so its faults never leave
 * the kernel, and it is charged at its size M_i. When a charge would pass
 * the limit, fast regions are turned *slow* (Algorithm 2 at map time, the
 * amended Algorithm 3 at a refused fault): registered, their resident pages
 * R_i found with mincore and counted exactly from then on by the fault
 * path, and M_i - R_i given back. The model is src/core/estimate.c with
 * external slow accounting: a slow region's pages are the registry's, like
 * any registered range in exact mode (fault-around, eviction, restore).
 *
 * Who does what. The table belongs to the handler thread, like the
 * registry. An application thread that maps memory charges M_i itself
 * when it fits (one try_charge: no round trip) and tells the handler; when
 * it does not fit it asks the handler to run Algorithm 2 and waits for the
 * answer (a futex word in the agent's arena), so that a region that must
 * start slow is registered before the application touches it. Regions
 * found after the fact (memory glibc's malloc mapped or grew internally)
 * are admitted without waiting: the pages touched meanwhile are counted
 * by mincore if the region turns out slow.
 *
 * A fast region's unmapping is seen by the interposed munmap and mremap
 * (told before the call, so that a range reused by another thread's mmap
 * is never taken for the old one), and otherwise (glibc's own munmap of a
 * large block) once a second by checking the fast regions against the
 * address space. The same tick measures R_i of the fast regions (mincore),
 * uses its growth as the region's fault rate (faults in a fast region are
 * not seen), and turns slow regions that fault often fast again when the
 * group is well under its limit (hysteresis: src/core/estimate.h).
 *
 * The main thread's [stack] grows down without any call, so it is always
 * slow; so is any region the table has no room for.
 */

#define PAGE MGI_PAGE_SIZE
#define EST_CAPACITY 4096
/* Turned fast again only when faulting at least this often (pages a tick). */
#define EST_FAST_MIN_FAULTS 64

static mgi_estimate_t *est;
static uint64_t switches_told; /* est->mode_switches added to the segment's */
static uint64_t switch_ns;     /* time spent switching, not yet added there */
static unsigned char *vec;        /* mincore vector */
#define VEC_PAGES 16384

bool mgi_est_on(void)
{
	return est != NULL;
}

int mgi_est_init(void)
{
	est = NULL;
	switches_told = switch_ns = 0;
	if (atomic_load_explicit(&mgi_join.seg->ctl.mode, memory_order_relaxed) != MGI_MODE_ESTIMATE)
		return 0;
	mgi_estimate_t *t = mgi_arena_alloc(&mgi_arena, mgi_estimate_bytes(EST_CAPACITY));
	vec = mgi_arena_alloc(&mgi_arena, VEC_PAGES);
	if (!t || !vec)
		return -ENOMEM;
	mgi_estimate_init(t, EST_CAPACITY);
	t->external = true;
	/* Which fast region turns slow first (seed 001's open question):
	 * the largest (default: gives back the most estimate per switch), or
	 * the one whose resident set grew least recently (fewest faults). */
	t->policy = mgi_env_choice(MGI_ENV_ESTIMATE_VICTIM) == 1 ? MGI_VICTIM_LEAST_RECENT
								  : MGI_VICTIM_LARGEST;
	t->fast_min_faults = EST_FAST_MIN_FAULTS;
	est = t;
	return 0;
}

static inline uintptr_t rend(const mgi_region_t *r)
{
	return (uintptr_t)r->key + r->pages * PAGE;
}


/* The table's charges go through the agent's accounting entry point
 * (counter path, slot and thresholds together), never to a counter alone. */
static bool acct_charge(void *ctx, uint64_t pages)
{
	(void)ctx;
	return mgi_charge(pages, NULL);
}

static void acct_uncharge(void *ctx, uint64_t pages)
{
	(void)ctx;
	mgi_uncharge(pages);
}

static uint64_t acct_usage(void *ctx)
{
	(void)ctx;
	return mgi_counter_read(mgi_account_path()->level[0]);
}

static uint64_t acct_max(void *ctx)
{
	(void)ctx;
	return mgi_counter_read_max(mgi_account_path()->limit[0]);
}

/* (The path has its own group's level from the join on: estimate mode is
 * set up after WELCOME.) */
static const mgi_estimate_acct_t table_acct = {.charge = acct_charge,
					       .uncharge = acct_uncharge,
					       .group_usage = acct_usage,
					       .group_max = acct_max};

/* After a change of the table: the figures published (its charges were
 * made, and the thresholds checked, as it went). */
static void settle(void)
{
	mgi_check_thresholds(); /* (cheap: one load a level when none is set) */
	mgi_est_publish(); /* a few stores: the figures stay current */
}

/* ---- the switches (ops of the model) ---- */

static uint64_t mincore_count(uintptr_t start, uintptr_t end)
{
	return mgi_mincore_count(start, end, vec, VEC_PAGES);
}

/* Registers [start, end) with the uffd and learns it: its present pages
 * counted, and charged if charge (else their charge is already held).
 * Returns them, or -1 if it could not be registered. */
static long register_slow(uintptr_t start, uintptr_t end, bool charge)
{
	if (!mgi_thp_on()) /* with huge pages on, MADV_COLLAPSE needs it unmarked */
		mgi_raw_madvise((void *)start, end - start, MADV_NOHUGEPAGE);
	if (mgi_uffd_register(mgi_handler.uffd, start, end - start) != 0)
		return -1;
	return (long)mgi_learn_range(start, end, charge);
}

/* Fast -> slow: register first (from then on every new page is a fault we
 * see), then take over what is already there: marked present in the
 * registry without charging it again (the table held M_i for it until
 * now, and gives back M_i - R_i once this returns). */
static uint64_t take_slow(void *ctx, const mgi_region_t *r)
{
	uintptr_t a = (uintptr_t)r->key, e = rend(r);
	uint64_t found = 0;
	mgi_vma_t v;

	uint64_t t0 = mgi_now_ns();

	(void)ctx;
	/* VMA by VMA: part of it may have been unmapped unseen (glibc's own
	 * munmap), and registration refuses a range with a hole. */
	while (a < e && mgi_vma_query(mgi_maps_fd, a, &v) == 0 && v.start < e) {
		uintptr_t s = v.start > a ? v.start : a, t = v.end < e ? v.end : e;
		if (mgi_vma_is_anon_private(&v)) {
			long n = register_slow(s, t, false);
			found += n > 0 ? (uint64_t)n : 0;
		}
		a = v.end;
	}
	if (found > r->pages)
		found = r->pages;
	switch_ns += mgi_now_ns() - t0;
	return found;
}

static uint64_t slow_resident(void *ctx, const mgi_region_t *r)
{
	uint64_t out;
	uint64_t present = mgi_registry_count(&mgi_reg, (uintptr_t)r->key, rend(r), &out,
					      NULL, false);
	(void)ctx;
	/* Evicted pages would read as zeros once the region is not ours; a
	 * volatile range needs the region registered (mgi_est_slow_for). */
	if (out || mgi_vrange_within(r->key, rend(r)))
		return UINT64_MAX;
	return present;
}

/*
 * Stops the kernel telling us the faults of [start, end), VMA by VMA as
 * take_slow registers it: one call over a range that has since gained a
 * hole or a file mapping fails as a whole, and a range the kernel still
 * reports while the table holds it fast had its faults woken unresolved
 * for ever (redis under redis-benchmark in estimate mode: 4 of 6 runs
 * hung). A failure is said once; the fault path then unregisters what
 * it meets (mgi_est_fault_on_fast).
 */
void mgi_est_unregister(uintptr_t start, uintptr_t end)
{
	static bool said;
	uintptr_t a = start;
	mgi_vma_t v;

	while (a < end && mgi_vma_query(mgi_maps_fd, a, &v) == 0 && v.start < end) {
		uintptr_t s = v.start > a ? v.start : a, t = v.end < end ? v.end : end;
		int rc = mgi_vma_is_anon_private(&v) ? mgi_uffd_unregister(mgi_handler.uffd, s, t - s) : 0;
		if (rc != 0 && !said) {
			said = true;
			mgi_agent_log("estimate mode: could not stop watching %#lx-%#lx: %s",
				      (unsigned long)s, (unsigned long)t, strerror(-rc));
		}
		a = v.end;
	}
}

/* Slow -> fast: the table now charges M_i; the registry lets go of the
 * range without uncharging, and the kernel stops telling us its faults. */
static void mode_changed(void *ctx, const mgi_region_t *r)
{
	uintptr_t s = (uintptr_t)r->key, e = rend(r);
	long dropped;

	(void)ctx;
	if (r->slow)
		return; /* take_slow did the work */
	uint64_t t0 = mgi_now_ns();
	mgi_est_unregister(s, e);
	mgi_vrange_unmanaged(s, e);
	dropped = mgi_registry_remove(&mgi_reg, s, e);
	if (dropped < 0)
		dropped = (long)mgi_registry_clear(&mgi_reg, s, e);
	/* The table charged M_i - R_i (r->resident: what the registry
	 * counted); pages the registry let go of beyond that, or short of it,
	 * leave or join this process's figure alone. */
	if ((uint64_t)dropped > r->resident)
		mgi_account_disown((uint64_t)dropped - r->resident);
	else
		mgi_account_adopt(r->resident - (uint64_t)dropped);
	switch_ns += mgi_now_ns() - t0;
}

static const mgi_estimate_ops_t ops = {
	.take_slow = take_slow,
	.slow_resident = slow_resident,
	.mode_changed = mode_changed,
};

/* ---- the table by address ---- */

static int find_at(uintptr_t addr)
{
	for (uint32_t i = 0; i < est->used_slots; i++) {
		const mgi_region_t *r = &est->regions[i];
		if (r->used && (uintptr_t)r->key <= addr && addr < rend(r))
			return (int)i;
	}
	return -1;
}

/* The fast regions over [start, end) turned slow (registered: their faults
 * and pages ours to see and move), for a volatile range there; they stay
 * slow while it lasts (slow_resident). False if part of the range is in
 * no region of the table. The handler's. */
bool mgi_est_slow_for(uintptr_t start, uintptr_t end)
{
	uintptr_t a = start;
	int i;

	while (est && a < end && (i = find_at(a)) >= 0) {
		if (mgi_estimate_make_slow(est, &table_acct, (uint32_t)i, &ops, NULL) != 0)
			return false;
		a = rend(&est->regions[i]);
	}
	settle();
	return a >= end;
}

bool mgi_est_fast_at(uintptr_t addr)
{
	int i;

	if (!est || (i = find_at(addr)) < 0)
		return false;
	return !est->regions[i].slow;
}

void mgi_est_fault_on_fast(uintptr_t addr)
{
	int i;

	if (!est || (i = find_at(addr)) < 0 || est->regions[i].slow)
		return;
	mgi_est_unregister((uintptr_t)est->regions[i].key, rend(&est->regions[i]));
}

/* [start, end) is no longer what the records there describe: drops the
 * overlapping parts (a fast region's M gives back its share; a slow one's
 * pages are the registry's, dropped by the unmap event). */
void mgi_est_forget(uintptr_t start, uintptr_t end)
{
	if (!est)
		return;
	for (uint32_t i = 0; i < est->used_slots; i++) {
		mgi_region_t *r = &est->regions[i];
		uintptr_t s = (uintptr_t)r->key, e;
		uint32_t right;

		if (!r->used || s >= end || (e = rend(r)) <= start)
			continue;
		if (s < start && e > end) { /* a hole in the middle: keep both sides */
			if (mgi_estimate_split(est, i, (start - s) / PAGE, start, &right) != 0)
				continue; /* no slot for the right side: keep it all (overcharged) */
			mgi_estimate_trim(est, &table_acct, right, end, (e - end) / PAGE);
			continue;
		}
		if (s < start)
			mgi_estimate_trim(est, &table_acct, i, s, (start - s) / PAGE);
		else if (e > end)
			mgi_estimate_trim(est, &table_acct, i, end, (e - end) / PAGE);
		else
			mgi_estimate_unmap(est, &table_acct, i);
	}
	settle();
}

/* ---- admission ---- */

/*
 * The records overlapping an admission's range, by address, found with one
 * scan of the table for the whole admission. known_at used to scan the
 * table twice per known or unknown stretch: admitting python3's heap (a
 * record per brk growth, thousands of them) was quadratic, 84 % of the
 * process's time in find_at, 25 s for 500 MB against 1.2 s unmanaged.
 * Records an admission adds lie in the stretches already passed, so the
 * list stays right while the walk goes on. The handler alone admits.
 */
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
	for (uint32_t i = 0; i < est->used_slots && nspans < EST_CAPACITY; i++) {
		const mgi_region_t *r = &est->regions[i];
		if (r->used && (uintptr_t)r->key < end && rend(r) > start)
			spans[nspans++] = (struct span){(uintptr_t)r->key, rend(r)};
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
	if (register_slow(start, end, true) < 0)
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
		rc = mgi_estimate_add_charged(est, pages, start, false, &idx);
		if (rc == 0)
			return; /* (charged by the thread, in full) */
		mgi_uncharge(pages);
		admit_untabled(start, end);
		return;
	}
	rc = mgi_estimate_map(est, &table_acct, pages, start, slow, &ops, NULL, &idx);
	if (rc != 0) {
		admit_untabled(start, end);
		return;
	}
	if (est->regions[idx].slow)
		register_slow(start, end, true); /* created slow (or forced) */
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
		settle();
		return;
	}
	collect_spans(start, end);
	while (cur < end) {
		uintptr_t stop;
		if (!known_at(cur, end, &stop))
			admit_piece(cur, stop, false, slow);
		cur = stop;
	}
	settle();
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
	if (est && start < end)
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

/* ---- the tick ---- */

/* Keeps only the parts of fast region i that are still mapped anonymous. */
static void check_mapped(uint32_t i)
{
	mgi_region_t *r = &est->regions[i];
	uintptr_t s = (uintptr_t)r->key, e = rend(r), a = s;
	mgi_vma_t v;

	while (a < e) {
		if (mgi_vma_query(mgi_maps_fd, a, &v) != 0 || v.start >= e) {
			mgi_est_forget(a, e);
			return;
		}
		if (v.start > a)
			mgi_est_forget(a, v.start);
		else if (!mgi_vma_is_anon_private(&v))
			mgi_est_forget(a, v.end < e ? v.end : e);
		a = v.end;
	}
}

void mgi_est_tick(void)
{
	uint64_t now = mgi_now_ns(), resident = 0;

	if (!est)
		return;
	for (uint32_t i = 0; i < est->used_slots; i++)
		if (est->regions[i].used && !est->regions[i].slow)
			check_mapped(i);
	mgi_rescan();
	for (uint32_t i = 0; i < est->used_slots; i++) {
		mgi_region_t *r = &est->regions[i];
		uint64_t rr, faults = 0;

		if (!r->used)
			continue;
		if (r->slow) {
			rr = mgi_registry_count(&mgi_reg, (uintptr_t)r->key, rend(r), NULL,
						&faults, true);
			r->faults = faults; /* this tick's */
		} else {
			/* Faults in a fast region are not seen: its growth is
			 * the best sign of them. */
			rr = mincore_count((uintptr_t)r->key, rend(r));
			r->faults = rr > r->resident ? rr - r->resident : 0;
			r->resident = rr;
		}
		if (r->faults)
			r->last_fault = now;
		resident += rr;
	}
	atomic_store_explicit(&mgi_join.me->est_resident, resident, memory_order_relaxed);
	mgi_estimate_make_fast(est, &table_acct, &ops, NULL);
	settle(); /* (publishes) */
}

void mgi_est_publish(void)
{
	mgi_proc_slot_t *me = mgi_join.me;

	if (!est) {
		/* Exact mode: every registered range is a slow region. */
		atomic_store_explicit(&me->est_mapped, mgi_reg.bytes / PAGE, memory_order_relaxed);
		atomic_store_explicit(&me->est_resident, mgi_reg.present, memory_order_relaxed);
		atomic_store_explicit(&me->est_slow, mgi_reg.n, memory_order_relaxed);
		return;
	}
	atomic_store_explicit(&me->est_mapped, est->mapped, memory_order_relaxed);
	atomic_store_explicit(&me->est_fast, est->nr_fast, memory_order_relaxed);
	atomic_store_explicit(&me->est_slow, est->nr_slow, memory_order_relaxed);
	if (est->mode_switches != switches_told) {
		atomic_fetch_add_explicit(&mgi_join.seg->acct.mode_switches,
					  est->mode_switches - switches_told, memory_order_relaxed);
		switches_told = est->mode_switches;
	}
	if (switch_ns) {
		atomic_fetch_add_explicit(&mgi_join.seg->acct.mode_switch_ns, switch_ns,
					  memory_order_relaxed);
		switch_ns = 0;
	}
}

uint64_t mgi_est_give(uint64_t pages)
{
	uint64_t before, now;

	if (!est)
		return 0;
	before = atomic_load(&mgi_join.me->charged);
	do {
		if (!mgi_est_demote())
			break;
		now = atomic_load(&mgi_join.me->charged);
	} while (now + pages > before);
	now = atomic_load(&mgi_join.me->charged);
	return before > now ? before - now : 0;
}

bool mgi_est_fast_elsewhere(unsigned level)
{
	const mgi_segment_t *seg;

	if (level >= mgi_join.nsegs)
		return false;
	seg = mgi_join.anc[level];
	for (int i = 0; i < MGI_PROCS_MAX; i++) {
		int32_t pid = atomic_load_explicit(&seg->ctl.procs[i].pid, memory_order_relaxed);
		if (pid > 0 && pid != mgi_join.pid &&
		    atomic_load_explicit(&seg->acct.procs[i].est_fast, memory_order_relaxed) > 0)
			return true;
	}
	return false;
}

/* Algorithm 3's amendment: a charge was refused; before any eviction or
 * kill, a fast region (holding estimate that may not be memory) turns
 * slow. Returns true if one did. */
bool mgi_est_demote(void)
{
	bool done;

	if (!est)
		return false;
	done = mgi_estimate_demote(est, &table_acct, &ops, NULL);
	if (done)
		settle();
	return done;
}

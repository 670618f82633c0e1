/* estimate.c - Algorithms 2 and 3 of seed 001, and turning regions fast again. */
#include "estimate.h"

#include <errno.h>
#include <string.h>

size_t mgi_estimate_bytes(uint32_t capacity)
{
	return sizeof(mgi_estimate_t) + (size_t)capacity * sizeof(mgi_region_t);
}

void mgi_estimate_init(mgi_estimate_t *est, uint32_t capacity)
{
	/* The header only: no slot at or past used_slots is ever read, and a
	 * slot is written whole when it is handed out (a process's table is
	 * set up at every start, fork included: measured on its cost). */
	memset(est, 0, sizeof(*est));
	est->policy = MGI_VICTIM_LARGEST;
	est->fast_below_pct = 50;
	est->fast_target_pct = 75;
	est->capacity = capacity;
}

static inline uint64_t region_estimate(const mgi_region_t *r)
{
	return r->slow ? r->resident : r->pages;
}

static int pick_largest(const mgi_estimate_t *est)
{
	int best = -1;

	for (uint32_t i = 0; i < est->used_slots; i++) {
		const mgi_region_t *r = &est->regions[i];
		if (r->used && !r->slow &&
		    (best < 0 || r->pages > est->regions[best].pages))
			best = (int)i;
	}
	return best;
}

static int pick_least_recent(const mgi_estimate_t *est)
{
	int best = -1;

	for (uint32_t i = 0; i < est->used_slots; i++) {
		const mgi_region_t *r = &est->regions[i];
		if (r->used && !r->slow &&
		    (best < 0 || r->last_fault < est->regions[best].last_fault))
			best = (int)i;
	}
	return best;
}

static int pick_victim(const mgi_estimate_t *est, const mgi_estimate_ops_t *ops,
		       void *ctx)
{
	int idx = -1;

	if (est->nr_fast == 0)
		return -1;
	switch (est->policy) {
	case MGI_VICTIM_LEAST_RECENT:
		return pick_least_recent(est);
	case MGI_VICTIM_CALLBACK:
		if (ops && ops->choose_victim)
			idx = ops->choose_victim(ctx, est);
		/* Distrust the callback: only an existing fast region will do. */
		if (idx >= 0 && (uint32_t)idx < est->used_slots &&
		    est->regions[idx].used && !est->regions[idx].slow)
			return idx;
		return pick_largest(est);
	case MGI_VICTIM_LARGEST:
	default:
		return pick_largest(est);
	}
}

/* Fast -> slow: measure R_i and give back the difference M_i - R_i. */
static void make_slow(mgi_estimate_t *est, const mgi_estimate_acct_t *acct,
		      uint32_t idx, const mgi_estimate_ops_t *ops, void *ctx)
{
	mgi_region_t *r = &est->regions[idx];
	uint64_t resident;

	if (est->external)
		resident = ops->take_slow(ctx, r); /* now the caller's to charge */
	else
		/* Without a way to measure, assume the worst (all resident):
		 * the switch then frees nothing but stays safe. */
		resident = ops && ops->count_resident ? ops->count_resident(ctx, r) : r->pages;
	if (resident > r->pages) /* a broken counter must not create charge */
		resident = r->pages;
	acct->uncharge(acct->ctx, r->pages - resident);
	/* External: the table held M_i and now holds nothing of it. */
	est->estimate -= est->external ? r->pages : r->pages - resident;
	r->resident = resident;
	r->slow = true;
	r->faults = 0;
	est->nr_fast--;
	est->nr_slow++;
	est->mode_switches++;
	if (ops && ops->mode_changed)
		ops->mode_changed(ctx, r);
}

/* Turns one fast region slow; false if there was none. */
static bool demote_one(mgi_estimate_t *est, const mgi_estimate_acct_t *acct,
		       const mgi_estimate_ops_t *ops, void *ctx)
{
	int victim = pick_victim(est, ops, ctx);

	if (victim < 0)
		return false;
	make_slow(est, acct, (uint32_t)victim, ops, ctx);
	return true;
}

bool mgi_estimate_demote(mgi_estimate_t *est, const mgi_estimate_acct_t *acct,
			 const mgi_estimate_ops_t *ops, void *ctx)
{
	return demote_one(est, acct, ops, ctx);
}

int mgi_estimate_make_slow(mgi_estimate_t *est, const mgi_estimate_acct_t *acct, uint32_t idx,
			   const mgi_estimate_ops_t *ops, void *ctx)
{
	if (idx >= est->used_slots || !est->regions[idx].used)
		return -EINVAL;
	if (!est->regions[idx].slow)
		make_slow(est, acct, idx, ops, ctx);
	return 0;
}

static int alloc_slot(mgi_estimate_t *est)
{
	for (uint32_t i = 0; i < est->used_slots; i++)
		if (!est->regions[i].used)
			return (int)i;
	if (est->used_slots < est->capacity)
		return (int)est->used_slots++;
	return -1;
}

/* A slot for a new region of `pages` pages, or -EINVAL, -ENOSPC. It is
 * marked unused until placed: a victim search may run in between. */
static int take_slot(mgi_estimate_t *est, uint64_t pages)
{
	int slot;

	if (pages == 0 || pages > MGI_PAGES_UNLIMITED)
		return -EINVAL;
	slot = alloc_slot(est);
	if (slot >= 0)
		est->regions[slot].used = false;
	return slot < 0 ? -ENOSPC : slot;
}

/* A new region in slot: counted, and a fast one's M_i in the table's
 * estimate (its charge is the caller's business). */
static void place(mgi_estimate_t *est, uint32_t slot, uint64_t pages, uint64_t key, bool slow)
{
	est->regions[slot] = (mgi_region_t){.key = key, .pages = pages, .slow = slow, .used = true};
	if (slow) {
		est->nr_slow++;
	} else {
		est->nr_fast++;
		est->estimate += pages;
	}
	est->mapped += pages;
}

int mgi_estimate_map(mgi_estimate_t *est, const mgi_estimate_acct_t *acct,
		     uint64_t pages, uint64_t key, bool force_slow,
		     const mgi_estimate_ops_t *ops, void *ctx, uint32_t *idx)
{
	bool slow = force_slow;
	int slot = take_slot(est, pages);

	if (slot < 0)
		return slot;
	if (!slow) {
		/* Algorithm 2: while E + size > L, turn a fast region slow. */
		while (!acct->charge(acct->ctx, pages)) {
			if (!demote_one(est, acct, ops, ctx)) {
				slow = true; /* none left: created slow */
				break;
			}
		}
	}

	place(est, (uint32_t)slot, pages, key, slow);
	*idx = (uint32_t)slot;
	return 0;
}

int mgi_estimate_add_charged(mgi_estimate_t *est, uint64_t pages, uint64_t key, bool slow,
			     uint32_t *idx)
{
	int slot = take_slot(est, pages);

	if (slot < 0)
		return slot;
	place(est, (uint32_t)slot, pages, key, slow);
	*idx = (uint32_t)slot;
	return 0;
}

int mgi_estimate_trim(mgi_estimate_t *est, const mgi_estimate_acct_t *acct, uint32_t idx,
		      uint64_t key, uint64_t pages)
{
	mgi_region_t *r = &est->regions[idx];
	uint64_t give;

	if (pages > r->pages)
		return -EINVAL;
	if (pages == 0) {
		mgi_estimate_unmap(est, acct, idx);
		return 0;
	}
	if (!r->slow) {
		give = r->pages - pages;
		acct->uncharge(acct->ctx, give);
		est->estimate -= give;
	} else if (r->resident > pages) {
		give = r->resident - pages;
		r->resident = pages;
		if (!est->external) {
			acct->uncharge(acct->ctx, give);
			est->estimate -= give;
		}
	}
	est->mapped -= r->pages - pages;
	r->pages = pages;
	r->key = key;
	return 0;
}

int mgi_estimate_split(mgi_estimate_t *est, uint32_t idx, uint64_t first_pages,
		       uint64_t second_key, uint32_t *second)
{
	mgi_region_t *r = &est->regions[idx], *n;
	int slot;

	if (first_pages == 0 || first_pages >= r->pages)
		return -EINVAL;
	slot = alloc_slot(est);
	if (slot < 0)
		return -ENOSPC;
	r = &est->regions[idx];
	n = &est->regions[slot];
	*n = *r;
	n->key = second_key;
	n->pages = r->pages - first_pages;
	r->pages = first_pages;
	if (r->slow) {
		n->resident = r->resident > first_pages ? r->resident - first_pages : 0;
		r->resident -= n->resident;
		est->nr_slow++;
	} else {
		est->nr_fast++;
	}
	*second = (uint32_t)slot;
	return 0;
}

int mgi_estimate_fault(mgi_estimate_t *est, const mgi_estimate_acct_t *acct,
		       uint32_t idx, uint64_t now,
		       const mgi_estimate_ops_t *ops, void *ctx)
{
	mgi_region_t *r = &est->regions[idx];

	if (!r->slow)
		return 0; /* fast: no accounting at all */
	if (est->external) { /* the caller charged it: just note the fault */
		r->faults++;
		r->last_fault = now;
		return 0;
	}
	while (!acct->charge(acct->ctx, 1)) {
		/* The amendment: a fast region still holds estimate that is
		 * not real memory; take it back before denying. */
		if (!demote_one(est, acct, ops, ctx))
			return -ENOMEM;
	}
	r->resident++;
	r->faults++;
	r->last_fault = now;
	est->estimate++;
	return 0;
}

void mgi_estimate_unfault(mgi_estimate_t *est, const mgi_estimate_acct_t *acct,
			  uint32_t idx, uint64_t nr)
{
	mgi_region_t *r = &est->regions[idx];

	if (!r->slow || est->external)
		return;
	if (nr > r->resident)
		nr = r->resident;
	r->resident -= nr;
	est->estimate -= nr;
	acct->uncharge(acct->ctx, nr);
}

void mgi_estimate_unmap(mgi_estimate_t *est, const mgi_estimate_acct_t *acct,
			uint32_t idx)
{
	mgi_region_t *r = &est->regions[idx];
	/* External: a slow region's pages are the caller's to uncharge. */
	uint64_t e = est->external && r->slow ? 0 : region_estimate(r);

	acct->uncharge(acct->ctx, e);
	est->estimate -= e;
	est->mapped -= r->pages;
	if (r->slow)
		est->nr_slow--;
	else
		est->nr_fast--;
	r->used = false;
	while (est->used_slots > 0 && !est->regions[est->used_slots - 1].used)
		est->used_slots--;
}

static uint64_t pct_of(uint64_t value, unsigned pct)
{
	/* value is at most MGI_PAGES_UNLIMITED (2^51), so this cannot overflow. */
	return value / 100 * pct + value % 100 * pct / 100;
}

unsigned mgi_estimate_make_fast(mgi_estimate_t *est,
				const mgi_estimate_acct_t *acct,
				const mgi_estimate_ops_t *ops, void *ctx)
{
	uint64_t max, below, target;
	unsigned switched = 0;

	if (!acct->group_max || est->nr_slow == 0)
		return 0;
	max = acct->group_max(acct->ctx);
	below = pct_of(max, est->fast_below_pct);
	target = pct_of(max, est->fast_target_pct);

	while (est->nr_slow > 0 && acct->group_usage(acct->ctx) <= below) {
		int best = -1;
		uint64_t best_extra = 0;
		mgi_region_t *r;

		/* Most recently faulting slow region, faulting enough, whose
		 * switch fits. */
		for (uint32_t i = 0; i < est->used_slots; i++) {
			const mgi_region_t *c = &est->regions[i];
			uint64_t resident, extra;
			if (!c->used || !c->slow || c->faults < est->fast_min_faults)
				continue;
			if (best >= 0 && c->last_fault <= est->regions[best].last_fault)
				continue;
			resident = est->external ? ops->slow_resident(ctx, c) : c->resident;
			if (resident > c->pages)
				continue; /* cannot be made fast (or a broken count) */
			extra = c->pages - resident;
			if (acct->group_usage(acct->ctx) + extra > target)
				continue;
			best = (int)i;
			best_extra = extra;
		}
		if (best < 0)
			break;
		r = &est->regions[best];
		if (!acct->charge(acct->ctx, best_extra))
			break; /* an ancestor is short: stay slow */
		if (est->external) {
			est->estimate += r->pages;
			r->resident = r->pages - best_extra;
		} else {
			est->estimate += best_extra;
		}
		r->slow = false;
		est->nr_slow--;
		est->nr_fast++;
		est->mode_switches++;
		switched++;
		if (ops && ops->mode_changed)
			ops->mode_changed(ctx, r);
	}
	return switched;
}

int mgi_estimate_find(const mgi_estimate_t *est, uint64_t key)
{
	for (uint32_t i = 0; i < est->used_slots; i++)
		if (est->regions[i].used && est->regions[i].key == key)
			return (int)i;
	return -1;
}

/* ---- an acct over a counter path ---- */

static bool path_charge(void *ctx, uint64_t pages)
{
	return mgi_counter_try_charge(ctx, pages, NULL);
}

static void path_uncharge(void *ctx, uint64_t pages)
{
	mgi_counter_uncharge(ctx, pages);
}

static uint64_t path_usage(void *ctx)
{
	const mgi_counter_path_t *path = ctx;

	return mgi_counter_read(path->level[0]);
}

static uint64_t path_max(void *ctx)
{
	const mgi_counter_path_t *path = ctx;

	return mgi_counter_read_max(path->limit[0]);
}

mgi_estimate_acct_t mgi_estimate_path_acct(const mgi_counter_path_t *path)
{
	return (mgi_estimate_acct_t){.charge = path_charge,
				     .uncharge = path_uncharge,
				     .group_usage = path_usage,
				     .group_max = path->depth ? path_max : NULL,
				     .ctx = (void *)path};
}

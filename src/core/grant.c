/* grant.c - the grant scheme's arithmetic: batch sizes, giving and taking back grants (see grant.h). */
#include "grant.h"

uint64_t mgi_grant_batch(uint64_t want, uint64_t headroom)
{
	uint64_t extra = MGI_GRANT_BATCH;

	if (headroom <= want)
		return want;
	if (extra > (headroom - want) / 4)
		extra = (headroom - want) / 4;
	return want + extra;
}

uint64_t mgi_grant_give(const mgi_counter_path_t *anc, _Atomic uint64_t *granted, uint64_t want,
			unsigned *failed_level)
{
	uint64_t batch;

	if (want == 0)
		return 0;
	batch = mgi_grant_batch(want, mgi_counter_path_margin(anc));
	/* The batch may not fit where the snapshot said it would (a
	 * concurrent charge of an ancestor's own processes): want alone. */
	if (!mgi_counter_try_charge(anc, batch, failed_level)) {
		if (batch == want || !mgi_counter_try_charge(anc, want, failed_level))
			return 0;
		batch = want;
	}
	atomic_fetch_add_explicit(granted, batch, memory_order_seq_cst);
	return batch;
}

uint64_t mgi_grant_take_back(const mgi_counter_path_t *anc, _Atomic uint64_t *granted,
			     const mgi_counter_t *own, uint64_t keep)
{
	uint64_t g = atomic_load_explicit(granted, memory_order_seq_cst);
	uint64_t ex = mgi_grant_excess(mgi_counter_read(own), g, keep);

	if (!ex)
		return 0;
	atomic_store_explicit(granted, g - ex, memory_order_seq_cst);
	/* A charge that added to the usage before the grant was lowered,
	 * and compared it with the old grant, holds its pages: keep them
	 * granted. One that compares with the new grant backs out. */
	uint64_t u = atomic_load_explicit(&own->usage, memory_order_seq_cst);
	if (u > g - ex) {
		uint64_t keep_now = u < g ? u : g;
		atomic_store_explicit(granted, keep_now, memory_order_seq_cst);
		ex = g - keep_now;
	}
	if (ex)
		mgi_counter_uncharge(anc, ex);
	return ex;
}

uint64_t mgi_grant_return_all(const mgi_counter_path_t *anc, _Atomic uint64_t *granted)
{
	uint64_t g = atomic_exchange_explicit(granted, 0, memory_order_seq_cst);

	if (g)
		mgi_counter_uncharge(anc, g);
	return g;
}

static mgi_counter_path_t own_path(mgi_segment_t *seg, bool swap, bool with_grant)
{
	mgi_counter_path_t p = {.level = {swap ? &seg->acct.swap : &seg->acct.memory},
				.limit = {swap ? &seg->ctl.swap : &seg->ctl.memory},
				.depth = 1};
	if (with_grant)
		p.grant = swap ? &seg->ctl.swap_granted : &seg->ctl.granted;
	return p;
}

static _Atomic uint64_t *granted_of(mgi_segment_t *seg, bool swap)
{
	return swap ? &seg->ctl.swap_granted : &seg->ctl.granted;
}

mgi_counter_path_t mgi_grant_path(mgi_segment_t *seg, bool swap)
{
	return own_path(seg, swap, true);
}

/* Charges pages to seg[i]'s own counter, within its limit and, below the
 * top, its grant, raising the grant from seg[i + 1] when it is short. */
static bool charge_level(mgi_segment_t *const *seg, unsigned n, bool swap, unsigned i,
			 uint64_t pages, unsigned *failed_level)
{
	bool top = i + 1 >= n;
	mgi_counter_path_t p = own_path(seg[i], swap, !top);
	unsigned lv = 0;

	/* Twice at most: a grant raised for this charge is taken by a
	 * concurrent charge of the level's own processes only rarely, and
	 * then the requester asks again. */
	for (int tries = 0; tries < 2; tries++) {
		if (mgi_counter_try_charge(&p, pages, &lv))
			return true;
		if (lv != MGI_LEVEL_GRANT)
			break;
		uint64_t u = mgi_counter_read(p.level[0]);
		uint64_t g = atomic_load_explicit(p.grant, memory_order_seq_cst);
		uint64_t short_by = u + pages > g ? u + pages - g : pages;
		if (!mgi_grant_give_chain(seg + i, n - i, swap, short_by, failed_level)) {
			*failed_level += i;
			return false;
		}
	}
	*failed_level = i;
	return false;
}

uint64_t mgi_grant_give_chain(mgi_segment_t *const *seg, unsigned n, bool swap, uint64_t want,
			      unsigned *failed_level)
{
	unsigned dummy;
	uint64_t batch;

	if (!failed_level)
		failed_level = &dummy;
	if (want == 0 || n < 2)
		return 0;
	/* The room the chain can give in the end: its tightest limit (a
	 * grant short on the way is raised). */
	uint64_t headroom = MGI_PAGES_UNLIMITED;
	for (unsigned i = 1; i < n; i++) {
		mgi_counter_path_t p = own_path(seg[i], swap, false);
		uint64_t m = mgi_counter_path_margin(&p);
		if (m < headroom)
			headroom = m;
	}
	batch = mgi_grant_batch(want, headroom);
	if (!charge_level(seg, n, swap, 1, batch, failed_level)) {
		/* Near the limit, what fits: the last pages of an ancestor's
		 * room are used as a direct charge would use them (and its
		 * OOM path sees it full, not short of a request). */
		uint64_t fits = want <= headroom ? want : headroom;
		if (batch == fits || !fits || !charge_level(seg, n, swap, 1, fits, failed_level))
			return 0;
		batch = fits;
	}
	atomic_fetch_add_explicit(granted_of(seg[0], swap), batch, memory_order_seq_cst);
	return batch;
}

uint64_t mgi_grant_take_back_from(mgi_segment_t *child, mgi_segment_t *parent, bool swap,
				  uint64_t keep)
{
	mgi_counter_path_t anc = own_path(parent, swap, false);

	return mgi_grant_take_back(&anc, granted_of(child, swap),
				   swap ? &child->acct.swap : &child->acct.memory, keep);
}

uint64_t mgi_grant_return_to(mgi_segment_t *child, mgi_segment_t *parent, bool swap)
{
	mgi_counter_path_t anc = own_path(parent, swap, false);

	return mgi_grant_return_all(&anc, granted_of(child, swap));
}

uint64_t mgi_grant_claim_slack(uint64_t evidence, unsigned nprocs)
{
	return MGI_GRANT_BATCH + (uint64_t)nprocs * 2 * MGI_FAULT_AROUND_MAX + evidence / 16;
}

uint64_t mgi_grant_cut(const mgi_counter_path_t *anc, _Atomic uint64_t *granted, uint64_t cap)
{
	uint64_t g = atomic_load_explicit(granted, memory_order_seq_cst);

	/* The manager is the one writer of the grant: no other store comes
	 * between the load and this one. */
	if (g <= cap)
		return 0;
	atomic_store_explicit(granted, cap, memory_order_seq_cst);
	mgi_counter_uncharge(anc, g - cap);
	return g - cap;
}

uint64_t mgi_grant_cut_to(mgi_segment_t *child, mgi_segment_t *parent, bool swap, uint64_t cap)
{
	mgi_counter_path_t anc = own_path(parent, swap, false);

	return mgi_grant_cut(&anc, granted_of(child, swap), cap);
}

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

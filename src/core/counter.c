/* counter.c - hierarchical page counters: charge, uncharge, limits. */
#include "counter.h"

#include <errno.h>

#define RELAXED memory_order_relaxed

void mgi_counter_init(mgi_counter_t *c)
{
	atomic_init(&c->usage, 0);
	atomic_init(&c->watermark, 0);
	atomic_init(&c->failcnt, 0);
}

void mgi_counter_limits_init(mgi_limits_t *l)
{
	atomic_init(&l->max, MGI_PAGES_UNLIMITED);
	atomic_init(&l->high, MGI_PAGES_UNLIMITED);
	atomic_init(&l->low, 0);
	atomic_init(&l->soft, MGI_PAGES_UNLIMITED);
}

/* Raises the watermark to new_usage if it is higher. A CAS loop rather than
 * the kernel's racy store: the loop runs only when a new peak is reached,
 * which is rare once a group has warmed up, and it keeps max_usage exact. */
static void raise_watermark(mgi_counter_t *c, uint64_t new_usage)
{
	uint64_t seen = atomic_load_explicit(&c->watermark, RELAXED);

	while (new_usage > seen &&
	       !atomic_compare_exchange_weak_explicit(&c->watermark, &seen,
						      new_usage, RELAXED,
						      RELAXED))
		;
}

/* Subtracts without wrapping; returns false if the counter held less. */
static bool sub_clamped(mgi_counter_t *c, uint64_t nr_pages)
{
	uint64_t old = atomic_fetch_sub_explicit(&c->usage, nr_pages, RELAXED);

	if (old >= nr_pages)
		return true;
	/* Underflow: put back what was not there. Racy against concurrent
	 * charges only in the already-broken case; it keeps usage sane. */
	atomic_fetch_add_explicit(&c->usage, nr_pages - old, RELAXED);
	return false;
}

/*
 * Add first, compare, back out on failure: no compare-and-swap loop, so a
 * charge costs one atomic add per level however contended the counter is.
 * The price is the race named in counter.h: a tentative add can make a
 * concurrent charge fail spuriously. Usage never *stays* above max, and a
 * successful charge always saw new usage <= max, so the sum of successful
 * charges never passes max.
 */
bool mgi_counter_try_charge(const mgi_counter_path_t *path, uint64_t nr_pages,
			    unsigned *failed_level)
{
	uint64_t new_usage[MGI_DEPTH_MAX];
	unsigned i;

	for (i = 0; i < path->depth; i++) {
		mgi_counter_t *c = path->level[i];

		/* seq_cst pairs with set_max's exchange: either we see the
		 * new limit or set_max sees our usage (free on x86: lock xadd
		 * is a full barrier anyway). */
		new_usage[i] = atomic_fetch_add_explicit(&c->usage, nr_pages,
							 memory_order_seq_cst) +
			       nr_pages;
		bool over = new_usage[i] >
			    atomic_load_explicit(&path->limit[i]->max, memory_order_seq_cst);
		/* The grant, like the limit, after the add: seq_cst pairs
		 * with mgi_grant_take_back (it lowers the grant, then reads
		 * the usage): one of the two sees the other. */
		bool ungranted = !over && i == 0 && path->grant &&
				 new_usage[0] > atomic_load_explicit(path->grant, memory_order_seq_cst);
		if (over || ungranted) {
			atomic_fetch_sub_explicit(&c->usage, nr_pages, RELAXED);
			if (over)
				atomic_fetch_add_explicit(&c->failcnt, 1, RELAXED);
			if (failed_level)
				*failed_level = over ? i : MGI_LEVEL_GRANT;
			while (i-- > 0)
				atomic_fetch_sub_explicit(&path->level[i]->usage,
							  nr_pages, RELAXED);
			return false;
		}
	}
	/* Watermarks only once every level has accepted: a usage that an
	 * ancestor refused was never really held. */
	for (i = 0; i < path->depth; i++)
		raise_watermark(path->level[i], new_usage[i]);
	return true;
}

uint64_t mgi_counter_try_charge_upto(const mgi_counter_path_t *path, uint64_t want,
				     unsigned *failed_level)
{
	uint64_t fits;

	if (want == 0 || mgi_counter_try_charge(path, want, failed_level))
		return want;
	fits = mgi_counter_path_margin(path);
	if (fits >= want)
		fits = want - 1; /* raced with another charge: less */
	if (fits == 0)
		fits = 1;
	return mgi_counter_try_charge(path, fits, failed_level) ? fits : 0;
}

void mgi_counter_charge(const mgi_counter_path_t *path, uint64_t nr_pages)
{
	for (unsigned i = 0; i < path->depth; i++) {
		mgi_counter_t *c = path->level[i];
		uint64_t new_usage =
			atomic_fetch_add_explicit(&c->usage, nr_pages, RELAXED) +
			nr_pages;
		raise_watermark(c, new_usage);
	}
}

bool mgi_counter_uncharge(const mgi_counter_path_t *path, uint64_t nr_pages)
{
	bool ok = true;

	for (unsigned i = 0; i < path->depth; i++)
		ok &= sub_clamped(path->level[i], nr_pages);
	return ok;
}

/*
 * Like the kernel's page_counter_set_max: publish the new limit, then check
 * that no charge slipped in above it between our read of usage and the
 * exchange. If one did (usage grew past the limit we just set), restore the
 * old limit and report the group as busy; the caller reclaims and retries.
 */
int mgi_counter_set_max(const mgi_counter_t *c, mgi_limits_t *l, uint64_t nr_pages)
{
	for (;;) {
		uint64_t usage = mgi_counter_read(c);
		uint64_t old;

		if (usage > nr_pages)
			return -EBUSY;
		old = atomic_exchange_explicit(&l->max, nr_pages,
					       memory_order_seq_cst);
		if (atomic_load_explicit(&c->usage, memory_order_seq_cst) <=
			    usage ||
		    nr_pages >= old)
			return 0;
		/* A charge raced with us; the new usage may be over the new
		 * limit. Put the old limit back and look again. */
		atomic_store_explicit(&l->max, old, memory_order_seq_cst);
	}
}

void mgi_counter_set_high(mgi_limits_t *l, uint64_t nr_pages)
{
	atomic_store_explicit(&l->high, nr_pages, RELAXED);
}

void mgi_counter_set_low(mgi_limits_t *l, uint64_t nr_pages)
{
	atomic_store_explicit(&l->low, nr_pages, RELAXED);
}

void mgi_counter_set_soft(mgi_limits_t *l, uint64_t nr_pages)
{
	atomic_store_explicit(&l->soft, nr_pages, RELAXED);
}

void mgi_counter_reset_watermark(mgi_counter_t *c)
{
	atomic_store_explicit(&c->watermark, mgi_counter_read(c), RELAXED);
}

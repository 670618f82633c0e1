/* counter.h - hierarchical page counters (usage, watermark, failcnt) and their limits. */
#ifndef MGI_CORE_COUNTER_H
#define MGI_CORE_COUNTER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "page.h"

/*
 * A counter counts pages. It holds no pointer, so it can live in a shared
 * memory segment mapped at different addresses by different processes.
 *
 * The hierarchy is not stored in the counter: a charge walks a *path*, the
 * list of counters from the charged group up to the topmost limited
 * ancestor, which the caller builds from wherever it mapped them. The root
 * group is unlimited and is not part of any path (charging it would only
 * add a contended cache line to every fault).
 *
 * Limits:
 *  - max:  hard limit; try_charge refuses to pass it.
 *  - high: throttle/background-reclaim point; stored here, acted on by reclaim.
 *  - low:  protection; a group under it is reclaimed last.
 *  - soft: reclaimed towards when the host runs short.
 * All four are read and written with relaxed atomics: a limit change races
 * with charges in flight, like the kernel's, and set_max handles the one
 * race that matters (a charge slipping in while the limit is lowered).
 *
 * The limits live apart from the usage (mgi_limits_t beside mgi_counter_t):
 * in a group's segment the usage is in the part its processes write and the
 * limits in the part only the manager writes, so that a process can change
 * neither its own group's limits nor its ancestors'. A path names both for
 * each level.
 */

/* "No limit" in pages: large enough never to be reached, small enough that
 * usage + a charge cannot overflow. */
#define MGI_PAGES_UNLIMITED ((uint64_t)INT64_MAX / MGI_PAGE_SIZE)

/* Deepest group path; "a/b/c/d/e/f/g/h" and no deeper. */
#define MGI_DEPTH_MAX 8

typedef struct mgi_counter {
	_Atomic uint64_t usage;     /* pages charged now */
	_Atomic uint64_t watermark; /* highest usage seen since reset */
	_Atomic uint64_t failcnt;   /* charges refused by this counter's max */
} mgi_counter_t;

typedef struct mgi_limits {
	_Atomic uint64_t max;       /* hard limit */
	_Atomic uint64_t high;
	_Atomic uint64_t low;
	_Atomic uint64_t soft;
} mgi_limits_t;

/* Counters from the charged group (level[0]) up towards the root, each
 * with its limits (limit[i] is level[i]'s). */
typedef struct mgi_counter_path {
	mgi_counter_t *level[MGI_DEPTH_MAX];
	const mgi_limits_t *limit[MGI_DEPTH_MAX];
	unsigned depth;
	/* The grant scheme (grant.h): when not NULL, level[0]'s usage may not
	 * pass *grant either (the pages the manager charged to the group's
	 * ancestors for it); a charge it refuses names MGI_LEVEL_GRANT. The
	 * ancestors are then not on the path: the manager charges them. */
	const _Atomic uint64_t *grant;
} mgi_counter_path_t;

/* failed_level of a charge refused by the path's grant, not by a limit:
 * the caller asks the manager for more (no failcnt is counted). */
#define MGI_LEVEL_GRANT MGI_DEPTH_MAX

/* Sets zero usage, watermark and failcnt. Not atomic with respect to
 * concurrent users: call before the counter is shared. */
void mgi_counter_init(mgi_counter_t *c);

/* Sets unlimited limits (no max, high or soft; no low protection). */
void mgi_counter_limits_init(mgi_limits_t *l);

/*
 * Charges nr_pages to every counter on the path, or to none.
 * Returns true on success. On failure returns false, leaves every usage as
 * it was, increments failcnt of the counter that refused and, if failed_level
 * is not NULL, stores its index in the path there (MGI_LEVEL_GRANT: the
 * path's grant refused; no failcnt).
 * Tolerated race: two charges that both fit alone but not together may both
 * be refused (each sees the other's tentative add); a refused charge never
 * leaves usage above max.
 */
bool mgi_counter_try_charge(const mgi_counter_path_t *path, uint64_t nr_pages,
			    unsigned *failed_level);

/* Charges what fits of want pages: all of them, else as many as the path's
 * tightest level has room for (at least one is tried, so that a refusal
 * names its level in failed_level as mgi_counter_try_charge does). Returns
 * the pages charged, 0 when not even one fits. */
uint64_t mgi_counter_try_charge_upto(const mgi_counter_path_t *path, uint64_t want,
				     unsigned *failed_level);

/* Charges without checking limits (for pages that must be accounted even
 * though they cannot be refused, e.g. a reserve). Cannot fail. */
void mgi_counter_charge(const mgi_counter_path_t *path, uint64_t nr_pages);

/* Removes nr_pages from every counter on the path. Uncharging more than was
 * charged is a caller bug: the usage is clamped at zero rather than wrapped,
 * and the function returns false so that tests and ALWAYS() checks see it. */
bool mgi_counter_uncharge(const mgi_counter_path_t *path, uint64_t nr_pages);

/*
 * Sets the hard limit. Returns 0, or -EBUSY if usage is above nr_pages (the
 * caller reclaims and tries again), as the kernel's page_counter does. The
 * limit is never left below a usage that a concurrent charge reached.
 */
int mgi_counter_set_max(const mgi_counter_t *c, mgi_limits_t *l, uint64_t nr_pages);

/* The soft limits cannot fail: they are targets, not walls. */
void mgi_counter_set_high(mgi_limits_t *l, uint64_t nr_pages);
void mgi_counter_set_low(mgi_limits_t *l, uint64_t nr_pages);
void mgi_counter_set_soft(mgi_limits_t *l, uint64_t nr_pages);

/* Resets the watermark to the current usage (memcg's max_usage reset). */
void mgi_counter_reset_watermark(mgi_counter_t *c);

static inline uint64_t mgi_counter_read(const mgi_counter_t *c)
{
	return atomic_load_explicit(&c->usage, memory_order_relaxed);
}

static inline uint64_t mgi_counter_read_max(const mgi_limits_t *l)
{
	return atomic_load_explicit(&l->max, memory_order_relaxed);
}

/* Pages that can still be charged before max is reached (0 if at or over). */
static inline uint64_t mgi_counter_margin(const mgi_counter_t *c, const mgi_limits_t *l)
{
	uint64_t usage = mgi_counter_read(c), max = mgi_counter_read_max(l);
	return usage < max ? max - usage : 0;
}

/* What a charge on the path could take now: the least margin of its levels
 * and of its grant (a snapshot: concurrent charges may take it first). */
static inline uint64_t mgi_counter_path_margin(const mgi_counter_path_t *path)
{
	uint64_t m = UINT64_MAX;

	for (unsigned i = 0; i < path->depth; i++) {
		uint64_t l = mgi_counter_margin(path->level[i], path->limit[i]);
		if (l < m)
			m = l;
	}
	if (path->grant && path->depth) {
		uint64_t g = atomic_load_explicit(path->grant, memory_order_relaxed);
		uint64_t u = mgi_counter_read(path->level[0]);
		uint64_t l = u < g ? g - u : 0;
		if (l < m)
			m = l;
	}
	return m;
}

static inline bool mgi_counter_above_high(const mgi_counter_t *c, const mgi_limits_t *l)
{
	return mgi_counter_read(c) >
	       atomic_load_explicit(&l->high, memory_order_relaxed);
}

/* Pages to evict to bring usage back under high, with a margin of 1/64 of
 * high (so that the next charges do not cross it again at once); 0 when
 * not above it. The manager's HIGH step and its background episodes. */
static inline uint64_t mgi_counter_high_excess(const mgi_counter_t *c, const mgi_limits_t *l)
{
	uint64_t usage = mgi_counter_read(c), high = atomic_load_explicit(&l->high, memory_order_relaxed);

	return usage > high ? usage - high + high / 64 : 0;
}

static inline bool mgi_counter_below_low(const mgi_counter_t *c, const mgi_limits_t *l)
{
	return mgi_counter_read(c) <=
	       atomic_load_explicit(&l->low, memory_order_relaxed);
}

static inline bool mgi_counter_above_soft(const mgi_counter_t *c, const mgi_limits_t *l)
{
	return mgi_counter_read(c) >
	       atomic_load_explicit(&l->soft, memory_order_relaxed);
}

#endif

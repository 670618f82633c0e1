/* estimate.h - the estimate accounting model of seed 001 (fast and slow regions). */
#ifndef MGI_CORE_ESTIMATE_H
#define MGI_CORE_ESTIMATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "counter.h"

/*
 * Seed 001 (Emelyanov): instead of accounting every page fault, a region i of
 * M_i pages is charged by an estimate E_i: its size M_i while it is "fast"
 * (faults not seen at all), its exact resident count R_i while it is "slow"
 * (every fault counted). Because R_i <= M_i, keeping E = sum E_i under the
 * limit keeps real usage under it too.
 *
 * Here E is not a private number: it is what the estimate charges to the
 * group's counter path, so the model composes with hierarchical limits and
 * with other processes charging the same group. "E + size > L" is therefore
 * "try_charge(size) fails", at whichever level of the hierarchy.
 *
 *  Algorithm 2 (map):  try to charge M; while that fails and a fast region
 *                      exists, turn one slow (measure R_i, uncharge M_i - R_i)
 *                      and try again; when none is left, the new region is
 *                      created slow with nothing charged.
 *  Algorithm 3 (fault): fast region: nothing. Slow region: charge one page;
 *                      if that fails, *first turn fast regions slow as in
 *                      Algorithm 2*, and deny only when none is left.
 *
 * The amendment in Algorithm 3 is ours. The seed's Algorithm 3 denies as
 * soon as E = L, and then its claim "memory is never denied while a region
 * is fast" does not hold: map A (10 pages) with L = 10, then B (5 pages),
 * which turns A slow with R_A = 0; then C (8 pages), which turns B slow;
 * now E = 8 with C fast, and the third fault in A finds E = L and is denied
 * while C is fast (test_estimate.c reproduces this). With the amendment a
 * denial means every region is slow, so E is the exact resident count and
 * the group really is at its limit.
 *
 * Turning regions fast again (the seed's open question): when the group's
 * usage falls to fast_below_pct of its max, the slow region that faulted
 * most recently is turned fast if that leaves usage at or under
 * fast_target_pct of max. The gap between the two marks is the hysteresis
 * that stops a region from flapping.
 *
 * The region table is per process (regions belong to one address space) and
 * single-threaded: the agent serializes calls on one estimate.
 *
 * External slow accounting (`external`, the agent's way): a slow region's
 * pages are charged by the caller's own fault path (which already counts
 * every page of a registered range exactly, with fault-around, eviction and
 * restore), not by the table. The table then charges only its fast regions'
 * M_i, and a switch hands the resident pages over: fast -> slow, the caller
 * takes R_i under exact counting (take_slow) and the table uncharges M_i -
 * R_i; slow -> fast, the caller says what it counts there (slow_resident),
 * the table charges M_i - R_i and the caller lets go of R_i (mode_changed).
 * E is still what the path is charged; `estimate` is the table's part.
 */

typedef struct mgi_region {
	uint64_t key;        /* the caller's name for it (its start address) */
	uint64_t pages;      /* M_i */
	uint64_t resident;   /* R_i: exact while slow; as last measured when fast */
	uint64_t faults;     /* faults counted while slow */
	uint64_t last_fault; /* caller's clock at the last counted fault */
	bool slow;
	bool used;           /* slot holds a region */
} mgi_region_t;

typedef enum mgi_victim_policy {
	MGI_VICTIM_LARGEST,      /* largest M_i first: frees the most estimate */
	MGI_VICTIM_LEAST_RECENT, /* smallest last_fault first (rarely faulting) */
	MGI_VICTIM_CALLBACK,     /* ops->choose_victim decides */
} mgi_victim_policy_t;

typedef struct mgi_estimate mgi_estimate_t;

/*
 * How the table's estimate is charged: by the caller, never by the table
 * on a counter (the agent's one accounting entry point charges the counter
 * path, the process's slot and the thresholds together). charge is all or
 * nothing. group_usage and group_max read the caller's own group (level
 * 0), for make_fast's marks; group_max NULL: no group, never fast again.
 */
typedef struct mgi_estimate_acct {
	bool (*charge)(void *ctx, uint64_t pages);
	void (*uncharge)(void *ctx, uint64_t pages);
	uint64_t (*group_usage)(void *ctx);
	uint64_t (*group_max)(void *ctx);
	void *ctx;
} mgi_estimate_acct_t;

/* An acct that charges a counter path itself (tests, the demo): path must
 * outlive it. */
mgi_estimate_acct_t mgi_estimate_path_acct(const mgi_counter_path_t *path);

typedef struct mgi_estimate_ops {
	/* The exact number of resident pages of a fast region (mincore or
	 * pagemap in the agent). Must return at most r->pages. */
	uint64_t (*count_resident)(void *ctx, const mgi_region_t *r);
	/* For MGI_VICTIM_CALLBACK: the index of a fast region to turn slow,
	 * or -1 to fall back to MGI_VICTIM_LARGEST. */
	int (*choose_victim)(void *ctx, const mgi_estimate_t *est);
	/* Called after a region changed mode, for registration with (or
	 * unregistration from) userfaultfd. May be NULL. */
	void (*mode_changed)(void *ctx, const mgi_region_t *r);
	/* External tables only (both required there). take_slow puts fast
	 * region r under the caller's exact counting and returns its resident
	 * pages (at most r->pages), whose charge the caller now holds: it is
	 * called before anything is uncharged, so that pages faulted meanwhile
	 * are the caller's to count. slow_resident returns the pages the caller
	 * counts in slow region r, or UINT64_MAX if r cannot be made fast (its
	 * data is partly held elsewhere: evicted; or the caller needs its
	 * faults: the agent's volatile ranges). */
	uint64_t (*take_slow)(void *ctx, const mgi_region_t *r);
	uint64_t (*slow_resident)(void *ctx, const mgi_region_t *r);
} mgi_estimate_ops_t;

struct mgi_estimate {
	uint64_t estimate;     /* E of this table's regions, in pages */
	uint64_t mapped;       /* M = sum M_i */
	uint32_t nr_fast, nr_slow;
	uint64_t mode_switches;
	mgi_victim_policy_t policy;
	unsigned fast_below_pct;  /* turn regions fast at or under this % of max */
	unsigned fast_target_pct; /* ... as long as usage stays at or under this */
	uint64_t fast_min_faults; /* ... and the region counted this many faults */
	bool external;         /* slow regions are charged by the caller (above) */
	uint32_t capacity;
	uint32_t used_slots;   /* slots [0, used_slots) have been handed out */
	mgi_region_t regions[];
};

/* Bytes needed for a table of capacity regions. */
size_t mgi_estimate_bytes(uint32_t capacity);

/* An empty table; policy LARGEST, fast again at 50 % up to 75 %. */
void mgi_estimate_init(mgi_estimate_t *est, uint32_t capacity);

/*
 * Algorithm 2. Admits a region of `pages` pages named `key`, charging it
 * through acct. Stores the region's index (stable until unmap) in *idx.
 * Returns 0, -ENOSPC if the table is full, -EINVAL if pages is 0 or larger
 * than MGI_PAGES_UNLIMITED. On error nothing is charged or changed.
 * An exact-mode caller (every region slow) passes force_slow.
 */
int mgi_estimate_map(mgi_estimate_t *est, const mgi_estimate_acct_t *acct,
		     uint64_t pages, uint64_t key, bool force_slow,
		     const mgi_estimate_ops_t *ops, void *ctx, uint32_t *idx);

/*
 * Algorithm 3, amended. A first-touch fault on a page of region idx at time
 * `now` (any clock). Returns 0 if the page may be allocated (charged if the
 * region is slow), -ENOMEM if it must be denied: then every region of the
 * table is slow and acct's charge is refused.
 */
int mgi_estimate_fault(mgi_estimate_t *est, const mgi_estimate_acct_t *acct,
		       uint32_t idx, uint64_t now,
		       const mgi_estimate_ops_t *ops, void *ctx);

/* nr pages of slow region idx were freed (MADV_DONTNEED, partial unmap):
 * R_i and the charge drop. A no-op for a fast region, whose charge is M_i
 * whatever it holds. nr is clamped to R_i. */
void mgi_estimate_unfault(mgi_estimate_t *est, const mgi_estimate_acct_t *acct,
			  uint32_t idx, uint64_t nr);

/* The region is gone: its E_i is uncharged and its slot freed. */
void mgi_estimate_unmap(mgi_estimate_t *est, const mgi_estimate_acct_t *acct,
			uint32_t idx);

/*
 * Turns slow regions fast again while acct's group (level 0) is at
 * or under fast_below_pct of its max, most recently faulting first, each only
 * if usage stays at or under fast_target_pct afterwards. Returns how many
 * regions were switched. Call it when usage has dropped (unmap, reclaim).
 */
unsigned mgi_estimate_make_fast(mgi_estimate_t *est,
				const mgi_estimate_acct_t *acct,
				const mgi_estimate_ops_t *ops, void *ctx);

/*
 * Algorithm 3's amendment for external tables, whose caller charges slow
 * faults itself: its charge was refused, so one fast region is turned slow
 * (by the victim policy). Returns false if none was left.
 */
bool mgi_estimate_demote(mgi_estimate_t *est, const mgi_estimate_acct_t *acct,
			 const mgi_estimate_ops_t *ops, void *ctx);

/* Turns region idx slow now, whatever the victim policy (the caller needs
 * this region's faults: a volatile range in it). 0 (also when it was slow
 * already), -EINVAL for no such region. */
int mgi_estimate_make_slow(mgi_estimate_t *est, const mgi_estimate_acct_t *acct, uint32_t idx,
			   const mgi_estimate_ops_t *ops, void *ctx);

/*
 * Adds a region whose charge is already settled: a fast one whose M_i the
 * caller charged (it could, without turning anything slow), or a slow one
 * (external: the caller counts it; else nothing resident yet). Returns 0,
 * -ENOSPC or -EINVAL as mgi_estimate_map.
 */
int mgi_estimate_add_charged(mgi_estimate_t *est, uint64_t pages, uint64_t key, bool slow,
			     uint32_t *idx);

/*
 * Region idx now covers only `pages` pages from `key` (part of it was
 * unmapped; the caller keeps the bookkeeping of which part). A fast
 * region gives back the difference of its M_i; a slow one clamps R_i
 * (external: the caller uncharges what it counted). pages 0 unmaps it.
 * pages larger than before is refused with -EINVAL.
 */
int mgi_estimate_trim(mgi_estimate_t *est, const mgi_estimate_acct_t *acct, uint32_t idx,
		      uint64_t key, uint64_t pages);

/*
 * Splits region idx: it keeps its first `first_pages` pages and a new
 * region (same mode, index in *second) takes the rest under second_key.
 * Nothing is charged or uncharged; a slow region's R_i goes to the first
 * part up to its size, the rest to the second. Returns 0, -ENOSPC, or
 * -EINVAL if first_pages does not leave both parts a page.
 */
int mgi_estimate_split(mgi_estimate_t *est, uint32_t idx, uint64_t first_pages,
		       uint64_t second_key, uint32_t *second);

/* Looks a region up by key; -1 if absent. Linear: the agent keeps its own
 * address-ordered index and uses this only in tests and slow paths. */
int mgi_estimate_find(const mgi_estimate_t *est, uint64_t key);

static inline const mgi_region_t *mgi_estimate_region(const mgi_estimate_t *est,
							uint32_t idx)
{
	return idx < est->used_slots && est->regions[idx].used
		       ? &est->regions[idx]
		       : NULL;
}

#endif

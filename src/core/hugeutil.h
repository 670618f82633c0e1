/* hugeutil.h - utilization and access frequency per 2 MiB region, for huge-page promotion (Ingens' bitvectors; pure). */
#ifndef MGI_HUGEUTIL_H
#define MGI_HUGEUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "page.h"

/*
 * One entry per 2 MiB aligned block that has pages in use: a bit per 4 KiB
 * page (set when the agent puts a page there, cleared when the page is
 * given back, unmapped or evicted), their count, and an access-frequency
 * estimate. The agent sees every first touch and every restore of an
 * evicted page as a fault, and nothing in between (no access bits here:
 * page_idle is not built), so the frequency is of faults: each one adds
 * MGI_HU_FREQ_HIT and mgi_hu_decay halves every entry, a decayed count of
 * the faults of the last few periods. A block that was filled once and
 * never evicted keeps a falling frequency: cold, though dense.
 *
 * The table is open addressing with linear probing in storage the caller
 * gives (a power of two entries); an entry whose last page goes is removed
 * at once (backward shift, no tombstones), so a full table means that many
 * blocks are in use. Not thread safe: one owner (the fault handler).
 */
#define MGI_HU_BLOCK (2UL << 20)
#define MGI_HU_PAGE MGI_PAGE_SIZE
#define MGI_HU_PAGES 512u
#define MGI_HU_FREQ_HIT 16u

enum mgi_hu_state {
	MGI_HU_BASE = 0, /* base pages only */
	MGI_HU_QUEUED,   /* picked for promotion, not yet collapsed */
	MGI_HU_HUGE,     /* collapsed into a huge page (as far as we know) */
};

typedef struct {
	uintptr_t block; /* the block's address; 0: a free entry */
	uint64_t bits[MGI_HU_PAGES / 64];
	uint16_t used;   /* bits set */
	uint16_t freq;   /* decayed fault count, saturating */
	uint8_t state;   /* enum mgi_hu_state */
	uint8_t tries;   /* failed promotions: a block that keeps failing is left alone */
} mgi_hu_entry_t;

typedef struct {
	mgi_hu_entry_t *e;
	uint32_t cap; /* a power of two */
	uint32_t count;
	uint64_t dropped; /* pages not tracked because the table was full */
	uint64_t demoted; /* huge blocks split: a page went, others stayed */
} mgi_hu_table_t;

/* An empty table over `storage` of `cap` entries (a power of two, at
 * least 2): 0, or -EINVAL. Also what a forked child starts from. */
int mgi_hu_init(mgi_hu_table_t *t, mgi_hu_entry_t *storage, uint32_t cap);

/* Pages [start, end) are now in use (a fault filled them, or a restore):
 * sets their bits, adds to the frequency of each block once per call.
 * Page-aligned bounds. Returns the number of pages newly set. */
size_t mgi_hu_fill(mgi_hu_table_t *t, uintptr_t start, uintptr_t end);

/* Pages [start, end) are no longer in memory (given back, unmapped,
 * evicted): clears their bits; a block left empty is removed. A huge
 * block that loses a page is a base block again (the kernel split it);
 * if pages of it stay, `demoted` counts it.
 * Returns the number of pages cleared. */
size_t mgi_hu_clear(mgi_hu_table_t *t, uintptr_t start, uintptr_t end);

/* The entry of the block containing addr, or NULL. */
const mgi_hu_entry_t *mgi_hu_find(const mgi_hu_table_t *t, uintptr_t addr);

/* Halves every block's frequency (one period has passed). */
void mgi_hu_decay(mgi_hu_table_t *t);

/* Marks the block containing addr as `state` (QUEUED when picked, HUGE
 * once collapsed, BASE when a promotion failed: then `tries` counts up).
 * Returns false if the block has no entry. */
bool mgi_hu_set_state(mgi_hu_table_t *t, uintptr_t addr, enum mgi_hu_state state);

/*
 * The best base block to promote: one with at least `threshold` pages in
 * use (1..512), fewer than `max_tries` failed attempts, for which
 * `eligible(block, arg)` (if not NULL) says yes; among those, the highest
 * frequency, then the most pages used, then the lowest address (so the
 * choice is deterministic). Returns its address, or 0 when none.
 */
uintptr_t mgi_hu_pick(const mgi_hu_table_t *t, unsigned threshold, unsigned max_tries,
		      bool (*eligible)(uintptr_t block, void *arg), void *arg);

/* How many blocks are marked HUGE. */
uint32_t mgi_hu_huge_blocks(const mgi_hu_table_t *t);

/* The pages out of 512 that a threshold in percent asks for (rounded
 * down, at least 1): 90 -> 460, as in Ingens' code. 0..100, else 0. */
unsigned mgi_hu_threshold_pages(unsigned percent);

#endif

/* vrange.h - volatile ranges: the pages an application lent back, and which of them were purged. */
#ifndef MGI_CORE_VRANGE_H
#define MGI_CORE_VRANGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "registry.h" /* mgi_allocator_t, MGI_PAGE_SIZE */

/*
 * The bookkeeping of mg_vrange (include/memgrp.h): the ranges an
 * application made volatile, each with the mode a touch of a purged page
 * gets (zero page or SIGBUS) and a bitmap of the pages purged since the
 * range was made volatile. Pure: the agent's vrange module owns one table
 * and does the purging. Ranges never overlap and are kept sorted. A range
 * made volatile is one unit for its mode; making part of it non-volatile
 * again (or unmapping part of it) cuts it, keeping the rest's bits.
 *
 * Single-threaded (the agent's fault handler). Addresses are page aligned.
 */

enum { MGI_VR_ZERO = 0, MGI_VR_SIGBUS = 1 };

typedef struct mgi_vrange {
	uintptr_t start, end;
	uint32_t mode;
	uint64_t *bits;   /* purged bits; page p of the range is bit off + p */
	size_t off;
	size_t nwords;    /* size of bits, in words (for the free) */
	uint64_t npurged; /* purged bits set in [start, end) */
	uint64_t seq;     /* when it was made volatile (the table's count of
			   * adds); both pieces of a cut range keep it */
} mgi_vrange_t;

typedef struct mgi_vrtab {
	mgi_vrange_t *v;
	uint32_t n, cap;
	uint64_t pages;   /* pages volatile now */
	uint64_t purged;  /* of them, purged (the sum of the ranges' npurged) */
	uint64_t seq;     /* ranges made volatile so far (the next one's seq) */
	mgi_allocator_t a;
} mgi_vrtab_t;

void mgi_vrtab_init(mgi_vrtab_t *t, mgi_allocator_t a);
void mgi_vrtab_destroy(mgi_vrtab_t *t);

/* Makes [start, end) volatile with mode. Returns 0, -EINVAL (unaligned,
 * empty, bad mode), -EEXIST (overlaps a volatile range) or -ENOMEM (the
 * table is unaltered). */
int mgi_vrtab_add(mgi_vrtab_t *t, uintptr_t start, uintptr_t end, uint32_t mode);

/* The range containing addr, or NULL. */
mgi_vrange_t *mgi_vrtab_find(mgi_vrtab_t *t, uintptr_t addr);

/* The first range ending above addr (containing it or after it), or NULL. */
mgi_vrange_t *mgi_vrtab_next(mgi_vrtab_t *t, uintptr_t addr);

/* Whether the page at addr (inside r) was purged. */
bool mgi_vrange_purged(const mgi_vrange_t *r, uintptr_t addr);

/* Marks the page at addr (inside r) purged. Returns true if it was not. */
bool mgi_vrange_mark(mgi_vrange_t *r, uintptr_t addr);

/* The same for a range of table t, counted in t->purged. */
bool mgi_vrtab_mark(mgi_vrtab_t *t, mgi_vrange_t *r, uintptr_t addr);

/* Purged pages of r in [start, end) (clipped to r). */
uint64_t mgi_vrange_count(const mgi_vrange_t *r, uintptr_t start, uintptr_t end);

/* The report of [start, end), which lies inside r: bit k % 8 of byte k / 8
 * of out is set when page k from start was purged. out holds
 * ((end - start) / page + 7) / 8 bytes; every one of them is written. */
void mgi_vrange_report(const mgi_vrange_t *r, uintptr_t start, uintptr_t end, uint8_t *out);

/* Whether [start, end) lies inside one range; that range or NULL. */
mgi_vrange_t *mgi_vrtab_within(mgi_vrtab_t *t, uintptr_t start, uintptr_t end);

/* Takes [start, end) out of every range (splitting one that goes on either
 * side). Returns the pages that were volatile there, or -ENOMEM (a split
 * needed memory: the table is unaltered). */
long mgi_vrtab_cut(mgi_vrtab_t *t, uintptr_t start, uintptr_t end);

/* The purge's order: coldest first, i.e. by the time a range was made
 * volatile (an entry a cache pinned and unpinned again is young again).
 * A cursor is the (seq, start) of the last range taken. */
typedef struct mgi_vrcur {
	uint64_t seq;
	uintptr_t start;
} mgi_vrcur_t;

/* Writes into out the indices of up to k ranges that come after *after in
 * that order, oldest first, passing over ranges purged whole; returns how
 * many. 0: none left after *after (a zero cursor starts again from the
 * oldest). One pass over the table. */
uint32_t mgi_vrtab_coldest(const mgi_vrtab_t *t, const mgi_vrcur_t *after, uint32_t *out,
			   uint32_t k);

/* A copy of src (ranges, modes and bits) into dst, which is initialized
 * anew with the allocator it was given (mgi_vrtab_init: anything it held is
 * forgotten, not freed). Returns 0 or -ENOMEM (dst is then empty). */
int mgi_vrtab_copy(mgi_vrtab_t *dst, const mgi_vrtab_t *src);

#endif

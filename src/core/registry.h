/* registry.h - the agent's map of managed address ranges and their present pages. */
#ifndef MGI_CORE_REGISTRY_H
#define MGI_CORE_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The regions of one address space that memgrp manages, each with three
 * bitmaps over its pages:
 *  - present: mapped in the process and charged to its group's memory;
 *  - out: not mapped, its data held by the agent (evicted: in the staging
 *    area or the compressed store). A page is never both present and out;
 *  - ref: referenced since the clock hand last passed (the reclaim's
 *    second chance), set when a fault shows the page is in use.
 * Regions never overlap and are kept sorted by address. The registry
 * mirrors what the kernel tells the agent: a range is added when it is
 * registered or first faults, pages are marked present when a fault is
 * resolved, cleared on MADV_DONTNEED (UFFD_EVENT_REMOVE), dropped on munmap
 * (UNMAP) and moved on mremap (REMAP), all three bits together.
 *
 * Single-threaded: only the agent's fault handler touches it, which is what
 * lets the handler never wait for a lock an application thread could hold
 * while it is itself blocked in a fault. Memory comes from the caller's
 * allocator (the agent's own arena, never a managed range).
 *
 * Addresses and lengths are page aligned (MGI_PAGE_SIZE); callers align.
 */

#include "page.h" /* MGI_PAGE_SIZE, MGI_PAGE_SHIFT */
#define MGI_STREAMS 4

typedef struct mgi_allocator {
	/* Zeroed memory of `bytes`, or NULL. */
	void *(*alloc)(void *ctx, size_t bytes);
	void (*free)(void *ctx, void *p, size_t bytes);
	void *ctx;
} mgi_allocator_t;

typedef struct mgi_vregion {
	uintptr_t start, end;
	uint64_t *bits;   /* one bit per page: present and charged */
	uint64_t *out;    /* evicted: its data is held by the agent */
	uint64_t *ref;    /* referenced since the clock hand passed */
	size_t cap_pages; /* pages the bitmaps have room for (mgi_registry_extend) */
	uint64_t present; /* number of bits set */
	uint64_t nout;    /* number of out bits set */
	uint64_t faults;  /* faults resolved here: the owner reads and resets
			   * it (estimate mode's fault rate of a slow region) */
	/* The last runs resolved by faults here, one per access stream (as
	 * readahead keeps several), for sequential-access detection. */
	uintptr_t run_start[MGI_STREAMS], run_end[MGI_STREAMS];
	unsigned next_stream;
} mgi_vregion_t;

typedef struct mgi_registry {
	mgi_vregion_t *v;
	uint32_t n, cap;
	uint32_t last;    /* index of the last region found: most faults hit it
			   * again (seed 003, "Optimizing VMA caching") */
	uint64_t bytes;   /* sum of region sizes */
	uint64_t present; /* sum of present pages */
	uint64_t nout;    /* sum of out pages */
	uintptr_t hand;   /* the clock hand: where the next scan starts */
	mgi_allocator_t a;
} mgi_registry_t;

void mgi_registry_init(mgi_registry_t *reg, mgi_allocator_t a);

/* Frees everything. The registry can be reused after mgi_registry_init. */
void mgi_registry_destroy(mgi_registry_t *reg);

/*
 * Adds [start, end) minus the parts already covered (so adding a grown
 * range adds only its new part). Returns the number of pages newly covered,
 * or -ENOMEM (the registry is unaltered) or -EINVAL (unaligned, empty).
 */
long mgi_registry_add(mgi_registry_t *reg, uintptr_t start, uintptr_t end);

/*
 * Grows region r to end at new_end; the pages added are neither present
 * nor out. For memory that continues a region inside one mapping (a block
 * or heap grown in place): one region instead of one more per growth, whose
 * every later walk went through them all (stress-ng bigheap: 71 % of its
 * time in the registry). The caller knows the mapping is one. Returns the
 * pages added, -EINVAL (new_end not above r's end, unaligned, or reaching
 * the next region) or -ENOMEM; on error nothing changed.
 */
long mgi_registry_extend(mgi_registry_t *reg, mgi_vregion_t *r, uintptr_t new_end);

/* The region containing addr, or NULL. */
mgi_vregion_t *mgi_registry_find(mgi_registry_t *reg, uintptr_t addr);

/* The first region ending above addr (containing it or after it), or NULL. */
mgi_vregion_t *mgi_registry_next(mgi_registry_t *reg, uintptr_t addr);

/* Whether the page at addr is marked present. */
bool mgi_registry_test(const mgi_vregion_t *r, uintptr_t addr);

/* Whether the page at addr is out (evicted). */
bool mgi_registry_is_out(const mgi_vregion_t *r, uintptr_t addr);

/*
 * Number of consecutive absent pages (neither present nor out: never
 * touched, or discarded) starting at addr, at most max, not past the
 * region's end. 0 if the page at addr is present or out.
 */
size_t mgi_registry_absent_run(const mgi_vregion_t *r, uintptr_t addr, size_t max);

/* Number of consecutive out pages starting at addr, at most max, not past
 * the region's end. */
size_t mgi_registry_out_run(const mgi_vregion_t *r, uintptr_t addr, size_t max);

/* Marks n pages from addr present (all inside r). Returns how many were
 * newly marked (already-present ones are not counted twice). */
size_t mgi_registry_mark(mgi_registry_t *reg, mgi_vregion_t *r, uintptr_t addr, size_t n);

/* Marks n present pages from addr out (evicted; all inside r and present),
 * clearing their present and ref bits. */
void mgi_registry_evict(mgi_registry_t *reg, mgi_vregion_t *r, uintptr_t addr, size_t n);

/* Marks n out pages from addr present again (restored; all inside r and
 * out). If referenced, their ref bits are set too. */
void mgi_registry_restore(mgi_registry_t *reg, mgi_vregion_t *r, uintptr_t addr, size_t n,
			  bool referenced);

/* Sets the ref bit of the page at addr (it was seen in use). */
void mgi_registry_set_ref(mgi_vregion_t *r, uintptr_t addr);

/* Calls fn (if not NULL) for every out page in [start, end), in address
 * order. With take, also clears their out bits (the pages were discarded
 * or unmapped: fn drops their data). Returns the number of out pages. */
uint64_t mgi_registry_each_out(mgi_registry_t *reg, uintptr_t start, uintptr_t end, bool take,
			       void (*fn)(void *ctx, uintptr_t addr), void *ctx);

/* Counts the present and the out pages in [start, end), over any number of
 * regions; *faults (if not NULL) gets the sum of the faults counted by the
 * regions overlapping it, which are reset to 0 if reset_faults. Returns
 * the present pages. */
uint64_t mgi_registry_count(mgi_registry_t *reg, uintptr_t start, uintptr_t end, uint64_t *out,
			    uint64_t *faults, bool reset_faults);
/* Clears the present (and ref) bits in [start, end), over any number of
 * regions, and returns how many were set (the pages to uncharge). Out bits
 * and coverage stay. */
uint64_t mgi_registry_clear(mgi_registry_t *reg, uintptr_t start, uintptr_t end);

/*
 * The clock (second chance): moves the hand over at most max_scan pages of
 * the registry, wrapping at its end. A present page with its ref bit set
 * loses the bit and is passed over; one without it is a victim. Returns the
 * length of the first run of consecutive victims (in one region, at most
 * max_run pages) and its start in *run; 0 if max_scan pages held none. The
 * hand stops right after the run.
 */
size_t mgi_registry_clock(mgi_registry_t *reg, size_t max_scan, size_t max_run, uintptr_t *run);

/*
 * Drops [start, end) from the registry, splitting regions as needed, and
 * returns the number of present pages dropped; or -ENOMEM if a split
 * needed memory that was not there (then nothing changed). Out pages in
 * the range are dropped uncounted: take them with each_out first.
 */
long mgi_registry_remove(mgi_registry_t *reg, uintptr_t start, uintptr_t end);

/*
 * mremap moved [from, from + len) to [to, to + len): moves coverage and the
 * three bits. Parts of the source not covered stay uncovered at the
 * destination, in any number of pieces. Whatever the registry still
 * covered at the destination is dropped first, and its present pages
 * counted in *dropped (to uncharge; the caller takes the destination's out
 * pages beforehand). Returns 0 or -ENOMEM; on -ENOMEM the source is as it
 * was (the destination's stale coverage may be gone, counted in *dropped).
 */
int mgi_registry_move(mgi_registry_t *reg, uintptr_t from, uintptr_t to, size_t len,
		      uint64_t *dropped);

#endif

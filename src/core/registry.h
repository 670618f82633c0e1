/* registry.h - the agent's map of managed address ranges and their present pages. */
#ifndef MGI_CORE_REGISTRY_H
#define MGI_CORE_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The regions of one address space that memgrp manages, each with a bitmap
 * of the pages memgrp knows to be present (and has charged). Regions never
 * overlap and are kept sorted by address. The registry mirrors what the
 * kernel tells the agent: a range is added when it is registered or first
 * faults, pages are marked present when a fault is resolved, cleared on
 * MADV_DONTNEED (UFFD_EVENT_REMOVE), dropped on munmap (UNMAP) and moved on
 * mremap (REMAP).
 *
 * Single-threaded: only the agent's fault handler touches it, which is what
 * lets the handler never wait for a lock an application thread could hold
 * while it is itself blocked in a fault. Memory comes from the caller's
 * allocator (the agent's own arena, never a managed range).
 *
 * Addresses and lengths are page aligned (MGI_PAGE_SIZE); callers align.
 */

#define MGI_PAGE_SIZE 4096UL
#define MGI_PAGE_SHIFT 12
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
	uint64_t present; /* number of bits set */
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

/* The region containing addr, or NULL. */
mgi_vregion_t *mgi_registry_find(mgi_registry_t *reg, uintptr_t addr);

/* The first region ending above addr (containing it or after it), or NULL. */
mgi_vregion_t *mgi_registry_next(mgi_registry_t *reg, uintptr_t addr);

/* Whether the page at addr is marked present. */
bool mgi_registry_test(const mgi_vregion_t *r, uintptr_t addr);

/*
 * Number of consecutive absent pages starting at addr, at most max, not
 * past the region's end. 0 if the page at addr is present.
 */
size_t mgi_registry_absent_run(const mgi_vregion_t *r, uintptr_t addr, size_t max);

/* Marks n pages from addr present (all inside r). Returns how many were
 * newly marked (already-present ones are not counted twice). */
size_t mgi_registry_mark(mgi_registry_t *reg, mgi_vregion_t *r, uintptr_t addr, size_t n);

/* Clears the present bits in [start, end), over any number of regions, and
 * returns how many were set (the pages to uncharge). Coverage stays. */
uint64_t mgi_registry_clear(mgi_registry_t *reg, uintptr_t start, uintptr_t end);

/*
 * Drops [start, end) from the registry, splitting regions as needed, and
 * returns the number of present pages dropped; or -ENOMEM if a split
 * needed memory that was not there (then nothing changed).
 */
long mgi_registry_remove(mgi_registry_t *reg, uintptr_t start, uintptr_t end);

/*
 * mremap moved [from, from + len) to [to, to + len): moves coverage and
 * present bits. Parts of the source not covered stay uncovered at the
 * destination. Returns 0 or -ENOMEM (then nothing changed).
 */
int mgi_registry_move(mgi_registry_t *reg, uintptr_t from, uintptr_t to, size_t len);

#endif

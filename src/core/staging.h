/* staging.h - the staging area's slots: evicted pages on their second chance, oldest first. */
#ifndef MGI_CORE_STAGING_H
#define MGI_CORE_STAGING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The agent evicts a page by moving it (UFFDIO_MOVE) out of the process
 * into a slot of its staging area, a range of its own. There the page waits
 * uncompressed: if the process touches it again, it faults and the page is
 * moved straight back (its second chance, a cheap refault); if not, the
 * oldest staged pages are compressed into the store and their slots freed.
 * The staging area is the inactive list of the kernel's LRU, in the order
 * pages entered it.
 *
 * This is the slots' bookkeeping (pure: the caller owns the memory and does
 * the moves). Slots are filled in ring order at the head, in runs of
 * consecutive slots so that one UFFDIO_MOVE fills a run. A slot leaves use
 * out of order when its page is moved back (a refault: the slot is free at
 * once) or oldest first when its page is compressed: then it is retired,
 * because its frame must still be dropped (MADV_DONTNEED, done by another
 * thread), and it is free only once that is done. Because fills only
 * happen at the head, the slots in use are in fill order along the ring
 * starting at the head: the first one found from there is the oldest.
 * A hash from the page's key (address >> 12) to its slot serves faults.
 *
 * Single-threaded: the agent's handler owns it.
 */

typedef struct mgi_staging_slot {
	uint64_t key;  /* the page's address >> 12; 0: free; MGI_STAGING_RETIRED */
	uint64_t when; /* the caller's clock when the page was staged */
} mgi_staging_slot_t;

#define MGI_STAGING_RETIRED UINT64_MAX /* compressed, its frame not yet dropped */

typedef struct mgi_staging {
	uint32_t nslots;
	uint32_t head;  /* next slot to fill */
	uint32_t tail;  /* the oldest slot in use, or a free slot before it */
	uint32_t used;    /* slots holding a page */
	uint32_t retired; /* slots whose frame is being dropped */
	uint32_t hmask; /* hash buckets - 1 */
	mgi_staging_slot_t *slot;
	uint32_t *hash; /* slot + 1; 0: empty */
} mgi_staging_t;

/* Memory for a staging area of nslots (2..2^30) slots. */
size_t mgi_staging_bytes(uint32_t nslots);

/* Initializes an empty staging area in mem (mgi_staging_bytes, any content). */
void mgi_staging_init(mgi_staging_t *st, void *mem, uint32_t nslots);

/*
 * The free slots at the head, consecutive and not wrapping past the last
 * slot: returns how many (at most n) and the first in *first. Returns 0
 * when the slot at the head is in use (it is then the oldest, to be
 * compressed before more pages can come in) or retired (its frame is being
 * dropped: wait for that).
 */
uint32_t mgi_staging_room(const mgi_staging_t *st, uint32_t n, uint32_t *first);

/* Fills n slots from first (as given by room, n at most what it returned)
 * with the run of pages key0, key0 + 1, ..., staged at `when`. */
void mgi_staging_fill(mgi_staging_t *st, uint32_t first, uint32_t n, uint64_t key0, uint64_t when);

/* The oldest slot in use, or -1 if none. */
int32_t mgi_staging_oldest(mgi_staging_t *st);

/* The slot holding key, or -1. */
int32_t mgi_staging_find(const mgi_staging_t *st, uint64_t key);

/* Frees a slot in use whose page was moved back out of it. */
void mgi_staging_release(mgi_staging_t *st, uint32_t slot);

/* Retires a slot in use whose page was compressed: no longer found by its
 * key, not free until mgi_staging_freed. */
void mgi_staging_retire(mgi_staging_t *st, uint32_t slot);

/* A free slot turned out to hold a frame (a move into it found it
 * populated): it is retired, to have the frame dropped. */
void mgi_staging_block(mgi_staging_t *st, uint32_t slot);

/* The frames of n retired slots from first were dropped: they are free. */
void mgi_staging_freed(mgi_staging_t *st, uint32_t first, uint32_t n);

/* The page of `from` is now `to` (mremap). Returns 0, -ENOENT (from is not
 * staged) or -EEXIST (to is). */
int mgi_staging_rekey(mgi_staging_t *st, uint64_t from, uint64_t to);

#endif

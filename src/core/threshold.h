/* threshold.h - usage thresholds: sorted slots, a current index, crossing walks. */
#ifndef MGI_CORE_THRESHOLD_H
#define MGI_CORE_THRESHOLD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The mechanism of seed 000 section 4.2 (and of memcg v1's thresholds): per
 * group and counter, an array of threshold slots kept sorted, and a current
 * index naming the largest threshold not above usage. After every charge or
 * uncharge the usage is compared with the two neighbours of the current
 * index; only when it left that band is the array walked, down then up, and
 * every threshold passed is reported, in either direction.
 *
 * A threshold T is "reached" while usage >= T: going from T-1 to T is an
 * upward crossing, from T to T-1 a downward one. Usage and thresholds share
 * one unit (pages in memgrp); convert at the edges.
 *
 * The set lives in shared memory and holds no pointers. Checks may run
 * concurrently from any number of threads and processes and never block:
 * the current index moves by compare-and-swap on a state word that also
 * carries a generation number. Writers (register, unregister, repair) must
 * be serialized by the caller (memgrpd does so); a writer makes the
 * generation odd while it edits, and checkers that see an odd generation
 * retry a bounded number of times and then give up rather than wait for a
 * writer that may have died.
 *
 * The set (thresholds, listeners, size) and its position (the state word:
 * generation and current index) are apart: in a group's segment the set is
 * in the part only the manager writes and the position in the part the
 * group's processes write, since every checker moves it. A position is
 * therefore never trusted: every index read from it is clamped to the set's
 * size before use, and checkers give up after a bounded number of failed
 * compare-and-swaps, so that a position rewritten at random costs at most
 * wrong or missed crossings for that set, never an access out of bounds or
 * a checker (the manager) that spins forever.
 *
 * Tolerated races:
 *  - a threshold registered while usage is moving gets its current index from
 *    the usage passed to register; a crossing by a charge concurrent with the
 *    registration may go unreported;
 *  - two concurrent checks with different usages are serialized by the CAS.
 *    A charger checks with the usage its own charge produced and then with
 *    the live usage (mgi_threshold_check_live), so the index always ends
 *    consistent with the last usage, each charger's crossing is seen, and a
 *    crossing that a concurrent charge undid before anyone checked is
 *    reported as an up/down pair rather than lost.
 */

typedef struct mgi_threshold_entry {
	_Atomic uint64_t threshold;
	_Atomic uint64_t listener; /* opaque to core: who to signal */
} mgi_threshold_entry_t;

typedef struct mgi_threshold_set {
	_Atomic uint32_t size;
	uint32_t capacity;
	mgi_threshold_entry_t entries[];
} mgi_threshold_set_t;

/* Where checkers stand in a set. */
typedef struct mgi_threshold_pos {
	_Atomic uint64_t state; /* generation << 32 | (current index + 1) */
} mgi_threshold_pos_t;

/* One reported crossing. */
typedef struct mgi_threshold_event {
	uint64_t listener;
	uint64_t threshold;
	bool up; /* true: usage rose to >= threshold; false: fell below it */
} mgi_threshold_event_t;

typedef void (*mgi_threshold_fn)(void *arg, const mgi_threshold_event_t *ev);

/* Bytes needed for a set of the given capacity. */
size_t mgi_threshold_set_bytes(uint32_t capacity);

/* Initializes an empty set in memory of mgi_threshold_set_bytes(capacity). */
void mgi_threshold_set_init(mgi_threshold_set_t *set, uint32_t capacity);

/* Initializes a position: generation 0, before the first threshold. */
void mgi_threshold_pos_init(mgi_threshold_pos_t *pos);

/*
 * Adds a threshold for listener; usage is the counter's usage now, which
 * positions the current index (no event is reported for the registration
 * itself). Returns 0, or -ENOSPC when the set is full (the set is unaltered).
 * A listener may register any number of thresholds. Writer: serialize.
 */
int mgi_threshold_register(mgi_threshold_set_t *set, mgi_threshold_pos_t *pos,
			   uint64_t threshold, uint64_t listener, uint64_t usage);

/*
 * Removes every threshold of listener. Cannot fail; returns how many were
 * removed (0 if the listener had none). Writer: serialize.
 */
unsigned mgi_threshold_unregister(mgi_threshold_set_t *set, mgi_threshold_pos_t *pos,
				  uint64_t listener, uint64_t usage);

/*
 * Puts a set left inconsistent by a writer that died mid-edit back in order:
 * clamps its size, sorts it, recomputes the current index for usage and
 * closes the generation. Writer: serialize. Safe on a consistent set.
 */
void mgi_threshold_repair(mgi_threshold_set_t *set, mgi_threshold_pos_t *pos, uint64_t usage);

/* Number of thresholds registered. */
static inline uint32_t mgi_threshold_count(const mgi_threshold_set_t *set)
{
	uint32_t size = atomic_load_explicit(&set->size, memory_order_relaxed);
	return size < set->capacity ? size : set->capacity;
}

/*
 * The fast path: true if usage is still between the current threshold and
 * the next one, i.e. nothing can have been crossed. One load of the state
 * word and at most two of neighbouring slots. False also while a writer is
 * editing, so that the slow path decides.
 */
static inline bool mgi_threshold_in_band(const mgi_threshold_set_t *set,
					 const mgi_threshold_pos_t *pos, uint64_t usage)
{
	uint64_t state =
		atomic_load_explicit(&pos->state, memory_order_acquire);
	uint32_t cur1 = (uint32_t)state;
	uint32_t size = mgi_threshold_count(set);

	if ((state >> 32) & 1)
		return false;
	if (cur1 > size)
		return false; /* a position no checker left: the walk clamps it */
	if (cur1 > 0 &&
	    usage < atomic_load_explicit(&set->entries[cur1 - 1].threshold,
					 memory_order_relaxed))
		return false;
	if (cur1 < size &&
	    usage >= atomic_load_explicit(&set->entries[cur1].threshold,
					  memory_order_relaxed))
		return false;
	return true;
}

/*
 * The slow path: walks from the current index to usage, moves the index,
 * and calls fn once per threshold crossed (after the move is published, so
 * that each crossing is reported by exactly one checker). Returns the number
 * of crossings reported. fn must not call back into the set's writers.
 */
unsigned mgi_threshold_walk(const mgi_threshold_set_t *set, mgi_threshold_pos_t *pos,
			    uint64_t usage, mgi_threshold_fn fn, void *arg);

/* Check after a charge or uncharge: the fast path, then the walk if needed. */
static inline unsigned mgi_threshold_check(const mgi_threshold_set_t *set,
					   mgi_threshold_pos_t *pos,
					   uint64_t usage, mgi_threshold_fn fn,
					   void *arg)
{
	if (mgi_threshold_in_band(set, pos, usage))
		return 0;
	return mgi_threshold_walk(set, pos, usage, fn, arg);
}

/*
 * What a charger calls: check with the usage its own charge or uncharge
 * produced, then with the counter's live usage until that is in band. A
 * checker holding a stale usage can win its CAS after a fresher one; the
 * re-check after every walk means whoever moved the index last has also
 * verified it against the live usage, so the index ends consistent. Bounded:
 * under a storm of concurrent charges the next charger finishes the job.
 */
static inline unsigned mgi_threshold_check_live(const mgi_threshold_set_t *set,
						mgi_threshold_pos_t *pos,
						uint64_t own_usage,
						const _Atomic uint64_t *live,
						mgi_threshold_fn fn, void *arg)
{
	unsigned n = mgi_threshold_check(set, pos, own_usage, fn, arg);
	uint64_t now = atomic_load_explicit(live, memory_order_relaxed);

	/* The common case (no concurrent charger, nothing crossed): the
	 * in-band verdict on our own usage holds for the live one. */
	if (n == 0 && now == own_usage)
		return 0;
	for (int round = 0; round < 8; round++) {
		if (mgi_threshold_in_band(set, pos, now))
			break;
		n += mgi_threshold_walk(set, pos, now, fn, arg);
		now = atomic_load_explicit(live, memory_order_relaxed);
	}
	return n;
}

#endif

/* threshold.c - usage thresholds: registration, repair and the crossing walk. */
#include "threshold.h"

#include <errno.h>

#define RELAXED memory_order_relaxed

/* How many times a checker retries while a writer holds the generation odd
 * before giving up. A live writer edits a few hundred bytes; a dead one
 * never finishes, and a checker must not hang a page fault on it. */
#define WRITER_SPIN_LIMIT 100000u

/* Crossings collected per CAS attempt; a walk over more repeats. */
#define WALK_BATCH 16u

/* Failed compare-and-swaps after which a checker or writer stops trying:
 * honest checkers make a few; a position rewritten in a loop by a hostile
 * process could make them fail for ever. A writer then stores its state
 * outright (it is the only writer); a checker leaves the move to the next. */
#define CAS_LIMIT 10000u

static inline uint64_t make_state(uint64_t gen, uint32_t cur1)
{
	return gen << 32 | cur1;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

size_t mgi_threshold_set_bytes(uint32_t capacity)
{
	return sizeof(mgi_threshold_set_t) +
	       (size_t)capacity * sizeof(mgi_threshold_entry_t);
}

void mgi_threshold_pos_init(mgi_threshold_pos_t *pos)
{
	atomic_init(&pos->state, make_state(0, 0));
}

void mgi_threshold_set_init(mgi_threshold_set_t *set, uint32_t capacity)
{
	atomic_init(&set->size, 0);
	set->capacity = capacity;
	for (uint32_t i = 0; i < capacity; i++) {
		atomic_init(&set->entries[i].threshold, 0);
		atomic_init(&set->entries[i].listener, 0);
	}
}

static inline uint64_t th_at(const mgi_threshold_set_t *set, uint32_t i)
{
	return atomic_load_explicit(&set->entries[i].threshold, RELAXED);
}

static inline uint64_t listener_at(const mgi_threshold_set_t *set, uint32_t i)
{
	return atomic_load_explicit(&set->entries[i].listener, RELAXED);
}

static inline void put(mgi_threshold_set_t *set, uint32_t i, uint64_t th,
		       uint64_t listener)
{
	atomic_store_explicit(&set->entries[i].threshold, th, RELAXED);
	atomic_store_explicit(&set->entries[i].listener, listener, RELAXED);
}

/* Number of thresholds <= usage in the sorted prefix: the current index + 1. */
static uint32_t position_for(const mgi_threshold_set_t *set, uint32_t size,
			     uint64_t usage)
{
	uint32_t lo = 0, hi = size;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (th_at(set, mid) <= usage)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Makes the generation odd, so checkers keep off the entries. The CAS loop
 * is needed because checkers move the current index concurrently. */
static uint64_t begin_write(mgi_threshold_pos_t *pos)
{
	uint64_t state = atomic_load_explicit(&pos->state, RELAXED);
	uint64_t gen;

	for (unsigned tries = 0;; tries++) {
		gen = state >> 32;
		if (gen & 1) /* a dead writer's leftover: take over */
			gen--;
		if (tries >= CAS_LIMIT) {
			atomic_store_explicit(&pos->state, make_state(gen + 1, 0),
					      memory_order_seq_cst);
			break;
		}
		if (atomic_compare_exchange_weak_explicit(
			    &pos->state, &state, make_state(gen + 1, (uint32_t)state),
			    memory_order_acq_rel, RELAXED))
			break;
	}
	/* Orders the odd generation before our entry stores, so that a checker
	 * that sees a new entry also fails its CAS (seqlock pairing with the
	 * acquire fence in the walk). */
	atomic_thread_fence(memory_order_release);
	return gen;
}

static void end_write(mgi_threshold_set_t *set, mgi_threshold_pos_t *pos, uint64_t gen,
		      uint32_t size, uint64_t usage)
{
	atomic_store_explicit(&set->size, size, RELAXED);
	atomic_store_explicit(&pos->state,
			      make_state(gen + 2, position_for(set, size, usage)),
			      memory_order_release);
}

int mgi_threshold_register(mgi_threshold_set_t *set, mgi_threshold_pos_t *pos,
			   uint64_t threshold, uint64_t listener, uint64_t usage)
{
	uint32_t size = atomic_load_explicit(&set->size, RELAXED);
	uint32_t at;
	uint64_t gen;

	if (size >= set->capacity)
		return -ENOSPC;
	gen = begin_write(pos);
	/* After equal thresholds: registration order is kept among equals. */
	at = position_for(set, size, threshold);
	for (uint32_t i = size; i > at; i--)
		put(set, i, th_at(set, i - 1), listener_at(set, i - 1));
	put(set, at, threshold, listener);
	end_write(set, pos, gen, size + 1, usage);
	return 0;
}

unsigned mgi_threshold_unregister(mgi_threshold_set_t *set, mgi_threshold_pos_t *pos,
				  uint64_t listener, uint64_t usage)
{
	uint32_t size = mgi_threshold_count(set);
	uint32_t kept = 0;
	uint64_t gen = begin_write(pos);

	/* Compaction in place keeps the order, so unregister needs no spare
	 * array and cannot fail. */
	for (uint32_t i = 0; i < size; i++) {
		uint64_t th = th_at(set, i), who = listener_at(set, i);
		if (who != listener)
			put(set, kept++, th, who);
	}
	end_write(set, pos, gen, kept, usage);
	return size - kept;
}

void mgi_threshold_repair(mgi_threshold_set_t *set, mgi_threshold_pos_t *pos, uint64_t usage)
{
	uint32_t size = atomic_load_explicit(&set->size, RELAXED);
	uint64_t gen = begin_write(pos);

	if (size > set->capacity)
		size = set->capacity;
	/* Insertion sort: the set is small and almost always sorted already. */
	for (uint32_t i = 1; i < size; i++) {
		uint64_t th = th_at(set, i), who = listener_at(set, i);
		uint32_t j = i;
		for (; j > 0 && th_at(set, j - 1) > th; j--)
			put(set, j, th_at(set, j - 1), listener_at(set, j - 1));
		put(set, j, th, who);
	}
	end_write(set, pos, gen, size, usage);
}

unsigned mgi_threshold_walk(const mgi_threshold_set_t *set, mgi_threshold_pos_t *pos,
			    uint64_t usage, mgi_threshold_fn fn, void *arg)
{
	mgi_threshold_event_t crossed[WALK_BATCH];
	unsigned reported = 0, spins = 0, failed = 0;

	for (;;) {
		uint64_t state =
			atomic_load_explicit(&pos->state, memory_order_acquire);
		uint64_t gen = state >> 32;
		uint32_t size, cur1, n = 0;

		if (gen & 1) {
			if (++spins >= WRITER_SPIN_LIMIT)
				return reported;
			cpu_relax();
			continue;
		}
		size = atomic_load_explicit(&set->size, RELAXED);
		if (size > set->capacity)
			size = set->capacity; /* only a broken writer does this */
		cur1 = (uint32_t)state;
		if (cur1 > size)
			cur1 = size;

		/* Down over thresholds now above usage, then up over those now
		 * at or below it; only one of the two loops can run. */
		while (cur1 > 0 && n < WALK_BATCH && th_at(set, cur1 - 1) > usage) {
			cur1--;
			crossed[n++] = (mgi_threshold_event_t){
				listener_at(set, cur1), th_at(set, cur1), false};
		}
		while (cur1 < size && n < WALK_BATCH && th_at(set, cur1) <= usage) {
			crossed[n++] = (mgi_threshold_event_t){
				listener_at(set, cur1), th_at(set, cur1), true};
			cur1++;
		}
		if (n == 0)
			return reported;

		/* Our reads of the entries must not be reordered after the CAS
		 * that validates them against the generation. */
		atomic_thread_fence(memory_order_acquire);
		if (!atomic_compare_exchange_strong_explicit(
			    &pos->state, &state, make_state(gen, cur1),
			    memory_order_acq_rel, RELAXED)) {
			if (++failed >= CAS_LIMIT)
				return reported;
			continue; /* another checker or a writer moved first */
		}

		for (uint32_t i = 0; i < n; i++)
			fn(arg, &crossed[i]);
		reported += n;
		if (n < WALK_BATCH)
			return reported;
	}
}

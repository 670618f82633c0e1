/* test_threshold.c - usage thresholds against a reference model. */
#include <errno.h>

#include "harness.h"
#include "threshold.h"

#define CAP 64

struct events {
	mgi_threshold_event_t ev[4 * CAP];
	unsigned n;
};

static void record(void *arg, const mgi_threshold_event_t *ev)
{
	struct events *e = arg;
	if (e->n < sizeof(e->ev) / sizeof(e->ev[0]))
		e->ev[e->n] = *ev;
	e->n++;
}

/* Where checkers stand in the set under test (one at a time). */
static mgi_threshold_pos_t pos;

static mgi_threshold_set_t *new_set(uint32_t cap)
{
	mgi_threshold_set_t *set = malloc(mgi_threshold_set_bytes(cap));
	mgi_threshold_set_init(set, cap);
	mgi_threshold_pos_init(&pos);
	return set;
}

static void crossing_up_and_down_is_reported_once(void)
{
	mgi_threshold_set_t *set = new_set(8);
	struct events e = {.n = 0};

	CHECK_INT_EQ(mgi_threshold_register(set, &pos, 100, 7, 0), 0);
	CHECK(mgi_threshold_in_band(set, &pos, 99));
	CHECK_EQ(mgi_threshold_check(set, &pos, 99, record, &e), 0);
	CHECK_EQ(mgi_threshold_check(set, &pos, 100, record, &e), 1); /* reached */
	CHECK(e.ev[0].up && e.ev[0].listener == 7 && e.ev[0].threshold == 100);
	CHECK_EQ(mgi_threshold_check(set, &pos, 150, record, &e), 0); /* still above */
	CHECK_EQ(mgi_threshold_check(set, &pos, 100, record, &e), 0);
	CHECK_EQ(mgi_threshold_check(set, &pos, 99, record, &e), 1); /* fell below */
	CHECK(!e.ev[1].up && e.ev[1].threshold == 100);
	CHECK_EQ(e.n, 2);
	free(set);
}

static void one_jump_crosses_many_in_order(void)
{
	mgi_threshold_set_t *set = new_set(CAP);
	struct events e = {.n = 0};

	for (uint64_t t = 64; t > 0; t--) /* registered out of order */
		CHECK_INT_EQ(mgi_threshold_register(set, &pos, t * 10, t, 0), 0);
	CHECK_EQ(mgi_threshold_count(set), 64);
	CHECK_EQ(mgi_threshold_check(set, &pos, 1000, record, &e), 64);
	for (unsigned i = 0; i < 64; i++) /* ascending on the way up */
		CHECK(e.ev[i].up && e.ev[i].threshold == (i + 1) * 10);
	e.n = 0;
	CHECK_EQ(mgi_threshold_check(set, &pos, 5, record, &e), 64);
	for (unsigned i = 0; i < 64; i++) /* descending on the way down */
		CHECK(!e.ev[i].up && e.ev[i].threshold == (64 - i) * 10);
	free(set);
}

static void registration_positions_without_events(void)
{
	mgi_threshold_set_t *set = new_set(8);
	struct events e = {.n = 0};

	/* Usage is already 500: the thresholds below it count as reached. */
	CHECK_INT_EQ(mgi_threshold_register(set, &pos, 100, 1, 500), 0);
	CHECK_INT_EQ(mgi_threshold_register(set, &pos, 900, 2, 500), 0);
	CHECK(mgi_threshold_in_band(set, &pos, 500));
	CHECK_EQ(mgi_threshold_check(set, &pos, 50, record, &e), 1);
	CHECK(e.ev[0].listener == 1 && !e.ev[0].up);
	free(set);
}

static void many_listeners_same_threshold(void)
{
	mgi_threshold_set_t *set = new_set(8);
	struct events e = {.n = 0};

	for (uint64_t l = 1; l <= 5; l++)
		CHECK_INT_EQ(mgi_threshold_register(set, &pos, 100, l, 0), 0);
	CHECK_EQ(mgi_threshold_check(set, &pos, 100, record, &e), 5);
	for (unsigned i = 0; i < 5; i++) /* registration order among equals */
		CHECK_EQ(e.ev[i].listener, i + 1);
	free(set);
}

static void full_set_and_unregister(void)
{
	mgi_threshold_set_t *set = new_set(3);
	struct events e = {.n = 0};

	CHECK_INT_EQ(mgi_threshold_register(set, &pos, 10, 1, 0), 0);
	CHECK_INT_EQ(mgi_threshold_register(set, &pos, 20, 2, 0), 0);
	CHECK_INT_EQ(mgi_threshold_register(set, &pos, 30, 1, 0), 0);
	CHECK_INT_EQ(mgi_threshold_register(set, &pos, 40, 3, 0), -ENOSPC);
	CHECK_EQ(mgi_threshold_count(set), 3);
	CHECK_EQ(mgi_threshold_unregister(set, &pos, 9, 0), 0);
	CHECK_EQ(mgi_threshold_unregister(set, &pos, 1, 0), 2);
	CHECK_EQ(mgi_threshold_count(set), 1);
	CHECK_EQ(mgi_threshold_check(set, &pos, 35, record, &e), 1);
	CHECK_EQ(e.ev[0].listener, 2);
	free(set);
}

static void empty_set_is_always_in_band(void)
{
	mgi_threshold_set_t *set = new_set(0);
	CHECK(mgi_threshold_in_band(set, &pos, 0));
	CHECK(mgi_threshold_in_band(set, &pos, UINT64_MAX));
	CHECK_INT_EQ(mgi_threshold_register(set, &pos, 1, 1, 0), -ENOSPC);
	free(set);
}

static void repair_after_a_dead_writer(void)
{
	mgi_threshold_set_t *set = new_set(8);
	struct events e = {.n = 0};

	CHECK_INT_EQ(mgi_threshold_register(set, &pos, 10, 1, 0), 0);
	CHECK_INT_EQ(mgi_threshold_register(set, &pos, 20, 2, 0), 0);
	/* Simulate a writer killed mid-edit: odd generation, slots swapped. */
	atomic_fetch_add(&pos.state, 1ULL << 32);
	atomic_store(&set->entries[0].threshold, 20);
	atomic_store(&set->entries[1].threshold, 10);
	/* Checkers give up rather than hang. */
	CHECK_EQ(mgi_threshold_walk(set, &pos, 15, record, &e), 0);
	mgi_threshold_repair(set, &pos, 0);
	CHECK_EQ(atomic_load(&pos.state) >> 32 & 1, 0);
	CHECK_EQ(mgi_threshold_check(set, &pos, 15, record, &e), 1);
	CHECK_EQ(e.ev[0].threshold, 10);
	free(set);
}

/*
 * The position lives where managed processes write: whatever it holds,
 * checkers read no entry past the set (the set is allocated to its exact
 * size, so ASan would see one), report only real thresholds, and a writer
 * puts it right.
 */
static void a_position_written_at_random_is_harmless(void)
{
	mgi_threshold_set_t *set = new_set(3);
	uint64_t s = mgt_seed();
	struct events e = {.n = 0};

	CHECK_INT_EQ(mgi_threshold_register(set, &pos, 10, 1, 0), 0);
	CHECK_INT_EQ(mgi_threshold_register(set, &pos, 20, 2, 0), 0);
	CHECK_INT_EQ(mgi_threshold_register(set, &pos, 30, 3, 0), 0);
	for (int round = 0; round < 4000; round++) {
		uint64_t junk = mgt_below(&s, 4) == 0 ? UINT64_MAX - mgt_below(&s, 8)
						       : (mgt_below(&s, 1ULL << 32) << 32 |
							  mgt_below(&s, 1ULL << 32));
		if (mgt_below(&s, 2))
			junk = (junk & ~0xffffffffULL) | mgt_below(&s, 8); /* near the set */
		if (mgt_below(&s, 16))
			junk &= ~(1ULL << 32); /* mostly no writer: each odd one spins */
		atomic_store(&pos.state, junk);
		uint64_t usage = mgt_below(&s, 40);
		e.n = 0;
		mgi_threshold_check(set, &pos, usage, record, &e);
		for (unsigned k = 0; k < e.n; k++) {
			bool known = (e.ev[k].threshold == 10 && e.ev[k].listener == 1) ||
				     (e.ev[k].threshold == 20 && e.ev[k].listener == 2) ||
				     (e.ev[k].threshold == 30 && e.ev[k].listener == 3);
			CHECK_MSG(known, "round %d: reported %llu for %llu", round,
				  (unsigned long long)e.ev[k].threshold,
				  (unsigned long long)e.ev[k].listener);
		}
	}
	/* The writer (the manager) repairs it: consistent again for usage 25. */
	mgi_threshold_repair(set, &pos, 25);
	CHECK_EQ((uint32_t)atomic_load(&pos.state), 2);
	CHECK_EQ(atomic_load(&pos.state) >> 32 & 1, 0);
	e.n = 0;
	CHECK_EQ(mgi_threshold_check(set, &pos, 31, record, &e), 1);
	free(set);
}

/* The reference: a list, and "crossed" means usage moved across T. */
struct ref_entry {
	uint64_t th, listener;
};

static int cmp_event(const void *a, const void *b)
{
	const mgi_threshold_event_t *x = a, *y = b;
	if (x->threshold != y->threshold)
		return x->threshold < y->threshold ? -1 : 1;
	if (x->listener != y->listener)
		return x->listener < y->listener ? -1 : 1;
	return (int)x->up - (int)y->up;
}

static void randomized_against_reference(void)
{
	mgi_threshold_set_t *set = new_set(CAP);
	struct ref_entry ref[CAP];
	unsigned nref = 0;
	uint64_t usage = 0, s = mgt_seed();
	struct events got;
	mgi_threshold_event_t want[CAP];

	for (int step = 0; step < 200000; step++) {
		uint64_t prev = usage;
		unsigned op = (unsigned)mgt_below(&s, 20);

		if (op == 0 && nref < CAP) {
			/* Small values so that usage lands exactly on thresholds. */
			uint64_t th = mgt_below(&s, 200), l = mgt_below(&s, 8);
			CHECK_INT_EQ(mgi_threshold_register(set, &pos, th, l, usage), 0);
			ref[nref++] = (struct ref_entry){th, l};
			continue;
		}
		if (op == 1) {
			uint64_t l = mgt_below(&s, 8);
			unsigned kept = 0, removed;
			for (unsigned i = 0; i < nref; i++)
				if (ref[i].listener != l)
					ref[kept++] = ref[i];
			removed = mgi_threshold_unregister(set, &pos, l, usage);
			CHECK_EQ(removed, nref - kept);
			nref = kept;
			continue;
		}
		/* A charge or uncharge of 0..20 pages, or now and then a jump. */
		if (mgt_below(&s, 50) == 0)
			usage = mgt_below(&s, 220);
		else if (mgt_below(&s, 2) && usage >= 20)
			usage -= mgt_below(&s, 21);
		else if (usage < 200)
			usage += mgt_below(&s, 21);

		unsigned nwant = 0;
		for (unsigned i = 0; i < nref; i++) {
			if (prev < ref[i].th && ref[i].th <= usage)
				want[nwant++] = (mgi_threshold_event_t){ref[i].listener, ref[i].th, true};
			else if (usage < ref[i].th && ref[i].th <= prev)
				want[nwant++] = (mgi_threshold_event_t){ref[i].listener, ref[i].th, false};
		}
		got.n = 0;
		unsigned n = mgi_threshold_check(set, &pos, usage, record, &got);
		CHECK_MSG(n == nwant && got.n == nwant,
			  "step %d: usage %llu -> %llu: %u crossings reported, %u expected",
			  step, (unsigned long long)prev, (unsigned long long)usage, n, nwant);
		qsort(got.ev, got.n, sizeof(got.ev[0]), cmp_event);
		qsort(want, nwant, sizeof(want[0]), cmp_event);
		for (unsigned i = 0; i < nwant; i++)
			CHECK_MSG(cmp_event(&got.ev[i], &want[i]) == 0,
				  "step %d: event %u differs: got %llu/%llu/%d want %llu/%llu/%d",
				  step, i, (unsigned long long)got.ev[i].listener,
				  (unsigned long long)got.ev[i].threshold, got.ev[i].up,
				  (unsigned long long)want[i].listener,
				  (unsigned long long)want[i].threshold, want[i].up);
		/* After a check, the fast path must agree nothing is pending. */
		CHECK(mgi_threshold_in_band(set, &pos, usage));
		/* The array stays sorted. */
		for (uint32_t i = 1; i < mgi_threshold_count(set); i++)
			CHECK_LE(atomic_load(&set->entries[i - 1].threshold),
				 atomic_load(&set->entries[i].threshold));
	}
	free(set);
}

int main(int argc, char **argv)
{
	MGT_INIT(argc, argv);
	MGT_RUN(crossing_up_and_down_is_reported_once);
	MGT_RUN(one_jump_crosses_many_in_order);
	MGT_RUN(registration_positions_without_events);
	MGT_RUN(many_listeners_same_threshold);
	MGT_RUN(full_set_and_unregister);
	MGT_RUN(empty_set_is_always_in_band);
	MGT_RUN(repair_after_a_dead_writer);
	MGT_RUN(a_position_written_at_random_is_harmless);
	MGT_RUN(randomized_against_reference);
	MGT_DONE();
}

/* test_registry.c - the agent's region registry against a per-page reference. */
#include <errno.h>

#include "counting_alloc.h"
#include "harness.h"
#include "registry.h"

#define PAGES 256
#define BASE 0x10000000UL
#define ADDR(p) (BASE + (uintptr_t)(p) * MGI_PAGE_SIZE)

static void basic_add_fault_remove(void)
{
	struct counting_alloc ca = {0, -1};
	mgi_registry_t reg;
	mgi_registry_init(&reg, (mgi_allocator_t){test_alloc, test_free, &ca});

	CHECK_INT_EQ(mgi_registry_add(&reg, ADDR(10), ADDR(20)), 10);
	CHECK_INT_EQ(mgi_registry_add(&reg, ADDR(15), ADDR(30)), 10); /* only the new part */
	CHECK_INT_EQ(mgi_registry_add(&reg, ADDR(1), ADDR(1) + 1), -EINVAL);
	mgi_vregion_t *r = mgi_registry_find(&reg, ADDR(12));
	CHECK(r != NULL);
	CHECK(mgi_registry_find(&reg, ADDR(9)) == NULL);
	CHECK_EQ(mgi_registry_absent_run(r, ADDR(12), 100), 8); /* to the end of [10,20) */
	CHECK_EQ(mgi_registry_mark(&reg, r, ADDR(12), 4), 4);
	CHECK_EQ(mgi_registry_mark(&reg, r, ADDR(15), 2), 1); /* 15 was marked, 16 is new */
	CHECK_EQ(mgi_registry_absent_run(r, ADDR(12), 100), 0);
	CHECK_EQ(reg.present, 5);
	CHECK_INT_EQ(mgi_registry_remove(&reg, ADDR(13), ADDR(25)), 4);
	CHECK_EQ(reg.present, 1);
	CHECK_EQ(reg.bytes, 8 * MGI_PAGE_SIZE);
	CHECK(mgi_registry_find(&reg, ADDR(13)) == NULL);
	CHECK(mgi_registry_find(&reg, ADDR(12)) != NULL);
	CHECK(mgi_registry_find(&reg, ADDR(26)) != NULL);
	mgi_registry_destroy(&reg);
	CHECK_EQ(ca.live, 0);
}

static void failed_allocation_changes_nothing(void)
{
	struct counting_alloc ca = {0, -1};
	mgi_registry_t reg;
	mgi_registry_init(&reg, (mgi_allocator_t){test_alloc, test_free, &ca});
	CHECK_INT_EQ(mgi_registry_add(&reg, ADDR(0), ADDR(100)), 100);
	mgi_registry_mark(&reg, mgi_registry_find(&reg, ADDR(50)), ADDR(40), 20);
	/* Splitting the middle out needs two new bitmaps: fail the second. */
	ca.fail_after = 1;
	CHECK_INT_EQ(mgi_registry_remove(&reg, ADDR(45), ADDR(55)), -ENOMEM);
	CHECK_EQ(reg.n, 1);
	CHECK_EQ(reg.present, 20);
	CHECK_EQ(reg.bytes, 100 * MGI_PAGE_SIZE);
	ca.fail_after = -1;
	CHECK_INT_EQ(mgi_registry_remove(&reg, ADDR(45), ADDR(55)), 10);
	CHECK_EQ(reg.n, 2);
	mgi_registry_destroy(&reg);
	CHECK_EQ(ca.live, 0);
}

/* A region grown in place stays one region and keeps its pages' state;
 * it cannot grow into the next one; a failed allocation changes nothing. */
static void extend_in_place(void)
{
	struct counting_alloc ca = {0, -1};
	mgi_registry_t reg;
	mgi_registry_init(&reg, (mgi_allocator_t){test_alloc, test_free, &ca});

	CHECK_INT_EQ(mgi_registry_add(&reg, ADDR(10), ADDR(20)), 10);
	CHECK_INT_EQ(mgi_registry_add(&reg, ADDR(40), ADDR(50)), 10);
	mgi_vregion_t *r = mgi_registry_find(&reg, ADDR(10));
	CHECK_EQ(mgi_registry_mark(&reg, r, ADDR(12), 8), 8);
	mgi_registry_evict(&reg, r, ADDR(18), 2);
	CHECK_INT_EQ(mgi_registry_extend(&reg, r, ADDR(30)), 10);
	CHECK_EQ(reg.n, 2);
	CHECK_EQ(reg.bytes, 30 * MGI_PAGE_SIZE);
	r = mgi_registry_find(&reg, ADDR(25));
	CHECK(r && r->start == ADDR(10) && r->end == ADDR(30));
	CHECK(mgi_registry_test(r, ADDR(17)) && !mgi_registry_test(r, ADDR(18)));
	CHECK(mgi_registry_is_out(r, ADDR(19)) && !mgi_registry_is_out(r, ADDR(20)));
	CHECK_EQ(mgi_registry_absent_run(r, ADDR(20), 100), 10);
	CHECK_EQ(r->present, 6);
	CHECK_EQ(r->nout, 2);
	CHECK_INT_EQ(mgi_registry_extend(&reg, r, ADDR(41)), -EINVAL); /* into [40,50) */
	CHECK_INT_EQ(mgi_registry_extend(&reg, r, ADDR(30)), -EINVAL); /* not above its end */
	CHECK_INT_EQ(mgi_registry_extend(&reg, r, ADDR(31) + 1), -EINVAL);
	ca.fail_after = 0;
	CHECK_INT_EQ(mgi_registry_extend(&reg, r, ADDR(35)), -ENOMEM);
	ca.fail_after = -1;
	CHECK(r->end == ADDR(30) && r->present == 6 && reg.bytes == 30 * MGI_PAGE_SIZE);
	CHECK_INT_EQ(mgi_registry_extend(&reg, r, ADDR(40)), 10); /* up to the next one */
	CHECK_INT_EQ(mgi_registry_remove(&reg, ADDR(10), ADDR(50)), 6);
	CHECK_EQ(reg.n, 0);
	mgi_registry_destroy(&reg);
	CHECK_EQ(ca.live, 0);
}

/* The clock: runs of present pages without a ref bit, in address order,
 * never across regions; a ref bit buys one pass. */
static void clock_second_chance(void)
{
	struct counting_alloc ca = {0, -1};
	mgi_registry_t reg;
	uintptr_t run = 0;
	mgi_registry_init(&reg, (mgi_allocator_t){test_alloc, test_free, &ca});

	CHECK_EQ(mgi_registry_clock(&reg, 100, 4, &run), 0); /* empty */
	CHECK_INT_EQ(mgi_registry_add(&reg, ADDR(0), ADDR(10)), 10);
	CHECK_INT_EQ(mgi_registry_add(&reg, ADDR(20), ADDR(25)), 5);
	mgi_vregion_t *a = mgi_registry_find(&reg, ADDR(0));
	mgi_registry_mark(&reg, a, ADDR(0), 10);
	mgi_registry_set_ref(a, ADDR(3));
	mgi_registry_set_ref(a, ADDR(4));
	mgi_vregion_t *b = mgi_registry_find(&reg, ADDR(20));
	mgi_registry_mark(&reg, b, ADDR(20), 3);

	CHECK_EQ(mgi_registry_clock(&reg, 100, 4, &run), 3); /* 0-2, stopped by 3's ref */
	CHECK_EQ(run, ADDR(0));
	CHECK_EQ(mgi_registry_clock(&reg, 100, 4, &run), 4); /* 3, 4 passed over: 5-8 */
	CHECK_EQ(run, ADDR(5));
	CHECK_EQ(mgi_registry_clock(&reg, 100, 4, &run), 1); /* 9: a run ends with its region */
	CHECK_EQ(run, ADDR(9));
	CHECK_EQ(mgi_registry_clock(&reg, 100, 4, &run), 3); /* 20-22 */
	CHECK_EQ(run, ADDR(20));
	CHECK_EQ(mgi_registry_clock(&reg, 100, 4, &run), 4); /* wrapped: 3 and 4 lost their ref */
	CHECK_EQ(run, ADDR(0));
	/* Out and absent pages are not victims; a small scan budget stops. */
	mgi_registry_evict(&reg, a, ADDR(4), 6);
	CHECK_EQ(reg.present, 7);
	CHECK_EQ(reg.nout, 6);
	CHECK_EQ(mgi_registry_clock(&reg, 5, 4, &run), 0); /* 4-9 out: none in 5 pages */
	CHECK_EQ(mgi_registry_clock(&reg, 100, 4, &run), 3);
	CHECK_EQ(run, ADDR(20));
	CHECK_EQ(mgi_registry_absent_run(a, ADDR(4), 10), 0);
	CHECK_EQ(mgi_registry_out_run(a, ADDR(4), 10), 6);
	mgi_registry_restore(&reg, a, ADDR(5), 2, true);
	CHECK(mgi_registry_test(a, ADDR(5)) && !mgi_registry_is_out(a, ADDR(5)));
	CHECK_EQ(mgi_registry_clock(&reg, 100, 4, &run), 4); /* 0-3; 5, 6 have ref */
	CHECK_EQ(run, ADDR(0));
	mgi_registry_destroy(&reg);
	CHECK_EQ(ca.live, 0);
}

/* mremap of a range the registry holds as many regions (one per mmap the
 * agent saw, though the kernel merged them): every piece moves. */
static void move_many_pieces(void)
{
	struct counting_alloc ca = {0, -1};
	mgi_registry_t reg;
	uint64_t dropped = 0;
	mgi_registry_init(&reg, (mgi_allocator_t){test_alloc, test_free, &ca});

	for (size_t p = 0; p < 200; p++) {
		CHECK_INT_EQ(mgi_registry_add(&reg, ADDR(p), ADDR(p + 1)), 1);
		mgi_vregion_t *r = mgi_registry_find(&reg, ADDR(p));
		mgi_registry_mark(&reg, r, ADDR(p), 1);
		if (p % 3 == 0)
			mgi_registry_evict(&reg, r, ADDR(p), 1);
	}
	CHECK_EQ(reg.n, 200);
	CHECK_INT_EQ(mgi_registry_move(&reg, ADDR(0), ADDR(1000), 200 * MGI_PAGE_SIZE, &dropped), 0);
	CHECK_EQ(dropped, 0);
	CHECK_EQ(reg.n, 200);
	CHECK_EQ(reg.present, 133);
	CHECK_EQ(reg.nout, 67);
	CHECK(mgi_registry_find(&reg, ADDR(5)) == NULL);
	mgi_vregion_t *r = mgi_registry_find(&reg, ADDR(1003));
	CHECK(r && mgi_registry_is_out(r, ADDR(1003)));
	mgi_registry_destroy(&reg);
	CHECK_EQ(ca.live, 0);
}

static void count_out(void *ctx, uintptr_t addr)
{
	(void)addr;
	(*(uint64_t *)ctx)++;
}

struct ref_page {
	bool covered, present, out, ref;
};

static void randomized_against_reference(void)
{
	struct counting_alloc ca = {0, -1};
	struct ref_page ref[PAGES];
	mgi_registry_t reg;
	uint64_t s = mgt_seed();

	memset(ref, 0, sizeof(ref));
	mgi_registry_init(&reg, (mgi_allocator_t){test_alloc, test_free, &ca});
	for (int step = 0; step < 100000; step++) {
		size_t a = mgt_below(&s, PAGES), len = 1 + mgt_below(&s, 24);
		size_t b = a + len > PAGES ? PAGES : a + len;
		switch (mgt_below(&s, 10)) {
		case 9: { /* extend the region that holds a, up to b if that is free */
			mgi_vregion_t *r = mgi_registry_find(&reg, ADDR(a));
			if (!r || r->end >= ADDR(b))
				break;
			size_t from = (r->end - BASE) / MGI_PAGE_SIZE;
			bool free = true;
			for (size_t p = from; p < b; p++)
				free = free && !ref[p].covered;
			if (!free) {
				CHECK_INT_EQ(mgi_registry_extend(&reg, r, ADDR(b)), -EINVAL);
				break;
			}
			uint32_t n = reg.n;
			CHECK_INT_EQ(mgi_registry_extend(&reg, r, ADDR(b)), (long)(b - from));
			CHECK_EQ(reg.n, n);
			for (size_t p = from; p < b; p++)
				ref[p].covered = true;
			break;
		}
		case 0: { /* add */
			long want = 0;
			for (size_t p = a; p < b; p++)
				if (!ref[p].covered) {
					ref[p].covered = true;
					want++;
				}
			CHECK_INT_EQ(mgi_registry_add(&reg, ADDR(a), ADDR(b)), want);
			break;
		}
		case 1: case 2: { /* a fault: mark a run of absent pages present */
			mgi_vregion_t *r = mgi_registry_find(&reg, ADDR(a));
			CHECK_MSG((r != NULL) == ref[a].covered, "step %d: find(%zu)", step, a);
			if (!r)
				break;
			size_t want = 0;
			while (want < len && a + want < PAGES && ref[a + want].covered &&
			       !ref[a + want].present && !ref[a + want].out && ADDR(a + want) < r->end)
				want++;
			size_t run = mgi_registry_absent_run(r, ADDR(a), len);
			CHECK_MSG(run == want, "step %d: absent_run %zu want %zu", step, run, want);
			CHECK_EQ(mgi_registry_mark(&reg, r, ADDR(a), run), run);
			for (size_t p = a; p < a + run; p++)
				ref[p].present = true;
			break;
		}
		case 3: { /* MADV_DONTNEED: the agent takes the out pages, then clears */
			uint64_t want = 0, want_out = 0, seen = 0;
			for (size_t p = a; p < b; p++) {
				want += ref[p].present;
				want_out += ref[p].out;
				ref[p].present = ref[p].out = ref[p].ref = false;
			}
			CHECK_EQ(mgi_registry_each_out(&reg, ADDR(a), ADDR(b), true, count_out, &seen),
				 want_out);
			CHECK_EQ(seen, want_out);
			CHECK_EQ(mgi_registry_clear(&reg, ADDR(a), ADDR(b)), want);
			break;
		}
		case 4: { /* munmap */
			long want = 0;
			uint64_t want_out = 0, seen = 0;
			for (size_t p = a; p < b; p++) {
				want += ref[p].present;
				want_out += ref[p].out;
				ref[p] = (struct ref_page){false, false, false, false};
			}
			CHECK_EQ(mgi_registry_each_out(&reg, ADDR(a), ADDR(b), true, count_out, &seen),
				 want_out);
			CHECK_INT_EQ(mgi_registry_remove(&reg, ADDR(a), ADDR(b)), want);
			break;
		}
		case 6: { /* evict a run of present pages */
			mgi_vregion_t *r = mgi_registry_find(&reg, ADDR(a));
			if (!r)
				break;
			size_t n = 0;
			while (n < len && a + n < PAGES && ADDR(a + n) < r->end && ref[a + n].present)
				n++;
			mgi_registry_evict(&reg, r, ADDR(a), n);
			for (size_t p = a; p < a + n; p++)
				ref[p] = (struct ref_page){true, false, true, false};
			break;
		}
		case 7: { /* restore a run of out pages (a refault) */
			mgi_vregion_t *r = mgi_registry_find(&reg, ADDR(a));
			if (!r)
				break;
			size_t want = 0;
			while (want < len && a + want < PAGES && ADDR(a + want) < r->end &&
			       ref[a + want].out)
				want++;
			CHECK_EQ(mgi_registry_out_run(r, ADDR(a), len), want);
			bool referenced = mgt_below(&s, 2);
			mgi_registry_restore(&reg, r, ADDR(a), want, referenced);
			for (size_t p = a; p < a + want; p++)
				ref[p] = (struct ref_page){true, true, false, referenced};
			break;
		}
		case 8: { /* the clock: its run is of present pages without ref, in one region */
			uintptr_t run = 0;
			size_t n = mgi_registry_clock(&reg, 2 * PAGES + 2, len, &run);
			uint64_t present = 0;
			for (size_t p = 0; p < PAGES; p++)
				present += ref[p].present;
			/* two passes: the first clears every ref bit */
			CHECK_MSG((n > 0) == (present > 0), "step %d: clock %zu, %llu present", step,
				  n, (unsigned long long)present);
			if (!n)
				break;
			size_t first = (run - BASE) / MGI_PAGE_SIZE;
			mgi_vregion_t *r = mgi_registry_find(&reg, run);
			CHECK(r && run + n * MGI_PAGE_SIZE <= r->end && n <= len);
			for (size_t p = first; p < first + n; p++) {
				CHECK_MSG(ref[p].present, "step %d: clock chose absent page %zu", step, p);
				ref[p].ref = false;
			}
			/* The ref bits the hand passed were cleared: re-read them. */
			for (size_t p = 0; p < PAGES; p++) {
				mgi_vregion_t *q = mgi_registry_find(&reg, ADDR(p));
				if (q && ref[p].present && !mgi_registry_test(q, ADDR(p)))
					CHECK_MSG(0, "step %d: page %zu lost", step, p);
			}
			/* mark the run evicted, as the agent would */
			mgi_registry_evict(&reg, r, run, n);
			for (size_t p = first; p < first + n; p++)
				ref[p] = (struct ref_page){true, false, true, false};
			break;
		}
		case 5: { /* mremap to a disjoint destination */
			size_t to = mgt_below(&s, PAGES - len + 1);
			if (to < b && a < to + len)
				break;
			if (b - a != len)
				break;
			struct ref_page moved[24];
			for (size_t k = 0; k < len; k++) {
				moved[k] = ref[a + k];
				ref[a + k] = (struct ref_page){false, false, false, false};
			}
			/* The destination's out pages are taken first; what the
			 * registry still covers there is dropped by the move (the
			 * kernel unmapped it; half the time its own event came
			 * first). */
			uint64_t dropped = 0, want_dropped = 0, seen = 0;
			for (size_t k = 0; k < len; k++)
				want_dropped += ref[to + k].present;
			mgi_registry_each_out(&reg, ADDR(to), ADDR(to + len), true, count_out, &seen);
			if (mgt_below(&s, 2)) {
				CHECK_INT_EQ(mgi_registry_remove(&reg, ADDR(to), ADDR(to + len)),
					     want_dropped);
				want_dropped = 0;
			}
			for (size_t k = 0; k < len; k++)
				ref[to + k] = moved[k];
			CHECK_INT_EQ(mgi_registry_move(&reg, ADDR(a), ADDR(to), len * MGI_PAGE_SIZE,
						       &dropped), 0);
			CHECK_EQ(dropped, want_dropped);
			break;
		}
		}
		/* Compare every page, the totals and the order. */
		uint64_t present = 0, covered = 0, out = 0;
		for (size_t p = 0; p < PAGES; p++) {
			mgi_vregion_t *r = mgi_registry_find(&reg, ADDR(p));
			CHECK_MSG((r != NULL) == ref[p].covered, "step %d: page %zu coverage", step, p);
			if (r) {
				CHECK_MSG(mgi_registry_test(r, ADDR(p)) == ref[p].present,
					  "step %d: page %zu presence", step, p);
				CHECK_MSG(mgi_registry_is_out(r, ADDR(p)) == ref[p].out,
					  "step %d: page %zu out", step, p);
			}
			present += ref[p].present;
			covered += ref[p].covered;
			out += ref[p].out;
		}
		CHECK_EQ(reg.present, present);
		CHECK_EQ(reg.nout, out);
		CHECK_EQ(reg.bytes, covered * MGI_PAGE_SIZE);
		uint64_t sum = 0, sum_out = 0;
		for (uint32_t i = 0; i < reg.n; i++) {
			CHECK_LT(reg.v[i].start, reg.v[i].end);
			if (i)
				CHECK_LE(reg.v[i - 1].end, reg.v[i].start);
			sum += reg.v[i].present;
			sum_out += reg.v[i].nout;
		}
		CHECK_EQ(sum, present);
		CHECK_EQ(sum_out, out);
	}
	mgi_registry_destroy(&reg);
	CHECK_EQ(ca.live, 0);
}

int main(int argc, char **argv)
{
	MGT_INIT(argc, argv);
	MGT_RUN(basic_add_fault_remove);
	MGT_RUN(failed_allocation_changes_nothing);
	MGT_RUN(extend_in_place);
	MGT_RUN(clock_second_chance);
	MGT_RUN(move_many_pieces);
	MGT_RUN(randomized_against_reference);
	MGT_DONE();
}

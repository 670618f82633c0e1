/* test_registry.c - the agent's region registry against a per-page reference. */
#include <errno.h>

#include "harness.h"
#include "registry.h"

#define PAGES 256
#define BASE 0x10000000UL
#define ADDR(p) (BASE + (uintptr_t)(p) * MGI_PAGE_SIZE)

struct counting_alloc {
	long live; /* allocations not yet freed */
	long fail_after; /* fail the Nth allocation from now (-1: never) */
};

static void *test_alloc(void *ctx, size_t bytes)
{
	struct counting_alloc *c = ctx;
	if (c->fail_after == 0)
		return NULL;
	if (c->fail_after > 0)
		c->fail_after--;
	c->live++;
	return calloc(1, bytes ? bytes : 1);
}

static void test_free(void *ctx, void *p, size_t bytes)
{
	struct counting_alloc *c = ctx;
	(void)bytes;
	if (p)
		c->live--;
	free(p);
}

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

struct ref_page {
	bool covered, present;
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
		switch (mgt_below(&s, 6)) {
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
			       !ref[a + want].present && ADDR(a + want) < r->end)
				want++;
			size_t run = mgi_registry_absent_run(r, ADDR(a), len);
			CHECK_MSG(run == want, "step %d: absent_run %zu want %zu", step, run, want);
			CHECK_EQ(mgi_registry_mark(&reg, r, ADDR(a), run), run);
			for (size_t p = a; p < a + run; p++)
				ref[p].present = true;
			break;
		}
		case 3: { /* MADV_DONTNEED */
			uint64_t want = 0;
			for (size_t p = a; p < b; p++)
				if (ref[p].present) {
					ref[p].present = false;
					want++;
				}
			CHECK_EQ(mgi_registry_clear(&reg, ADDR(a), ADDR(b)), want);
			break;
		}
		case 4: { /* munmap */
			long want = 0;
			for (size_t p = a; p < b; p++) {
				want += ref[p].present;
				ref[p] = (struct ref_page){false, false};
			}
			CHECK_INT_EQ(mgi_registry_remove(&reg, ADDR(a), ADDR(b)), want);
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
				ref[a + k] = (struct ref_page){false, false};
			}
			/* The kernel unmaps the destination first (its own event). */
			long dropped = 0;
			for (size_t k = 0; k < len; k++)
				dropped += ref[to + k].present;
			CHECK_INT_EQ(mgi_registry_remove(&reg, ADDR(to), ADDR(to + len)), dropped);
			for (size_t k = 0; k < len; k++)
				ref[to + k] = moved[k];
			CHECK_INT_EQ(mgi_registry_move(&reg, ADDR(a), ADDR(to), len * MGI_PAGE_SIZE), 0);
			break;
		}
		}
		/* Compare every page, the totals and the order. */
		uint64_t present = 0, covered = 0;
		for (size_t p = 0; p < PAGES; p++) {
			mgi_vregion_t *r = mgi_registry_find(&reg, ADDR(p));
			CHECK_MSG((r != NULL) == ref[p].covered, "step %d: page %zu coverage", step, p);
			if (r)
				CHECK_MSG(mgi_registry_test(r, ADDR(p)) == ref[p].present,
					  "step %d: page %zu presence", step, p);
			present += ref[p].present;
			covered += ref[p].covered;
		}
		CHECK_EQ(reg.present, present);
		CHECK_EQ(reg.bytes, covered * MGI_PAGE_SIZE);
		uint64_t sum = 0;
		for (uint32_t i = 0; i < reg.n; i++) {
			CHECK_LT(reg.v[i].start, reg.v[i].end);
			if (i)
				CHECK_LE(reg.v[i - 1].end, reg.v[i].start);
			sum += reg.v[i].present;
		}
		CHECK_EQ(sum, present);
	}
	mgi_registry_destroy(&reg);
	CHECK_EQ(ca.live, 0);
}

int main(int argc, char **argv)
{
	MGT_INIT(argc, argv);
	MGT_RUN(basic_add_fault_remove);
	MGT_RUN(failed_allocation_changes_nothing);
	MGT_RUN(randomized_against_reference);
	MGT_DONE();
}

/* test_vrange.c - volatile ranges' bookkeeping against a per-page reference. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "counting_alloc.h"
#include "harness.h"
#include "vrange.h"

#define PAGES 512
#define BASE 0x20000000UL
#define ADDR(p) (BASE + (uintptr_t)(p) * MGI_PAGE_SIZE)

static void basic(void)
{
	struct counting_alloc ca = {0, -1};
	mgi_vrtab_t t;
	uint8_t rep[4];
	mgi_vrange_t *r;

	mgi_vrtab_init(&t, (mgi_allocator_t){test_alloc, test_free, &ca});
	CHECK_INT_EQ(mgi_vrtab_add(&t, ADDR(10), ADDR(30), MGI_VR_ZERO), 0);
	CHECK_INT_EQ(mgi_vrtab_add(&t, ADDR(20), ADDR(40), MGI_VR_ZERO), -EEXIST);
	CHECK_INT_EQ(mgi_vrtab_add(&t, ADDR(0), ADDR(11), MGI_VR_ZERO), -EEXIST);
	CHECK_INT_EQ(mgi_vrtab_add(&t, ADDR(40), ADDR(40), MGI_VR_ZERO), -EINVAL);
	CHECK_INT_EQ(mgi_vrtab_add(&t, ADDR(40) + 1, ADDR(41), MGI_VR_ZERO), -EINVAL);
	CHECK_INT_EQ(mgi_vrtab_add(&t, ADDR(40), ADDR(41), 7), -EINVAL);
	CHECK_INT_EQ(mgi_vrtab_add(&t, ADDR(30), ADDR(50), MGI_VR_SIGBUS), 0);
	CHECK_EQ(t.pages, 40);
	r = mgi_vrtab_find(&t, ADDR(12));
	CHECK(r && r->start == ADDR(10));
	CHECK(mgi_vrange_mark(r, ADDR(12)));
	CHECK(!mgi_vrange_mark(r, ADDR(12)));
	CHECK(mgi_vrange_mark(r, ADDR(29)));
	CHECK(mgi_vrtab_within(&t, ADDR(10), ADDR(30)) == r);
	CHECK(mgi_vrtab_within(&t, ADDR(10), ADDR(31)) == NULL);
	mgi_vrange_report(r, ADDR(10), ADDR(30), rep);
	CHECK_EQ(rep[0], 1u << 2);
	CHECK_EQ(rep[1], 0);
	CHECK_EQ(rep[2], 1u << 3);
	/* a cut in the middle splits, keeping each side's bits */
	CHECK_INT_EQ(mgi_vrtab_cut(&t, ADDR(13), ADDR(20)), 7);
	CHECK_EQ(t.n, 3);
	CHECK_EQ(mgi_vrtab_find(&t, ADDR(12))->npurged, 1);
	CHECK(mgi_vrtab_find(&t, ADDR(15)) == NULL);
	r = mgi_vrtab_find(&t, ADDR(29));
	CHECK(r && r->start == ADDR(20) && r->npurged == 1 && mgi_vrange_purged(r, ADDR(29)));
	CHECK_EQ(mgi_vrtab_find(&t, ADDR(30))->mode, MGI_VR_SIGBUS);
	/* a cut across two ranges trims both */
	CHECK_INT_EQ(mgi_vrtab_cut(&t, ADDR(25), ADDR(35)), 10);
	CHECK_EQ(mgi_vrtab_find(&t, ADDR(24))->npurged, 0);
	CHECK_EQ(mgi_vrtab_find(&t, ADDR(35))->start, ADDR(35));
	CHECK_EQ(t.pages, 40 - 17);
	mgi_vrtab_destroy(&t);
	CHECK_EQ(ca.live, 0);
}

static void split_without_memory(void)
{
	struct counting_alloc ca = {0, -1};
	mgi_vrtab_t t;

	mgi_vrtab_init(&t, (mgi_allocator_t){test_alloc, test_free, &ca});
	CHECK_INT_EQ(mgi_vrtab_add(&t, ADDR(0), ADDR(100), MGI_VR_ZERO), 0);
	mgi_vrange_mark(mgi_vrtab_find(&t, ADDR(50)), ADDR(50));
	ca.fail_after = 0;
	CHECK_INT_EQ(mgi_vrtab_cut(&t, ADDR(10), ADDR(20)), -ENOMEM);
	CHECK_EQ(t.n, 1);
	CHECK_EQ(t.pages, 100);
	CHECK_EQ(t.v[0].npurged, 1);
	CHECK_INT_EQ(mgi_vrtab_add(&t, ADDR(200), ADDR(300), MGI_VR_ZERO), -ENOMEM);
	CHECK_EQ(t.n, 1);
	ca.fail_after = -1;
	mgi_vrtab_destroy(&t);
	CHECK_EQ(ca.live, 0);
}

/* Random adds, marks and cuts against a per-page model: volatile (with its
 * range's id, for the mode) and purged. */
/* maxlen: the longest range made volatile or cut (long ones: the bitmaps'
 * word-at-a-time copy and count at every offset). */
static void random_model_of(int maxlen, unsigned seed)
{
	struct counting_alloc ca = {0, -1};
	mgi_vrtab_t t, copy;
	int vol[PAGES], mode[PAGES];
	bool purged[PAGES];
	srand(seed);
	memset(vol, 0, sizeof(vol));
	memset(purged, 0, sizeof(purged));
	mgi_vrtab_init(&t, (mgi_allocator_t){test_alloc, test_free, &ca});
	for (int step = 0; step < 20000; step++) {
		int a = rand() % PAGES, len = 1 + rand() % maxlen, op = rand() % 3;
		int b = a + len > PAGES ? PAGES : a + len;

		if (op == 0) {
			bool free_all = true;
			int m = rand() % 2;
			for (int p = a; p < b; p++)
				free_all &= !vol[p];
			int rc = mgi_vrtab_add(&t, ADDR(a), ADDR(b), (uint32_t)m);
			CHECK_INT_EQ(rc, free_all ? 0 : -EEXIST);
			if (rc == 0)
				for (int p = a; p < b; p++)
					vol[p] = 1, purged[p] = false, mode[p] = m;
		} else if (op == 1) {
			mgi_vrange_t *r = mgi_vrtab_find(&t, ADDR(a));
			CHECK_EQ(r != NULL, vol[a] != 0);
			if (r) {
				CHECK_EQ(mgi_vrtab_mark(&t, r, ADDR(a)), !purged[a]);
				purged[a] = true;
			}
		} else {
			long want = 0;
			for (int p = a; p < b; p++)
				want += vol[p], vol[p] = 0;
			CHECK_INT_EQ(mgi_vrtab_cut(&t, ADDR(a), ADDR(b)), want);
		}
	}
	mgi_vrtab_init(&copy, (mgi_allocator_t){test_alloc, test_free, &ca});
	CHECK_INT_EQ(mgi_vrtab_copy(&copy, &t), 0);
	uint64_t pages = 0;
	for (int p = 0; p < PAGES; p++) {
		mgi_vrange_t *r = mgi_vrtab_find(&copy, ADDR(p));
		CHECK_EQ(r != NULL, vol[p] != 0);
		pages += vol[p] != 0;
		if (r) {
			CHECK_EQ(mgi_vrange_purged(r, ADDR(p)), purged[p]);
			CHECK_EQ(r->mode, (uint32_t)mode[p]);
		}
	}
	CHECK_EQ(copy.pages, pages);
	uint64_t total = 0;
	for (uint32_t i = 0; i < t.n; i++) {
		CHECK_EQ(t.v[i].npurged, mgi_vrange_count(&t.v[i], t.v[i].start, t.v[i].end));
		total += t.v[i].npurged;
	}
	CHECK_EQ(t.purged, total);
	mgi_vrtab_destroy(&copy);
	mgi_vrtab_destroy(&t);
	CHECK_EQ(ca.live, 0);
}

static void random_model(void)
{
	random_model_of(64, 12345);
	random_model_of(700, 777);
}

/* The purge's order: every range not purged whole exactly once, oldest
 * made-volatile first, whatever the batch size and the address order;
 * a cut range's pieces keep their age. */
static void coldest_order(void)
{
	struct counting_alloc ca = {0, -1};
	mgi_vrtab_t t;
	uint32_t order[PAGES], idx[8];

	mgi_vrtab_init(&t, (mgi_allocator_t){test_alloc, test_free, &ca});
	srand(7);
	/* 64 ranges of 4 pages added in a shuffled address order */
	uint32_t slot[64];
	for (uint32_t i = 0; i < 64; i++)
		slot[i] = i;
	for (uint32_t i = 63; i > 0; i--) {
		uint32_t j = (uint32_t)rand() % (i + 1), x = slot[i];
		slot[i] = slot[j];
		slot[j] = x;
	}
	for (uint32_t i = 0; i < 64; i++)
		CHECK_INT_EQ(mgi_vrtab_add(&t, ADDR(slot[i] * 4), ADDR(slot[i] * 4 + 4), MGI_VR_ZERO), 0);
	/* the oldest (slot[0]) purged whole: passed over; the second cut in
	 * the middle of its first page: its pieces keep their place */
	mgi_vrange_t *r = mgi_vrtab_find(&t, ADDR(slot[0] * 4));
	for (uint32_t p = 0; p < 4; p++)
		CHECK(mgi_vrtab_mark(&t, r, ADDR(slot[0] * 4 + p)));
	CHECK_INT_EQ(mgi_vrtab_cut(&t, ADDR(slot[1] * 4 + 1), ADDR(slot[1] * 4 + 2)), 1);
	for (uint32_t k = 1; k <= 8; k++) {
		mgi_vrcur_t cur = {0, 0};
		uint32_t got = 0, n;
		while ((n = mgi_vrtab_coldest(&t, &cur, idx, k)) > 0) {
			CHECK(n <= k);
			for (uint32_t i = 0; i < n; i++) {
				order[got++] = (uint32_t)(t.v[idx[i]].start / MGI_PAGE_SIZE -
							  BASE / MGI_PAGE_SIZE);
				cur = (mgi_vrcur_t){t.v[idx[i]].seq, t.v[idx[i]].start};
			}
		}
		CHECK_INT_EQ(got, 64);
		CHECK_INT_EQ(order[0], slot[1] * 4);
		CHECK_INT_EQ(order[1], slot[1] * 4 + 2);
		for (uint32_t i = 2; i < got; i++)
			CHECK_INT_EQ(order[i], slot[i] * 4);
	}
	/* pinned and unpinned again: young */
	CHECK(mgi_vrtab_cut(&t, ADDR(slot[5] * 4), ADDR(slot[5] * 4 + 4)) == 4);
	CHECK_INT_EQ(mgi_vrtab_add(&t, ADDR(slot[5] * 4), ADDR(slot[5] * 4 + 4), MGI_VR_ZERO), 0);
	mgi_vrcur_t cur = {0, 0};
	uint32_t last = 0, n;
	while ((n = mgi_vrtab_coldest(&t, &cur, idx, 3)) > 0)
		for (uint32_t i = 0; i < n; i++) {
			last = idx[i];
			cur = (mgi_vrcur_t){t.v[idx[i]].seq, t.v[idx[i]].start};
		}
	CHECK_EQ(t.v[last].start, ADDR(slot[5] * 4));
	mgi_vrtab_destroy(&t);
	CHECK_INT_EQ(ca.live, 0);
}

int main(int argc, char **argv)
{
	MGT_INIT(argc, argv);
	MGT_RUN(basic);
	MGT_RUN(split_without_memory);
	MGT_RUN(random_model);
	MGT_RUN(coldest_order);
	MGT_DONE();
}

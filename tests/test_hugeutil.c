/* test_hugeutil.c - utilization per 2 MiB block: fill and clear on literals, removal without tombstones, the pick's order, and random operations against a plain bitmap model. */
#include "harness.h"
#include "hugeutil.h"

#include <errno.h>

#define B MGI_HU_BLOCK
#define P MGI_HU_PAGE

static mgi_hu_entry_t store[64];

static void fill_and_clear_count_pages_per_block(void)
{
	mgi_hu_table_t t;

	CHECK(mgi_hu_init(&t, store, 64) == 0);
	/* a run crossing a block edge: 3 pages below it, 5 above */
	CHECK_OP_U(mgi_hu_fill(&t, 10 * B - 3 * P, 10 * B + 5 * P), ==, 8);
	CHECK_OP_U(mgi_hu_find(&t, 9 * B)->used, ==, 3);
	CHECK_OP_U(mgi_hu_find(&t, 10 * B + 100)->used, ==, 5);
	CHECK_OP_U(t.count, ==, 2);
	/* filling again what is there adds nothing, but counts as a fault */
	CHECK_OP_U(mgi_hu_fill(&t, 10 * B, 10 * B + 5 * P), ==, 0);
	CHECK_OP_U(mgi_hu_find(&t, 10 * B)->freq, ==, 2 * MGI_HU_FREQ_HIT);
	CHECK_OP_U(mgi_hu_clear(&t, 10 * B + P, 10 * B + 2 * P), ==, 1);
	CHECK_OP_U(mgi_hu_find(&t, 10 * B)->used, ==, 4);
	/* clearing what was never there clears nothing */
	CHECK_OP_U(mgi_hu_clear(&t, 20 * B, 21 * B), ==, 0);
	/* the last page gone: the entry goes */
	CHECK_OP_U(mgi_hu_clear(&t, 9 * B, 11 * B), ==, 7);
	CHECK(mgi_hu_find(&t, 9 * B) == NULL);
	CHECK(mgi_hu_find(&t, 10 * B) == NULL);
	CHECK_OP_U(t.count, ==, 0);
	/* a whole block */
	CHECK_OP_U(mgi_hu_fill(&t, 3 * B, 4 * B), ==, MGI_HU_PAGES);
	CHECK_OP_U(mgi_hu_find(&t, 3 * B + B - 1)->used, ==, MGI_HU_PAGES);
	CHECK(mgi_hu_init(&t, store, 48) == -EINVAL);
	CHECK(mgi_hu_init(&t, store, 1) == -EINVAL);
}

static void a_huge_block_losing_a_page_is_base_again(void)
{
	mgi_hu_table_t t;

	mgi_hu_init(&t, store, 64);
	mgi_hu_fill(&t, 5 * B, 6 * B);
	CHECK(mgi_hu_set_state(&t, 5 * B, MGI_HU_QUEUED));
	CHECK(mgi_hu_set_state(&t, 5 * B, MGI_HU_HUGE));
	CHECK_OP_U(mgi_hu_huge_blocks(&t), ==, 1);
	mgi_hu_clear(&t, 5 * B + 7 * P, 5 * B + 8 * P);
	CHECK_OP_U(mgi_hu_find(&t, 5 * B)->state, ==, MGI_HU_BASE);
	CHECK_OP_U(mgi_hu_huge_blocks(&t), ==, 0);
	CHECK_OP_U(t.demoted, ==, 1); /* split: 511 pages stayed */
	/* a huge block unmapped whole is gone, not split */
	mgi_hu_fill(&t, 9 * B, 10 * B);
	mgi_hu_set_state(&t, 9 * B, MGI_HU_HUGE);
	mgi_hu_clear(&t, 9 * B, 10 * B);
	CHECK(mgi_hu_find(&t, 9 * B) == NULL);
	CHECK_OP_U(t.demoted, ==, 1);
	/* a failed promotion counts a try; state of an unknown block: false */
	mgi_hu_set_state(&t, 5 * B, MGI_HU_QUEUED);
	mgi_hu_set_state(&t, 5 * B, MGI_HU_BASE);
	CHECK_OP_U(mgi_hu_find(&t, 5 * B)->tries, ==, 1);
	CHECK(!mgi_hu_set_state(&t, 77 * B, MGI_HU_HUGE));
}

static bool not_block_7(uintptr_t block, void *arg)
{
	(void)arg;
	return block != 7 * B;
}

static void the_pick_takes_dense_then_hot(void)
{
	mgi_hu_table_t t;
	unsigned th = mgi_hu_threshold_pages(90);

	CHECK_OP_U(th, ==, 460);
	CHECK_OP_U(mgi_hu_threshold_pages(0), ==, 1);
	CHECK_OP_U(mgi_hu_threshold_pages(100), ==, 512);
	CHECK_OP_U(mgi_hu_threshold_pages(101), ==, 0);
	mgi_hu_init(&t, store, 64);
	CHECK_OP_U(mgi_hu_pick(&t, th, 3, NULL, NULL), ==, 0);
	/* just under the threshold: never picked (a sparse block) */
	mgi_hu_fill(&t, 4 * B, 4 * B + (th - 1) * P);
	CHECK_OP_U(mgi_hu_pick(&t, th, 3, NULL, NULL), ==, 0);
	mgi_hu_fill(&t, 4 * B + (th - 1) * P, 4 * B + th * P);
	CHECK_OP_U(mgi_hu_pick(&t, th, 3, NULL, NULL), ==, 4 * B);
	/* a hotter dense block wins */
	mgi_hu_fill(&t, 7 * B, 8 * B);
	mgi_hu_fill(&t, 7 * B, 7 * B + P);
	mgi_hu_fill(&t, 7 * B, 7 * B + P);
	CHECK_OP_U(mgi_hu_pick(&t, th, 3, NULL, NULL), ==, 7 * B);
	CHECK_OP_U(mgi_hu_pick(&t, th, 3, not_block_7, NULL), ==, 4 * B);
	/* queued blocks are not picked again; too many tries: left alone */
	mgi_hu_set_state(&t, 7 * B, MGI_HU_QUEUED);
	CHECK_OP_U(mgi_hu_pick(&t, th, 3, NULL, NULL), ==, 4 * B);
	for (int i = 0; i < 3; i++) {
		mgi_hu_set_state(&t, 4 * B, MGI_HU_QUEUED);
		mgi_hu_set_state(&t, 4 * B, MGI_HU_BASE);
	}
	CHECK_OP_U(mgi_hu_pick(&t, th, 3, NULL, NULL), ==, 0);
	/* decay halves */
	uint16_t f = mgi_hu_find(&t, 7 * B)->freq;
	mgi_hu_decay(&t);
	CHECK_OP_U(mgi_hu_find(&t, 7 * B)->freq, ==, f / 2);
}

static void a_full_table_drops_and_counts(void)
{
	mgi_hu_table_t t;

	mgi_hu_init(&t, store, 8);
	for (uintptr_t i = 1; i <= 10; i++)
		mgi_hu_fill(&t, i * B, i * B + 2 * P);
	CHECK_OP_U(t.count, ==, 7); /* kept under 7/8 */
	CHECK_OP_U(t.dropped, ==, 6);
}

/* Random fills and clears over a few blocks against a plain bitmap, with a
 * small table so that probe runs wrap and removals shift entries back. */
static void random_against_a_bitmap(void)
{
	enum { NB = 24 };
	static uint8_t model[NB][MGI_HU_PAGES];
	mgi_hu_table_t t;
	uint64_t seed = 0x1234567;

	memset(model, 0, sizeof(model));
	mgi_hu_init(&t, store, 32);
	for (int op = 0; op < 200000; op++) {
		seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
		unsigned blk = (unsigned)(seed >> 33) % NB;
		unsigned first = (unsigned)(seed >> 20) % MGI_HU_PAGES;
		unsigned len = 1 + (unsigned)(seed >> 40) % (seed & 1 ? 600 : 8);
		bool fill = (seed >> 60) % 3 != 0 && op % 5000 < 4000;
		uintptr_t base = (uintptr_t)(blk + 1) * 37 * B; /* spread, not consecutive */
		size_t want = 0;
		/* the model: only within the block (runs crossing it are
		 * clipped by the caller here, tested above) */
		if (first + len > MGI_HU_PAGES)
			len = MGI_HU_PAGES - first;
		for (unsigned i = first; i < first + len; i++) {
			want += model[blk][i] != fill;
			model[blk][i] = fill;
		}
		size_t got = fill ? mgi_hu_fill(&t, base + first * P, base + (first + len) * P)
				  : mgi_hu_clear(&t, base + first * P, base + (first + len) * P);
		CHECK_OP_U(got, ==, want);
		if (op % 997)
			continue;
		unsigned live = 0;
		for (unsigned b = 0; b < NB; b++) {
			unsigned used = 0;
			for (unsigned i = 0; i < MGI_HU_PAGES; i++)
				used += model[b][i];
			const mgi_hu_entry_t *e = mgi_hu_find(&t, (uintptr_t)(b + 1) * 37 * B);
			CHECK_OP_U(e ? e->used : 0, ==, used);
			live += used != 0;
			for (unsigned i = 0; e && i < MGI_HU_PAGES; i++)
				CHECK_OP_U((e->bits[i / 64] >> (i % 64)) & 1, ==, model[b][i]);
		}
		CHECK_OP_U(t.count, ==, live);
	}
}

int main(int argc, char **argv)
{
	MGT_INIT(argc, argv);
	MGT_RUN(fill_and_clear_count_pages_per_block);
	MGT_RUN(a_huge_block_losing_a_page_is_base_again);
	MGT_RUN(the_pick_takes_dense_then_hot);
	MGT_RUN(a_full_table_drops_and_counts);
	MGT_RUN(random_against_a_bitmap);
	MGT_DONE();
}

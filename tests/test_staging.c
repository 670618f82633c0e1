/* test_staging.c - staging slots against a plain reference: fill order, lookups, rekeys. */
#include <errno.h>

#include "harness.h"
#include "staging.h"

static void ring_basics(void)
{
	static unsigned char mem[8192];
	mgi_staging_t st;
	uint32_t first;

	CHECK_LE(mgi_staging_bytes(8), sizeof(mem));
	mgi_staging_init(&st, mem, 8);
	CHECK_EQ(mgi_staging_oldest(&st), (uint64_t)-1);
	CHECK_EQ(mgi_staging_room(&st, 5, &first), 5);
	CHECK_EQ(first, 0);
	mgi_staging_fill(&st, first, 5, 100, 1); /* slots 0-4: keys 100-104 */
	CHECK_EQ(mgi_staging_room(&st, 5, &first), 3); /* to the end, no wrap */
	CHECK_EQ(first, 5);
	mgi_staging_fill(&st, first, 3, 200, 2); /* slots 5-7 */
	CHECK_EQ(mgi_staging_room(&st, 1, &first), 0); /* head (0) in use: full there */
	CHECK_INT_EQ(mgi_staging_oldest(&st), 0);
	CHECK_INT_EQ(mgi_staging_find(&st, 103), 3);
	mgi_staging_release(&st, 0); /* compressed */
	mgi_staging_release(&st, 3); /* a refault, out of order */
	CHECK_INT_EQ(mgi_staging_find(&st, 103), -1);
	CHECK_INT_EQ(mgi_staging_oldest(&st), 1);
	CHECK_EQ(mgi_staging_room(&st, 4, &first), 1); /* slot 0 only: 1 is in use */
	mgi_staging_fill(&st, first, 1, 300, 3);
	CHECK_INT_EQ(mgi_staging_oldest(&st), 1); /* 300 is the newest */
	CHECK_INT_EQ(mgi_staging_rekey(&st, 101, 501), 0);
	CHECK_INT_EQ(mgi_staging_find(&st, 501), 1);
	CHECK_INT_EQ(mgi_staging_rekey(&st, 101, 600), -ENOENT);
	CHECK_INT_EQ(mgi_staging_rekey(&st, 501, 102), -EEXIST);
	CHECK_EQ(st.used, 7);
	/* Compressed pages retire: gone from the hash, not free until their
	 * frames are dropped; the oldest skips them. */
	int32_t old = mgi_staging_oldest(&st);
	CHECK_INT_EQ(old, 1);
	mgi_staging_retire(&st, 1);
	CHECK_INT_EQ(mgi_staging_find(&st, 501), -1);
	CHECK_INT_EQ(mgi_staging_oldest(&st), 2);
	mgi_staging_retire(&st, 2);
	CHECK_EQ(st.used, 5);
	CHECK_EQ(st.retired, 2);
	CHECK_EQ(mgi_staging_room(&st, 4, &first), 0); /* head (1) retired: wait */
	mgi_staging_freed(&st, 1, 2);
	CHECK_EQ(st.retired, 0);
	CHECK_EQ(mgi_staging_room(&st, 4, &first), 3); /* 1-3: 4 is in use */
	CHECK_EQ(first, 1);
}

/* Random fills, releases (oldest and any), lookups and rekeys against a
 * list in fill order; the oldest must always be the first in that list. */
static void randomized_against_reference(void)
{
	enum { N = 64, KEYS = 4096 };
	static unsigned char mem[65536];
	static uint64_t order[KEYS];  /* fill sequence number per key, 0: not staged */
	static int32_t where[KEYS];   /* slot per key */
	mgi_staging_t st;
	uint64_t rng = mgt_seed(), seq = 0, next_key = 1;
	uint32_t used = 0;

	CHECK_LE(mgi_staging_bytes(N), sizeof(mem));
	mgi_staging_init(&st, mem, N);
	memset(order, 0, sizeof(order));
	for (int step = 0; step < 200000; step++) {
		uint64_t op = mgt_below(&rng, 10);
		if (op < 4) { /* stage a run of pages (fresh keys) */
			uint32_t first, want = 1 + (uint32_t)mgt_below(&rng, 8);
			uint32_t k = mgi_staging_room(&st, want, &first);
			if (next_key + k >= KEYS) {
				/* out of fresh keys: release everything, start over */
				for (uint64_t key = 1; key < KEYS; key++)
					if (order[key]) {
						mgi_staging_release(&st, (uint32_t)where[key]);
						order[key] = 0;
					}
				mgi_staging_freed(&st, 0, N);
				used = 0;
				next_key = 1;
				continue;
			}
			/* room is what is free at the head, no more */
			CHECK_MSG(k == 0 || first == st.head, "step %d", step);
			for (uint32_t j = 0; j < k; j++)
				CHECK_MSG(st.slot[first + j].key == 0, "step %d: slot %u in use", step,
					  first + j);
			if (k == 0)
				CHECK_MSG(st.slot[st.head].key, "step %d: no room", step);
			mgi_staging_fill(&st, first, k, next_key, (uint64_t)step);
			for (uint32_t j = 0; j < k; j++) {
				order[next_key + j] = ++seq;
				where[next_key + j] = (int32_t)(first + j);
			}
			next_key += k;
			used += k;
		} else if (op == 9 && st.retired) { /* the releaser dropped the retired frames */
			for (uint32_t k = 0; k < N; k++)
				if (st.slot[k].key == MGI_STAGING_RETIRED && mgt_below(&rng, 2))
					mgi_staging_freed(&st, k, 1);
			continue;
		} else if (op < 6 && used) { /* compress the oldest */
			int32_t s = mgi_staging_oldest(&st);
			uint64_t best = 0, best_seq = UINT64_MAX;
			for (uint64_t key = 1; key < KEYS; key++)
				if (order[key] && order[key] < best_seq) {
					best_seq = order[key];
					best = key;
				}
			CHECK_MSG(s >= 0 && st.slot[s].key == best, "step %d: oldest slot %d", step,
				  (int)s);
			if (mgt_below(&rng, 2))
				mgi_staging_retire(&st, (uint32_t)s);
			else
				mgi_staging_release(&st, (uint32_t)s);
			order[best] = 0;
			used--;
		} else if (op < 8 && used) { /* a refault: any staged page */
			uint64_t key;
			do
				key = 1 + mgt_below(&rng, next_key - 1);
			while (!order[key]);
			CHECK_INT_EQ(mgi_staging_find(&st, key), where[key]);
			mgi_staging_release(&st, (uint32_t)where[key]);
			order[key] = 0;
			used--;
		} else if (op < 9) { /* lookup of any key */
			uint64_t key = 1 + mgt_below(&rng, KEYS - 1);
			CHECK_INT_EQ(mgi_staging_find(&st, key), order[key] ? where[key] : -1);
		} else if (used) { /* mremap: a staged page gets a fresh key */
			uint64_t key;
			do
				key = 1 + mgt_below(&rng, next_key - 1);
			while (!order[key]);
			if (next_key >= KEYS)
				continue;
			CHECK_INT_EQ(mgi_staging_rekey(&st, key, next_key), 0);
			order[next_key] = order[key];
			where[next_key] = where[key];
			order[key] = 0;
			next_key++;
		}
		CHECK_EQ(st.used, used);
	}
}

int main(int argc, char **argv)
{
	MGT_INIT(argc, argv);
	MGT_RUN(ring_basics);
	MGT_RUN(randomized_against_reference);
	MGT_DONE();
}

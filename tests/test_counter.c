/* test_counter.c - hierarchical page counters against a reference model. */
#include <errno.h>

#include "counter.h"
#include "harness.h"

/* A small tree: 0 and 1 at the top, 2 and 3 under 0, 4 under 2, 5 under 4. */
#define NODES 6
static const int parent_of[NODES] = {-1, -1, 0, 0, 2, 4};
/* The limits of counter i (or of the single counter c) are lim[i]: apart
 * from the usage, as in a segment's two parts. */
static mgi_limits_t lim[NODES];

static mgi_counter_path_t path_for(mgi_counter_t *c, int node)
{
	mgi_counter_path_t p = {.depth = 0};
	for (; node >= 0; node = parent_of[node])
		p.level[p.depth] = &c[node], p.limit[p.depth++] = &lim[node];
	return p;
}

static void charge_walks_to_the_top_and_backs_out(void)
{
	mgi_counter_t c[NODES];
	for (int i = 0; i < NODES; i++) {
		mgi_counter_init(&c[i]);
		mgi_counter_limits_init(&lim[i]);
	}
	mgi_counter_path_t leaf = path_for(c, 5);
	CHECK_EQ(leaf.depth, 4);

	CHECK(mgi_counter_try_charge(&leaf, 10, NULL));
	CHECK_EQ(mgi_counter_read(&c[5]), 10);
	CHECK_EQ(mgi_counter_read(&c[4]), 10);
	CHECK_EQ(mgi_counter_read(&c[2]), 10);
	CHECK_EQ(mgi_counter_read(&c[0]), 10);
	CHECK_EQ(mgi_counter_read(&c[1]), 0);

	/* The grandparent refuses: nothing stays charged anywhere. */
	CHECK_INT_EQ(mgi_counter_set_max(&c[2], &lim[2], 15), 0);
	unsigned failed = 99;
	CHECK(!mgi_counter_try_charge(&leaf, 6, &failed));
	CHECK_EQ(failed, 2);
	CHECK_EQ(mgi_counter_read(&c[5]), 10);
	CHECK_EQ(mgi_counter_read(&c[4]), 10);
	CHECK_EQ(mgi_counter_read(&c[2]), 10);
	CHECK_EQ(mgi_counter_read(&c[0]), 10);
	CHECK_EQ(atomic_load(&c[2].failcnt), 1);
	CHECK_EQ(atomic_load(&c[5].failcnt), 0);

	/* Exactly up to the limit is allowed. */
	CHECK(mgi_counter_try_charge(&leaf, 5, NULL));
	CHECK_EQ(mgi_counter_read(&c[2]), 15);
	CHECK_EQ(atomic_load(&c[2].watermark), 15);
	CHECK_EQ(mgi_counter_margin(&c[2], &lim[2]), 0);

	CHECK(mgi_counter_uncharge(&leaf, 15));
	CHECK_EQ(mgi_counter_read(&c[0]), 0);
	CHECK_EQ(atomic_load(&c[0].watermark), 15);
	mgi_counter_reset_watermark(&c[0]);
	CHECK_EQ(atomic_load(&c[0].watermark), 0);
}

/* The path's margin is its tightest level's, whichever level that is, and
 * a charge of exactly it is taken. */
static void path_margin_is_the_tightest_level(void)
{
	mgi_counter_t c[NODES];
	for (int i = 0; i < NODES; i++) {
		mgi_counter_init(&c[i]);
		mgi_counter_limits_init(&lim[i]);
	}
	mgi_counter_path_t leaf = path_for(c, 5), empty = {.depth = 0};

	CHECK_EQ(mgi_counter_path_margin(&empty), UINT64_MAX);
	CHECK(mgi_counter_try_charge(&leaf, 10, NULL));
	CHECK_INT_EQ(mgi_counter_set_max(&c[5], &lim[5], 40), 0);
	CHECK_INT_EQ(mgi_counter_set_max(&c[2], &lim[2], 25), 0);
	CHECK_EQ(mgi_counter_path_margin(&leaf), 15); /* the grandparent's */
	/* memory charged to 2 itself (not through the leaf) narrows it */
	mgi_counter_path_t mid = path_for(c, 2);
	CHECK(mgi_counter_try_charge(&mid, 4, NULL));
	CHECK_EQ(mgi_counter_path_margin(&leaf), 11);
	CHECK_INT_EQ(mgi_counter_set_max(&c[5], &lim[5], 18), 0);
	CHECK_EQ(mgi_counter_path_margin(&leaf), 8); /* now the leaf's own */
	CHECK(!mgi_counter_try_charge(&leaf, 9, NULL));
	CHECK(mgi_counter_try_charge(&leaf, 8, NULL));
	CHECK_EQ(mgi_counter_path_margin(&leaf), 0);
}

static void charge_upto_takes_what_fits(void)
{
	mgi_counter_t c[NODES];
	for (int i = 0; i < NODES; i++) {
		mgi_counter_init(&c[i]);
		mgi_counter_limits_init(&lim[i]);
	}
	mgi_counter_path_t leaf = path_for(c, 5);
	unsigned level = 99;

	CHECK_INT_EQ(mgi_counter_set_max(&c[2], &lim[2], 20), 0);
	CHECK_EQ(mgi_counter_try_charge_upto(&leaf, 16, &level), 16); /* all of it fits */
	CHECK_EQ(level, 99);
	CHECK_EQ(mgi_counter_try_charge_upto(&leaf, 16, &level), 4); /* the ancestor's room */
	CHECK_EQ(mgi_counter_read(&c[5]), 20);
	CHECK_EQ(mgi_counter_read(&c[2]), 20);
	/* full: nothing charged, and the refusing level named */
	CHECK_EQ(mgi_counter_try_charge_upto(&leaf, 16, &level), 0);
	CHECK(level < leaf.depth && leaf.level[level] == &c[2]);
	CHECK(atomic_load(&c[2].failcnt) > 0);
	CHECK_EQ(mgi_counter_read(&c[5]), 20);
	CHECK_EQ(mgi_counter_try_charge_upto(&leaf, 0, &level), 0);
}

static void set_max_refuses_below_usage(void)
{
	mgi_counter_t c;
	mgi_counter_init(&c);
	mgi_counter_limits_init(&lim[0]);
	mgi_counter_path_t p = {.level = {&c}, .limit = {&lim[0]}, .depth = 1};
	CHECK(mgi_counter_try_charge(&p, 100, NULL));
	CHECK_INT_EQ(mgi_counter_set_max(&c, &lim[0], 99), -EBUSY);
	CHECK_EQ(mgi_counter_read_max(&lim[0]), MGI_PAGES_UNLIMITED);
	CHECK_INT_EQ(mgi_counter_set_max(&c, &lim[0], 100), 0);
	CHECK(!mgi_counter_try_charge(&p, 1, NULL));
	CHECK_INT_EQ(mgi_counter_set_max(&c, &lim[0], MGI_PAGES_UNLIMITED), 0);
	CHECK(mgi_counter_try_charge(&p, 1, NULL));
}

static void uncharge_never_wraps(void)
{
	mgi_counter_t c;
	mgi_counter_init(&c);
	mgi_counter_limits_init(&lim[0]);
	mgi_counter_path_t p = {.level = {&c}, .limit = {&lim[0]}, .depth = 1};
	mgi_counter_charge(&p, 3);
	CHECK(!mgi_counter_uncharge(&p, 5));
	CHECK_EQ(mgi_counter_read(&c), 0);
}

static void soft_limits_are_reported(void)
{
	mgi_counter_t c;
	mgi_counter_init(&c);
	mgi_counter_limits_init(&lim[0]);
	mgi_counter_path_t p = {.level = {&c}, .limit = {&lim[0]}, .depth = 1};
	mgi_counter_set_high(&lim[0], 10);
	mgi_counter_set_low(&lim[0], 4);
	mgi_counter_set_soft(&lim[0], 6);
	mgi_counter_charge(&p, 4);
	CHECK(mgi_counter_below_low(&c, &lim[0]));
	CHECK(!mgi_counter_above_soft(&c, &lim[0]));
	mgi_counter_charge(&p, 3);
	CHECK(!mgi_counter_below_low(&c, &lim[0]));
	CHECK(mgi_counter_above_soft(&c, &lim[0]));
	CHECK(!mgi_counter_above_high(&c, &lim[0]));
	mgi_counter_charge(&p, 4);
	CHECK(mgi_counter_above_high(&c, &lim[0]));
}

/* The reference: plain numbers and the obvious rules. */
struct ref {
	uint64_t usage[NODES], watermark[NODES], failcnt[NODES], max[NODES];
	uint64_t held[NODES]; /* charged directly at this node, for uncharges */
};

static void randomized_against_reference(void)
{
	mgi_counter_t c[NODES];
	struct ref r;
	memset(&r, 0, sizeof(r));
	uint64_t s = mgt_seed();

	for (int i = 0; i < NODES; i++) {
		mgi_counter_init(&c[i]);
		mgi_counter_limits_init(&lim[i]);
		r.max[i] = MGI_PAGES_UNLIMITED;
	}
	for (int step = 0; step < 200000; step++) {
		int node = (int)mgt_below(&s, NODES);
		mgi_counter_path_t p = path_for(c, node);
		uint64_t n = mgt_below(&s, 8) + (mgt_below(&s, 16) == 0 ? 40 : 0);

		switch (mgt_below(&s, 10)) {
		case 0: case 1: case 2: case 3: { /* try_charge */
			int want_fail = -1;
			unsigned level = 0, failed = 99;
			for (int x = node; x >= 0; x = parent_of[x], level++)
				if (want_fail < 0 && r.usage[x] + n > r.max[x])
					want_fail = (int)level;
			bool ok = mgi_counter_try_charge(&p, n, &failed);
			CHECK_MSG(ok == (want_fail < 0), "step %d: try_charge(%d, %llu) -> %d",
				  step, node, (unsigned long long)n, ok);
			if (ok) {
				r.held[node] += n;
				for (int x = node; x >= 0; x = parent_of[x]) {
					r.usage[x] += n;
					if (r.usage[x] > r.watermark[x])
						r.watermark[x] = r.usage[x];
				}
			} else {
				CHECK_EQ(failed, (unsigned)want_fail);
				r.failcnt[p.level[failed] - c]++;
			}
			break;
		}
		case 4: case 5: case 6: { /* uncharge what this node holds */
			uint64_t k = mgt_below(&s, r.held[node] + 1);
			CHECK(mgi_counter_uncharge(&p, k));
			r.held[node] -= k;
			for (int x = node; x >= 0; x = parent_of[x])
				r.usage[x] -= k;
			break;
		}
		case 7: case 8: { /* set_max near the usage, sometimes unlimited */
			uint64_t m = mgt_below(&s, 12) == 0
					     ? MGI_PAGES_UNLIMITED
					     : r.usage[node] + mgt_below(&s, 60) - mgt_below(&s, 20);
			if (m > MGI_PAGES_UNLIMITED) /* wrapped below zero */
				m = 0;
			int rc = mgi_counter_set_max(&c[node], &lim[node], m);
			if (r.usage[node] > m) {
				CHECK_INT_EQ(rc, -EBUSY);
			} else {
				CHECK_INT_EQ(rc, 0);
				r.max[node] = m;
			}
			break;
		}
		case 9:
			mgi_counter_reset_watermark(&c[node]);
			r.watermark[node] = r.usage[node];
			break;
		}
		for (int i = 0; i < NODES; i++) {
			CHECK_MSG(mgi_counter_read(&c[i]) == r.usage[i],
				  "step %d node %d usage %llu want %llu", step, i,
				  (unsigned long long)mgi_counter_read(&c[i]),
				  (unsigned long long)r.usage[i]);
			CHECK_EQ(atomic_load(&c[i].watermark), r.watermark[i]);
			CHECK_EQ(atomic_load(&c[i].failcnt), r.failcnt[i]);
			CHECK_EQ(mgi_counter_read_max(&lim[i]), r.max[i]);
			CHECK_LE(r.usage[i], r.max[i]);
		}
	}
}

int main(int argc, char **argv)
{
	MGT_INIT(argc, argv);
	MGT_RUN(charge_walks_to_the_top_and_backs_out);
	MGT_RUN(path_margin_is_the_tightest_level);
	MGT_RUN(charge_upto_takes_what_fits);
	MGT_RUN(set_max_refuses_below_usage);
	MGT_RUN(uncharge_never_wraps);
	MGT_RUN(soft_limits_are_reported);
	MGT_RUN(randomized_against_reference);
	MGT_DONE();
}

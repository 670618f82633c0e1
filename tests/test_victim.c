/* test_victim.c - the OOM victim choice on struct literals. */
#include "harness.h"
#include "victim.h"

static const mgi_victim_policy_t any = {.total_pages = 0, .min_pages = 0};

static void the_largest_is_chosen(void)
{
	const mgi_victim_t c[] = {
		{.pid = 10, .pages = 100},
		{.pid = 11, .pages = 300},
		{.pid = 12, .pages = 200},
	};
	const char *why = NULL;
	CHECK_INT_EQ(mgi_victim_choose(c, 3, &any, &why), 1);
	CHECK_STR_EQ(why, "the largest");
}

static void nobody_without_candidates(void)
{
	const char *why = NULL;
	CHECK_INT_EQ(mgi_victim_choose(NULL, 0, &any, &why), -1);
	CHECK_STR_EQ(why, "no candidates");
	/* reason is optional */
	CHECK_INT_EQ(mgi_victim_choose(NULL, 0, &any, NULL), -1);
}

static void protected_and_tried_are_never_chosen(void)
{
	const mgi_victim_t c[] = {
		{.pid = 10, .pages = 900, .protected_ = true},
		{.pid = 11, .pages = 800, .tried = true},
		{.pid = 12, .pages = 700, .adj = MGI_VICTIM_ADJ_MIN},
		{.pid = 13, .pages = 5},
	};
	CHECK_INT_EQ(mgi_victim_choose(c, 4, &any, NULL), 3);
	/* the next victim once 13's kill failed: nobody, and why */
	mgi_victim_t d[4];
	memcpy(d, c, sizeof(d));
	d[3].tried = true;
	const char *why = NULL;
	CHECK_INT_EQ(mgi_victim_choose(d, 4, &any, &why), -1);
	CHECK_STR_EQ(why, "every candidate is protected, already tried or holds too little");
}

static void reasons_name_what_excluded_everyone(void)
{
	const mgi_victim_t prot[] = {{.pid = 1, .pages = 9, .protected_ = true},
				     {.pid = 2, .pages = 9, .adj = -1000}};
	const mgi_victim_t tried[] = {{.pid = 1, .pages = 9, .tried = true}};
	const mgi_victim_t small[] = {{.pid = 1, .pages = 0}, {.pid = 2, .pages = 0}};
	const mgi_victim_policy_t some = {.min_pages = 1};
	const char *why = NULL;
	CHECK_INT_EQ(mgi_victim_choose(prot, 2, &any, &why), -1);
	CHECK_STR_EQ(why, "every candidate is protected");
	CHECK_INT_EQ(mgi_victim_choose(tried, 1, &any, &why), -1);
	CHECK_STR_EQ(why, "every candidate's kill failed");
	CHECK_INT_EQ(mgi_victim_choose(small, 2, &some, &why), -1);
	CHECK_STR_EQ(why, "no candidate holds enough to be worth a kill");
}

static void min_pages_bounds_the_choice(void)
{
	/* The manager's kill takes a process holding nothing (the requester
	 * may hold nothing yet); the kernel-limit kill wants RSS. */
	const mgi_victim_t c[] = {{.pid = 1, .pages = 0}, {.pid = 2, .pages = 0}};
	const mgi_victim_policy_t rss = {.min_pages = 1};
	CHECK_INT_EQ(mgi_victim_choose(c, 2, &any, NULL), 0);
	CHECK_INT_EQ(mgi_victim_choose(c, 2, &rss, NULL), -1);
	const mgi_victim_t d[] = {{.pid = 1, .pages = 3}, {.pid = 2, .pages = 4}};
	const mgi_victim_policy_t four = {.min_pages = 4};
	CHECK_INT_EQ(mgi_victim_choose(d, 2, &four, NULL), 1);
}

static void ties_go_to_the_youngest_then_the_first(void)
{
	const mgi_victim_t c[] = {
		{.pid = 1, .pages = 50, .age_ms = 9000},
		{.pid = 2, .pages = 50, .age_ms = 300},
		{.pid = 3, .pages = 50, .age_ms = 300},
		{.pid = 4, .pages = 49, .age_ms = 1},
	};
	CHECK_INT_EQ(mgi_victim_choose(c, 4, &any, NULL), 1);
	const mgi_victim_t d[] = {{.pid = 1, .pages = 7}, {.pid = 2, .pages = 7}};
	CHECK_INT_EQ(mgi_victim_choose(d, 2, &any, NULL), 0);
}

static void adj_moves_the_choice_by_thousandths_of_the_total(void)
{
	/* total 100000 pages: adj 1 is worth 100 pages */
	const mgi_victim_policy_t p = {.total_pages = 100000};
	mgi_victim_t c[] = {
		{.pid = 1, .pages = 5000},
		{.pid = 2, .pages = 4000, .adj = 11}, /* 4000 + 1100 */
	};
	const char *why = NULL;
	CHECK_INT_EQ(mgi_victim_choose(c, 2, &p, &why), 1);
	CHECK_STR_EQ(why, "the highest score once oom_score_adj is counted");
	c[1].adj = 9; /* 4000 + 900 */
	CHECK_INT_EQ(mgi_victim_choose(c, 2, &p, &why), 0);
	CHECK_STR_EQ(why, "the largest");
	/* a negative preference spares the largest */
	c[1].adj = 0;
	c[0].adj = -20; /* 5000 - 2000 */
	CHECK_INT_EQ(mgi_victim_choose(c, 2, &p, NULL), 1);
	/* without a total, adj only protects */
	CHECK_INT_EQ(mgi_victim_choose(c, 2, &any, NULL), 0);
}

static void scores_are_bounded(void)
{
	const mgi_victim_policy_t p = {.total_pages = UINT64_MAX};
	const mgi_victim_t big = {.pid = 1, .pages = UINT64_MAX - 1, .adj = 1000};
	const mgi_victim_t low = {.pid = 2, .pages = 10, .adj = -999};
	const mgi_victim_t wild = {.pid = 3, .pages = 10, .adj = -5000}; /* clamped: protected */
	CHECK_EQ(mgi_victim_score(&big, &p), UINT64_MAX);
	CHECK_EQ(mgi_victim_score(&low, &p), 1);
	CHECK_EQ(mgi_victim_score(&wild, &p), 0);
	const mgi_victim_t c[] = {low, big};
	CHECK_INT_EQ(mgi_victim_choose(c, 2, &p, NULL), 1);
}

/* Against a reference: the highest score, ties to the smaller age then
 * index, computed the plain way on random candidates. */
static void matches_a_reference_on_random_candidates(void)
{
	uint64_t seed = 0x5eed;
	for (int round = 0; round < 2000; round++) {
		mgi_victim_t c[16];
		size_t n = mgt_rand(&seed) % 17;
		mgi_victim_policy_t p = {.total_pages = mgt_rand(&seed) % 1000000,
					 .min_pages = mgt_rand(&seed) % 4};
		for (size_t i = 0; i < n; i++)
			c[i] = (mgi_victim_t){.pid = (pid_t)(i + 1),
					      .pages = mgt_rand(&seed) % 8,
					      .adj = (int)(mgt_rand(&seed) % 5) * 500 - 1000,
					      .age_ms = mgt_rand(&seed) % 3,
					      .protected_ = mgt_rand(&seed) % 7 == 0,
					      .tried = mgt_rand(&seed) % 7 == 0};
		int want = -1;
		for (size_t i = 0; i < n; i++) {
			if (c[i].protected_ || c[i].tried || c[i].adj == -1000 || c[i].pages < p.min_pages)
				continue;
			int64_t s = (int64_t)c[i].pages + (int64_t)(p.total_pages / 1000) * c[i].adj;
			if (s < 0)
				s = 0;
			if (want < 0) {
				want = (int)i;
				continue;
			}
			int64_t ws = (int64_t)c[want].pages + (int64_t)(p.total_pages / 1000) * c[want].adj;
			if (ws < 0)
				ws = 0;
			if (s > ws || (s == ws && c[i].age_ms < c[want].age_ms))
				want = (int)i;
		}
		CHECK_MSG(mgi_victim_choose(c, n, &p, NULL) == want, "round %d: n %zu want %d", round,
			  n, want);
	}
}

int main(int argc, char **argv)
{
	MGT_INIT(argc, argv);
	MGT_RUN(the_largest_is_chosen);
	MGT_RUN(nobody_without_candidates);
	MGT_RUN(protected_and_tried_are_never_chosen);
	MGT_RUN(reasons_name_what_excluded_everyone);
	MGT_RUN(min_pages_bounds_the_choice);
	MGT_RUN(ties_go_to_the_youngest_then_the_first);
	MGT_RUN(adj_moves_the_choice_by_thousandths_of_the_total);
	MGT_RUN(scores_are_bounded);
	MGT_RUN(matches_a_reference_on_random_candidates);
	MGT_DONE();
}

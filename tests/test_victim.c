/* test_victim.c - the OOM victim choice on struct literals. */
#include <errno.h>

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


/* Three processes of different sizes, ages, priorities and growth: each
 * policy names its own. */
static const mgi_victim_t three[] = {
	{.pid = 100, .pages = 9000, .age_ms = 60000, .priority = 0, .growth = 10},   /* big, old */
	{.pid = 101, .pages = 3000, .age_ms = 500, .priority = -5, .growth = 200},   /* newest, growing */
	{.pid = 102, .pages = 6000, .age_ms = 20000, .priority = 50, .growth = 20},  /* marked */
};

static void each_policy_picks_its_own(void)
{
	const char *why = NULL;
	mgi_victim_policy_t p = {.policy = MGI_OOM_LARGEST};
	CHECK_INT_EQ(mgi_victim_choose(three, 3, &p, &why), 0);
	CHECK_STR_EQ(why, "the largest");
	p.policy = MGI_OOM_NEWEST;
	CHECK_INT_EQ(mgi_victim_choose(three, 3, &p, &why), 1);
	CHECK_STR_EQ(why, "the newest (--oom-policy newest)");
	p.policy = MGI_OOM_OLDEST;
	CHECK_INT_EQ(mgi_victim_choose(three, 3, &p, &why), 0);
	p.policy = MGI_OOM_PRIORITY;
	CHECK_INT_EQ(mgi_victim_choose(three, 3, &p, &why), 2);
	CHECK_STR_EQ(why, "the highest --oom-priority (--oom-policy priority)");
	p.policy = MGI_OOM_GROWTH;
	CHECK_INT_EQ(mgi_victim_choose(three, 3, &p, &why), 1);
	CHECK_STR_EQ(why, "the fastest growing (--oom-policy growth)");
	/* the seed's example: keep the service that has run for a year */
	mgi_victim_t c[3];
	memcpy(c, three, sizeof(c));
	c[0].age_ms = 365ULL * 24 * 3600 * 1000;
	p.policy = MGI_OOM_NEWEST;
	CHECK_INT_EQ(mgi_victim_choose(c, 3, &p, NULL), 1);
}

static void policies_skip_the_ineligible_and_break_ties_by_score(void)
{
	mgi_victim_t c[3];
	memcpy(c, three, sizeof(c));
	mgi_victim_policy_t p = {.policy = MGI_OOM_NEWEST};
	c[1].adj = MGI_VICTIM_ADJ_MIN; /* oom_score_adj -1000: never, whatever the policy */
	CHECK_INT_EQ(mgi_victim_choose(c, 3, &p, NULL), 2);
	c[2].tried = true;
	CHECK_INT_EQ(mgi_victim_choose(c, 3, &p, NULL), 0);
	c[0].protected_ = true;
	CHECK_INT_EQ(mgi_victim_choose(c, 3, &p, NULL), -1);
	/* same priority: the larger */
	const mgi_victim_t d[] = {{.pid = 1, .pages = 10, .priority = 7},
				  {.pid = 2, .pages = 20, .priority = 7},
				  {.pid = 3, .pages = 90, .priority = 6}};
	p.policy = MGI_OOM_PRIORITY;
	CHECK_INT_EQ(mgi_victim_choose(d, 3, &p, NULL), 1);
	/* an unknown age is not the newest, but is still chosen alone */
	const mgi_victim_t e[] = {{.pid = 1, .pages = 10, .age_ms = 0}, {.pid = 2, .pages = 5, .age_ms = 90000}};
	p.policy = MGI_OOM_NEWEST;
	CHECK_INT_EQ(mgi_victim_choose(e, 2, &p, NULL), 1);
	CHECK_INT_EQ(mgi_victim_choose(e, 1, &p, NULL), 0);
}

static void prefer_and_avoid_are_tiers(void)
{
	mgi_victim_t c[3];
	const char *why = NULL;
	memcpy(c, three, sizeof(c));
	mgi_victim_policy_t p = {.policy = MGI_OOM_LARGEST};
	c[1].prefer = true; /* the smallest, but its command line matches */
	CHECK_INT_EQ(mgi_victim_choose(c, 3, &p, &why), 1);
	CHECK_STR_EQ(why, "its command line matches --oom-prefer");
	c[1].prefer = false;
	c[0].avoid = true;
	CHECK_INT_EQ(mgi_victim_choose(c, 3, &p, &why), 2);
	CHECK_STR_EQ(why, "the largest"); /* 102 had a rival in its tier */
	c[2].avoid = true;
	CHECK_INT_EQ(mgi_victim_choose(c, 3, &p, &why), 1);
	CHECK_STR_EQ(why, "every other candidate's command line matches --oom-avoid");
	/* all avoided: the policy among them (avoid is not protection) */
	c[1].avoid = true;
	CHECK_INT_EQ(mgi_victim_choose(c, 3, &p, NULL), 0);
	/* a preferred process with oom_score_adj -1000 is still never chosen */
	c[0].prefer = true;
	c[0].adj = MGI_VICTIM_ADJ_MIN;
	CHECK_INT_EQ(mgi_victim_choose(c, 3, &p, NULL), 2);
}

static void largest_counts_what_memory_low_does_not_protect(void)
{
	mgi_victim_t c[] = {{.pid = 1, .pages = 900, .low_pages = 800}, {.pid = 2, .pages = 500}};
	const mgi_victim_policy_t p = {.policy = MGI_OOM_LARGEST};
	CHECK_INT_EQ(mgi_victim_choose(c, 2, &p, NULL), 1);
	c[0].low_pages = 300;
	CHECK_INT_EQ(mgi_victim_choose(c, 2, &p, NULL), 0);
	c[0].low_pages = 5000; /* more than it holds: 0 left, still eligible */
	CHECK_EQ(mgi_victim_score(&c[0], &p), 1);
}

static void groups_are_ranked_by_the_same_choice(void)
{
	/* an ancestor's OOM: two child groups, web (one old big service) and
	 * batch (two young small jobs) */
	const mgi_victim_t web[] = {{.pid = 1, .pages = 5000, .age_ms = 90000}};
	const mgi_victim_t batch[] = {{.pid = 2, .pages = 1000, .age_ms = 300, .priority = 3},
				      {.pid = 3, .pages = 2500, .age_ms = 200, .growth = 40}};
	mgi_victim_policy_t p = {.policy = MGI_OOM_LARGEST};
	mgi_victim_t g[2];
	mgi_victim_group_init(&g[0], 7);
	mgi_victim_group_init(&g[1], 8);
	mgi_victim_group_add(&g[0], &web[0], &p);
	for (int i = 0; i < 2; i++)
		mgi_victim_group_add(&g[1], &batch[i], &p);
	CHECK_EQ(g[1].pages, 3500);
	CHECK_EQ(g[1].age_ms, 300); /* its oldest member's */
	CHECK_INT_EQ(g[1].priority, 3);
	CHECK_EQ(g[1].growth, 40);
	CHECK_INT_EQ(mgi_victim_choose(g, 2, &p, NULL), 0);
	p.policy = MGI_OOM_NEWEST;
	CHECK_INT_EQ(mgi_victim_choose(g, 2, &p, NULL), 1);
	p.policy = MGI_OOM_GROWTH;
	CHECK_INT_EQ(mgi_victim_choose(g, 2, &p, NULL), 1);
	/* a group whose members may none be chosen cannot pay */
	mgi_victim_t prot = {.pid = 4, .pages = 99999, .adj = MGI_VICTIM_ADJ_MIN};
	mgi_victim_group_init(&g[0], 7);
	mgi_victim_group_add(&g[0], &prot, &p);
	CHECK(g[0].protected_);
	p.policy = MGI_OOM_LARGEST;
	CHECK_INT_EQ(mgi_victim_choose(g, 2, &p, NULL), 1);
	/* an empty group cannot either */
	mgi_victim_group_init(&g[1], 8);
	CHECK_INT_EQ(mgi_victim_choose(g, 2, &p, NULL), -1);
}

static void policy_names_parse_back(void)
{
	for (unsigned i = 0; i <= MGI_OOM_POLICY_MAX; i++)
		CHECK_INT_EQ(mgi_oom_policy_parse(mgi_oom_policy_name(i)), (int)i);
	CHECK_INT_EQ(mgi_oom_policy_parse("biggest"), -EINVAL);
	CHECK_INT_EQ(mgi_oom_policy_parse(""), -EINVAL);
	CHECK_INT_EQ(mgi_oom_policy_parse(NULL), -EINVAL);
	CHECK_STR_EQ(mgi_oom_policy_name(99), "?");
}

/* Against a reference: the highest score, ties to the smaller age then
 * index, computed the plain way on random candidates. */
static int64_t ref_score(const mgi_victim_t *v, const mgi_victim_policy_t *p)
{
	int64_t pages = (int64_t)v->pages - (int64_t)v->low_pages;
	int64_t s = (pages < 0 ? 0 : pages) + (int64_t)(p->total_pages / 1000) * v->adj;
	return s < 0 ? 0 : s;
}

static int64_t ref_key(const mgi_victim_t *v, unsigned policy)
{
	switch (policy) {
	case MGI_OOM_NEWEST: return v->age_ms ? -(int64_t)v->age_ms : INT64_MIN;
	case MGI_OOM_OLDEST: return (int64_t)v->age_ms;
	case MGI_OOM_PRIORITY: return v->priority;
	case MGI_OOM_GROWTH: return (int64_t)v->growth;
	default: return 0;
	}
}

/* Against a reference: tier (prefer, plain, avoid), the policy's key, the
 * highest score, then the smaller age, then index, computed the plain way
 * on random candidates for every policy. */
static void matches_a_reference_on_random_candidates(void)
{
	uint64_t seed = 0x5eed;
	for (int round = 0; round < 4000; round++) {
		mgi_victim_t c[16];
		size_t n = mgt_rand(&seed) % 17;
		mgi_victim_policy_t p = {.total_pages = mgt_rand(&seed) % 1000000,
					 .min_pages = mgt_rand(&seed) % 4,
					 .policy = (unsigned)(mgt_rand(&seed) % (MGI_OOM_POLICY_MAX + 1))};
		for (size_t i = 0; i < n; i++)
			c[i] = (mgi_victim_t){.pid = (pid_t)(i + 1),
					      .pages = mgt_rand(&seed) % 8,
					      .low_pages = mgt_rand(&seed) % 3,
					      .adj = (int)(mgt_rand(&seed) % 5) * 500 - 1000,
					      .age_ms = mgt_rand(&seed) % 3,
					      .priority = (int)(mgt_rand(&seed) % 3) - 1,
					      .growth = mgt_rand(&seed) % 3,
					      .prefer = mgt_rand(&seed) % 5 == 0,
					      .avoid = mgt_rand(&seed) % 5 == 0,
					      .protected_ = mgt_rand(&seed) % 7 == 0,
					      .tried = mgt_rand(&seed) % 7 == 0};
		int want = -1;
		for (size_t i = 0; i < n; i++) {
			if (c[i].protected_ || c[i].tried || c[i].adj == -1000 || c[i].pages < p.min_pages)
				continue;
			if (want < 0) {
				want = (int)i;
				continue;
			}
			const mgi_victim_t *a = &c[i], *b = &c[want];
			int ta = a->prefer ? 2 : a->avoid ? 0 : 1, tb = b->prefer ? 2 : b->avoid ? 0 : 1;
			int64_t ka = ref_key(a, p.policy), kb = ref_key(b, p.policy);
			int64_t s = ref_score(a, &p), ws = ref_score(b, &p);
			if (ta != tb) {
				if (ta > tb)
					want = (int)i;
			} else if (ka != kb) {
				if (ka > kb)
					want = (int)i;
			} else if (s > ws || (s == ws && a->age_ms < b->age_ms)) {
				want = (int)i;
			}
		}
		CHECK_MSG(mgi_victim_choose(c, n, &p, NULL) == want, "round %d: n %zu policy %u want %d",
			  round, n, p.policy, want);
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
	MGT_RUN(each_policy_picks_its_own);
	MGT_RUN(policies_skip_the_ineligible_and_break_ties_by_score);
	MGT_RUN(prefer_and_avoid_are_tiers);
	MGT_RUN(largest_counts_what_memory_low_does_not_protect);
	MGT_RUN(groups_are_ranked_by_the_same_choice);
	MGT_RUN(policy_names_parse_back);
	MGT_RUN(matches_a_reference_on_random_candidates);
	MGT_DONE();
}

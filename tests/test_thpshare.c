/* test_thpshare.c - huge-page shares on struct literals (weights, the idle penalty, the hierarchy, scarcity) and /proc/buddyinfo's parser on real and broken text. */
#include "harness.h"
#include "thpshare.h"

#include <errno.h>
#include <string.h>

static int parse(const char *s, mgi_buddy_t *b)
{
	return mgi_buddyinfo_parse(s, strlen(s), b);
}

static void buddyinfo_counts_order_9_and_above(void)
{
	/* as this host's kernel writes it: 11 orders; order 10 counts twice */
	const char *text =
		"Node 0, zone      DMA      0      0      0      0      0      0      0      0      1      1      3 \n"
		"Node 0, zone    DMA32   1423    902    511    301    180     77     40     20     12      5    100 \n"
		"Node 1, zone   Normal  20442  10311   4120   1810    602    214     88     31      9      4      2 \n";
	mgi_buddy_t b;

	CHECK_INT_EQ(parse(text, &b), 0);
	CHECK_OP_U(b.nodes, ==, 2);
	CHECK_OP_U(b.node_huge_free[0], ==, 1 + 3 * 2 + 5 + 100 * 2);
	CHECK_OP_U(b.node_huge_free[1], ==, 4 + 2 * 2);
	CHECK_OP_U(b.huge_free, ==, 212 + 8);
	/* no trailing newline, fewer orders (a kernel with a smaller MAX_ORDER) */
	CHECK_INT_EQ(parse("Node 3, zone Normal 5 4 3 2 1 0 0 0 0 7", &b), 0);
	CHECK_OP_U(b.huge_free, ==, 7);
	CHECK_OP_U(b.nodes, ==, 4);
}

static void buddyinfo_refuses_what_it_cannot_read(void)
{
	static const char *const bad[] = {
		"",
		"\n\n",
		"Node 0 zone Normal 1 2 3",                    /* no comma */
		"Node 0, Normal 1 2 3",                        /* no zone */
		"Node 64, zone Normal 1 2 3",                  /* node out of range */
		"Node 0, zone Normal",                         /* no counts */
		"Node 0, zone Normal 1 2 x",                   /* not a number */
		"Node 0, zone Normal 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0", /* 17 orders */
		"Node 0, zone Normal 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 99999999999999999999",
		"Node 0, zone Normal 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 9223372036854775807", /* << 6 overflows */
		"Node 0, zone Normal 1\ngarbage",
	};
	mgi_buddy_t b;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&b, 0x5a, sizeof(b));
		CHECK_INT_EQ(parse(bad[i], &b), -EINVAL);
		CHECK_OP_U(b.huge_free, ==, 0);
		CHECK_OP_U(b.nodes, ==, 0);
	}
}

static void equal_weights_equal_shares(void)
{
	mgi_thp_group_in_t in[4] = {
		{-1, 100, 10, 0, true}, {-1, 100, 10, 0, true}, {-1, 100, 10, 0, true}, {-1, 100, 10, 0, true},
	};
	mgi_thp_group_out_t out[4];

	CHECK_INT_EQ(mgi_thp_shares(in, 4, 400, true, 50, out), 0);
	for (int i = 0; i < 4; i++) {
		CHECK_OP_U(out[i].share, ==, 100);
		CHECK_OP_U(out[i].own, ==, 100);
		CHECK(!out[i].stop && !out[i].demote);
	}
	/* weight 300 against three of 100: 3/6 of 600 */
	in[0].weight = 300;
	CHECK_INT_EQ(mgi_thp_shares(in, 4, 600, false, 50, out), 0);
	CHECK_OP_U(out[0].share, ==, 300);
	CHECK_OP_U(out[1].share, ==, 100);
}

static void idle_huge_pages_cost_share(void)
{
	/* D holds 100 huge pages, all idle: with a 50 % tax its idle cost is
	 * 2, its weight counts 50 against the others' 100: 400 * 50 / 350 */
	mgi_thp_group_in_t in[4] = {
		{-1, 100, 10, 0, true}, {-1, 100, 10, 0, true}, {-1, 100, 10, 0, true}, {-1, 100, 100, 100, false},
	};
	mgi_thp_group_out_t out[4];

	CHECK_INT_EQ(mgi_thp_shares(in, 4, 400, true, 50, out), 0);
	CHECK_OP_U(out[3].share, ==, 57);
	CHECK_OP_U(out[0].share, ==, 114);
	/* over its share while the others wait under theirs: stops, demotes */
	CHECK(out[3].stop && out[3].demote);
	CHECK(!out[0].stop && !out[0].demote);
	/* half idle, 75 % tax: cost 0.5 + 4 * 0.5 = 2.5, weight 40 */
	in[3].idle = 50;
	CHECK_INT_EQ(mgi_thp_shares(in, 4, 340, true, 75, out), 0);
	CHECK_OP_U(out[3].share, ==, 40);
	/* no tax: idle pages cost nothing more */
	CHECK_INT_EQ(mgi_thp_shares(in, 4, 400, true, 0, out), 0);
	CHECK_OP_U(out[3].share, ==, 100);
}

static void shares_go_down_the_tree(void)
{
	/* P (top, alone) has children A (weight 300) and B (100); its own
	 * processes count as one more child with P's weight (100) */
	mgi_thp_group_in_t in[3] = {
		{-1, 100, 0, 0, false}, {0, 300, 0, 0, false}, {0, 100, 0, 0, false},
	};
	mgi_thp_group_out_t out[3];

	CHECK_INT_EQ(mgi_thp_shares(in, 3, 500, false, 50, out), 0);
	CHECK_OP_U(out[0].share, ==, 500);
	CHECK_OP_U(out[0].own, ==, 100);
	CHECK_OP_U(out[1].share, ==, 300);
	CHECK_OP_U(out[2].share, ==, 100);
	/* a child listed before its parent (slots reused) changes nothing */
	mgi_thp_group_in_t rev[3] = {
		{2, 300, 0, 0, false}, {2, 100, 0, 0, false}, {-1, 100, 0, 0, false},
	};
	CHECK_INT_EQ(mgi_thp_shares(rev, 3, 500, false, 50, out), 0);
	CHECK_OP_U(out[0].share, ==, 300);
	CHECK_OP_U(out[1].share, ==, 100);
	CHECK_OP_U(out[2].own, ==, 100);
}

static void scarcity_stops_and_demotes(void)
{
	mgi_thp_group_in_t in[2] = {{-1, 100, 150, 0, false}, {-1, 100, 10, 0, true}};
	mgi_thp_group_out_t out[2];

	CHECK_INT_EQ(mgi_thp_shares(in, 2, 200, false, 50, out), 0);
	CHECK(!out[0].stop && !out[0].demote); /* plenty: nobody stops */
	CHECK_INT_EQ(mgi_thp_shares(in, 2, 200, true, 50, out), 0);
	CHECK(out[0].stop && out[0].demote);
	CHECK(!out[1].stop && !out[1].demote);
	/* nobody waits under its share: over it, stop, but no demotion */
	in[1].wants = false;
	CHECK_INT_EQ(mgi_thp_shares(in, 2, 200, true, 50, out), 0);
	CHECK(out[0].stop && !out[0].demote);
}

static void bad_parents_and_arguments(void)
{
	/* a cycle, an index out of range, itself: each taken as top-level */
	mgi_thp_group_in_t in[4] = {
		{1, 100, 0, 0, false}, {0, 100, 0, 0, false}, {7, 100, 0, 0, false}, {3, 0, 0, 0, false},
	};
	mgi_thp_group_out_t out[4];

	/* 0 and 1 name each other: 0 is made top-level, 1 stays its child;
	 * 2 (parent 7) and 3 (itself, weight 0: counts 1) are top-level:
	 * 1000 * 100 / 201 each for 0 and 2, 4 for 3; 1 gets half of 0's */
	CHECK_INT_EQ(mgi_thp_shares(in, 4, 1000, false, 50, out), 0);
	CHECK_OP_U(out[0].share, ==, 497);
	CHECK_OP_U(out[2].share, ==, 497);
	CHECK_OP_U(out[3].share, ==, 4);
	CHECK_OP_U(out[1].share, ==, 248);
	CHECK_INT_EQ(mgi_thp_shares(in, 4, 1000, false, 100, out), -EINVAL);
	CHECK_INT_EQ(mgi_thp_shares(in, 257, 1000, false, 50, out), -EINVAL);
}

int main(int argc, char **argv)
{
	MGT_INIT(argc, argv);
	MGT_RUN(buddyinfo_counts_order_9_and_above);
	MGT_RUN(buddyinfo_refuses_what_it_cannot_read);
	MGT_RUN(equal_weights_equal_shares);
	MGT_RUN(idle_huge_pages_cost_share);
	MGT_RUN(shares_go_down_the_tree);
	MGT_RUN(scarcity_stops_and_demotes);
	MGT_RUN(bad_parents_and_arguments);
	MGT_DONE();
}

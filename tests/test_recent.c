/* test_recent.c - the handler's event-order guards on literals: overlap within a time to live, exact claims, a full ring, a fork's reset. */
#include "harness.h"
#include "recent.h"

#define TTL 50

static void overlap_within_the_time_to_live(void)
{
	mgi_recent_t rr;

	mgi_recent_init(&rr, 16);
	CHECK(!mgi_recent_overlaps(&rr, 0x1000, 0x2000, 1, TTL)); /* nothing noted */
	mgi_recent_note(&rr, 0x10000, 0x20000, 100);
	CHECK(mgi_recent_overlaps(&rr, 0x10000, 0x11000, 100, TTL));  /* the first page */
	CHECK(mgi_recent_overlaps(&rr, 0x1f000, 0x20000, 149, TTL));  /* the last, just in time */
	CHECK(mgi_recent_overlaps(&rr, 0x8000, 0x30000, 120, TTL));   /* around it */
	CHECK(!mgi_recent_overlaps(&rr, 0x20000, 0x21000, 120, TTL)); /* just after: end is open */
	CHECK(!mgi_recent_overlaps(&rr, 0xf000, 0x10000, 120, TTL));  /* just before */
	CHECK(!mgi_recent_overlaps(&rr, 0x10000, 0x11000, 150, TTL)); /* lapsed */
}

static void an_old_entry_lapses_while_a_new_one_counts(void)
{
	mgi_recent_t rr;

	mgi_recent_init(&rr, 16);
	mgi_recent_note(&rr, 0x10000, 0x20000, 100);
	mgi_recent_note(&rr, 0x50000, 0x60000, 140);
	CHECK(!mgi_recent_overlaps(&rr, 0x10000, 0x11000, 160, TTL));
	CHECK(mgi_recent_overlaps(&rr, 0x50000, 0x51000, 160, TTL));
}

static void a_claim_is_exact_and_once(void)
{
	mgi_recent_t rr;

	mgi_recent_init(&rr, 64);
	mgi_recent_note(&rr, 0x10000, 0x20000, 10);
	mgi_recent_note(&rr, 0x10000, 0x20000, 11); /* two moves vacated the same range */
	CHECK(!mgi_recent_claim(&rr, 0x10000, 0x1f000, 20, TTL)); /* not exact */
	CHECK(!mgi_recent_claim(&rr, 0x11000, 0x20000, 20, TTL));
	CHECK(mgi_recent_claim(&rr, 0x10000, 0x20000, 20, TTL));
	CHECK(mgi_recent_claim(&rr, 0x10000, 0x20000, 20, TTL)); /* the second entry */
	CHECK(!mgi_recent_claim(&rr, 0x10000, 0x20000, 20, TTL)); /* none left */
	mgi_recent_note(&rr, 0x30000, 0x40000, 30);
	CHECK(!mgi_recent_claim(&rr, 0x30000, 0x40000, 30 + TTL, TTL)); /* lapsed */
}

static void a_full_ring_forgets_its_oldest(void)
{
	mgi_recent_t rr;

	mgi_recent_init(&rr, 4);
	for (uintptr_t i = 0; i < 5; i++)
		mgi_recent_note(&rr, i << 20, (i << 20) + 0x1000, 100 + i);
	CHECK(!mgi_recent_claim(&rr, 0, 0x1000, 110, TTL)); /* overwritten */
	for (uintptr_t i = 1; i < 5; i++)
		CHECK(mgi_recent_claim(&rr, i << 20, (i << 20) + 0x1000, 110, TTL));
	/* sizes out of range are clamped */
	mgi_recent_init(&rr, 0);
	CHECK_EQ(rr.size, 1);
	mgi_recent_init(&rr, 1000);
	CHECK_EQ(rr.size, MGI_RECENT_MAX);
}

static void init_forgets_everything(void)
{
	mgi_recent_t rr;

	mgi_recent_init(&rr, 16);
	mgi_recent_note(&rr, 0x10000, 0x20000, 100);
	mgi_recent_init(&rr, 16); /* what a forked child does */
	CHECK(!mgi_recent_overlaps(&rr, 0x10000, 0x20000, 101, TTL));
	CHECK(!mgi_recent_claim(&rr, 0x10000, 0x20000, 101, TTL));
}

int main(int argc, char **argv)
{
	MGT_INIT(argc, argv);
	MGT_RUN(overlap_within_the_time_to_live);
	MGT_RUN(an_old_entry_lapses_while_a_new_one_counts);
	MGT_RUN(a_claim_is_exact_and_once);
	MGT_RUN(a_full_ring_forgets_its_oldest);
	MGT_RUN(init_forgets_everything);
	MGT_DONE();
}

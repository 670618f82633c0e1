/* test_ranges.c - the scan's walk past exclusions on literals: clipped before the next, skipped past what covers, whose. */
#include "harness.h"
#include "ranges.h"

enum { OBJ = 1, OWN = 2 };

/* One step of the agent's walk (exclude.c mgi_exclude_next): objects,
 * arena, then own ranges; returns whose covers cur (0: none). */
static int step(const mgi_range_t *obj, unsigned nobj, const mgi_range_t *own, unsigned nown,
		uintptr_t cur, uintptr_t *stop, uintptr_t *skip_to)
{
	int whose = 0;

	*skip_to = 0;
	mgi_ranges_meet(obj, nobj, OBJ, cur, stop, skip_to, &whose);
	mgi_ranges_meet(own, nown, OWN, cur, stop, skip_to, &whose);
	return whose;
}

static void clips_before_the_next(void)
{
	const mgi_range_t obj[] = {{0x9000, 0xa000}, {0x5000, 0x6000}, {0x20000, 0x21000}};
	uintptr_t stop = 0x10000, skip;

	/* nothing covers 0x1000: the walk stops before the nearest, whatever the order */
	CHECK_EQ(step(obj, 3, NULL, 0, 0x1000, &stop, &skip), 0);
	CHECK_EQ(skip, 0);
	CHECK_EQ(stop, 0x5000);
	/* one starting at or past the end changes nothing; nor one ending at cur */
	stop = 0x9000;
	CHECK_EQ(step(obj, 3, NULL, 0, 0x6000, &stop, &skip), 0);
	CHECK_EQ(stop, 0x9000);
	CHECK_EQ(skip, 0);
}

static void skips_what_covers_cur(void)
{
	/* two overlapping exclusions cover cur: skipped to the further end */
	const mgi_range_t obj[] = {{0x4000, 0x8000}, {0x2000, 0xc000}, {0x10000, 0x11000}};
	uintptr_t stop = 0x20000, skip;

	CHECK_EQ(step(obj, 3, NULL, 0, 0x5000, &stop, &skip), OBJ);
	CHECK_EQ(skip, 0xc000);
	CHECK_EQ(stop, 0x10000); /* (and the next one still clips) */
	/* covering from exactly cur counts; ending exactly at cur does not */
	stop = 0x20000;
	CHECK_EQ(step(obj, 3, NULL, 0, 0x10000, &stop, &skip), OBJ);
	CHECK_EQ(skip, 0x11000);
	stop = 0x20000;
	CHECK_EQ(step(obj, 3, NULL, 0, 0xc000, &stop, &skip), 0);
	CHECK_EQ(stop, 0x10000);
}

static void the_last_covering_says_whose(void)
{
	const mgi_range_t obj[] = {{0x1000, 0x3000}};
	const mgi_range_t own[] = {{0x2000, 0x5000}, {0x8000, 0x9000}};
	uintptr_t stop = 0x10000, skip;

	/* an own range met after an object that covers cur too: the agent's */
	CHECK_EQ(step(obj, 1, own, 2, 0x2000, &stop, &skip), OWN);
	CHECK_EQ(skip, 0x5000);
	CHECK_EQ(stop, 0x8000);
	/* only the object covers cur */
	stop = 0x10000;
	CHECK_EQ(step(obj, 1, own, 2, 0x1000, &stop, &skip), OBJ);
	CHECK_EQ(skip, 0x3000);
	CHECK_EQ(stop, 0x2000); /* the own range starts inside: clipped (the caller skips to 0x3000) */
	/* no lists at all: nothing met */
	stop = 0x10000;
	CHECK_EQ(step(NULL, 0, NULL, 0, 0x1000, &stop, &skip), 0);
	CHECK_EQ(stop, 0x10000);
	CHECK_EQ(skip, 0);
}

int main(int argc, char **argv)
{
	MGT_INIT(argc, argv);
	MGT_RUN(clips_before_the_next);
	MGT_RUN(skips_what_covers_cur);
	MGT_RUN(the_last_covering_says_whose);
	MGT_DONE();
}

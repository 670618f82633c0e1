/* counting_alloc.h - an allocator for unit tests of pure code: counts live blocks, fails the Nth on request. */
#ifndef MGT_COUNTING_ALLOC_H
#define MGT_COUNTING_ALLOC_H

#include <stdlib.h>

struct counting_alloc {
	long live; /* allocations not yet freed */
	long fail_after; /* fail the Nth allocation from now (-1: never) */
};

static inline void *test_alloc(void *ctx, size_t bytes)
{
	struct counting_alloc *c = ctx;
	if (c->fail_after == 0)
		return NULL;
	if (c->fail_after > 0)
		c->fail_after--;
	c->live++;
	return calloc(1, bytes ? bytes : 1);
}

static inline void test_free(void *ctx, void *p, size_t bytes)
{
	struct counting_alloc *c = ctx;
	(void)bytes;
	if (p)
		c->live--;
	free(p);
}

#endif

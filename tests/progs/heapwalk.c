/* heapwalk.c - malloc's blocks from all over a heap of many VMAs; the heap trimmed and regrown; a large block's mapping made again where another was. */
/*
 * Usage: prog_heapwalk MB ITERATIONS
 *
 * Fills MB MiB of 1000-byte blocks (glibc grows its heap with brk in
 * ~128 KiB steps, unseen by the agent; under the agent each step stays a
 * VMA of its own), then frees and allocates again a random block
 * ITERATIONS times, so that malloc hands out blocks from all over the
 * heap in turn. An agent that remembered one range per thread queried and
 * registered a VMA for nearly every one of those calls (the test counts
 * madvise calls). Then every block is freed (glibc trims the heap with
 * brk) and three times as many are allocated (the heap grows past where it was,
 * again unseen): those must be charged. Last, a large block (its own
 * mapping, made and unmapped inside glibc) is freed and two are taken: the
 * first lands where the freed one was, in a range the agent had seen, and
 * must be charged too (the agent used to let it through: 64 MiB held, 0
 * charged). Every block's bytes are checked. Prints "heapwalk ok: KB" with
 * the process's anonymous RSS while it holds all of it (its peak).
 */
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "rss.h"

#define BLOCK 1000

static void check(unsigned char **b, size_t n, uint64_t *seed, const char *what)
{
	for (size_t i = 0; i < n; i++) {
		long bad = verify(b[i], BLOCK, seed[i]);
		if (bad >= 0)
			DIE("%s: block %zu, byte %ld wrong", what, i, bad);
	}
}

int main(int argc, char **argv)
{
	if (argc != 3)
		DIE("usage: prog_heapwalk MB ITERATIONS");
	size_t n = strtoul(argv[1], NULL, 10) * 1024 * 1024 / BLOCK;
	long iters = atol(argv[2]);
	unsigned char **b = calloc(3 * n, sizeof(*b));
	uint64_t *seed = calloc(3 * n, sizeof(*seed));

	if (!n || iters < 0 || !b || !seed)
		DIE("bad arguments or no memory");
	mallopt(M_MMAP_THRESHOLD, 1 << 20); /* blocks from the heap only */
	for (size_t i = 0; i < n; i++) {
		if (!(b[i] = malloc(BLOCK)))
			DIE("malloc failed");
		fill(b[i], BLOCK, seed[i] = i + 1);
	}
	srand(7);
	for (long k = 0; k < iters; k++) {
		size_t i = (size_t)rand() % n;
		free(b[i]);
		if (!(b[i] = malloc(BLOCK)))
			DIE("malloc failed");
		fill(b[i], BLOCK, seed[i] = (uint64_t)k << 24 | i);
	}
	check(b, n, seed, "after the walk");
	/* lowest first: the first few freed stay in malloc's per-thread cache,
	 * and the rest merge into the top chunk, which is then trimmed */
	for (size_t i = 0; i < n; i++)
		free(b[i]);
	malloc_trim(0);
	for (size_t i = 0; i < 3 * n; i++) {
		if (!(b[i] = malloc(BLOCK)))
			DIE("malloc failed");
		fill(b[i], BLOCK, seed[i] = i + 3);
	}
	check(b, 3 * n, seed, "after the heap grew again");
	size_t big = 16 << 20;
	unsigned char *gone = malloc(big), *x, *y;
	if (!gone)
		DIE("malloc failed");
	fill(gone, big, 5);
	uintptr_t was = (uintptr_t)gone; /* compared below, never used */
	free(gone);
	if (!(x = malloc(big)) || !(y = malloc(big)))
		DIE("malloc failed");
	fill(x, big, 6);
	fill(y, big, 7);
	if (verify(x, big, 6) >= 0 || verify(y, big, 7) >= 0)
		DIE("a large block's bytes wrong");
	if ((uintptr_t)x != was)
		printf("(the large block was not mapped again at %#lx)\n", (unsigned long)was);
	printf("heapwalk ok: %ld\n", rss_anon_kb());
	return 0;
}

/* vrcall.c - what one mg_vrange call costs: entries of a cache unpinned and pinned again, timed per call. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "memgrp.h"

/*
 * Usage: bench_vrcall [ENTRIES] [ROUNDS]   (under memgrp run)
 * ENTRIES values of 16 KiB side by side in one mapping (default 4096),
 * written once; each round makes every entry volatile, then non-volatile
 * again (the cache's unpin and pin), in a shuffled order. Prints the mean
 * and p50/p99 of each kind of call in nanoseconds. No pressure: the
 * group's limit must hold the whole mapping (nothing is purged).
 */

#define VALUE_BYTES (16u << 10)

static uint64_t now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void report(const char *what, uint64_t *ns, size_t n)
{
	uint64_t sum = 0;

	for (size_t i = 0; i < n; i++)
		sum += ns[i];
	qsort(ns, n, sizeof(*ns), cmp_u64);
	printf("%-12s calls=%zu mean_ns=%llu p50_ns=%llu p99_ns=%llu\n", what, n,
	       (unsigned long long)(sum / n), (unsigned long long)ns[n / 2],
	       (unsigned long long)ns[n * 99 / 100]);
}

int main(int argc, char **argv)
{
	size_t entries = argc > 1 ? strtoul(argv[1], NULL, 0) : 4096;
	size_t rounds = argc > 2 ? strtoul(argv[2], NULL, 0) : 5;
	uint64_t *vol, *nonvol;
	uint32_t *order;
	char *base;
	int rc = 1;

	if (!entries || !rounds) {
		fprintf(stderr, "usage: bench_vrcall [ENTRIES] [ROUNDS]\n");
		return 1;
	}
	base = mmap(NULL, entries * VALUE_BYTES, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	vol = calloc(entries * rounds, sizeof(*vol));
	nonvol = calloc(entries * rounds, sizeof(*nonvol));
	order = calloc(entries, sizeof(*order));
	if (base == MAP_FAILED || !vol || !nonvol || !order) {
		fprintf(stderr, "bench_vrcall: out of memory\n");
		return 1;
	}
	memset(base, 0x5a, entries * VALUE_BYTES);
	for (size_t i = 0; i < entries; i++)
		order[i] = (uint32_t)i;
	srand(1);
	for (size_t r = 0; r < rounds; r++) {
		for (size_t i = entries - 1; i > 0; i--) {
			size_t j = (size_t)rand() % (i + 1);
			uint32_t x = order[i];
			order[i] = order[j];
			order[j] = x;
		}
		for (size_t i = 0; i < entries; i++) {
			char *v = base + (size_t)order[i] * VALUE_BYTES;
			uint64_t t0 = now_ns();
			int e = mg_vrange(v, VALUE_BYTES, MG_VRANGE_VOLATILE, NULL);
			vol[r * entries + i] = now_ns() - t0;
			if (e) {
				fprintf(stderr, "bench_vrcall: mg_vrange volatile: %s\n", strerror(-e));
				goto out;
			}
		}
		for (size_t i = 0; i < entries; i++) {
			char *v = base + (size_t)order[i] * VALUE_BYTES;
			int purged = 0;
			uint64_t t0 = now_ns();
			int e = mg_vrange(v, VALUE_BYTES, MG_VRANGE_NONVOLATILE, &purged);
			nonvol[r * entries + i] = now_ns() - t0;
			if (e || purged) {
				fprintf(stderr, "bench_vrcall: mg_vrange nonvolatile: %s\n",
					e ? strerror(-e) : "purged without pressure");
				goto out;
			}
		}
	}
	report("volatile", vol, entries * rounds);
	report("nonvolatile", nonvol, entries * rounds);
	rc = 0;
out:
	free(vol);
	free(nonvol);
	free(order);
	munmap(base, entries * VALUE_BYTES);
	return rc;
}

/* reclaim.c - eviction and refault costs of anonymous memory under a limit. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/* Usage:
 *   bench_reclaim seq MiB          write a pattern over MiB in one pass, then
 *                                  read it back and check every word
 *   bench_reclaim lat MiB SAMPLES  fill MiB, then time one load on each of
 *                                  SAMPLES distinct random pages of its first
 *                                  3/4 (evicted if MiB is 4x the limit)
 *   bench_reclaim zipf MiB OPS     fill MiB, then OPS read-modify-writes of
 *                                  8 bytes on Zipf(0.99)-chosen pages
 *   bench_reclaim hold MiB SECS    fill MiB, say "filled" (flushed), hold it
 *                                  SECS seconds untouched (for bench/realmem.sh
 *                                  to measure the host memory it takes), then
 *                                  check every word
 * Run under a limit well below MiB (bench/reclaim.sh). Prints one line of
 * key=value results; a wrong byte is reported on stderr and exits 1. */

#define PAGE 4096L
#define WORDS (PAGE / 8)
#define ZIPF_S 0.99

static uint64_t mix(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* A fixed seed per run: every column sees the same page sequence. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rng(void)
{
	rng_state += 0x9e3779b97f4a7c15ULL;
	return mix(rng_state);
}

/* Every 4th word a hash of (page, word), the others the page number. That
 * compresses about 2.5:1 with lz4, in the range of real anonymous memory
 * (a constant fill would measure only the same-filled shortcut both zram
 * and memgrp take), and each page names itself, so a page restored to the
 * wrong address is caught. */
static inline uint64_t pattern(long p, long w)
{
	return (w & 3) ? (uint64_t)p : mix((uint64_t)p * WORDS + (uint64_t)w);
}

/* Fills a[0..n) with 0..n-1 in a random order (Fisher-Yates, from rng). */
static void shuffled(uint32_t *a, long n)
{
	for (long i = 0; i < n; i++)
		a[i] = (uint32_t)i;
	for (long i = n - 1; i > 0; i--) {
		long j = (long)(rng() % (uint64_t)(i + 1));
		uint32_t t = a[i];

		a[i] = a[j];
		a[j] = t;
	}
}

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static uint64_t *map(long pages)
{
	uint64_t *p = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	/* 4K pages: a THP would be evicted and faulted as 512 of them anyway,
	 * and memgrp handles 4K faults only. */
	madvise(p, pages * PAGE, MADV_NOHUGEPAGE);
	return p;
}

static void fill(uint64_t *base, long pages)
{
	for (long p = 0; p < pages; p++)
		for (long w = 0; w < WORDS; w++)
			base[p * WORDS + w] = pattern(p, w);
}

/* Checks every word; word 1 of page p must be pattern + bump[p] if bump is
 * given (the Zipf pass's increments). Returns the number of bad pages. */
static long check(const uint64_t *base, long pages, const uint32_t *bump)
{
	long bad = 0;

	for (long p = 0; p < pages; p++) {
		for (long w = 0; w < WORDS; w++) {
			uint64_t want = pattern(p, w) + (bump && w == 1 ? bump[p] : 0);
			uint64_t got = base[p * WORDS + w];

			if (got != want) {
				if (bad < 5)
					fprintf(stderr, "bench_reclaim: page %ld word %ld: %#llx, want %#llx\n",
						p, w, (unsigned long long)got, (unsigned long long)want);
				bad++;
				break;
			}
		}
	}
	if (bad)
		fprintf(stderr, "bench_reclaim: %ld of %ld pages wrong\n", bad, pages);
	return bad;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static int seq(long pages)
{
	uint64_t *base = map(pages);
	double t0, t1, t2, mb = pages * PAGE / 1e6;

	t0 = now();
	fill(base, pages);
	t1 = now();
	if (check(base, pages, NULL))
		return 1;
	t2 = now();
	printf("write_mbps=%.1f read_mbps=%.1f\n", mb / (t1 - t0), mb / (t2 - t1));
	return 0;
}

static int lat(long pages, long samples)
{
	uint64_t *base = map(pages);
	long cold = pages * 3 / 4, bad = 0;
	uint32_t *idx;
	double *us;

	if (samples < 1 || samples > cold) {
		fprintf(stderr, "bench_reclaim: SAMPLES must be 1..%ld\n", cold);
		return 2;
	}
	fill(base, pages);
	/* Allocated after the fill, so they are among the recently used pages
	 * and do not fault inside the timed loads. */
	idx = malloc(cold * sizeof(*idx));
	us = malloc(samples * sizeof(*us));
	if (!idx || !us) {
		perror("malloc");
		return 1;
	}
	memset(us, 0, samples * sizeof(*us));
	shuffled(idx, cold);
	for (long i = 0; i < samples; i++) {
		volatile uint64_t *q = base + idx[i] * WORDS;
		struct timespec a, b;
		uint64_t v;

		clock_gettime(CLOCK_MONOTONIC, &a);
		v = *q;
		clock_gettime(CLOCK_MONOTONIC, &b);
		us[i] = (b.tv_sec - a.tv_sec) * 1e6 + (b.tv_nsec - a.tv_nsec) / 1e3;
		if (v != pattern(idx[i], 0) && bad++ < 5)
			fprintf(stderr, "bench_reclaim: page %u word 0: %#llx, want %#llx\n",
				idx[i], (unsigned long long)v, (unsigned long long)pattern(idx[i], 0));
	}
	if (bad) {
		fprintf(stderr, "bench_reclaim: %ld of %ld sampled pages wrong\n", bad, samples);
		return 1;
	}
	qsort(us, samples, sizeof(*us), cmp_double);
	double sum = 0;
	for (long i = 0; i < samples; i++)
		sum += us[i];
	printf("p50_us=%.2f p99_us=%.2f p999_us=%.2f mean_us=%.2f\n", us[samples / 2],
	       us[samples * 99 / 100], us[samples * 999 / 1000], sum / samples);
	return 0;
}

/* The CDF of Zipf(ZIPF_S) over ranks 1..n. No libm: j^-s is computed as
 * j^-1 * e^((1-s) ln j), ln j from the running harmonic number
 * (H_j - gamma - 1/2j + 1/12j^2, off by 0.006 at j = 1 and far less above)
 * and e^x from its series, |x| < 0.2 for any n here. */
static double *zipf_cdf(long n)
{
	double *cdf = malloc(n * sizeof(*cdf)), h = 0, sum = 0;

	if (!cdf) {
		perror("malloc");
		exit(1);
	}
	for (long j = 1; j <= n; j++) {
		double x, e, t = 1;

		h += 1.0 / j;
		x = (1 - ZIPF_S) * (h - 0.5772156649 - 0.5 / j + 1.0 / (12.0 * j * j));
		e = 1;
		for (int k = 1; k <= 6; k++) {
			t *= x / k;
			e += t;
		}
		sum += e / j;
		cdf[j - 1] = sum;
	}
	for (long j = 0; j < n; j++)
		cdf[j] /= sum;
	return cdf;
}

static int zipf(long pages, long ops)
{
	uint64_t *base = map(pages);
	double *cdf;
	uint32_t *perm, *bump;
	double t0, t1;

	fill(base, pages); /* the warm-up: every page written once */
	cdf = zipf_cdf(pages);
	perm = malloc(pages * sizeof(*perm));
	bump = calloc(pages, sizeof(*bump));
	if (!perm || !bump) {
		perror("malloc");
		return 1;
	}
	/* Ranks to pages at random: hot pages are scattered over the region,
	 * not one contiguous run that readahead would serve. */
	shuffled(perm, pages);
	t0 = now();
	for (long i = 0; i < ops; i++) {
		double u = (rng() >> 11) * 0x1p-53;
		long lo = 0, hi = pages - 1;

		while (lo < hi) { /* the first rank whose CDF exceeds u */
			long mid = (lo + hi) / 2;

			if (cdf[mid] > u)
				hi = mid;
			else
				lo = mid + 1;
		}
		uint32_t p = perm[lo];
		volatile uint64_t *q = base + p * WORDS + 1;

		*q = *q + 1;
		bump[p]++;
	}
	t1 = now();
	if (check(base, pages, bump))
		return 1;
	printf("ops_per_s=%.0f secs=%.2f\n", ops / (t1 - t0), t1 - t0);
	return 0;
}

static int hold(long pages, long secs)
{
	uint64_t *base = map(pages);

	fill(base, pages);
	printf("filled\n");
	fflush(stdout);
	sleep((unsigned)secs);
	if (check(base, pages, NULL))
		return 1;
	printf("held=%ld\n", pages);
	return 0;
}

int main(int argc, char **argv)
{
	long mib = argc > 2 ? atol(argv[2]) : 0, n = argc > 3 ? atol(argv[3]) : 0;
	long pages = mib * (1L << 20) / PAGE;

	if (argc >= 3 && mib > 0 && !strcmp(argv[1], "seq"))
		return seq(pages);
	if (argc >= 4 && mib > 0 && n > 0 && !strcmp(argv[1], "lat"))
		return lat(pages, n);
	if (argc >= 4 && mib > 0 && n > 0 && !strcmp(argv[1], "zipf"))
		return zipf(pages, n);
	if (argc >= 4 && mib > 0 && n > 0 && !strcmp(argv[1], "hold"))
		return hold(pages, n);
	fprintf(stderr, "usage: bench_reclaim seq MiB | lat MiB SAMPLES | zipf MiB OPS | hold MiB SECS\n");
	return 2;
}

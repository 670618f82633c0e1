/* hugepage.c - huge-page bloat (a sparse touch) and speed (dependent random loads), for bench/hugepage.sh. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/*
 * Usage: bench_hugepage bloat MIB PCT ADVICE [wait SECS]
 *        bench_hugepage speed MIB ADVICE [wait SECS] [loads N]
 *        bench_hugepage latency MIB ADVICE
 * ADVICE: huge (MADV_HUGEPAGE: Linux THP for this region, as
 * enabled=always gives), base (MADV_NOHUGEPAGE: Linux 4 KiB), none (no
 * advice: under `memgrp run --thp ...`, memgrp decides).
 *
 * bloat: touches about PCT % of the region's pages (MIB a power of two),
 * chosen at random (each page by a hash of its number), waits until AnonHugePages has not
 * changed for a second (at most SECS, default 0), and prints the touched
 * bytes, the region's Rss and AnonHugePages, and the bloat
 * (Rss - touched) / touched.
 * speed: writes a random cyclic chain through every 64-byte line of the
 * region (Sattolo's shuffle), waits the same way, then follows the chain
 * for N loads (default 20 000 000), each depending on the last, and
 * prints ns per load.
 * latency: writes the first byte of every 4 KiB page of the region in
 * order, timing each write (a first touch: a fault, or none where a
 * huge page or memgrp's fault-around already put the page there), and
 * prints p50, p99, p99.9 and the largest in microseconds. Under memgrp
 * ingens the region's blocks are promoted meanwhile (each collapse holds
 * the mmap lock): the faults that wait for one are in the tail.
 */

#define PAGE 4096UL
#define BLOCK (2UL << 20)
#define LINE 64UL

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static long smaps_kb(const void *addr, const char *key)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	size_t klen = strlen(key);
	int inside = 0;
	long kb = -1;
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		char c;
		if (sscanf(line, "%lx-%lx %c", &lo, &hi, &c) == 3) {
			inside = (uintptr_t)addr >= lo && (uintptr_t)addr < hi;
			continue;
		}
		if (inside && !strncmp(line, key, klen) && line[klen] == ':') {
			kb = strtol(line + klen + 1, NULL, 10);
			break;
		}
	}
	fclose(f);
	return kb;
}

static void wait_stable(const void *p, int secs)
{
	long last = smaps_kb(p, "AnonHugePages");
	double t0 = now_s(), since = now_s();
	while (now_s() - t0 < secs) {
		struct timespec tick = {0, 100 * 1000 * 1000};
		nanosleep(&tick, NULL);
		long h = smaps_kb(p, "AnonHugePages");
		if (h != last) {
			last = h;
			since = now_s();
		} else if (now_s() - since >= 1.0) {
			break;
		}
	}
}

static unsigned char *region(size_t len, const char *advice)
{
	unsigned char *raw = mmap(NULL, len + BLOCK, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (raw == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	unsigned char *p = (unsigned char *)(((uintptr_t)raw + BLOCK - 1) & ~(BLOCK - 1));
	if (!strcmp(advice, "huge"))
		madvise(p, len, MADV_HUGEPAGE);
	else if (!strcmp(advice, "base"))
		madvise(p, len, MADV_NOHUGEPAGE);
	else if (strcmp(advice, "none") != 0) {
		fprintf(stderr, "bench_hugepage: ADVICE is huge, base or none\n");
		exit(2);
	}
	return p;
}

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	return x ^ (x >> 33);
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: bench_hugepage bloat MIB PCT ADVICE [wait SECS] | speed MIB ADVICE "
				"[wait SECS] [loads N]\n");
		return 2;
	}
	if (!strcmp(argv[1], "latency")) {
		size_t llen = strtoull(argv[2], NULL, 10) << 20, np = llen / PAGE;
		unsigned char *q = region(llen, argv[3]);
		double *us = malloc(np * sizeof(*us));
		if (!us)
			return 1;
		for (size_t i = 0; i < np; i++) {
			double t = now_s();
			q[i * PAGE] = 1;
			us[i] = (now_s() - t) * 1e6;
		}
		qsort(us, np, sizeof(*us), cmp);
		printf("p50_us=%.2f p99_us=%.2f p999_us=%.2f max_us=%.0f huge_kb=%ld\n", us[np / 2],
		       us[np * 99 / 100], us[np * 999 / 1000], us[np - 1], smaps_kb(q, "AnonHugePages"));
		return 0;
	}
	int bloat = !strcmp(argv[1], "bloat");
	size_t len = strtoull(argv[2], NULL, 10) << 20;
	unsigned pct = bloat ? (unsigned)atoi(argv[3]) : 100;
	const char *advice = argv[bloat ? 4 : 3];
	int wait_s = 0;
	uint64_t loads = 20000000;
	for (int i = bloat ? 5 : 4; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "wait"))
			wait_s = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "loads"))
			loads = strtoull(argv[i + 1], NULL, 10);
	}
	unsigned char *p = region(len, advice);
	if (bloat) {
		/* in a scattered order (an odd step through a power-of-two
		 * count of pages is a permutation): ascending touches would
		 * look sequential to memgrp's fault-around */
		size_t touched = 0, np = len / PAGE;
		for (size_t j = 0; j < np; j++) {
			size_t i = (j * 0x9E3779B1UL) & (np - 1);
			if (mix(i + 1) % 100 < pct) {
				p[i * PAGE] = 1;
				touched += PAGE;
			}
		}
		wait_stable(p, wait_s);
		long rss = smaps_kb(p, "Rss"), huge = smaps_kb(p, "AnonHugePages");
		printf("touched_kb=%zu rss_kb=%ld huge_kb=%ld bloat_pct=%.2f\n", touched / 1024, rss, huge,
		       touched ? 100.0 * ((double)rss * 1024 - (double)touched) / (double)touched : 0);
		return 0;
	}
	/* speed: a single cycle through every line (Sattolo), stored in place */
	size_t n = len / LINE;
	uint64_t *slot = (uint64_t *)p;
	double t0 = now_s();
	for (size_t i = 0; i < n; i++)
		slot[i * (LINE / 8)] = i;
	for (size_t i = n - 1; i > 0; i--) {
		size_t j = mix(i) % i;
		uint64_t t = slot[i * (LINE / 8)];
		slot[i * (LINE / 8)] = slot[j * (LINE / 8)];
		slot[j * (LINE / 8)] = t;
	}
	double build = now_s() - t0;
	wait_stable(p, wait_s);
	uint64_t at = 0;
	t0 = now_s();
	for (uint64_t k = 0; k < loads; k++)
		at = slot[at * (LINE / 8)];
	double dt = now_s() - t0;
	printf("ns_per_load=%.2f huge_kb=%ld region_kb=%zu build_s=%.2f end=%llu\n", dt * 1e9 / (double)loads,
	       smaps_kb(p, "AnonHugePages"), len / 1024, build, (unsigned long long)at);
	return 0;
}

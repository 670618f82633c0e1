/* oom.c - bench/oom.sh's processes: a victim that holds memory, and a grower whose longest page fault is the OOM stall. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static char *map(long mb)
{
	char *p = mmap(NULL, (size_t)mb << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	/* 4 KiB faults, as memgrp resolves them (and the kernel's memcg
	 * then charges page by page too) */
	madvise(p, (size_t)mb << 20, MADV_NOHUGEPAGE);
	return p;
}

/*
 * Usage: bench_oom hold MB   touches MB, says "holding", waits to be killed.
 *        bench_oom grow MB   touches MB page by page and prints the longest
 *                            single-page write, in microseconds ("stall_us
 *                            N"): the one that waited for the OOM kill, from
 *                            the refused charge to the fault resuming.
 * Both check that what they wrote reads back.
 */
int main(int argc, char **argv)
{
	long mb = argc == 3 ? atol(argv[2]) : 0;

	if (mb <= 0 || (strcmp(argv[1], "hold") && strcmp(argv[1], "grow"))) {
		fprintf(stderr, "usage: bench_oom hold|grow MB\n");
		return 2;
	}
	long pages = mb << 8;
	char *p = map(mb);
	if (!strcmp(argv[1], "hold")) {
		for (long i = 0; i < pages; i++)
			p[i << 12] = (char)(i | 1);
		printf("holding %ld MB\n", mb);
		fflush(stdout);
		for (;;)
			pause();
	}
	double worst = 0;
	for (long i = 0; i < pages; i++) {
		double t0 = now_us();
		p[i << 12] = (char)(i | 1);
		double t = now_us() - t0;
		if (t > worst)
			worst = t;
	}
	for (long i = 0; i < pages; i++)
		if (p[i << 12] != (char)(i | 1)) {
			fprintf(stderr, "bench_oom: page %ld reads back wrong\n", i);
			return 3;
		}
	printf("stall_us %.0f\n", worst);
	return 0;
}

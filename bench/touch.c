/* touch.c - first-touch cost of anonymous pages, the kernel path memgrp sits on. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

/* Usage: touch PAGES. Maps PAGES anonymous pages, writes one byte per page,
 * prints ns per page. Run it at the root and inside a kernel memcg to see
 * what the kernel's own charge costs. */
int main(int argc, char **argv)
{
	long pages = argc > 1 ? atol(argv[1]) : 0;
	struct timespec t0, t1;
	char *p;

	if (pages <= 0) {
		fprintf(stderr, "usage: touch PAGES\n");
		return 2;
	}
	p = mmap(NULL, pages * 4096L, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	madvise(p, pages * 4096L, MADV_NOHUGEPAGE); /* 4K faults, as memgrp sees them */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (long i = 0; i < pages; i++)
		p[i * 4096L] = 1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("%.1f\n", ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / pages);
	return 0;
}

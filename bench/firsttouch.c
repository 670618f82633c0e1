/* firsttouch.c - first-touch time of anonymous pages, split over threads. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>

/* Usage: firsttouch PAGES THREADS [STRIDE]. Maps PAGES pages (4K faults:
 * no THP); each thread writes one byte in every STRIDE-th page (default 1)
 * of its share. Prints the total time in ms, ns per touched page, and the
 * process's peak RSS in KiB. */

static char *base;
static long per_thread, stride = 1;

static void *toucher(void *arg)
{
	char *p = base + (long)(intptr_t)arg * per_thread * 4096L;
	for (long i = 0; i < per_thread; i += stride)
		p[i * 4096L] = 1;
	return NULL;
}

int main(int argc, char **argv)
{
	long pages = argc > 1 ? atol(argv[1]) : 0;
	int threads = argc > 2 ? atoi(argv[2]) : 1;
	struct rusage ru;
	pthread_t t[64];
	struct timespec t0, t1;
	double ns;

	stride = argc > 3 ? atol(argv[3]) : 1;
	if (pages <= 0 || threads < 1 || threads > 64 || pages % threads || stride < 1) {
		fprintf(stderr, "usage: firsttouch PAGES THREADS (PAGES a multiple of THREADS)\n");
		return 2;
	}
	base = mmap(NULL, pages * 4096L, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (base == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	madvise(base, pages * 4096L, MADV_NOHUGEPAGE);
	per_thread = pages / threads;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < threads; i++)
		pthread_create(&t[i], NULL, toucher, (void *)(intptr_t)i);
	for (int i = 0; i < threads; i++)
		pthread_join(t[i], NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ns = (t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec);
	getrusage(RUSAGE_SELF, &ru);
	printf("%.1f %.1f %ld\n", ns / 1e6, ns / (pages / stride), ru.ru_maxrss);
	return 0;
}

/* threads.c - N threads fault and verify their own buffers concurrently. */
#include <pthread.h>
#include <string.h>

#include "common.h"

static size_t per_thread;

static void *worker(void *arg)
{
	uint64_t seed = (uint64_t)(uintptr_t)arg;
	unsigned char *p = malloc(per_thread);
	long bad;

	if (!p)
		DIE("malloc failed");
	for (int round = 0; round < 3; round++) {
		fill(p, per_thread, seed + (uint64_t)round);
		if ((bad = verify(p, per_thread, seed + (uint64_t)round)) >= 0)
			DIE("thread %llu: byte %ld differs", (unsigned long long)seed, bad);
	}
	free(p);
	return NULL;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 4;
	pthread_t t[64];

	per_thread = (size_t)(argc > 2 ? atol(argv[2]) : 32) << 20;
	if (n < 1 || n > 64)
		DIE("usage: threads N MB_PER_THREAD");
	for (int i = 0; i < n; i++)
		pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)(i + 1));
	for (int i = 0; i < n; i++)
		pthread_join(t[i], NULL);
	printf("threads ok: %d x %zu MB verified\n", n, per_thread >> 20);
	return 0;
}

/* remaprace.c - one thread's mremap moves a mapping into the range another thread's mremap just vacated. */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

/*
 * Usage: prog_remaprace ROUNDS CHURN_MB [reverse]
 *
 * Each round, thread A maps and fills a range X, then grows it with mremap,
 * which moves it elsewhere (a guard page stops it growing in place). The
 * kernel queues the REMAP event, waits until the agent has read it, and
 * only then queues the UNMAP of X. Thread B, which has filled a mapping of
 * its own and let it go cold (evicted: the agent holds its pages), waits
 * for X to be vacated and moves its mapping there (MREMAP_FIXED): its REMAP
 * then often comes before A's UNMAP of X. An agent that took that late
 * UNMAP at its word dropped B's evicted pages, and B read zeros. A third
 * thread keeps rewriting CHURN_MB, so that the group stays at its limit and
 * B's cold pages are evicted. Exit 0 when every byte was right.
 *
 * "reverse" makes the other order happen: A lets X go cold too and moves
 * it with MREMAP_FIXED onto a range Y that is mapped (and registered). The
 * kernel then queues, after dropping the mmap lock, first the UNMAP of Y's
 * old mapping, waits until the agent has read it, and only then the REMAP
 * of X to Y. B, spinning until X is vacated, moves its mapping into X in
 * that round trip, so B's REMAP (into X) comes before A's (out of X). An
 * agent that took what it held at X for stale when B's REMAP came dropped
 * A's evicted pages, and then moved B's to Y with A's REMAP: both read
 * zeros.
 */

#define PAGE 4096UL
#define PAGES 64

static pthread_barrier_t round_start, round_end;
static unsigned char *_Atomic x_range; /* A's range, for B to move into */
static atomic_bool stop;
static unsigned char *churn;
static size_t churn_len;

static void *churner(void *arg)
{
	(void)arg;
	rewrite_until(churn, churn_len, &stop, NULL, "churn buffer");
	return NULL;
}

/* Whether any of [p, p + len) is mapped (mincore fails with ENOMEM on a
 * range that is not all mapped). */
static bool mapped(void *p, size_t len)
{
	unsigned char vec[PAGES * 2];
	return mincore(p, len, vec) == 0 || errno != ENOMEM;
}

static unsigned resident(void *p, size_t len)
{
	unsigned char vec[PAGES];
	unsigned n = 0;

	if (mincore(p, len, vec) != 0)
		return 0;
	for (size_t i = 0; i < len / PAGE; i++)
		n += vec[i] & 1;
	return n;
}

static int rounds;
static bool reverse;
static atomic_int moved_in;

/* Waits until at most a quarter of [p, p + len) is resident (2 s at most):
 * most of it evicted, held by the agent. */
static void let_go_cold(unsigned char *p, size_t len)
{
	for (int i = 0; i < 2000 && resident(p, len) > PAGES / 4; i++)
		usleep(1000);
}

static void *mover_a(void *arg)
{
	size_t len = PAGES * PAGE;

	(void)arg;
	for (int r = 0; r < rounds; r++) {
		unsigned char *p = mmap(NULL, len + PAGE, PROT_READ | PROT_WRITE,
					MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			DIE("mmap failed");
		/* the guard: growing in place is impossible */
		if (mprotect(p + len, PAGE, PROT_NONE) != 0)
			DIE("mprotect failed");
		fill(p, len, (uint64_t)r << 20 | 1);
		unsigned char *y = NULL;
		if (reverse) {
			y = mmap(NULL, 2 * len, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			if (y == MAP_FAILED)
				DIE("mmap failed");
			y[0] = 1; /* Y is in use: its UNMAP is queued first */
			let_go_cold(p, len);
		}
		atomic_store(&x_range, p);
		pthread_barrier_wait(&round_start);
		unsigned char *q = reverse
			? mremap(p, len, 2 * len, MREMAP_MAYMOVE | MREMAP_FIXED, y)
			: mremap(p, len, 2 * len, MREMAP_MAYMOVE);
		if (q == MAP_FAILED)
			DIE("mremap (A) failed");
		long bad = verify(q, len, (uint64_t)r << 20 | 1);
		if (bad >= 0)
			DIE("round %d: A's range, moved, byte %ld wrong", r, bad);
		pthread_barrier_wait(&round_end);
		munmap(q, 2 * len);
		munmap(p + len, PAGE);
	}
	return NULL;
}

static void *mover_b(void *arg)
{
	size_t len = PAGES * PAGE;

	(void)arg;
	for (int r = 0; r < rounds; r++) {
		unsigned char *b = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
					-1, 0);
		if (b == MAP_FAILED)
			DIE("mmap failed");
		fill(b, len, (uint64_t)r << 20 | 2);
		let_go_cold(b, len);
		pthread_barrier_wait(&round_start);
		unsigned char *x = atomic_load(&x_range);
		while (mapped(x, len))
			; /* until A's mremap has moved it away */
		unsigned char *at = mremap(b, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, x);
		if (at == MAP_FAILED)
			DIE("mremap (B) failed");
		atomic_fetch_add(&moved_in, 1);
		long bad = verify(at, len, (uint64_t)r << 20 | 2);
		if (bad >= 0)
			DIE("round %d: B's range, moved into the range A vacated, byte %ld wrong "
			    "(page %ld)", r, bad, bad / (long)PAGE);
		pthread_barrier_wait(&round_end);
		munmap(at, len);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc < 3 || argc > 4 || (rounds = atoi(argv[1])) < 1 ||
	    (argc == 4 && strcmp(argv[3], "reverse") != 0))
		DIE("usage: prog_remaprace ROUNDS CHURN_MB [reverse]");
	reverse = argc == 4;
	churn_len = strtoul(argv[2], NULL, 10) << 20;
	churn = mmap(NULL, churn_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (!churn_len || churn == MAP_FAILED)
		DIE("CHURN_MB: a size to map");
	pthread_barrier_init(&round_start, NULL, 2);
	pthread_barrier_init(&round_end, NULL, 2);
	pthread_t c, a, b;
	pthread_create(&c, NULL, churner, NULL);
	pthread_create(&a, NULL, mover_a, NULL);
	pthread_create(&b, NULL, mover_b, NULL);
	pthread_join(a, NULL);
	pthread_join(b, NULL);
	atomic_store(&stop, true);
	pthread_join(c, NULL);
	printf("remaprace ok: %d rounds, every byte right\n", atomic_load(&moved_in));
	return 0;
}

/* evict.c - writes a pattern over more memory than its group may hold and reads it back. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

/*
 * Usage: prog_evict MB [threads N] [rounds R] [fork] [random]
 *
 * Maps MB of anonymous memory and, R rounds over, has N threads write every
 * page with a pattern of its own (seeded by the page's number and the
 * round) and then check every page: under a group limit smaller than MB,
 * pages are evicted and restored all the while, and a page that came back
 * wrong (zeros, another page's, a stale round's) is reported with where.
 * The threads take interleaved pages, so they race each other's faults and
 * the evictions. `random` visits pages in a shuffled order each round.
 * With `fork`, after the writes the process forks; the child checks every
 * page, writes a pattern of its own over all of them and checks again,
 * while the parent checks its own: each sees its own data, whatever was
 * evicted when. Exit 0 and one line of figures when every byte was right.
 */

#define PAGE 4096UL

static unsigned char *mem;
static size_t pages, nthreads = 1, rounds = 1;
static bool shuffle;
static atomic_ulong bad_pages;

static uint64_t seed_of(size_t page, uint64_t round)
{
	return (page + 1) * 0x100000001B3ULL ^ (round << 48);
}

struct worker {
	size_t id;
	pthread_t t;
};

/* The i-th page a thread visits: its interleaved share, shuffled or not. */
static size_t nth(size_t id, size_t i, uint64_t round)
{
	size_t mine = (pages - id + nthreads - 1) / nthreads;
	if (shuffle) /* a bijection on [0, mine): multiply by an odd number */
		i = (i * 2654435761ULL + round * 40503ULL) % mine;
	return id + i * nthreads;
}

static void *work(void *arg)
{
	struct worker *w = arg;
	size_t mine = (pages - w->id + nthreads - 1) / nthreads;

	for (uint64_t r = 0; r < rounds; r++) {
		for (size_t i = 0; i < mine; i++) {
			size_t p = nth(w->id, i, r);
			fill(mem + p * PAGE, PAGE, seed_of(p, r));
		}
		for (size_t i = 0; i < mine; i++) {
			size_t p = nth(w->id, i, r + 7);
			long at = verify(mem + p * PAGE, PAGE, seed_of(p, r));
			if (at >= 0) {
				if (atomic_fetch_add(&bad_pages, 1) < 5)
					fprintf(stderr, "round %llu: page %zu wrong at byte %ld "
						"(%#x)\n", (unsigned long long)r, p, at,
						mem[p * PAGE + (size_t)at]);
			}
		}
	}
	return NULL;
}

/* Checks every page against round r's pattern; returns the bad pages. */
static size_t check_all(uint64_t r, const char *who)
{
	size_t bad = 0;

	for (size_t p = 0; p < pages; p++) {
		long at = verify(mem + p * PAGE, PAGE, seed_of(p, r));
		if (at >= 0 && bad++ < 5)
			fprintf(stderr, "%s: page %zu wrong at byte %ld\n", who, p, at);
	}
	return bad;
}

int main(int argc, char **argv)
{
	bool do_fork = false;
	size_t mb;

	if (argc < 2 || (mb = strtoul(argv[1], NULL, 10)) == 0)
		DIE("usage: prog_evict MB [threads N] [rounds R] [fork] [random]");
	for (int i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "threads") && i + 1 < argc)
			nthreads = strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "rounds") && i + 1 < argc)
			rounds = strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "fork"))
			do_fork = true;
		else if (!strcmp(argv[i], "random"))
			shuffle = true;
		else
			DIE("unknown argument '%s'", argv[i]);
	}
	if (nthreads < 1 || nthreads > 64 || rounds < 1)
		DIE("threads 1..64, rounds 1..");
	pages = mb * 256;
	mem = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		DIE("mmap failed");

	struct worker w[64];
	for (size_t i = 0; i < nthreads; i++) {
		w[i].id = i;
		if (pthread_create(&w[i].t, NULL, work, &w[i]) != 0)
			DIE("pthread_create failed");
	}
	for (size_t i = 0; i < nthreads; i++)
		pthread_join(w[i].t, NULL);
	if (bad_pages)
		DIE("FAIL: %lu page(s) read back wrong", (unsigned long)bad_pages);

	if (do_fork) {
		uint64_t last = rounds - 1;
		pid_t child = fork();
		if (child < 0)
			DIE("fork failed");
		if (child == 0) {
			size_t bad = check_all(last, "child");
			for (size_t p = 0; p < pages; p++)
				fill(mem + p * PAGE, PAGE, seed_of(p, 1000));
			bad += check_all(1000, "child, after its writes");
			if (bad)
				fprintf(stderr, "FAIL: child read %zu page(s) wrong\n", bad);
			_exit(bad ? 1 : 0);
		}
		size_t bad = check_all(last, "parent");
		int st;
		waitpid(child, &st, 0);
		bad += check_all(last, "parent, after the child");
		if (bad)
			DIE("FAIL: parent read %zu page(s) wrong", bad);
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			DIE("FAIL: the child failed (status %#x)", st);
	}
	printf("ok: %zu MiB, %zu thread(s), %zu round(s)%s: every page read back right\n", mb,
	       nthreads, rounds, do_fork ? ", fork: parent and child" : "");
	return 0;
}

/* estguard.c - random map/touch/discard/unmap sequences for estimate mode's guarantee. */
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rss.h"

/*
 * Usage: estguard STEPS SEED BUDGET_MB [over|overmmap|nofork]
 *
 * Maps regions (mmap, and big malloc blocks, which glibc maps and unmaps
 * on its own where no interposition sees it), touches pages, discards some
 * (MADV_DONTNEED), unmaps whole and partial regions, forks now and then,
 * in a random order. Touched pages never add up to more than BUDGET_MB:
 * under a limit above the budget, exact accounting would never refuse
 * this program a page, and neither may estimate accounting (seed 001: no
 * denial while any region is fast): the program must not be killed.
 * Mapped memory goes far past the limit, so regions do turn slow.
 * Every touched page holds a word naming its region and page, checked
 * all through (after every switch of mode the data must be there), and in
 * forked children. Exit 0 with a summary; 2 on a wrong word.
 *
 * With `over` (no forks), the budget is ignored after the random phase:
 * the program touches everything it has mapped until it is killed at the
 * limit, printing its largest RssAnon (/proc/self/status) as it goes.
 * `nofork`: no forks (a child is charged for the pages it shares with its
 * parent, which puts the group's usage above its limit for a moment).
 * `overmmap`: `over` with every region from mmap, none from malloc. For a
 * sanitizer build: its runtime's malloc comes before the agent's wrappers
 * and maps its blocks with raw system calls, so estimate mode finds them
 * only at its once-a-second rescan, after the program has touched them
 * (docs/design.md "Known gaps"); the limit's bound is then a test of the
 * sanitizer's allocator, not of the agent.
 */

#define PAGE 4096UL
#define MAXR 256

struct region {
	unsigned char *p;
	size_t pages;
	uint64_t id;
	unsigned char *touched; /* per page */
	int from_malloc;
};

static struct region rs[MAXR];
static unsigned nr;
static uint64_t next_id = 1, touched_pages, budget_pages;
static uint64_t rng;
static int no_malloc;

static uint64_t rnd(uint64_t n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return n ? rng % n : 0;
}

static uint64_t word(const struct region *r, size_t i)
{
	return r->id << 32 | (uint64_t)i;
}

static int verify(const struct region *r)
{
	/* Touched pages only: reading the others would make them resident
	 * (exact mode gives a read fault a real page). */
	for (size_t i = 0; i < r->pages; i++) {
		if (!r->touched[i])
			continue;
		uint64_t got = *(volatile uint64_t *)(r->p + i * PAGE);
		uint64_t want = word(r, i);
		if (got != want) {
			fprintf(stderr, "estguard: region %llu page %zu: %#llx, want %#llx\n",
				(unsigned long long)r->id, i, (unsigned long long)got,
				(unsigned long long)want);
			return -1;
		}
	}
	return 0;
}

static int verify_all(void)
{
	for (unsigned k = 0; k < nr; k++)
		if (verify(&rs[k]) != 0)
			return -1;
	return 0;
}

static void add_region(size_t pages)
{
	struct region *r = &rs[nr];
	int use_malloc = rnd(3) == 0 && !no_malloc;

	if (use_malloc) {
		/* Large: glibc maps it itself (pitfall 5); page aligned for us. */
		void *p = NULL;
		if (posix_memalign(&p, PAGE, pages * PAGE) != 0)
			return;
		memset(p, 0, 64); /* as if the application wrote a header */
		r->p = p;
	} else {
		r->p = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			    -1, 0);
		if (r->p == MAP_FAILED)
			return;
	}
	/* Real use is what we touch: no huge page behind a first touch. */
	madvise(r->p, pages * PAGE, MADV_NOHUGEPAGE);
	r->touched = calloc(pages, 1);
	r->pages = pages;
	r->id = next_id++;
	r->from_malloc = use_malloc;
	if (use_malloc) /* its first page had the header: keep our word there */
		*(uint64_t *)r->p = 0;
	nr++;
}

static void drop_region(unsigned k)
{
	struct region *r = &rs[k];

	for (size_t i = 0; i < r->pages; i++)
		touched_pages -= r->touched[i];
	if (r->from_malloc)
		free(r->p);
	else
		munmap(r->p, r->pages * PAGE);
	free(r->touched);
	rs[k] = rs[--nr];
}

static void touch(struct region *r, size_t i)
{
	if (r->touched[i])
		return;
	*(uint64_t *)(r->p + i * PAGE) = word(r, i);
	r->touched[i] = 1;
	touched_pages++;
}

int main(int argc, char **argv)
{
	uint64_t steps, maps = 0, unmaps = 0, partial = 0, discards = 0, forks = 0, checks = 0;
	int over, nofork;

	if (argc < 4) {
		fprintf(stderr, "usage: estguard STEPS SEED BUDGET_MB [over|overmmap|nofork]\n");
		return 1;
	}
	steps = strtoull(argv[1], NULL, 0);
	rng = strtoull(argv[2], NULL, 0) | 1;
	budget_pages = strtoull(argv[3], NULL, 0) << 20 >> 12;
	no_malloc = argc > 4 && strcmp(argv[4], "overmmap") == 0;
	over = no_malloc || (argc > 4 && strcmp(argv[4], "over") == 0);
	nofork = over || (argc > 4 && strcmp(argv[4], "nofork") == 0);
	/* Large blocks always mapped afresh (zeros), as glibc does before its
	 * threshold moves up after the first free. */
	mallopt(M_MMAP_THRESHOLD, 64 << 10);

	for (uint64_t s = 0; s < steps; s++) {
		unsigned op = (unsigned)rnd(100);
		if (op < 12 && nr < MAXR) {
			/* 16 KiB to 16 MiB, mostly small */
			size_t pages = rnd(4) ? 17 + rnd(256) : 256 + rnd(4096 - 256);
			add_region(pages);
			maps++;
		} else if (op < 80 && nr) {
			struct region *r = &rs[rnd(nr)];
			size_t n = 1 + rnd(64), at = rnd(r->pages);
			for (size_t i = at; i < at + n && i < r->pages; i++)
				if (touched_pages < budget_pages)
					touch(r, i);
		} else if (op < 86 && nr) {
			struct region *r = &rs[rnd(nr)];
			size_t at = rnd(r->pages), n = 1 + rnd(r->pages - at);
			if (r->from_malloc && at == 0)
				at = 1, n = n > 1 ? n - 1 : 0;
			if (n && madvise(r->p + at * PAGE, n * PAGE, MADV_DONTNEED) == 0) {
				for (size_t i = at; i < at + n; i++) {
					touched_pages -= r->touched[i];
					r->touched[i] = 0;
				}
				discards++;
			}
		} else if (op < 92 && nr) {
			drop_region((unsigned)rnd(nr));
			unmaps++;
		} else if (op < 96 && nr) {
			/* unmap the tail half of an mmap'd region */
			struct region *r = &rs[rnd(nr)];
			if (!r->from_malloc && r->pages >= 2) {
				size_t keep = r->pages / 2;
				for (size_t i = keep; i < r->pages; i++)
					touched_pages -= r->touched[i];
				munmap(r->p + keep * PAGE, (r->pages - keep) * PAGE);
				r->pages = keep;
				partial++;
			}
		} else if (op < 97) {
			if (verify_all() != 0)
				return 2;
			checks++;
		} else if (op == 97 && forks < 4 && !nofork) {
			pid_t c = fork();
			if (c == 0)
				_exit(verify_all() == 0 ? 0 : 2);
			int st = 0;
			if (c < 0 || waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
				fprintf(stderr, "estguard: forked child failed (status %#x)\n", st);
				return 2;
			}
			forks++;
		}
	}
	if (verify_all() != 0)
		return 2;
	uint64_t mapped = 0;
	for (unsigned k = 0; k < nr; k++)
		mapped += rs[k].pages;
	printf("estguard: %llu steps: %llu maps, %llu unmaps, %llu partial, %llu discards, "
	       "%llu forks, %llu checks; now %llu MiB mapped, %llu MiB touched: verified\n",
	       (unsigned long long)steps, (unsigned long long)maps, (unsigned long long)unmaps,
	       (unsigned long long)partial, (unsigned long long)discards,
	       (unsigned long long)forks, (unsigned long long)checks,
	       (unsigned long long)(mapped * PAGE >> 20),
	       (unsigned long long)(touched_pages * PAGE >> 20));
	fflush(stdout);
	if (over) {
		/* Past the budget: everything mapped, plus more, until killed. */
		long max_rss = 0;
		for (;;) {
			for (unsigned k = 0; k < nr; k++) {
				for (size_t i = 0; i < rs[k].pages; i++)
					touch(&rs[k], i);
				long rss = rss_anon_kb();
				if (rss > max_rss) {
					max_rss = rss;
					printf("estguard: RssAnon %ld kB\n", rss);
					fflush(stdout);
				}
			}
			if (nr < MAXR)
				add_region(4096);
			else
				break;
		}
		printf("estguard: not stopped at the limit (%llu MiB touched)\n",
		       (unsigned long long)(touched_pages * PAGE >> 20));
		return 3;
	}
	return 0;
}

/* thp.c - touches a share of every 2 MiB block of a region, waits for huge pages, and checks every byte across fork, mremap and eviction. */
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

/*
 * Usage: prog_thp MB PERCENT [wait SECS] [drop N] [fork] [mremap] [press MB2] [hold SECS] [touched-only]
 *
 * Maps MB (a multiple of 2) at a 2 MiB aligned address and writes a
 * pattern into the first PERCENT % of the pages of every block (the rest
 * stay untouched). Then waits up to SECS (default 10) until the region's
 * AnonHugePages covers every block, or until SECS pass (0: no wait), and prints
 * `huge_kb=H region_kb=R` (H as /proc/self/smaps says, at the end of the
 * wait). Then, in this order, each when asked:
 *  - drop N: gives back (MADV_DONTNEED) the last N touched pages of every
 *    block (they must read zeros after), waits SECS again and prints
 *    `dropped_huge_kb=H` (the kernel splits a huge page that loses a
 *    page; under the threshold again, it must stay split);
 *  - press MB2: maps and writes MB2 more (under a limit with swap, the
 *    first region's pages are evicted) and frees it again;
 *  - mremap: moves the region to another aligned address, prints
 *    `moved_huge_kb=H`;
 *  - fork: the child checks every byte, writes its own pattern and checks
 *    again; the parent checks its own meanwhile;
 *  - hold SECS: sleeps (a test looks at the process meanwhile).
 * Every byte is checked at the end: touched pages hold their pattern,
 * untouched ones zeros (not read with touched-only: reading them would
 * fault them in). Exit 0 and `bad=0` when all were right.
 */

#define PAGE 4096UL
#define BLOCK (2UL << 20)

static long huge_kb_of(const void *addr)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	bool inside = false;
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
		if (inside && sscanf(line, "AnonHugePages: %ld kB", &kb) == 1)
			break;
	}
	fclose(f);
	return kb;
}

static unsigned char *region;
static size_t blocks, touched; /* touched: pages per block */
static bool touched_only;       /* check only the touched pages */

static size_t check(uint64_t salt)
{
	size_t bad = 0;
	static const unsigned char zero[PAGE];
	for (size_t b = 0; b < blocks; b++)
		for (size_t i = 0; i < BLOCK / PAGE; i++) {
			unsigned char *p = region + b * BLOCK + i * PAGE;
			if (i >= touched && touched_only)
				continue;
			bool wrong = i < touched ? verify(p, PAGE, (b * 512 + i + 1) ^ salt) >= 0
						 : memcmp(p, zero, PAGE) != 0;
			if (wrong && bad++ < 5)
				fprintf(stderr, "block %zu page %zu wrong\n", b, i);
		}
	return bad;
}

/* Pages are written in a scattered order (263 is prime to 512), so that
 * the agent's fault-around, which follows sequential faults, does not
 * fill the untouched part of a block: what gets there is the promotion's. */
static void write_all(uint64_t salt)
{
	for (size_t b = 0; b < blocks; b++)
		for (size_t j = 0; j < BLOCK / PAGE; j++) {
			size_t i = j * 263 % (BLOCK / PAGE);
			if (i < touched)
				fill(region + b * BLOCK + i * PAGE, PAGE, (b * 512 + i + 1) ^ salt);
		}
}

static unsigned char *aligned_map(size_t len)
{
	unsigned char *raw = mmap(NULL, len + BLOCK, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (raw == MAP_FAILED)
		DIE("mmap: %m");
	unsigned char *p = (unsigned char *)(((uintptr_t)raw + BLOCK - 1) & ~(BLOCK - 1));
	if (p > raw)
		munmap(raw, (size_t)(p - raw));
	munmap(p + len, (size_t)(raw + BLOCK - p));
	return p;
}

int main(int argc, char **argv)
{
	if (argc < 3)
		DIE("usage: prog_thp MB PERCENT [wait SECS] [drop N] [fork] [mremap] [press MB2] [hold SECS] "
		    "[touched-only]");
	size_t mb = strtoull(argv[1], NULL, 10);
	unsigned pct = (unsigned)strtoul(argv[2], NULL, 10);
	int wait_s = 10, hold_s = 0;
	bool do_fork = false, do_mremap = false;
	size_t press_mb = 0, drop = 0;
	for (int i = 3; i < argc; i++) {
		if (!strcmp(argv[i], "wait") && i + 1 < argc)
			wait_s = atoi(argv[++i]);
		else if (!strcmp(argv[i], "hold") && i + 1 < argc)
			hold_s = atoi(argv[++i]);
		else if (!strcmp(argv[i], "drop") && i + 1 < argc)
			drop = strtoull(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "press") && i + 1 < argc)
			press_mb = strtoull(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "fork"))
			do_fork = true;
		else if (!strcmp(argv[i], "mremap"))
			do_mremap = true;
		else if (!strcmp(argv[i], "touched-only"))
			touched_only = true;
		else
			DIE("prog_thp: unknown argument %s", argv[i]);
	}
	if (mb < 2 || mb % 2 || pct > 100)
		DIE("prog_thp: MB must be an even number >= 2, PERCENT 0..100");
	blocks = mb / 2;
	touched = pct * (BLOCK / PAGE) / 100;
	size_t len = blocks * BLOCK;
	region = aligned_map(len);
	write_all(0);

	long huge = 0;
	struct timespec tick = {0, 100 * 1000 * 1000};
	for (int t = 0; t < wait_s * 10; t++) {
		huge = huge_kb_of(region);
		if (huge >= (long)(len / 1024))
			break;
		nanosleep(&tick, NULL);
	}
	huge = huge_kb_of(region);
	printf("huge_kb=%ld region_kb=%zu\n", huge, len / 1024);
	fflush(stdout);

	if (drop) {
		if (drop > touched)
			drop = touched;
		for (size_t b = 0; b < blocks; b++)
			madvise(region + b * BLOCK + (touched - drop) * PAGE, drop * PAGE, MADV_DONTNEED);
		touched -= drop;
		for (int t = 0; t < wait_s * 10; t++)
			nanosleep(&tick, NULL);
		printf("dropped_huge_kb=%ld\n", huge_kb_of(region));
		fflush(stdout);
	}
	if (press_mb) {
		unsigned char *q = aligned_map(press_mb << 20);
		for (size_t i = 0; i < (press_mb << 20); i += PAGE)
			fill(q + i, PAGE, i + 77);
		for (size_t i = 0; i < (press_mb << 20); i += PAGE)
			if (verify(q + i, PAGE, i + 77) >= 0)
				DIE("press: page %zu wrong", i / PAGE);
		printf("pressed_huge_kb=%ld\n", huge_kb_of(region));
		munmap(q, press_mb << 20);
	}
	if (do_mremap) {
		unsigned char *to = aligned_map(len);
		void *r = mremap(region, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, to);
		if (r == MAP_FAILED)
			DIE("mremap: %m");
		region = r;
		printf("moved_huge_kb=%ld\n", huge_kb_of(region));
	}
	size_t bad = 0;
	if (do_fork) {
		fflush(stdout);
		pid_t c = fork();
		if (c < 0)
			DIE("fork: %m");
		if (c == 0) {
			size_t cb = check(0);
			write_all(0x5a5a);
			cb += check(0x5a5a);
			printf("child_bad=%zu\n", cb);
			fflush(stdout);
			_exit(cb ? 1 : 0);
		}
		bad += check(0);
		int st;
		waitpid(c, &st, 0);
		if (!WIFEXITED(st) || WEXITSTATUS(st))
			bad++;
	}
	if (hold_s)
		sleep((unsigned)hold_s);
	bad += check(0);
	printf("bad=%zu\n", bad);
	return bad ? 1 : 0;
}

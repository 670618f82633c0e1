/* forkchain.c - fork with pages evicted: a chain of forks that each evict, and fork timing. */
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

/*
 * Usage: prog_forkchain MB chain DEPTH
 *        prog_forkchain MB time N
 *
 * chain: level 0 maps MB and writes its pattern over every page (under a
 * group limit smaller than MB most of it is evicted), checks it, and
 * forks; the child checks every page it inherited, writes its own level's
 * pattern over every page (evicting in turn), checks it and forks the next
 * level, DEPTH levels below the first. Each level, once its child is
 * done, checks its own pattern again: a fork must lose no page of either
 * side, evicted or not, at any depth. Exit 0 with "chain ok" when every
 * byte of every level was right.
 *
 * time: writes MB, then forks N times a child that exits at once and
 * prints the median and the maximum of fork()'s time in the parent and of
 * the time from fork() to the child's exit being reaped (the child's start
 * included), in microseconds: the same program runs managed and not.
 */

#define PAGE 4096UL

static unsigned char *mem;
static size_t pages;

static uint64_t seed_of(size_t page, unsigned level)
{
	return (page + 1) * 0x100000001B3ULL ^ ((uint64_t)(level + 1) << 52);
}

static void write_all(unsigned level)
{
	for (size_t p = 0; p < pages; p++)
		fill(mem + p * PAGE, PAGE, seed_of(p, level));
}

static size_t check_all(unsigned level, const char *who)
{
	size_t bad = 0;

	for (size_t p = 0; p < pages; p++) {
		long at = verify(mem + p * PAGE, PAGE, seed_of(p, level));
		if (at >= 0 && bad++ < 5)
			fprintf(stderr, "level %u, %s: page %zu wrong at byte %ld\n", level, who, p,
				at);
	}
	return bad;
}

/* Runs level `level` (its pattern already written) and the levels below. */
static int chain(unsigned level, unsigned depth)
{
	size_t bad = check_all(level, "before its fork");
	int st = 0;

	if (level < depth) {
		pid_t child = fork();
		if (child < 0)
			DIE("fork failed");
		if (child == 0) {
			size_t b = check_all(level, "inherited, in the child");
			write_all(level + 1);
			b += check_all(level + 1, "the child's own");
			if (b)
				_exit(1);
			_exit(chain(level + 1, depth));
		}
		bad += check_all(level, "while its child runs");
		if (waitpid(child, &st, 0) != child)
			DIE("waitpid failed");
		bad += check_all(level, "after its child");
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			fprintf(stderr, "level %u: child failed (status %#x)\n", level, st);
			return 1;
		}
	}
	if (bad)
		fprintf(stderr, "level %u: %zu page(s) wrong\n", level, bad);
	return bad ? 1 : 0;
}

static uint64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void timing(unsigned n)
{
	uint64_t *fork_us = calloc(n, sizeof(uint64_t)), *reap_us = calloc(n, sizeof(uint64_t));

	if (!fork_us || !reap_us)
		DIE("out of memory");
	for (unsigned i = 0; i < n; i++) {
		uint64_t t0 = now_us();
		pid_t child = fork();
		if (child < 0)
			DIE("fork failed");
		if (child == 0)
			_exit(0);
		uint64_t t1 = now_us();
		int st;
		if (waitpid(child, &st, 0) != child || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
			DIE("child failed");
		fork_us[i] = t1 - t0;
		reap_us[i] = now_us() - t0;
	}
	qsort(fork_us, n, sizeof(uint64_t), cmp_u64);
	qsort(reap_us, n, sizeof(uint64_t), cmp_u64);
	printf("fork_us p50 %llu max %llu; fork_to_reap_us p50 %llu max %llu\n",
	       (unsigned long long)fork_us[n / 2], (unsigned long long)fork_us[n - 1],
	       (unsigned long long)reap_us[n / 2], (unsigned long long)reap_us[n - 1]);
	free(fork_us);
	free(reap_us);
}

int main(int argc, char **argv)
{
	size_t mb;
	unsigned arg;

	if (argc != 4 || (mb = strtoul(argv[1], NULL, 10)) == 0 ||
	    (strcmp(argv[2], "chain") != 0 && strcmp(argv[2], "time") != 0) ||
	    (arg = (unsigned)strtoul(argv[3], NULL, 10)) == 0 || arg > 1000)
		DIE("usage: prog_forkchain MB chain DEPTH | prog_forkchain MB time N");
	pages = mb * 256;
	mem = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		DIE("mmap failed");
	write_all(0);
	if (!strcmp(argv[2], "time")) {
		if (check_all(0, "before the forks"))
			DIE("FAIL: pages wrong before the forks");
		timing(arg);
		if (check_all(0, "after the forks"))
			DIE("FAIL: pages wrong after the forks");
		return 0;
	}
	if (chain(0, arg) != 0)
		DIE("FAIL: chain of %u forks", arg);
	printf("chain ok: %zu MiB, %u levels below the first, every page of every level right\n",
	       mb, arg);
	return 0;
}

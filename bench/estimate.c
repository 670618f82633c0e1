/* estimate.c - a small unixbench-like suite for bench/estimate.sh (seed 001's experiments). */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/*
 * Usage: bench_estimate SECS BLOCKS DIR
 *
 * Seed 001 ran unixbench in a group; this is a suite in its spirit, four
 * workloads run one after the other for SECS seconds each, printed as one
 * line of operations per second:
 *   spawn  fork, the child exits, the parent waits (unixbench "process
 *          creation");
 *   pipe   512 bytes written to a pipe and read back ("pipe throughput");
 *   copy   a 4 MiB file copied with 4 KiB reads and writes, in DIR
 *          ("file copy"), in KiB per second;
 *   mem    a memory-allocating workload: BLOCKS blocks of 1 MiB, each
 *          with a quarter of its pages touched; one at random is freed and
 *          allocated again (a new mapping: glibc maps blocks this large),
 *          allocations per second.
 * The memory workload's blocks are held by a second process from the
 * start, so that the group's mapped memory (M, about BLOCKS MiB) and its
 * resident memory (R, about a quarter of it) are the same throughout.
 */

#define PAGE 4096UL
#define BLOCK (1UL << 20)

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void die(const char *what)
{
	fprintf(stderr, "bench_estimate: %s: %s\n", what, strerror(errno));
	exit(1);
}

static double run_spawn(double secs)
{
	double t0 = now_s(), t;
	uint64_t n = 0;

	do {
		pid_t c = fork();
		if (c < 0)
			die("fork");
		if (c == 0)
			_exit(0);
		if (waitpid(c, NULL, 0) != c)
			die("waitpid");
		n++;
	} while ((t = now_s()) - t0 < secs);
	return (double)n / (t - t0);
}

static double run_pipe(double secs)
{
	static char buf[512];
	int fd[2];
	double t0 = now_s(), t;
	uint64_t n = 0;

	memset(buf, 'p', sizeof(buf));
	if (pipe(fd) != 0)
		die("pipe");
	do {
		for (int i = 0; i < 256; i++, n++)
			if (write(fd[1], buf, sizeof(buf)) != (ssize_t)sizeof(buf) ||
			    read(fd[0], buf, sizeof(buf)) != (ssize_t)sizeof(buf))
				die("pipe i/o");
	} while ((t = now_s()) - t0 < secs);
	close(fd[0]);
	close(fd[1]);
	return (double)n / (t - t0);
}

static double run_copy(double secs, const char *dir)
{
	char src[4096], dst[4096], *buf = malloc(PAGE);
	double t0, t;
	uint64_t kib = 0;
	int in, out;

	snprintf(src, sizeof(src), "%s/bench-estimate-src.%d", dir, (int)getpid());
	snprintf(dst, sizeof(dst), "%s/bench-estimate-dst.%d", dir, (int)getpid());
	if (!buf || (out = open(src, O_WRONLY | O_CREAT | O_TRUNC, 0600)) < 0)
		die(src);
	memset(buf, 'c', PAGE);
	for (int i = 0; i < 1024; i++)
		if (write(out, buf, PAGE) != (ssize_t)PAGE)
			die("write");
	close(out);
	t0 = now_s();
	do {
		if ((in = open(src, O_RDONLY)) < 0 || (out = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0600)) < 0)
			die("open");
		ssize_t r;
		while ((r = read(in, buf, PAGE)) > 0) {
			if (write(out, buf, (size_t)r) != r)
				die("write");
			kib += (uint64_t)r / 1024;
		}
		close(in);
		close(out);
	} while ((t = now_s()) - t0 < secs);
	unlink(src);
	unlink(dst);
	free(buf);
	return (double)kib / (t - t0);
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(uint64_t n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng % n;
}

static void *new_block(void)
{
	unsigned char *p = malloc(BLOCK);
	if (!p)
		die("malloc");
	for (size_t off = 0; off < BLOCK; off += 4 * PAGE)
		p[off] = (unsigned char)off;
	return p;
}

/* The holder: allocates its blocks, says so, and churns them when told. */
static void holder(unsigned blocks, int cmd, int ans)
{
	void **b = calloc(blocks, sizeof(*b));
	double secs, t0, t, rate;
	uint64_t n = 0;

	for (unsigned i = 0; i < blocks; i++)
		b[i] = new_block();
	if (write(ans, "r", 1) != 1 || read(cmd, &secs, sizeof(secs)) != sizeof(secs))
		_exit(1);
	t0 = now_s();
	do {
		for (int i = 0; i < 16; i++, n++) {
			unsigned k = (unsigned)rnd(blocks);
			free(b[k]);
			b[k] = new_block();
		}
	} while ((t = now_s()) - t0 < secs);
	rate = (double)n / (t - t0);
	if (write(ans, &rate, sizeof(rate)) != sizeof(rate))
		_exit(1);
	_exit(0);
}

int main(int argc, char **argv)
{
	double secs, spawn, pipes, copy, mem = 0;
	unsigned blocks;
	int cmd[2], ans[2];
	char c;
	pid_t h;

	if (argc != 4) {
		fprintf(stderr, "usage: bench_estimate SECS BLOCKS DIR\n");
		return 1;
	}
	secs = atof(argv[1]);
	blocks = (unsigned)atoi(argv[2]);
	/* Blocks of 1 MiB always mapped afresh, as before glibc's threshold
	 * moves up after the first free: the churn is mmap and munmap. */
	mallopt(M_MMAP_THRESHOLD, 256 << 10);
	if (pipe(cmd) != 0 || pipe(ans) != 0)
		die("pipe");
	h = fork();
	if (h < 0)
		die("fork");
	if (h == 0)
		holder(blocks, cmd[0], ans[1]);
	if (read(ans[0], &c, 1) != 1) {
		fprintf(stderr, "bench_estimate: the memory holder died\n");
		return 1;
	}
	/* BENCH_ONLY=pipe (etc.) runs one of the first three alone. */
	const char *only = getenv("BENCH_ONLY");
	spawn = !only || !strcmp(only, "spawn") ? run_spawn(secs) : 0;
	pipes = !only || !strcmp(only, "pipe") ? run_pipe(secs) : 0;
	copy = !only || !strcmp(only, "copy") ? run_copy(secs, argv[3]) : 0;
	if (write(cmd[1], &secs, sizeof(secs)) != sizeof(secs) ||
	    read(ans[0], &mem, sizeof(mem)) != sizeof(mem)) {
		fprintf(stderr, "bench_estimate: the memory holder died\n");
		return 1;
	}
	waitpid(h, NULL, 0);
	printf("spawn %.0f pipe %.0f copy %.0f mem %.0f\n", spawn, pipes, copy, mem);
	return 0;
}

/* Measures the kernel facts huge-page promotion builds on: UFFDIO_COPY fill then MADV_COLLAPSE in a uffd-armed VMA, and UFFDIO_MOVE of a whole PMD. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Debian 12's uapi headers predate these (pitfall 6). */
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif
#ifndef UFFDIO_MOVE
struct uffdio_move {
	uint64_t dst;
	uint64_t src;
	uint64_t len;
	uint64_t mode;
	int64_t move;
};
#define UFFDIO_MOVE _IOWR(UFFDIO, 0x05, struct uffdio_move)
#endif
#ifndef UFFD_FEATURE_MOVE
#define UFFD_FEATURE_MOVE (1 << 16)
#endif

#define HUGE (2UL << 20)
#define PAGE 4096UL
#define NPAGES (HUGE / PAGE)

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* AnonHugePages (kB) of the VMA that contains addr, from /proc/self/smaps. */
static long anon_huge_kb(const void *addr)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	int inside = 0;
	long kb = -1;
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
			inside = (uintptr_t)addr >= lo && (uintptr_t)addr < hi;
			continue;
		}
		if (inside && sscanf(line, "AnonHugePages: %ld kB", &kb) == 1)
			break;
	}
	fclose(f);
	return kb;
}

static int open_uffd(void)
{
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	struct uffdio_api api = {.api = UFFD_API, .features = UFFD_FEATURE_MOVE};
	if (ioctl(fd, UFFDIO_API, &api) != 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	return fd;
}

/* A 2 MiB aligned anonymous region of `huge` blocks, registered for MISSING faults. */
static char *armed_region(int uffd, size_t huge)
{
	size_t len = huge * HUGE;
	char *raw = mmap(NULL, len + HUGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (raw == MAP_FAILED)
		return NULL;
	char *p = (char *)(((uintptr_t)raw + HUGE - 1) & ~(HUGE - 1));
	struct uffdio_register r = {.range = {.start = (uintptr_t)p, .len = len},
				    .mode = UFFDIO_REGISTER_MODE_MISSING};
	if (ioctl(uffd, UFFDIO_REGISTER, &r) != 0)
		return NULL;
	return p;
}

/* Fills pages [0, n) of the block at p with UFFDIO_COPY, page i holding byte pattern i. */
static int fill_copy(int uffd, char *p, size_t n, int one_call)
{
	static char src[HUGE] __attribute__((aligned(4096)));
	for (size_t i = 0; i < NPAGES; i++)
		memset(src + i * PAGE, (int)(i * 7 + 1), PAGE);
	if (one_call) {
		struct uffdio_copy c = {.dst = (uintptr_t)p, .src = (uintptr_t)src, .len = n * PAGE};
		return ioctl(uffd, UFFDIO_COPY, &c) == 0 ? 0 : -errno;
	}
	for (size_t i = 0; i < n; i++) {
		struct uffdio_copy c = {.dst = (uintptr_t)(p + i * PAGE),
					.src = (uintptr_t)(src + i * PAGE),
					.len = PAGE};
		if (ioctl(uffd, UFFDIO_COPY, &c) != 0)
			return -errno;
	}
	return 0;
}

static int check_bytes(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < PAGE; j += 512)
			if ((unsigned char)p[i * PAGE + j] != (unsigned char)(i * 7 + 1))
				return -1;
	return 0;
}

static int collapse(char *p, double *us)
{
	double t = now_us();
	int rc = madvise(p, HUGE, MADV_COLLAPSE) == 0 ? 0 : -errno;
	*us = now_us() - t;
	return rc;
}

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 20;
	int uffd = open_uffd();
	if (uffd < 0) {
		fprintf(stderr, "thpprobe: userfaultfd: %s\n", strerror(-uffd));
		return 1;
	}
	double t, us, fill_sum = 0, fill1_sum = 0, col_sum = 0, col_max = 0, touch_sum = 0;
	int ok = 0;
	/* 1. full fill by UFFDIO_COPY (per page and in one call), then MADV_COLLAPSE. */
	char *p = armed_region(uffd, (size_t)rounds);
	if (!p)
		return 1;
	for (int r = 0; r < rounds; r++) {
		char *b = p + (size_t)r * HUGE;
		t = now_us();
		int rc = fill_copy(uffd, b, NPAGES, r % 2);
		double f = now_us() - t;
		if (r % 2)
			fill1_sum += f;
		else
			fill_sum += f;
		if (rc) {
			printf("fill: %s\n", strerror(-rc));
			return 1;
		}
		rc = collapse(b, &us);
		col_sum += us;
		if (us > col_max)
			col_max = us;
		if (rc == 0 && check_bytes(b, NPAGES) == 0)
			ok++;
		else if (rc)
			printf("collapse round %d: %s\n", r, strerror(-rc));
	}
	t = now_us();
	for (int r = 0; r < rounds; r++)
		for (size_t i = 0; i < NPAGES; i++)
			(void)*(volatile char *)(p + (size_t)r * HUGE + i * PAGE);
	touch_sum = now_us() - t;
	printf("copy+collapse: %d/%d collapsed with bytes intact; AnonHugePages %ld kB of %lu kB\n", ok,
	       rounds, anon_huge_kb(p), (unsigned long)rounds * HUGE / 1024);
	printf("  fill 512 x UFFDIO_COPY(4K): %.0f us/block; one UFFDIO_COPY(2M): %.0f us/block\n",
	       fill_sum / ((rounds + 1) / 2), fill1_sum / (rounds / 2 ? rounds / 2 : 1));
	printf("  MADV_COLLAPSE: mean %.0f us/block, max %.0f us; read of every page after: %.2f us/block\n",
	       col_sum / rounds, col_max, touch_sum / rounds);

	/* 2. partial fill (460 of 512) then collapse: does an armed VMA allow holes? */
	char *q = armed_region(uffd, 4);
	fill_copy(uffd, q, 460, 1);
	int rc = collapse(q, &us);
	printf("partial (460/512) collapse: %s (%.0f us), AnonHugePages %ld kB\n", rc ? strerror(-rc) : "ok", us,
	       anon_huge_kb(q));
	/* 3. holes filled with UFFDIO_ZEROPAGE. */
	char *z = q + HUGE;
	fill_copy(uffd, z, 460, 1);
	struct uffdio_zeropage zp = {.range = {.start = (uintptr_t)(z + 460 * PAGE), .len = 52 * PAGE}};
	ioctl(uffd, UFFDIO_ZEROPAGE, &zp);
	rc = collapse(z, &us);
	printf("460 copied + 52 UFFDIO_ZEROPAGE collapse: %s, AnonHugePages %ld kB\n", rc ? strerror(-rc) : "ok",
	       anon_huge_kb(z));
	/* 4. MADV_NOHUGEPAGE on the block. */
	char *nh = q + 2 * HUGE;
	fill_copy(uffd, nh, NPAGES, 1);
	madvise(nh, HUGE, MADV_NOHUGEPAGE);
	rc = collapse(nh, &us);
	printf("MADV_NOHUGEPAGE block collapse: %s\n", rc ? strerror(-rc) : "ok");

	/* 5. UFFDIO_MOVE of the whole PMD of a collapsed block into an empty armed block. */
	char *dst = armed_region(uffd, (size_t)rounds);
	double mv_sum = 0;
	int moved = 0;
	long before = anon_huge_kb(p);
	for (int r = 0; r < rounds; r++) {
		struct uffdio_move m = {.dst = (uintptr_t)(dst + (size_t)r * HUGE),
					.src = (uintptr_t)(p + (size_t)r * HUGE),
					.len = HUGE};
		t = now_us();
		rc = ioctl(uffd, UFFDIO_MOVE, &m) == 0 ? 0 : -errno;
		mv_sum += now_us() - t;
		if (rc == 0 && check_bytes(dst + (size_t)r * HUGE, NPAGES) == 0)
			moved++;
		else if (rc)
			printf("move round %d: %s (moved %lld)\n", r, strerror(-rc), (long long)m.move);
	}
	printf("UFFDIO_MOVE whole PMD: %d/%d moved intact, %.1f us/block; AnonHugePages src %ld -> %ld kB, dst %ld kB\n",
	       moved, rounds, mv_sum / rounds, before, anon_huge_kb(p), anon_huge_kb(dst));
	/* 6. UFFDIO_MOVE of one subpage of a huge page: splits it? */
	char *dst2 = armed_region(uffd, 1);
	struct uffdio_move m1 = {.dst = (uintptr_t)dst2, .src = (uintptr_t)dst, .len = PAGE};
	rc = ioctl(uffd, UFFDIO_MOVE, &m1) == 0 ? 0 : -errno;
	printf("UFFDIO_MOVE of one 4K subpage: %s; AnonHugePages of the source block's VMA %ld kB (was %ld)\n",
	       rc ? strerror(-rc) : "ok", anon_huge_kb(dst), (long)rounds * 2048);
	/* 7. MADV_DONTNEED of one subpage of a huge page (what eviction does) splits the PMD. */
	char *d3 = dst + HUGE;
	madvise(d3 + PAGE, PAGE, MADV_DONTNEED);
	printf("MADV_DONTNEED of one subpage: AnonHugePages %ld kB\n", anon_huge_kb(dst));
	/* 8. The same collapse in a plain (unarmed) region filled by writes, for comparison. */
	char *raw = mmap(NULL, (size_t)(rounds + 1) * HUGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *pl = (char *)(((uintptr_t)raw + HUGE - 1) & ~(HUGE - 1));
	madvise(pl, (size_t)rounds * HUGE, MADV_NOHUGEPAGE);
	memset(pl, 1, (size_t)rounds * HUGE);
	madvise(pl, (size_t)rounds * HUGE, MADV_HUGEPAGE);
	col_sum = 0;
	col_max = 0;
	for (int r = 0; r < rounds; r++) {
		rc = collapse(pl + (size_t)r * HUGE, &us);
		col_sum += us;
		if (us > col_max)
			col_max = us;
	}
	printf("unarmed region MADV_COLLAPSE: mean %.0f us/block, max %.0f us, AnonHugePages %ld kB\n",
	       col_sum / rounds, col_max, anon_huge_kb(pl));
	return 0;
}

/* scribble.c - a hostile managed process: tries to write its group's control part, scribbles over every accounting part it maps, then grows past its limit. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

/* Usage: scribble SECONDS GROW_MB
 * Prints one line per attempt on a control part ("refused: ..." or
 * "WRITABLE: ..."), then "control: N ways tried, M refused", scribbles
 * random bytes over every accounting mapping for SECONDS, then touches
 * GROW_MB and says how far it got. */

static unsigned tried, refused;

static void attempt(bool failed, const char *what, const char *name)
{
	tried++;
	if (failed) {
		refused++;
		printf("refused: %s of %s (%s)\n", what, name, strerror(errno));
	} else {
		printf("WRITABLE: %s of %s\n", what, name);
	}
}

static bool is_control(const char *name)
{
	return strstr(name, "memgrp-control") || strstr(name, "/segment-");
}

static bool is_account(const char *name)
{
	return strstr(name, "memgrp-account") || strstr(name, "/account-");
}

/* Every fd it holds of a control part: a writable mapping, write(), a
 * writable reopen through /proc, a truncation. */
static void try_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;

	if (!d)
		DIE("cannot list /proc/self/fd");
	while ((de = readdir(d))) {
		char path[64], name[256];
		int fd = atoi(de->d_name);
		ssize_t n;
		if (de->d_name[0] == '.' || fd == dirfd(d))
			continue;
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		n = readlink(path, name, sizeof(name) - 1);
		if (n <= 0)
			continue;
		name[n] = '\0';
		if (!is_control(name))
			continue;
		void *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		attempt(m == MAP_FAILED, "mmap(PROT_WRITE, MAP_SHARED)", name);
		if (m != MAP_FAILED)
			munmap(m, 4096);
		char zero[8] = {0};
		attempt(pwrite(fd, zero, sizeof(zero), 0) < 0, "write()", name);
		int w = open(path, O_RDWR | O_CLOEXEC);
		attempt(w < 0, "open(/proc/self/fd, O_RDWR)", name);
		if (w >= 0)
			close(w);
		attempt(ftruncate(fd, 0) != 0, "ftruncate()", name);
	}
	closedir(d);
}

struct range {
	uintptr_t start, end;
	bool control;
};

/* The mappings of the segments' parts, from /proc/self/maps. */
static unsigned find_ranges(struct range *r, unsigned max)
{
	FILE *f = fopen("/proc/self/maps", "re");
	char line[512];
	unsigned n = 0;

	if (!f)
		DIE("cannot read /proc/self/maps");
	while (n < max && fgets(line, sizeof(line), f)) {
		unsigned long s, e;
		char perms[8];
		int off = 0;
		if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %n", &s, &e, perms, &off) < 3 || !off)
			continue;
		const char *name = line + off;
		if (is_control(name) || is_account(name))
			r[n++] = (struct range){s, e, is_control(name)};
	}
	fclose(f);
	return n;
}

static uint64_t next(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

int main(int argc, char **argv)
{
	double secs = argc > 1 ? atof(argv[1]) : 2;
	size_t grow = (size_t)(argc > 2 ? atol(argv[2]) : 256) << 20;
	struct range r[64];
	unsigned n, accounts = 0;
	uint64_t x = (uint64_t)getpid() * 0x9E3779B97F4A7C15ULL | 1;

	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("uid %d\n", (int)getuid());
	try_fds();
	n = find_ranges(r, 64);
	for (unsigned i = 0; i < n; i++)
		if (r[i].control)
			attempt(mprotect((void *)r[i].start, r[i].end - r[i].start,
					 PROT_READ | PROT_WRITE) != 0,
				"mprotect(PROT_WRITE) of the mapping", "a control part");
		else
			accounts++;
	printf("control: %u ways tried, %u refused\n", tried, refused);
	printf("scribbling over %u accounting mappings for %.1f s\n", accounts, secs);

	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	unsigned long passes = 0;
	do {
		for (unsigned i = 0; i < n; i++) {
			if (r[i].control)
				continue;
			for (uint64_t *p = (uint64_t *)r[i].start; p < (uint64_t *)r[i].end; p++)
				*p = next(&x);
		}
		passes++;
		clock_gettime(CLOCK_MONOTONIC, &t);
	} while ((t.tv_sec - t0.tv_sec) + (t.tv_nsec - t0.tv_nsec) / 1e9 < secs);
	printf("scribbled %lu passes\n", passes);

	/* Past its limit: mmap, so that the sanitizer build's allocator is not
	 * in the way. */
	unsigned char *p = mmap(NULL, grow, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		DIE("mmap failed");
	for (size_t mb = 0; mb < grow >> 20; mb++) {
		memset(p + (mb << 20), 0x5a, 1 << 20);
		if ((mb + 1) % 64 == 0)
			printf("grew to %zu MiB\n", mb + 1);
	}
	printf("grew to %zu MiB in all\n", grow >> 20);
	return 0;
}

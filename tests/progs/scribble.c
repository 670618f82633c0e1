/* scribble.c - a hostile managed process: tries to write its group's control part, scribbles over every accounting part it maps, then grows past its limit; or truncates its group's accounting part. */
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

/* Usage: scribble SECONDS GROW_MB | scribble --truncate
 * Prints one line per attempt on a control part ("refused: ..." or
 * "WRITABLE: ..."), then "control: N ways tried, M refused", scribbles
 * random bytes over every accounting mapping for SECONDS, then touches
 * GROW_MB and says how far it got. With --truncate: truncates to 0 the
 * accounting part of its own group (a state file: the file beside its
 * deepest group's control part; memfds: every one it holds, which their
 * seals should refuse), prints "truncating: FILE" first, then "truncated: FILE" or "refused: ...", and
 * ends at once (its own agent would fault on the cut pages next). */

static unsigned tried, refused, anc_tried, anc_refused;

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

/* The four ways to write through fd (a mapping, write(), a writable reopen
 * through /proc, a truncation), each counted by attempt(); what names the
 * part in the messages. */
static void try_four_ways(int fd, const char *path, const char *what, const char *name)
{
	char how[128], zero[8] = {0};

	/* (each message is made before its call: attempt() reads errno) */
	snprintf(how, sizeof(how), "mmap(PROT_WRITE, MAP_SHARED)%s", what);
	void *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	attempt(m == MAP_FAILED, how, name);
	if (m != MAP_FAILED)
		munmap(m, 4096);
	snprintf(how, sizeof(how), "write()%s", what);
	attempt(pwrite(fd, zero, sizeof(zero), 0) < 0, how, name);
	snprintf(how, sizeof(how), "open(/proc/self/fd, O_RDWR)%s", what);
	int w = open(path, O_RDWR | O_CLOEXEC);
	attempt(w < 0, how, name);
	if (w >= 0)
		close(w);
	snprintf(how, sizeof(how), "ftruncate()%s", what);
	attempt(ftruncate(fd, 0) != 0, how, name);
}

/* The same four ways on an accounting part held read-only (an ancestor's:
 * its processes charge it through grants), counted apart. */
static void try_readonly_account(int fd, const char *path, const char *name)
{
	unsigned t0 = tried, r0 = refused;

	try_four_ways(fd, path, " of an ancestor's accounting", name);
	anc_tried += tried - t0;
	anc_refused += refused - r0;
	tried = t0;
	refused = r0;
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
		if (is_account(name) && (fcntl(fd, F_GETFL) & O_ACCMODE) == O_RDONLY)
			try_readonly_account(fd, path, name);
		if (is_control(name))
			try_four_ways(fd, path, "", name);
	}
	closedir(d);
}

/* The fd of the accounting file paired with the deepest group's control
 * file it holds ("segment-X" and "account-X"), or -1. */
static int own_account_file(void)
{
	char best[256] = "", path[64], name[256];
	size_t depth = 0;
	int fd = -1;

	for (int i = 0; i < 1024; i++) {
		char head[64];
		snprintf(path, sizeof(path), "/proc/self/fd/%d", i);
		ssize_t n = readlink(path, name, sizeof(name) - 1);
		if (n <= 0)
			continue;
		name[n] = '\0';
		if (!strstr(name, "/segment-") || pread(i, head, sizeof(head), 0) != sizeof(head))
			continue;
		/* the group's name: after magic (8), version (4), bytes (4) */
		size_t len = strnlen(head + 16, sizeof(head) - 16);
		if (len >= depth) {
			depth = len;
			snprintf(best, sizeof(best), "%s", strstr(name, "/segment-") + 9);
		}
	}
	for (int i = 0; best[0] && i < 1024; i++) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", i);
		ssize_t n = readlink(path, name, sizeof(name) - 1);
		if (n <= 0)
			continue;
		name[n] = '\0';
		const char *a = strstr(name, "/account-");
		if (a && !strcmp(a + 9, best))
			fd = i;
	}
	return fd;
}

static int truncate_own(void)
{
	int fd = own_account_file(), cut = 0;
	char path[64], name[256];

	if (fd >= 0) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		ssize_t n = readlink(path, name, sizeof(name) - 1);
		name[n > 0 ? n : 0] = '\0';
		/* Said first: its own agent may fault on the cut pages (SIGBUS)
		 * before the next line is printed. */
		printf("truncating: %s\n", name);
		if (ftruncate(fd, 0) == 0) {
			printf("truncated: %s\n", name);
			cut++;
		} else {
			printf("refused: ftruncate() of %s (%s)\n", name, strerror(errno));
		}
		_exit(cut ? 0 : 1);
	}
	for (int i = 0; i < 1024; i++) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", i);
		ssize_t n = readlink(path, name, sizeof(name) - 1);
		if (n <= 0)
			continue;
		name[n] = '\0';
		if (!strstr(name, "memgrp-account"))
			continue;
		if (ftruncate(i, 0) == 0) {
			printf("truncated: %s\n", name);
			cut++;
		} else {
			printf("refused: ftruncate() of %s (%s)\n", name, strerror(errno));
		}
	}
	_exit(cut ? 0 : 1);
}

struct range {
	uintptr_t start, end;
	bool control, writable;
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
			r[n++] = (struct range){s, e, is_control(name), perms[1] == 'w'};
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
	unsigned n, accounts = 0, readonly = 0;
	uint64_t x = (uint64_t)getpid() * 0x9E3779B97F4A7C15ULL | 1;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc > 1 && !strcmp(argv[1], "--truncate"))
		return truncate_own();
	printf("uid %d\n", (int)getuid());
	try_fds();
	n = find_ranges(r, 64);
	for (unsigned i = 0; i < n; i++)
		if (r[i].control)
			attempt(mprotect((void *)r[i].start, r[i].end - r[i].start,
					 PROT_READ | PROT_WRITE) != 0,
				"mprotect(PROT_WRITE) of the mapping", "a control part");
		else if (r[i].writable)
			accounts++;
		else {
			unsigned t0 = tried, r0 = refused;
			attempt(mprotect((void *)r[i].start, r[i].end - r[i].start,
					 PROT_READ | PROT_WRITE) != 0,
				"mprotect(PROT_WRITE) of the mapping", "an ancestor's accounting part");
			anc_tried += tried - t0;
			anc_refused += refused - r0;
			tried = t0;
			refused = r0;
			readonly++;
		}
	printf("control: %u ways tried, %u refused\n", tried, refused);
	printf("ancestors' accounting: %u mappings read-only, %u ways tried, %u refused\n", readonly,
	       anc_tried, anc_refused);
	printf("scribbling over %u accounting mappings for %.1f s\n", accounts, secs);

	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	unsigned long passes = 0;
	do {
		for (unsigned i = 0; i < n; i++) {
			if (r[i].control || !r[i].writable)
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

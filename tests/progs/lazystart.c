/* lazystart.c - a process's deferred agent start, seen from inside: threads and userfaultfd before and after it grows. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

/* The process's threads (from /proc/self/status). */
static int threads(void)
{
	char line[256];
	int n = -1;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		DIE("cannot read /proc/self/status");
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Threads: %d", &n) == 1)
			break;
	fclose(f);
	return n;
}

/* Whether the process holds a userfaultfd (the agent's, once started). */
static int has_uffd(void)
{
	char path[300], target[64];
	struct dirent *e;
	DIR *d = opendir("/proc/self/fd");
	int found = 0;

	if (!d)
		DIE("cannot list /proc/self/fd");
	while ((e = readdir(d))) {
		snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
		ssize_t n = readlink(path, target, sizeof(target) - 1);
		if (n > 0) {
			target[n] = '\0';
			if (strstr(target, "userfaultfd"))
				found = 1;
		}
	}
	closedir(d);
	return found;
}

static void report(const char *when)
{
	printf("%s: threads=%d uffd=%d\n", when, threads(), has_uffd());
	fflush(stdout);
}

/* Maps MB and writes a pattern at once (mmap, not malloc: under ASan malloc
 * serves from the sanitizer's reservation, which memgrp does not count). */
static unsigned char *grow(size_t mb, uint64_t seed)
{
	unsigned char *p = mmap(NULL, mb << 20, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		DIE("mmap failed");
	fill(p, mb << 20, seed);
	return p;
}

static void check(const unsigned char *p, size_t mb, uint64_t seed)
{
	long bad = verify(p, mb << 20, seed);

	if (bad >= 0)
		DIE("byte %ld of %zu MB wrong", bad, mb);
	printf("bytes ok: %zu MB\n", mb);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	/* small | grow MB | heap MB | fork MB | hold MB | forkgrow MB */
	const char *mode = argc > 1 ? argv[1] : "small";
	size_t mb = argc > 2 ? (size_t)atol(argv[2]) : 0;

	report("start");
	if (!strcmp(mode, "small"))
		return 0;
	if (!strcmp(mode, "grow")) {
		unsigned char *p = grow(mb, 17);
		report("grown");
		check(p, mb, 17);
		return 0;
	}
	if (!strcmp(mode, "heap")) {
		/* the malloc family's heap, grown by glibc's own brk where no
		 * interposition of brk reaches: only the blocks show it */
		for (size_t i = 0; i < mb * 16; i++) {
			unsigned char *p = malloc(64 << 10);
			if (!p)
				DIE("malloc failed");
			fill(p, 64 << 10, i);
		}
		report("heap grown");
		return 0;
	}
	if (!strcmp(mode, "fork")) {
		/* the child of a process in its deferred start joins on its
		 * own, starts deferred too, and grows past its allowance */
		pid_t c = fork();
		int st;
		if (c < 0)
			DIE("fork failed");
		if (c == 0) {
			report("child");
			unsigned char *p = grow(mb, 23);
			report("child grown");
			check(p, mb, 23);
			_exit(0);
		}
		if (waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
			DIE("child failed: status %d", st);
		report("parent after child");
		return 0;
	}
	if (!strcmp(mode, "hold") || !strcmp(mode, "forkgrow")) {
		/* A fork after the parent's spare slot came (asked for at
		 * its first fork, answered at once: 300 ms is plenty): the child
		 * takes it and runs without asking. hold: the child maps and
		 * writes MB (inside the allowance: it stays deferred) and
		 * waits to be killed; forkgrow: it writes MB at once. */
		pid_t c = fork();
		int st;
		if (c == 0) /* the first fork asks for the spare */
			_exit(0);
		if (c < 0 || waitpid(c, &st, 0) != c)
			DIE("first fork failed");
		usleep(300 * 1000);
		c = fork();
		if (c < 0)
			DIE("fork failed");
		if (c == 0) {
			unsigned char *p = grow(mb, 29);
			if (mode[0] == 'f') {
				check(p, mb, 29);
				_exit(0);
			}
			printf("child %d ready\n", (int)getpid());
			fflush(stdout);
			for (;;)
				pause();
		}
		if (waitpid(c, &st, 0) != c)
			DIE("waitpid failed");
		if (WIFSIGNALED(st))
			printf("child killed: signal %d\n", WTERMSIG(st));
		else
			printf("child exited: %d\n", WEXITSTATUS(st));
		fflush(stdout);
		/* for the test to read the group's figures (it ends us) */
		if (mode[0] == 'h')
			sleep(60);
		return 0;
	}
	DIE("usage: prog_lazystart small | grow MB | heap MB | fork MB | hold MB | forkgrow MB");
}

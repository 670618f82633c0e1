/* cowfork.c - fork of a process holding memory: who writes after the fork, and every byte checked on both sides. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

/*
 * Usage: prog_cowfork MB WRITER [PAUSE_MS]
 *
 * Maps MB of anonymous memory, writes a pattern over every page, forks.
 * WRITER is who writes a new pattern over every page after the fork:
 * none, parent, child or both; each side then checks every page (its
 * own pattern, or the one from before the fork). With PAUSE_MS, both
 * sides, once they have checked, wait that long before exiting (a test
 * reads the group's usage then) and print "paused" first. Exit 0 with
 * "cowfork ok" when every byte on both sides was right.
 */

#define PAGE 4096UL

static unsigned char *mem;
static size_t pages;

static size_t check(uint64_t seed, const char *who)
{
	size_t bad = 0;
	for (size_t p = 0; p < pages; p++)
		if (verify(mem + p * PAGE, PAGE, seed + p) >= 0 && bad++ < 3)
			fprintf(stderr, "%s: page %zu wrong\n", who, p);
	return bad;
}

static void write_all(uint64_t seed)
{
	for (size_t p = 0; p < pages; p++)
		fill(mem + p * PAGE, PAGE, seed + p);
}

int main(int argc, char **argv)
{
	size_t mb;
	unsigned pause_ms = argc > 3 ? (unsigned)strtoul(argv[3], NULL, 10) : 0;

	if (argc < 3 || (mb = strtoul(argv[1], NULL, 10)) == 0)
		DIE("usage: prog_cowfork MB none|parent|child|both [PAUSE_MS]");
	const char *w = argv[2];
	bool pw = !strcmp(w, "parent") || !strcmp(w, "both");
	bool cw = !strcmp(w, "child") || !strcmp(w, "both");
	if (!pw && !cw && strcmp(w, "none"))
		DIE("unknown writer '%s'", w);
	pages = mb * 256;
	mem = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		DIE("mmap failed");
	write_all(1ULL << 40);
	fflush(NULL);
	pid_t child = fork();
	if (child < 0)
		DIE("fork failed");
	uint64_t seed = child == 0 ? (cw ? 2ULL << 40 : 1ULL << 40) : (pw ? 3ULL << 40 : 1ULL << 40);
	const char *who = child == 0 ? "child" : "parent";
	size_t bad = check(1ULL << 40, who);
	if (child == 0 ? cw : pw) {
		write_all(seed);
		bad += check(seed, who);
	}
	if (pause_ms) {
		if (child == 0)
			printf("paused\n");
		fflush(NULL);
		usleep(pause_ms * 1000);
		bad += check(seed, who);
	}
	if (child == 0)
		_exit(bad ? 1 : 0);
	int st;
	if (waitpid(child, &st, 0) != child)
		DIE("waitpid failed");
	if (bad || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		DIE("FAIL: parent %zu page(s) wrong, child %s %d", bad,
		    WIFEXITED(st) ? "exit" : "signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
	printf("cowfork ok: %zu MiB, writer %s, both sides read every byte right\n", mb, w);
	return 0;
}

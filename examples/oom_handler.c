/* oom_handler.c - a user-space OOM handler (the seed's example): at its group's OOM it keeps the oldest service and kills the newest process, which oom_score_adj cannot express.
 *
 * Usage: oom_handler [--socket PATH] [--touch MB] [--count N] [--pick newest|largest] GROUP
 *
 * It registers as GROUP's OOM handler (mg_oom_handler_register) and, for
 * each snapshot the manager sends at the group's OOM, answers: kill the
 * newest process (the smallest age; never itself), or resume when there
 * is none to kill. With --touch MB it first allocates and touches MB, as
 * a handler that needs memory to decide would: run inside the group with
 * `--oom-reserve` at least that, it gets it beyond the limit (without, it
 * waits, and the group's policy acts at the handler timeout). It prints
 * one line per decision and ends after N decisions (--count, default:
 * never). --pick largest kills the largest instead (bench/oom.sh's
 * handler row: the same victim as the default policy's). Run it as root
 * or as the manager's user.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "memgrp.h"

/* The newest process of the snapshot that is not this one (or, with
 * largest, the first: the snapshot lists the largest first), or -1. */
static int choose(const mg_oom_snapshot_t *s, pid_t self, bool largest)
{
	int best = -1;

	for (unsigned i = 0; i < s->nprocs; i++) {
		if (s->procs[i].pid == self)
			continue;
		if (largest)
			return (int)i;
		if (best < 0 || s->procs[i].age_ms < s->procs[best].age_ms)
			best = (int)i;
	}
	return best;
}

/* MB touched, page by page, in memory of this process's own (mmap: the
 * agent charges it at each page's first touch). */
static int touch(long mb)
{
	size_t len = (size_t)mb << 20;
	unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return -errno;
	for (size_t o = 0; o < len; o += 4096)
		p[o] = 1;
	munmap(p, len);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {{"socket", required_argument, NULL, 's'},
					     {"touch", required_argument, NULL, 't'},
					     {"count", required_argument, NULL, 'n'},
					     {"pick", required_argument, NULL, 'p'},
					     {NULL, 0, NULL, 0}};
	const char *sock = NULL;
	long mb = 0, count = -1;
	bool largest = false;
	int o, err;

	while ((o = getopt_long(argc, argv, "s:t:n:p:", opts, NULL)) != -1) {
		switch (o) {
		case 's': sock = optarg; break;
		case 't': mb = atol(optarg); break;
		case 'n': count = atol(optarg); break;
		case 'p':
			if (strcmp(optarg, "newest") && strcmp(optarg, "largest")) {
				fprintf(stderr, "oom_handler: --pick newest|largest, not '%s'\n", optarg);
				return 2;
			}
			largest = !strcmp(optarg, "largest");
			break;
		default: return 2;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "usage: oom_handler [--socket PATH] [--touch MB] [--count N] "
				"[--pick newest|largest] GROUP\n");
		return 2;
	}
	mg_client_t *c = mg_connect(sock, &err);
	if (!c) {
		fprintf(stderr, "oom_handler: no memgrp manager: %s\n", strerror(-err));
		return 1;
	}
	if ((err = mg_oom_handler_register(c, argv[optind])) != 0) {
		fprintf(stderr, "oom_handler: %s: %s\n", argv[optind], mg_last_error(c));
		mg_close(c);
		return 1;
	}
	printf("handling %s\n", argv[optind]);
	fflush(stdout);
	static mg_oom_snapshot_t s; /* 9 KiB: not on the stack */
	for (long n = 0; count < 0 || n < count; n++) {
		if ((err = mg_oom_handler_read(c, &s, -1)) != 0) {
			fprintf(stderr, "oom_handler: %s\n", mg_last_error(c));
			break;
		}
		if (mb > 0 && (err = touch(mb)) != 0)
			fprintf(stderr, "oom_handler: touching %ld MB: %s\n", mb, strerror(-err));
		int v = choose(&s, getpid(), largest);
		mg_oom_decision_t d = {.seq = s.seq, .action = v < 0 ? MG_OOM_RESUME : MG_OOM_KILL};
		if (v >= 0) {
			d.npids = 1;
			d.pids[0] = s.procs[v].pid;
		}
		err = mg_oom_handler_answer(c, &d);
		if (v >= 0)
			printf("snapshot %llu: %u processes, killing the %s, pid %d (%s, %llu ms old): %s\n",
			       (unsigned long long)s.seq, s.nprocs, largest ? "largest" : "newest",
			       (int)s.procs[v].pid, s.procs[v].comm,
			       (unsigned long long)s.procs[v].age_ms, err ? mg_last_error(c) : "done");
		else
			printf("snapshot %llu: nobody to kill, resume: %s\n", (unsigned long long)s.seq,
			       err ? mg_last_error(c) : "done");
		fflush(stdout);
	}
	mg_close(c);
	return 0;
}

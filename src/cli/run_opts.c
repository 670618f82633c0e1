/* run_opts.c - `memgrp run`'s own options: parsed, and checked against each other and the host before anything starts. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "oslayer.h"
#include "run.h"
#include "size.h"
#include "victim.h"

/* Takes one of run's own options: 1 if opt was one, 0 if not, -1 after
 * saying why the value is bad. Over 100 lines on purpose: one plain case
 * per option, as the usage text lists them. */
int mgi_run_option(struct run_ctx *r, struct run_opts *o, int opt, const char *arg)
{
	char err[256];

	switch (opt) {
	case 'g':
		if (mgi_group_name_check(arg, err, sizeof(err)) != 0) {
			fprintf(stderr, "memgrp run: --group '%s': %s\n", arg, err);
			return -1;
		}
		snprintf(r->group, sizeof(r->group), "%s", arg);
		return 1;
	case OPT_CODEC:
		if (strcmp(arg, "lz4") != 0 && strcmp(arg, "zstd") != 0) {
			fprintf(stderr, "memgrp run: --codec: lz4 or zstd, not '%s'\n", arg);
			return -1;
		}
		o->codec = arg;
		o->agent_only = "--codec";
		return 1;
	case OPT_SWAP_FILE: {
		/* Each process makes an unnamed file there (O_TMPFILE):
		 * nothing to clean up after a crash. Tried now, so that a
		 * directory that cannot have one is said at once. */
		int fd = open(arg, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
		if (fd < 0) {
			fprintf(stderr, "memgrp run: --swap-file %s: %s\n", arg,
				errno == EISDIR || errno == EOPNOTSUPP
					? "this file system has no unnamed files (O_TMPFILE)"
					: errno == ENOTDIR ? "not a directory" : strerror(errno));
			return -1;
		}
		close(fd);
		setenv("MEMGRP_SWAP_FILE", arg, 1);
		o->agent_only = "--swap-file";
		return 1;
	}
	case OPT_SWAP_FILE_AFTER: {
		uint64_t after;
		char num[32];
		if (mgi_size_parse(arg, &after, err, sizeof(err)) != 0) {
			fprintf(stderr, "memgrp run: --swap-file-after: %s\n", err);
			return -1;
		}
		snprintf(num, sizeof(num), "%llu", (unsigned long long)after);
		setenv("MEMGRP_SWAP_FILE_AFTER", num, 1);
		o->agent_only = "--swap-file-after";
		return 1;
	}
	case OPT_OOM_PRIORITY: {
		/* the agent tells the manager once joined (agent/join.c) */
		char *end;
		errno = 0;
		long p = strtol(arg, &end, 10);
		if (errno || *end || !*arg || p < MGI_OOM_PRIORITY_MIN || p > MGI_OOM_PRIORITY_MAX) {
			fprintf(stderr, "memgrp run: --oom-priority: a number from -1000 to 1000, "
					"not '%s'\n", arg);
			return -1;
		}
		setenv("MEMGRP_OOM_PRIORITY", arg, 1);
		o->agent_only = "--oom-priority";
		return 1;
	}
	case OPT_THP:
		/* read by each process's agent (src/agent/thp.c) */
		if (strcmp(arg, "never") != 0 && strcmp(arg, "ingens") != 0 &&
		    strcmp(arg, "always") != 0) {
			fprintf(stderr, "memgrp run: --thp: never, ingens or always, not '%s'\n", arg);
			return -1;
		}
		setenv("MEMGRP_THP", arg, 1);
		o->agent_only = "--thp";
		return 1;
	case OPT_THP_THRESHOLD:
	case OPT_THP_RATE: {
		bool thr = opt == OPT_THP_THRESHOLD;
		unsigned long max = thr ? 100 : 1000000;
		char *end;
		errno = 0;
		unsigned long v = strtoul(arg, &end, 10);
		if (errno || *end || !*arg || *arg == '-' || v > max || (thr && v == 0)) {
			fprintf(stderr, "memgrp run: --%s: a number from %d to %lu, not '%s'\n",
				thr ? "thp-threshold" : "thp-rate", thr ? 1 : 0, max, arg);
			return -1;
		}
		setenv(thr ? "MEMGRP_THP_THRESHOLD" : "MEMGRP_THP_RATE", arg, 1);
		o->agent_only = thr ? "--thp-threshold" : "--thp-rate";
		return 1;
	}
	case OPT_STATS_JSON:
		o->stats_json = arg;
		return 1;
	case OPT_RECORD:
		o->record = arg;
		return 1;
	case OPT_RECORD_PERIOD: {
		char *end;
		errno = 0;
		o->record_period = strtoul(arg, &end, 10);
		if (errno || *end || !*arg || o->record_period < MGI_RECORD_PERIOD_MIN_MS ||
		    o->record_period > MGI_RECORD_PERIOD_MAX_MS) {
			fprintf(stderr, "memgrp run: --record-period: milliseconds, %d to %d, "
					"not '%s'\n", MGI_RECORD_PERIOD_MIN_MS,
				MGI_RECORD_PERIOD_MAX_MS, arg);
			return -1;
		}
		return 1;
	}
	case OPT_RECORD_THRESHOLD: {
		uint64_t bytes = 0;
		if (o->nrecord_thr == MGI_RECORD_THRESHOLDS_MAX) {
			fprintf(stderr, "memgrp run: --record-threshold: at most %d of them\n",
				MGI_RECORD_THRESHOLDS_MAX);
			return -1;
		}
		bool parsed = mgi_size_parse(arg, &bytes, err, sizeof(err)) == 0;
		if (!parsed || !bytes) {
			fprintf(stderr, "memgrp run: --record-threshold %s: %s\n", arg,
				!parsed ? err : "a size above 0, such as 48M");
			return -1;
		}
		o->record_thr[o->nrecord_thr++] = bytes;
		return 1;
	}
	case OPT_SOCKET:
		o->sock_opt = arg;
		return 1;
	default:
		return 0;
	}
}

/* The options against each other and against this host, before anything
 * starts (the recorder's file opened: an unwritable one is said now).
 * Returns 0 or the exit status. */
int mgi_run_check(const struct run_ctx *r, const struct run_opts *o, mgi_record_t *rec,
		     char *agent, size_t agentlen)
{
	bool kernel = r->limits.backend == MGI_BACKEND_KERNEL;
	char err[256];

	if (o->nrecord_thr && !o->record) {
		fprintf(stderr, "memgrp run: --record-threshold needs --record FILE\n");
		return MGI_EXIT_USAGE;
	}
	if (o->record && mgi_record_open(rec, o->record, (unsigned)o->record_period, err,
					 sizeof(err)) != 0) {
		fprintf(stderr, "memgrp run: %s\n", err);
		return MGI_EXIT_USAGE;
	}
	memcpy(rec->thresholds, o->record_thr, o->nrecord_thr * sizeof(o->record_thr[0]));
	rec->nthresholds = o->nrecord_thr;
	if (kernel && (o->agent_only || r->limits.mode == MGI_MODE_ESTIMATE)) {
		/* What only the agent does: the kernel backend has no
		 * compressed store and no per-fault accounting. */
		fprintf(stderr, "memgrp run: %s needs the agent (%s): not with --backend kernel\n",
			o->agent_only ? o->agent_only : "--mode estimate",
			o->agent_only && !strcmp(o->agent_only, "--fault-around")
				? "it resolves the faults"
			: o->agent_only ? "the per-group compressed store is the agent's"
					: "it charges regions as the agent sees them mapped");
		return MGI_EXIT_USAGE;
	}
	if (kernel && o->mo.backstop_given && !o->mo.backstop) {
		fprintf(stderr, "memgrp run: --backend kernel is served by the kernel memory cgroup: "
				"not with --kernel-backstop off\n");
		return MGI_EXIT_USAGE;
	}
	if (!kernel && mgi_run_find_agent(agent, agentlen) != 0) {
		fprintf(stderr, "memgrp run: cannot find libmemgrp-agent.so next to this program; "
				"set MEMGRP_AGENT to its path\n");
		return MGI_EXIT_FAILURE;
	}
	/* Fail here, with the reason, rather than in every child. */
	int probe = kernel ? -1 : mgi_uffd_open(NULL, NULL, err, sizeof(err));
	if (!kernel && probe < 0) {
		fprintf(stderr, "memgrp run: %s\n", err);
		return MGI_EXIT_FAILURE;
	}
	if (probe >= 0)
		close(probe);
	return 0;
}

/* events.c - `memgrp events`: a group's threshold, pressure and OOM events, one line each. */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "memgrp.h"
#include "size.h"

#define WATCH_MAX 32

struct watch {
	int efd;
	const char *kind; /* "threshold", "pressure", "oom", "ladder" */
	uint64_t bytes;   /* thresholds */
	bool memsw;
	const char *level;
};

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: memgrp events [--socket PATH] [--threshold SIZE]... [--memsw]\n"
		"                     [--pressure LEVEL[,hierarchy]] [--oom] [--ladder]\n"
		"                     [--count N]\n"
		"                     [--json] GROUP\n"
		"\n"
		"Prints one line per event of GROUP until interrupted (or N events):\n"
		"  TIME GROUP threshold SIZE up|down usage USAGE\n"
		"  TIME GROUP pressure LEVEL usage USAGE\n"
		"  TIME GROUP oom usage USAGE\n"
		"  TIME GROUP ladder RUNG OUTCOME usage USAGE\n"
		"--ladder prints each step of the ladder at pressure (here or in a group\n"
		"above or below): vrange purge (volatile pages, mg_vrange, purged first),\n"
		"coop asked|enough (cooperating clients asked to free\n"
		"memory; they freed what was needed), evict asked|empty (eviction for a\n"
		"refused charge; it freed nothing), oom kill|pause|none (the OOM action:\n"
		"a kill, a pause with --oom-kill-disable, or nobody to kill).\n"
		"Thresholds watch the memory counter, or memory+swap with --memsw.\n"
		"Pressure levels: low (75%% of the limit), medium (90%%), critical (98%%);\n"
		"',hierarchy' also hears the groups below GROUP. Every crossing is\n"
		"printed: a line that stands for several (the manager counts them) says\n"
		"'xN'.\n"
		"With --json each event is one JSON object on its line (\"time\", \"group\",\n"
		"\"event\", \"count\", \"usage\", ...), and an OOM kill's line is its\n"
		"post-mortem record: \"event\": \"oom_kill\" with the time, the group whose\n"
		"limit was hit, the reason, policy, scope and signal, the victim (pid,\n"
		"group, command line, charged bytes, age, priority, why it was chosen),\n"
		"the group's figures and its largest processes (the manager keeps the\n"
		"last 32).\n");
}

/* --json: one object per line. */
static void print_event_json(const char *group, const struct watch *w, int64_t n,
			     const mg_stats_t *st)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	printf("{\"time\": %lld.%03ld, \"group\": ", (long long)ts.tv_sec, ts.tv_nsec / 1000000);
	mgi_json_str(stdout, group);
	printf(", \"event\": \"%s\", \"count\": %lld, \"usage\": %llu", w->kind, (long long)n,
	       (unsigned long long)st->usage);
	if (!strcmp(w->kind, "threshold"))
		printf(", \"threshold\": %llu, \"counter\": \"%s\", \"direction\": \"%s\"",
		       (unsigned long long)w->bytes, w->memsw ? "memsw" : "memory",
		       st->usage >= w->bytes ? "up" : "down");
	else if (!strcmp(w->kind, "pressure"))
		printf(", \"level\": \"%s\"", w->level);
	printf("}\n");
	fflush(stdout);
}

/* The ladder's counts and what each step is called: rung, outcome. */
static const struct {
	size_t offset;
	const char *rung, *outcome;
} ladder_steps[] = {
	{offsetof(mg_ladder_t, purge), "vrange", "purge"},
	{offsetof(mg_ladder_t, coop), "coop", "asked"},
	{offsetof(mg_ladder_t, coop_enough), "coop", "enough"},
	{offsetof(mg_ladder_t, evict), "evict", "asked"},
	{offsetof(mg_ladder_t, evict_empty), "evict", "empty"},
	{offsetof(mg_ladder_t, oom_pauses), "oom", "pause"},
	{offsetof(mg_ladder_t, oom_kill), "oom", "kill"},
	{offsetof(mg_ladder_t, oom_none), "oom", "none"},
};

/* --ladder: one line per step taken since *last (counts that grew);
 * returns how many lines. */
static long print_ladder(const char *group, const mg_ladder_t *now, mg_ladder_t *last, bool json,
			 const mg_stats_t *st)
{
	long lines = 0;
	char usage[16], when[16];
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	strftime(when, sizeof(when), "%H:%M:%S", &tm);
	for (size_t i = 0; i < sizeof(ladder_steps) / sizeof(ladder_steps[0]); i++) {
		uint64_t a = *(const uint64_t *)((const char *)now + ladder_steps[i].offset);
		uint64_t b = *(const uint64_t *)((const char *)last + ladder_steps[i].offset);
		if (a <= b)
			continue;
		if (json) {
			printf("{\"time\": %lld.%03ld, \"group\": ", (long long)ts.tv_sec,
			       ts.tv_nsec / 1000000);
			mgi_json_str(stdout, group);
			printf(", \"event\": \"ladder\", \"rung\": \"%s\", \"outcome\": \"%s\", "
			       "\"count\": %llu, \"total\": %llu, \"usage\": %llu, \"under_oom\": %llu}\n",
			       ladder_steps[i].rung, ladder_steps[i].outcome, (unsigned long long)(a - b),
			       (unsigned long long)a, (unsigned long long)st->usage,
			       (unsigned long long)now->under_oom);
		} else {
			printf("%s %s ladder %s %s usage %s%s", when, group, ladder_steps[i].rung,
			       ladder_steps[i].outcome, mgi_size_format(st->usage, usage, sizeof(usage)),
			       a - b > 1 ? "" : "\n");
			if (a - b > 1)
				printf(" x%llu\n", (unsigned long long)(a - b));
		}
		lines++;
	}
	*last = *now;
	fflush(stdout);
	return lines;
}

/* --json, after an OOM event: the post-mortem records of the kills since
 * *after, one line each ({"event": "oom_kill", ...the record}). Returns
 * how many were printed. */
static long print_records(const char *sock, const char *group, uint64_t *after)
{
	static mgi_msg_t req, ans;
	char err[160];
	long printed = 0;

	for (;;) {
		mgi_msg_init(&req, MGI_MSG_OOM_RECORD_REQ);
		snprintf(req.oom_record_req.group, sizeof(req.oom_record_req.group), "%s", group);
		req.oom_record_req.after = *after;
		if (mgi_request(sock, &req, MGI_MSG_OOM_RECORD, &ans, err, sizeof(err)) != 0)
			break; /* none newer (or none kept) */
		*after = ans.oom_record.seq;
		const char *text = ans.oom_record.text;
		/* the record is an object: "event" goes in front of its keys */
		if (text[0] == '{')
			printf("{\"event\": \"oom_kill\", %s\n", text + 1);
		fflush(stdout);
		printed++;
	}
	return printed;
}

static void print_event(const char *group, const struct watch *w, int64_t n, const mg_stats_t *st)
{
	struct timespec ts;
	struct tm tm;
	char when[32], a[16], b[16], times[24] = "";

	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	if (n > 1)
		snprintf(times, sizeof(times), " x%lld", (long long)n);
	mgi_size_format(st->usage, a, sizeof(a));
	if (!strcmp(w->kind, "threshold"))
		printf("%s.%03ld %s threshold%s %s %s%s usage %s\n", when, ts.tv_nsec / 1000000, group,
		       w->memsw ? " memsw" : "", mgi_size_format(w->bytes, b, sizeof(b)),
		       st->usage >= w->bytes ? "up" : "down", times, a);
	else if (!strcmp(w->kind, "pressure"))
		printf("%s.%03ld %s pressure %s%s usage %s\n", when, ts.tv_nsec / 1000000, group, w->level,
		       times, a);
	else
		printf("%s.%03ld %s oom%s usage %s\n", when, ts.tv_nsec / 1000000, group, times, a);
	fflush(stdout);
}

int mgi_cmd_events(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"threshold", required_argument, NULL, 't'},
		{"memsw", no_argument, NULL, 'w'},
		{"pressure", required_argument, NULL, 'p'},
		{"oom", no_argument, NULL, 'o'},
		{"ladder", no_argument, NULL, 'l'},
		{"count", required_argument, NULL, 'n'},
		{"socket", required_argument, NULL, 's'},
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct watch w[WATCH_MAX];
	uint64_t thresholds[WATCH_MAX];
	const char *pressure = NULL, *sock = NULL;
	unsigned nthr = 0, nw = 0;
	bool memsw = false, oom = false, json = false, ladder = false;
	mg_ladder_t ladder_last = {0};
	uint64_t record_after = 0;
	long count = -1;
	char err[160], path[108], *end;
	int opt, rc;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case 't':
			if (nthr == WATCH_MAX - 2) {
				fprintf(stderr, "memgrp events: at most %d thresholds\n", WATCH_MAX - 2);
				return MGI_EXIT_USAGE;
			}
			if (mgi_size_parse(optarg, &thresholds[nthr], err, sizeof(err)) != 0 ||
			    thresholds[nthr] == 0 || thresholds[nthr] == MGI_SIZE_MAX) {
				fprintf(stderr, "memgrp events: --threshold: %s\n",
					thresholds[nthr] ? err : "a size above 0");
				return MGI_EXIT_USAGE;
			}
			nthr++;
			break;
		case 'w': memsw = true; break;
		case 'p': pressure = optarg; break;
		case 'o': oom = true; break;
		case 'l': ladder = true; break;
		case 'n':
			errno = 0;
			count = strtol(optarg, &end, 10);
			if (errno || *end || count < 1) {
				fprintf(stderr, "memgrp events: --count: a number of events, 1 or more\n");
				return MGI_EXIT_USAGE;
			}
			break;
		case 's': sock = optarg; break;
		case 'j': json = true; break;
		case 'h': usage(stdout); return MGI_EXIT_OK;
		default: return MGI_EXIT_USAGE;
		}
	}
	if (optind + 1 != argc) {
		fprintf(stderr, "memgrp events: name one group (memgrp events [OPTIONS] GROUP)\n");
		return MGI_EXIT_USAGE;
	}
	const char *group = argv[optind];
	if (mgi_group_name_check(group, err, sizeof(err)) != 0) {
		fprintf(stderr, "memgrp events: '%s': %s\n", group, err);
		return MGI_EXIT_USAGE;
	}
	enum mg_pressure_level level = MG_PRESSURE_LOW;
	enum mg_pressure_mode mode = MG_PRESSURE_LOCAL;
	char level_name[16] = "";
	if (pressure) {
		const char *comma = strchr(pressure, ',');
		size_t len = comma ? (size_t)(comma - pressure) : strlen(pressure);
		snprintf(level_name, sizeof(level_name), "%.*s", (int)(len < 15 ? len : 15), pressure);
		if (!strcmp(level_name, "low"))
			level = MG_PRESSURE_LOW;
		else if (!strcmp(level_name, "medium"))
			level = MG_PRESSURE_MEDIUM;
		else if (!strcmp(level_name, "critical"))
			level = MG_PRESSURE_CRITICAL;
		else {
			fprintf(stderr, "memgrp events: --pressure: low, medium or critical, "
					"optionally ',hierarchy' or ',local'\n");
			return MGI_EXIT_USAGE;
		}
		if (comma && !strcmp(comma + 1, "hierarchy"))
			mode = MG_PRESSURE_HIERARCHY;
		else if (comma && strcmp(comma + 1, "local") != 0) {
			fprintf(stderr, "memgrp events: --pressure: the mode is hierarchy or local\n");
			return MGI_EXIT_USAGE;
		}
	}
	if (!nthr && !pressure && !oom && !ladder) {
		fprintf(stderr, "memgrp events: nothing to watch (--threshold, --pressure, --oom or "
				"--ladder)\n");
		return MGI_EXIT_USAGE;
	}
	if (mgi_find_manager(sock, group, path, sizeof(path), err, sizeof(err)) != 0) {
		fprintf(stderr, "memgrp events: %s\n", err);
		return MGI_EXIT_USAGE;
	}
	mg_client_t *c = mg_connect(path, &rc);
	if (!c) {
		fprintf(stderr, "memgrp events: no manager answers at %s: %s\n", path, strerror(-rc));
		return MGI_EXIT_FAILURE;
	}
	for (unsigned i = 0; i < nthr; i++) {
		rc = mg_threshold_add(c, group, memsw ? MG_COUNTER_MEMSW : MG_COUNTER_MEMORY,
				      thresholds[i]);
		w[nw++] = (struct watch){.efd = rc, .kind = "threshold", .bytes = thresholds[i],
					 .memsw = memsw};
		if (rc < 0)
			goto refused;
	}
	if (pressure) {
		rc = mg_pressure_add(c, group, level, mode);
		w[nw++] = (struct watch){.efd = rc, .kind = "pressure", .level = level_name};
		if (rc < 0)
			goto refused;
	}
	if (oom && json) {
		/* the records kept from before are not this watch's events */
		static mgi_msg_t req, ans;
		mgi_msg_init(&req, MGI_MSG_OOM_RECORD_REQ);
		snprintf(req.oom_record_req.group, sizeof(req.oom_record_req.group), "%s", group);
		for (req.oom_record_req.after = 0;
		     mgi_request(path, &req, MGI_MSG_OOM_RECORD, &ans, err, sizeof(err)) == 0;)
			req.oom_record_req.after = record_after = ans.oom_record.seq;
	}
	if (oom) {
		rc = mg_oom_add(c, group);
		w[nw++] = (struct watch){.efd = rc, .kind = "oom"};
		if (rc < 0)
			goto refused;
	}
	if (ladder) {
		/* the counts from before are not this watch's events */
		rc = mg_ladder_read(c, group, &ladder_last);
		if (rc == 0)
			rc = mg_ladder_add(c, group);
		w[nw++] = (struct watch){.efd = rc, .kind = "ladder"};
		if (rc < 0)
			goto refused;
	}
	fprintf(stderr, "memgrp events: watching %s (%u registrations); interrupt to stop\n", group,
		nw);
	for (long seen = 0; count < 0 || seen < count;) {
		struct pollfd p[WATCH_MAX + 1];
		for (unsigned i = 0; i < nw; i++)
			p[i] = (struct pollfd){.fd = w[i].efd, .events = POLLIN};
		p[nw] = (struct pollfd){.fd = mg_fd(c), .events = 0}; /* POLLHUP */
		if (poll(p, nw + 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[nw].revents) {
			fprintf(stderr, "memgrp events: the manager of %s has gone\n", group);
			mg_close(c);
			return MGI_EXIT_OK;
		}
		mg_stats_t st = {0};
		if (mg_stats(c, group, &st) != 0) {
			fprintf(stderr, "memgrp events: %s\n", mg_last_error(c));
			mg_close(c);
			return MGI_EXIT_FAILURE;
		}
		for (unsigned i = 0; i < nw; i++) {
			if (!(p[i].revents & POLLIN))
				continue;
			int64_t n = mg_event_read(w[i].efd);
			if (n <= 0)
				continue;
			if (!strcmp(w[i].kind, "ladder")) {
				mg_ladder_t now;
				if (mg_ladder_read(c, group, &now) == 0)
					seen += print_ladder(group, &now, &ladder_last, json, &st);
				continue;
			}
			if (json)
				print_event_json(group, &w[i], n, &st);
			else
				print_event(group, &w[i], n, &st);
			/* the kills' records follow the event (the manager wrote
			 * each before it went back to its loop) */
			if (json && !strcmp(w[i].kind, "oom"))
				print_records(path, group, &record_after);
			seen += n;
		}
	}
	mg_close(c);
	return MGI_EXIT_OK;
refused:
	fprintf(stderr, "memgrp events: %s\n", mg_last_error(c));
	mg_close(c);
	return MGI_EXIT_FAILURE;
}

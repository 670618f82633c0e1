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
	{offsetof(mg_ladder_t, handler_asked), "handler", "asked"},
	{offsetof(mg_ladder_t, handler_kill), "handler", "kill"},
	{offsetof(mg_ladder_t, handler_raise), "handler", "raise"},
	{offsetof(mg_ladder_t, handler_resume), "handler", "resume"},
	{offsetof(mg_ladder_t, handler_fallback), "handler", "fallback"},
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

/* What one `memgrp events` watches, and what it has printed so far. */
struct events {
	const char *group, *path; /* the group; its manager's socket */
	struct watch w[WATCH_MAX];
	unsigned nw;
	uint64_t thresholds[WATCH_MAX];
	unsigned nthr;
	bool memsw, oom, json, ladder;
	const char *pressure; /* --pressure as given, or NULL */
	enum mg_pressure_level level;
	enum mg_pressure_mode mode;
	char level_name[16];
	mg_ladder_t ladder_last; /* the ladder's counts last printed */
	uint64_t record_after;   /* the last OOM record printed */
	long count;              /* events to print; -1: until interrupted */
};

/* --pressure LEVEL[,hierarchy|,local] into e. 0, or the exit status after
 * saying why not. */
static int parse_pressure(struct events *e)
{
	const char *comma = strchr(e->pressure, ',');
	size_t len = comma ? (size_t)(comma - e->pressure) : strlen(e->pressure);

	snprintf(e->level_name, sizeof(e->level_name), "%.*s", (int)(len < 15 ? len : 15),
		 e->pressure);
	if (!strcmp(e->level_name, "low"))
		e->level = MG_PRESSURE_LOW;
	else if (!strcmp(e->level_name, "medium"))
		e->level = MG_PRESSURE_MEDIUM;
	else if (!strcmp(e->level_name, "critical"))
		e->level = MG_PRESSURE_CRITICAL;
	else {
		fprintf(stderr, "memgrp events: --pressure: low, medium or critical, "
				"optionally ',hierarchy' or ',local'\n");
		return MGI_EXIT_USAGE;
	}
	if (comma && !strcmp(comma + 1, "hierarchy"))
		e->mode = MG_PRESSURE_HIERARCHY;
	else if (comma && strcmp(comma + 1, "local") != 0) {
		fprintf(stderr, "memgrp events: --pressure: the mode is hierarchy or local\n");
		return MGI_EXIT_USAGE;
	}
	return 0;
}

/* The command line into e. 0, -1 for --help (printed), or the exit status
 * after saying why not. */
static int parse_events(int argc, char **argv, struct events *e)
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
	char err[160], *end;
	int opt;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case 't':
			if (e->nthr == WATCH_MAX - 2) {
				fprintf(stderr, "memgrp events: at most %d thresholds\n", WATCH_MAX - 2);
				return MGI_EXIT_USAGE;
			}
			if (mgi_size_parse(optarg, &e->thresholds[e->nthr], err, sizeof(err)) != 0 ||
			    e->thresholds[e->nthr] == 0 || e->thresholds[e->nthr] == MGI_SIZE_MAX) {
				fprintf(stderr, "memgrp events: --threshold: %s\n",
					e->thresholds[e->nthr] ? err : "a size above 0");
				return MGI_EXIT_USAGE;
			}
			e->nthr++;
			break;
		case 'w': e->memsw = true; break;
		case 'p': e->pressure = optarg; break;
		case 'o': e->oom = true; break;
		case 'l': e->ladder = true; break;
		case 'n':
			errno = 0;
			e->count = strtol(optarg, &end, 10);
			if (errno || *end || e->count < 1) {
				fprintf(stderr, "memgrp events: --count: a number of events, 1 or more\n");
				return MGI_EXIT_USAGE;
			}
			break;
		case 's': e->path = optarg; break;
		case 'j': e->json = true; break;
		case 'h': usage(stdout); return -1;
		default: return MGI_EXIT_USAGE;
		}
	}
	if (optind + 1 != argc) {
		fprintf(stderr, "memgrp events: name one group (memgrp events [OPTIONS] GROUP)\n");
		return MGI_EXIT_USAGE;
	}
	e->group = argv[optind];
	if (mgi_group_name_check(e->group, err, sizeof(err)) != 0) {
		fprintf(stderr, "memgrp events: '%s': %s\n", e->group, err);
		return MGI_EXIT_USAGE;
	}
	if (e->pressure && parse_pressure(e) != 0)
		return MGI_EXIT_USAGE;
	if (!e->nthr && !e->pressure && !e->oom && !e->ladder) {
		fprintf(stderr, "memgrp events: nothing to watch (--threshold, --pressure, --oom or "
				"--ladder)\n");
		return MGI_EXIT_USAGE;
	}
	return 0;
}

/* Registers e's watches with the manager. 0, or -1 when one was refused
 * (mg_last_error says why). */
static int add_watches(mg_client_t *c, struct events *e)
{
	char err[160];
	int rc;

	for (unsigned i = 0; i < e->nthr; i++) {
		rc = mg_threshold_add(c, e->group, e->memsw ? MG_COUNTER_MEMSW : MG_COUNTER_MEMORY,
				      e->thresholds[i]);
		e->w[e->nw++] = (struct watch){.efd = rc, .kind = "threshold",
					       .bytes = e->thresholds[i], .memsw = e->memsw};
		if (rc < 0)
			return -1;
	}
	if (e->pressure) {
		rc = mg_pressure_add(c, e->group, e->level, e->mode);
		e->w[e->nw++] = (struct watch){.efd = rc, .kind = "pressure", .level = e->level_name};
		if (rc < 0)
			return -1;
	}
	if (e->oom && e->json) {
		/* the records kept from before are not this watch's events */
		static mgi_msg_t req, ans;
		mgi_msg_init(&req, MGI_MSG_OOM_RECORD_REQ);
		snprintf(req.oom_record_req.group, sizeof(req.oom_record_req.group), "%s", e->group);
		for (req.oom_record_req.after = 0;
		     mgi_request(e->path, &req, MGI_MSG_OOM_RECORD, &ans, err, sizeof(err)) == 0;)
			req.oom_record_req.after = e->record_after = ans.oom_record.seq;
	}
	if (e->oom) {
		rc = mg_oom_add(c, e->group);
		e->w[e->nw++] = (struct watch){.efd = rc, .kind = "oom"};
		if (rc < 0)
			return -1;
	}
	if (e->ladder) {
		/* the counts from before are not this watch's events */
		rc = mg_ladder_read(c, e->group, &e->ladder_last);
		if (rc == 0)
			rc = mg_ladder_add(c, e->group);
		e->w[e->nw++] = (struct watch){.efd = rc, .kind = "ladder"};
		if (rc < 0)
			return -1;
	}
	return 0;
}

/* Prints e's events until --count of them, an interrupt or the manager's
 * end. Returns the exit status. */
static int watch_events(mg_client_t *c, struct events *e)
{
	for (long seen = 0; e->count < 0 || seen < e->count;) {
		struct pollfd p[WATCH_MAX + 1];
		for (unsigned i = 0; i < e->nw; i++)
			p[i] = (struct pollfd){.fd = e->w[i].efd, .events = POLLIN};
		p[e->nw] = (struct pollfd){.fd = mg_fd(c), .events = 0}; /* POLLHUP */
		if (poll(p, e->nw + 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[e->nw].revents) {
			fprintf(stderr, "memgrp events: the manager of %s has gone\n", e->group);
			return MGI_EXIT_OK;
		}
		mg_stats_t st = {0};
		if (mg_stats(c, e->group, &st) != 0) {
			fprintf(stderr, "memgrp events: %s\n", mg_last_error(c));
			return MGI_EXIT_FAILURE;
		}
		for (unsigned i = 0; i < e->nw; i++) {
			if (!(p[i].revents & POLLIN))
				continue;
			int64_t n = mg_event_read(e->w[i].efd);
			if (n <= 0)
				continue;
			if (!strcmp(e->w[i].kind, "ladder")) {
				mg_ladder_t now;
				if (mg_ladder_read(c, e->group, &now) == 0)
					seen += print_ladder(e->group, &now, &e->ladder_last, e->json, &st);
				continue;
			}
			if (e->json)
				print_event_json(e->group, &e->w[i], n, &st);
			else
				print_event(e->group, &e->w[i], n, &st);
			/* the kills' records follow the event (the manager wrote
			 * each before it went back to its loop) */
			if (e->json && !strcmp(e->w[i].kind, "oom"))
				print_records(e->path, e->group, &e->record_after);
			seen += n;
		}
	}
	return MGI_EXIT_OK;
}

int mgi_cmd_events(int argc, char **argv)
{
	static struct events e;
	char err[160], path[108];
	int rc;

	memset(&e, 0, sizeof(e));
	e.level = MG_PRESSURE_LOW;
	e.mode = MG_PRESSURE_LOCAL;
	e.count = -1;
	if ((rc = parse_events(argc, argv, &e)) != 0)
		return rc < 0 ? MGI_EXIT_OK : rc;
	/* (e.path is --socket until here) */
	if (mgi_find_manager(e.path, e.group, path, sizeof(path), err, sizeof(err)) != 0) {
		fprintf(stderr, "memgrp events: %s\n", err);
		return MGI_EXIT_USAGE;
	}
	e.path = path;
	mg_client_t *c = mg_connect(path, &rc);
	if (!c) {
		fprintf(stderr, "memgrp events: no manager answers at %s: %s\n", path, strerror(-rc));
		return MGI_EXIT_FAILURE;
	}
	if (add_watches(c, &e) != 0) {
		fprintf(stderr, "memgrp events: %s\n", mg_last_error(c));
		mg_close(c);
		return MGI_EXIT_FAILURE;
	}
	fprintf(stderr, "memgrp events: watching %s (%u registrations); interrupt to stop\n",
		e.group, e.nw);
	rc = watch_events(c, &e);
	mg_close(c);
	return rc;
}

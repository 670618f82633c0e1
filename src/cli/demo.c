/* demo.c - `memgrp demo`: the accounting core driven through a scripted scenario. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "counter.h"
#include "estimate.h"
#include "size.h"
#include "threshold.h"

/*
 * No processes are managed here: the demo charges and uncharges the core's
 * counters itself, as the agent will at page faults, so that what the core
 * decides (which limit refuses, which thresholds fire, which regions turn
 * slow) can be seen without userfaultfd.
 */

#define PAGE MGI_PAGE_SIZE
#define NTHRESH 3

struct demo_opts {
	uint64_t parent_max, child_max, step;
	uint64_t thresholds[NTHRESH];
};

static const char *const listener_name[NTHRESH + 1] = {
	"", "app 'gc' (runs its garbage collector)",
	"app 'cache' (trims its cache)", "app 'log' (alerts the operator)",
};

static char *fmt(uint64_t pages, char *buf)
{
	return mgi_size_format(pages == MGI_PAGES_UNLIMITED ? MGI_SIZE_MAX : pages * PAGE,
			       buf, 16);
}

/* The narrative goes here: stdout, or /dev/null under --json. */
static FILE *demo_out;

/* What --json prints: the figures the narrative ends with. */
static struct demo_result {
	uint64_t limit[3], peak[3], failcnt[3]; /* web, web/api, web/worker (pages) */
	uint64_t up[NTHRESH + 1], down[NTHRESH + 1]; /* crossings per listener */
	uint64_t est_limit, estimate, charged, mapped, faults, mode_switches, slow, fast;
} demo_res;

/* Where the demo's checkers stand in its one threshold set. */
static mgi_threshold_pos_t demo_pos;

static void on_cross(void *arg, const mgi_threshold_event_t *ev)
{
	char a[16];
	(void)arg;
	if (ev->listener <= NTHRESH)
		(ev->up ? demo_res.up : demo_res.down)[ev->listener]++;
	fprintf(demo_out, "        threshold %s crossed %s -> notify %s\n", fmt(ev->threshold, a),
	       ev->up ? "upward  " : "downward", listener_name[ev->listener]);
}

/* Charges `pages` to path in one go and reports what the core said. */
static void charge(const char *who, const mgi_counter_path_t *path,
		   const char *const *names, mgi_threshold_set_t *set, uint64_t pages)
{
	char a[16], b[16];
	unsigned failed;

	if (mgi_counter_try_charge(path, pages, &failed)) {
		fprintf(demo_out, "  %-10s +%-5s usage %s\n", who, fmt(pages, a),
		       fmt(mgi_counter_read(path->level[0]), b));
		if (set)
			mgi_threshold_check_live(set, &demo_pos, mgi_counter_read(path->level[0]),
						 &path->level[0]->usage, on_cross, NULL);
	} else {
		char c[16];
		fprintf(demo_out, "  %-10s +%-5s REFUSED by %s (usage %s, max %s, failcnt %llu)\n", who,
		       fmt(pages, a), names[failed], fmt(mgi_counter_read(path->level[failed]), b),
		       fmt(mgi_counter_read_max(path->limit[failed]), c),
		       (unsigned long long)atomic_load(&path->level[failed]->failcnt));
	}
}

static void uncharge(const char *who, const mgi_counter_path_t *path,
		     mgi_threshold_set_t *set, uint64_t pages)
{
	char a[16], b[16];
	mgi_counter_uncharge(path, pages);
	fprintf(demo_out, "  %-10s -%-5s usage %s\n", who, fmt(pages, a),
	       fmt(mgi_counter_read(path->level[0]), b));
	if (set)
		mgi_threshold_check_live(set, &demo_pos, mgi_counter_read(path->level[0]),
					 &path->level[0]->usage, on_cross, NULL);
}

static int hierarchy_and_thresholds(const struct demo_opts *o)
{
	mgi_counter_t web, api, worker;
	mgi_limits_t web_l, api_l, worker_l;
	mgi_threshold_set_t *set = malloc(mgi_threshold_set_bytes(NTHRESH));
	const char *const api_names[] = {"web/api", "web"};
	const char *const worker_names[] = {"web/worker", "web"};
	char a[16], b[16], c[16];

	if (!set)
		return MGI_EXIT_FAILURE;
	mgi_counter_init(&web);
	mgi_counter_init(&api);
	mgi_counter_init(&worker);
	mgi_counter_limits_init(&web_l);
	mgi_counter_limits_init(&api_l);
	mgi_counter_limits_init(&worker_l);
	mgi_counter_set_max(&web, &web_l, o->parent_max);
	mgi_counter_set_max(&api, &api_l, o->child_max);
	mgi_counter_path_t api_path = {.level = {&api, &web}, .limit = {&api_l, &web_l}, .depth = 2};
	mgi_counter_path_t worker_path = {.level = {&worker, &web}, .limit = {&worker_l, &web_l},
					  .depth = 2};

	mgi_threshold_set_init(set, NTHRESH);
	mgi_threshold_pos_init(&demo_pos);
	for (unsigned i = 0; i < NTHRESH; i++)
		mgi_threshold_register(set, &demo_pos, o->thresholds[i], i + 1, 0);

	fprintf(demo_out, "1. Hierarchical limits and usage thresholds\n"
	       "   groups: web (max %s) with children web/api (max %s) and web/worker\n",
	       fmt(o->parent_max, a), fmt(o->child_max, b));
	fprintf(demo_out, "   thresholds on web/api: %s, %s, %s\n\n", fmt(o->thresholds[0], a),
	       fmt(o->thresholds[1], b), fmt(o->thresholds[2], c));

	fprintf(demo_out, "   web/api grows until its own limit refuses:\n");
	for (uint64_t used = 0; used <= o->child_max; used += o->step)
		charge("web/api", &api_path, api_names, set, o->step);

	fprintf(demo_out, "\n   web/worker grows until the parent's limit refuses:\n");
	for (uint64_t used = 0; used <= o->parent_max; used += o->step) {
		if (mgi_counter_margin(&web, &web_l) < o->step) {
			charge("web/worker", &worker_path, worker_names, NULL, o->step);
			break;
		}
		charge("web/worker", &worker_path, worker_names, NULL, o->step);
	}

	fprintf(demo_out, "\n   web/api frees memory (its app collected garbage):\n");
	uncharge("web/api", &api_path, set, mgi_counter_read(&api) / 2);
	uncharge("web/api", &api_path, set, mgi_counter_read(&api));

	fprintf(demo_out, "\n   peak usage: web %s, web/api %s, web/worker %s\n\n",
	       fmt(atomic_load(&web.watermark), a), fmt(atomic_load(&api.watermark), b),
	       fmt(atomic_load(&worker.watermark), c));
	const mgi_counter_t *cs[3] = {&web, &api, &worker};
	const mgi_limits_t *ls[3] = {&web_l, &api_l, &worker_l};
	for (int i = 0; i < 3; i++) {
		demo_res.limit[i] = mgi_counter_read_max(ls[i]);
		demo_res.peak[i] = atomic_load(&cs[i]->watermark);
		demo_res.failcnt[i] = atomic_load(&cs[i]->failcnt);
	}
	free(set);
	return MGI_EXIT_OK;
}

/* The demo's address space: each region really uses a quarter of itself. */
static uint64_t demo_resident(void *ctx, const mgi_region_t *r)
{
	(void)ctx;
	return r->pages / 4;
}

static void print_regions(const mgi_estimate_t *est, const mgi_counter_t *group)
{
	char a[16], b[16], c[16];
	fprintf(demo_out, "        E %s (charged %s), M %s, regions:", fmt(est->estimate, a),
	       fmt(mgi_counter_read(group), b), fmt(est->mapped, c));
	for (uint32_t i = 0; i < est->used_slots; i++)
		if (est->regions[i].used)
			fprintf(demo_out, " %s/%s", fmt(est->regions[i].pages, a),
			       est->regions[i].slow ? "slow" : "fast");
	fprintf(demo_out, "\n");
}

static int estimate_model(const struct demo_opts *o)
{
	const mgi_estimate_ops_t ops = {.count_resident = demo_resident};
	const uint64_t sizes[] = {o->child_max / 2, o->child_max / 3, o->child_max / 2,
				  o->child_max};
	mgi_estimate_t *est = malloc(mgi_estimate_bytes(8));
	mgi_counter_t group;
	mgi_limits_t group_l;
	uint64_t faults = 0;
	uint32_t idx = 0, last = 0;
	char a[16];
	int rc;

	if (!est)
		return MGI_EXIT_FAILURE;
	mgi_estimate_init(est, 8);
	mgi_counter_init(&group);
	mgi_counter_limits_init(&group_l);
	mgi_counter_set_max(&group, &group_l, o->child_max);
	mgi_counter_path_t path = {.level = {&group}, .limit = {&group_l}, .depth = 1};
	mgi_estimate_acct_t acct = mgi_estimate_path_acct(&path);

	fprintf(demo_out, "2. Estimate accounting (seed 001): group 'batch', max %s;\n"
	   "   each region really touches a quarter of its pages\n\n",
	   fmt(o->child_max, a));
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		rc = mgi_estimate_map(est, &acct, sizes[i], i, false, &ops, NULL, &idx);
		if (rc) {
			fprintf(stderr, "memgrp demo: map failed: %s\n", strerror(-rc));
			free(est);
			return MGI_EXIT_FAILURE;
		}
		fprintf(demo_out, "   map %-6s -> %s\n", fmt(sizes[i], a),
		       est->regions[idx].slow ? "slow (no fast region left to make room)"
					      : "fast (charged at its size)");
		print_regions(est, &group);
		last = idx;
	}
	fprintf(demo_out, "   fault pages into the last (slow) region until refused:\n");
	while ((rc = mgi_estimate_fault(est, &acct, last, faults, &ops, NULL)) == 0)
		faults++;
	fprintf(demo_out, "        %llu faults charged, then denied (%s): every region is slow,\n"
	       "        so the group's usage is exact and at its limit\n",
	       (unsigned long long)faults, strerror(-rc));
	print_regions(est, &group);
	fprintf(demo_out, "   mode switches: %llu\n", (unsigned long long)est->mode_switches);
	demo_res.est_limit = o->child_max;
	demo_res.estimate = est->estimate;
	demo_res.charged = mgi_counter_read(&group);
	demo_res.mapped = est->mapped;
	demo_res.faults = faults;
	demo_res.mode_switches = est->mode_switches;
	for (uint32_t i = 0; i < est->used_slots; i++)
		if (est->regions[i].used)
			*(est->regions[i].slow ? &demo_res.slow : &demo_res.fast) += 1;
	free(est);
	return MGI_EXIT_OK;
}

/* A size in pages as bytes for JSON; null for no limit. */
static void json_bytes(const char *key, uint64_t pages, const char *sep)
{
	if (pages == MGI_PAGES_UNLIMITED)
		printf("\"%s\": null%s", key, sep);
	else
		printf("\"%s\": %llu%s", key, (unsigned long long)(pages * PAGE), sep);
}

static void print_json(const struct demo_opts *o)
{
	static const char *const names[3] = {"web", "web/api", "web/worker"};

	printf("{\"groups\": [");
	for (int i = 0; i < 3; i++) {
		printf("%s{\"group\": \"%s\", ", i ? ", " : "", names[i]);
		json_bytes("limit", demo_res.limit[i], ", ");
		json_bytes("max_usage", demo_res.peak[i], ", ");
		printf("\"failcnt\": %llu}", (unsigned long long)demo_res.failcnt[i]);
	}
	printf("], \"thresholds\": [");
	for (int i = 0; i < NTHRESH; i++) {
		printf("%s{\"group\": \"web/api\", ", i ? ", " : "");
		json_bytes("threshold", o->thresholds[i], ", ");
		printf("\"up\": %llu, \"down\": %llu}", (unsigned long long)demo_res.up[i + 1],
		       (unsigned long long)demo_res.down[i + 1]);
	}
	printf("], \"estimate\": {\"group\": \"batch\", ");
	json_bytes("limit", demo_res.est_limit, ", ");
	json_bytes("estimate", demo_res.estimate, ", ");
	json_bytes("usage", demo_res.charged, ", ");
	json_bytes("mapped", demo_res.mapped, ", ");
	printf("\"faults_charged\": %llu, \"mode_switches\": %llu, \"slow_regions\": %llu, "
	       "\"fast_regions\": %llu}}\n",
	       (unsigned long long)demo_res.faults, (unsigned long long)demo_res.mode_switches,
	       (unsigned long long)demo_res.slow, (unsigned long long)demo_res.fast);
}

static int parse_size_opt(const char *name, const char *text, uint64_t *pages)
{
	char err[160];
	uint64_t bytes;

	if (mgi_size_parse(text, &bytes, err, sizeof(err)) != 0) {
		fprintf(stderr, "memgrp demo: --%s: %s\n", name, err);
		return -1;
	}
	if (bytes == MGI_SIZE_MAX || bytes < PAGE || bytes / PAGE > (1ULL << 40)) {
		fprintf(stderr, "memgrp demo: --%s: '%s' must be between 4K and 4P\n", name, text);
		return -1;
	}
	*pages = bytes / PAGE;
	return 0;
}

int mgi_cmd_demo(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"limit", required_argument, NULL, 'l'},
		{"child-limit", required_argument, NULL, 'c'},
		{"step", required_argument, NULL, 's'},
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct demo_opts o = {
		.parent_max = (64ULL << 20) / PAGE,
		.child_max = (48ULL << 20) / PAGE,
		.step = (4ULL << 20) / PAGE,
	};
	bool json = false;
	int opt, rc;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "l:c:s:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'l': if (parse_size_opt("limit", optarg, &o.parent_max)) return MGI_EXIT_USAGE; break;
		case 'c': if (parse_size_opt("child-limit", optarg, &o.child_max)) return MGI_EXIT_USAGE; break;
		case 's': if (parse_size_opt("step", optarg, &o.step)) return MGI_EXIT_USAGE; break;
		case 'j': json = true; break;
		case 'h':
			printf("Usage: memgrp demo [--limit SIZE] [--child-limit SIZE] [--step SIZE] [--json]\n"
			       "Drives the accounting core (no processes are managed):\n"
			       "  --limit SIZE        max of the parent group 'web' (default 64M)\n"
			       "  --child-limit SIZE  max of 'web/api' and of 'batch' (default 48M)\n"
			       "  --step SIZE         charge per step (default 4M)\n"
			       "  --json              the figures the scenario ends with, as one JSON\n"
			       "                      object (sizes in bytes), instead of the story\n");
			return MGI_EXIT_OK;
		default:
			return MGI_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "memgrp demo: unexpected argument '%s'\n", argv[optind]);
		return MGI_EXIT_USAGE;
	}
	if (o.child_max > o.parent_max || o.step > o.child_max) {
		fprintf(stderr, "memgrp demo: need step <= child-limit <= limit\n");
		return MGI_EXIT_USAGE;
	}
	/* Thresholds at a third, two thirds and five sixths of the child limit. */
	o.thresholds[0] = o.child_max / 3;
	o.thresholds[1] = o.child_max * 2 / 3;
	o.thresholds[2] = o.child_max * 5 / 6;

	memset(&demo_res, 0, sizeof(demo_res));
	demo_out = json ? fopen("/dev/null", "w") : stdout;
	if (!demo_out) {
		fprintf(stderr, "memgrp demo: /dev/null: %s\n", strerror(errno));
		return MGI_EXIT_FAILURE;
	}
	rc = hierarchy_and_thresholds(&o);
	if (rc == MGI_EXIT_OK)
		rc = estimate_model(&o);
	if (json) {
		fclose(demo_out);
		if (rc == MGI_EXIT_OK)
			print_json(&o);
	}
	return rc;
}

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

/* Where the demo's checkers stand in its one threshold set. */
static mgi_threshold_pos_t demo_pos;

static void on_cross(void *arg, const mgi_threshold_event_t *ev)
{
	char a[16];
	(void)arg;
	printf("        threshold %s crossed %s -> notify %s\n", fmt(ev->threshold, a),
	       ev->up ? "upward  " : "downward", listener_name[ev->listener]);
}

/* Charges `pages` to path in one go and reports what the core said. */
static void charge(const char *who, const mgi_counter_path_t *path,
		   const char *const *names, mgi_threshold_set_t *set, uint64_t pages)
{
	char a[16], b[16];
	unsigned failed;

	if (mgi_counter_try_charge(path, pages, &failed)) {
		printf("  %-10s +%-5s usage %s\n", who, fmt(pages, a),
		       fmt(mgi_counter_read(path->level[0]), b));
		if (set)
			mgi_threshold_check_live(set, &demo_pos, mgi_counter_read(path->level[0]),
						 &path->level[0]->usage, on_cross, NULL);
	} else {
		char c[16];
		printf("  %-10s +%-5s REFUSED by %s (usage %s, max %s, failcnt %llu)\n", who,
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
	printf("  %-10s -%-5s usage %s\n", who, fmt(pages, a),
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

	printf("1. Hierarchical limits and usage thresholds\n"
	       "   groups: web (max %s) with children web/api (max %s) and web/worker\n",
	       fmt(o->parent_max, a), fmt(o->child_max, b));
	printf("   thresholds on web/api: %s, %s, %s\n\n", fmt(o->thresholds[0], a),
	       fmt(o->thresholds[1], b), fmt(o->thresholds[2], c));

	printf("   web/api grows until its own limit refuses:\n");
	for (uint64_t used = 0; used <= o->child_max; used += o->step)
		charge("web/api", &api_path, api_names, set, o->step);

	printf("\n   web/worker grows until the parent's limit refuses:\n");
	for (uint64_t used = 0; used <= o->parent_max; used += o->step) {
		if (mgi_counter_margin(&web, &web_l) < o->step) {
			charge("web/worker", &worker_path, worker_names, NULL, o->step);
			break;
		}
		charge("web/worker", &worker_path, worker_names, NULL, o->step);
	}

	printf("\n   web/api frees memory (its app collected garbage):\n");
	uncharge("web/api", &api_path, set, mgi_counter_read(&api) / 2);
	uncharge("web/api", &api_path, set, mgi_counter_read(&api));

	printf("\n   peak usage: web %s, web/api %s, web/worker %s\n\n",
	       fmt(atomic_load(&web.watermark), a), fmt(atomic_load(&api.watermark), b),
	       fmt(atomic_load(&worker.watermark), c));
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
	printf("        E %s (charged %s), M %s, regions:", fmt(est->estimate, a),
	       fmt(mgi_counter_read(group), b), fmt(est->mapped, c));
	for (uint32_t i = 0; i < est->used_slots; i++)
		if (est->regions[i].used)
			printf(" %s/%s", fmt(est->regions[i].pages, a),
			       est->regions[i].slow ? "slow" : "fast");
	printf("\n");
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

	printf("2. Estimate accounting (seed 001): group 'batch', max %s;\n"
	   "   each region really touches a quarter of its pages\n\n",
	   fmt(o->child_max, a));
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		rc = mgi_estimate_map(est, &path, sizes[i], i, false, &ops, NULL, &idx);
		if (rc) {
			fprintf(stderr, "memgrp demo: map failed: %s\n", strerror(-rc));
			free(est);
			return MGI_EXIT_FAILURE;
		}
		printf("   map %-6s -> %s\n", fmt(sizes[i], a),
		       est->regions[idx].slow ? "slow (no fast region left to make room)"
					      : "fast (charged at its size)");
		print_regions(est, &group);
		last = idx;
	}
	printf("   fault pages into the last (slow) region until refused:\n");
	while ((rc = mgi_estimate_fault(est, &path, last, faults, &ops, NULL)) == 0)
		faults++;
	printf("        %llu faults charged, then denied (%s): every region is slow,\n"
	       "        so the group's usage is exact and at its limit\n",
	       (unsigned long long)faults, strerror(-rc));
	print_regions(est, &group);
	printf("   mode switches: %llu\n", (unsigned long long)est->mode_switches);
	free(est);
	return MGI_EXIT_OK;
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
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct demo_opts o = {
		.parent_max = (64ULL << 20) / PAGE,
		.child_max = (48ULL << 20) / PAGE,
		.step = (4ULL << 20) / PAGE,
	};
	int opt, rc;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "l:c:s:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'l': if (parse_size_opt("limit", optarg, &o.parent_max)) return MGI_EXIT_USAGE; break;
		case 'c': if (parse_size_opt("child-limit", optarg, &o.child_max)) return MGI_EXIT_USAGE; break;
		case 's': if (parse_size_opt("step", optarg, &o.step)) return MGI_EXIT_USAGE; break;
		case 'h':
			printf("Usage: memgrp demo [--limit SIZE] [--child-limit SIZE] [--step SIZE]\n"
			       "Drives the accounting core (no processes are managed):\n"
			       "  --limit SIZE        max of the parent group 'web' (default 64M)\n"
			       "  --child-limit SIZE  max of 'web/api' and of 'batch' (default 48M)\n"
			       "  --step SIZE         charge per step (default 4M)\n");
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

	rc = hierarchy_and_thresholds(&o);
	if (rc == MGI_EXIT_OK)
		rc = estimate_model(&o);
	return rc;
}

/* limits.c - the limit options that run, create and set share. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "size.h"

const char mgi_limits_help[] =
	"  -m, --memory-max SIZE    hard limit (default: max). At it, the group's\n"
	"                           coldest pages are evicted into compressed swap if\n"
	"                           it may swap; else its largest process is killed\n"
	"      --memory-high SIZE   above it, pages are evicted in the background\n"
	"                           until usage is under it again (needs swap)\n"
	"      --memory-low SIZE    under it, the group is evicted from last when an\n"
	"                           ancestor's limit needs room\n"
	"      --memory-soft SIZE   while the host's MemAvailable is under the\n"
	"                           manager's floor, groups above their soft limit\n"
	"                           are evicted toward it, the furthest first\n"
	"      --swap-max SIZE      what the group may keep in its compressed stores\n"
	"                           (default for a top-level group: 0, no swap; for a\n"
	"                           nested one: max, bounded by its ancestors')\n"
	"      --swappiness N       0 to 100 (default 60): 0 never evicts; otherwise a\n"
	"                           weight when groups compete for the host's memory\n"
	"      --mode exact|estimate  exact (default): every fault is accounted;\n"
	"                           estimate: regions are charged at their size and\n"
	"                           their faults not seen, until the limit needs\n"
	"                           them counted exactly (applies to processes\n"
	"                           started afterwards)\n"
	"      --backend agent|kernel  who accounts, fixed at the group's creation:\n"
	"                           agent (default), page by page in every process;\n"
	"                           kernel: the group's kernel memory cgroup alone,\n"
	"                           with no agent (static binaries, runtimes that\n"
	"                           own their signals and memory). Limits, soft\n"
	"                           (v1), high/low (v2), thresholds, pressure, OOM\n"
	"                           and stats as with the agent; no estimate mode,\n"
	"                           no compressed store, thresholds checked on the\n"
	"                           kernel's event batch, not at every page\n";

void mgi_limits_init(mgi_msg_set_t *set)
{
	set->memory_max = set->memory_high = set->memory_low = set->memory_soft = MGI_SET_KEEP;
	set->swap_max = set->swappiness = set->mode = set->backend = MGI_SET_KEEP;
}

bool mgi_limits_given(const mgi_msg_set_t *set)
{
	return set->memory_max != MGI_SET_KEEP || set->memory_high != MGI_SET_KEEP ||
	       set->memory_low != MGI_SET_KEEP || set->memory_soft != MGI_SET_KEEP ||
	       set->swap_max != MGI_SET_KEEP || set->swappiness != MGI_SET_KEEP ||
	       set->mode != MGI_SET_KEEP;
}

int mgi_limits_check(const char *cmd, const mgi_msg_set_t *set)
{
	const char *over = NULL;
	char max[16];

	if (set->memory_max == MGI_SET_KEEP || set->memory_max == MGI_SET_UNLIMITED)
		return 0;
	if (set->memory_high != MGI_SET_KEEP && set->memory_high != MGI_SET_UNLIMITED &&
	    set->memory_high > set->memory_max)
		over = "--memory-high";
	else if (set->memory_low != MGI_SET_KEEP && set->memory_low != MGI_SET_UNLIMITED &&
		 set->memory_low > set->memory_max)
		over = "--memory-low";
	if (!over)
		return 0;
	fprintf(stderr, "memgrp %s: %s above --memory-max (%s) would never apply: give at most "
			"the hard limit\n",
		cmd, over, mgi_size_format(set->memory_max, max, sizeof(max)));
	return -1;
}

int mgi_limits_option(const char *cmd, int opt, const char *arg, mgi_msg_set_t *set)
{
	static const struct {
		int opt;
		const char *name;
		size_t offset;
	} sizes[] = {
		{'m', "memory-max", offsetof(mgi_msg_set_t, memory_max)},
		{MGI_OPT_HIGH, "memory-high", offsetof(mgi_msg_set_t, memory_high)},
		{MGI_OPT_LOW, "memory-low", offsetof(mgi_msg_set_t, memory_low)},
		{MGI_OPT_SOFT, "memory-soft", offsetof(mgi_msg_set_t, memory_soft)},
		{MGI_OPT_SWAP_MAX, "swap-max", offsetof(mgi_msg_set_t, swap_max)},
	};
	char err[160];
	uint64_t v;

	if (opt == MGI_OPT_MODE) {
		if (strcmp(arg, "exact") == 0) {
			set->mode = MGI_MODE_EXACT;
		} else if (strcmp(arg, "estimate") == 0) {
			set->mode = MGI_MODE_ESTIMATE;
		} else {
			fprintf(stderr, "memgrp %s: --mode: exact or estimate, not '%s'\n", cmd, arg);
			return -1;
		}
		return 1;
	}
	if (opt == MGI_OPT_BACKEND) {
		if (strcmp(arg, "agent") == 0) {
			set->backend = MGI_BACKEND_AGENT;
		} else if (strcmp(arg, "kernel") == 0) {
			set->backend = MGI_BACKEND_KERNEL;
		} else {
			fprintf(stderr, "memgrp %s: --backend: agent or kernel, not '%s'\n", cmd, arg);
			return -1;
		}
		return 1;
	}
	if (opt == MGI_OPT_SWAPPINESS) {
		char *end;
		unsigned long n;
		errno = 0;
		n = strtoul(arg, &end, 10);
		if (errno || *end || !*arg || n > 100) {
			fprintf(stderr, "memgrp %s: --swappiness: a number from 0 to 100\n", cmd);
			return -1;
		}
		set->swappiness = n;
		return 1;
	}
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		if (sizes[i].opt != opt)
			continue;
		if (mgi_size_parse_limit(arg, &v, err, sizeof(err)) != 0) {
			fprintf(stderr, "memgrp %s: --%s: %s\n", cmd, sizes[i].name, err);
			return -1;
		}
		if (opt == 'm' && v < MGI_PAGE_SIZE) {
			fprintf(stderr, "memgrp %s: --memory-max: at least one page (4K)\n", cmd);
			return -1;
		}
		*(uint64_t *)((char *)set + sizes[i].offset) = v == MGI_SIZE_MAX ? MGI_SET_UNLIMITED : v;
		return 1;
	}
	return 0;
}

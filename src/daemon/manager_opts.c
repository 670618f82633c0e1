/* manager_opts.c - the options a manager takes on the command line, parsed once for memgrpd and `memgrp run`. */
#include "manager_opts.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "promtext.h"
#include "segment.h"
#include "size.h"

#define COOP_WAIT_MAX_MS 60000

void mgi_manager_opts_init(mgi_manager_opts_t *o)
{
	*o = (mgi_manager_opts_t){
		.fault_around = MGI_FAULT_AROUND_MAX, /* the default: the widest window */
		.coop_wait_ms = MGI_COOP_WAIT_DEFAULT_MS,
		.min_available = UINT64_MAX,
		.backstop = true,
		.host_sustain_ms = MGI_HOST_SUSTAIN_DEFAULT_MS,
	};
}

/* A whole decimal number from min to max, or -EINVAL. */
static int number(const char *arg, unsigned long min, unsigned long max, unsigned long *out)
{
	char *end;

	errno = 0;
	*out = strtoul(arg, &end, 10);
	return errno || *end || !*arg || *out < min || *out > max ? -EINVAL : 0;
}

int mgi_manager_option(const char *cmd, int opt, const char *arg, mgi_manager_opts_t *o)
{
	char err[256];
	unsigned long n;

	switch (opt) {
	case MGI_MOPT_FAULT_AROUND:
		if (number(arg, 1, MGI_FAULT_AROUND_MAX, &n) != 0) {
			fprintf(stderr, "%s: --fault-around: a number of pages from 1 to %d\n", cmd,
				MGI_FAULT_AROUND_MAX);
			return -1;
		}
		o->fault_around = (uint32_t)n;
		o->fault_around_given = true;
		return 1;
	case MGI_MOPT_COOP_WAIT:
		if (number(arg, 0, COOP_WAIT_MAX_MS, &n) != 0) {
			fprintf(stderr, "%s: --coop-wait: milliseconds, 0 to %d\n", cmd, COOP_WAIT_MAX_MS);
			return -1;
		}
		o->coop_wait_ms = (unsigned)n;
		o->coop_wait_given = true;
		return 1;
	case MGI_MOPT_MIN_AVAILABLE:
		if (mgi_size_parse(arg, &o->min_available, err, sizeof(err)) != 0) {
			fprintf(stderr, "%s: --min-available: %s\n", cmd, err);
			return -1;
		}
		return 1;
	case MGI_MOPT_BACKSTOP:
		if (strcmp(arg, "on") != 0 && strcmp(arg, "off") != 0) {
			fprintf(stderr, "%s: --kernel-backstop: on or off, not '%s'\n", cmd, arg);
			return -1;
		}
		o->backstop = !strcmp(arg, "on");
		o->backstop_given = true;
		return 1;
	case MGI_MOPT_METRICS_LISTEN: {
		mgi_listen_addr_t la;
		if (mgi_listen_parse(arg, &la, err, sizeof(err)) != 0) {
			fprintf(stderr, "%s: --metrics-listen %s\n", cmd, err);
			return -1;
		}
		o->metrics_listen = arg;
		return 1;
	}
	case MGI_MOPT_METRICS_FILE:
		o->metrics_file = arg;
		return 1;
	case MGI_MOPT_HOST_PRESSURE:
		if (mgi_host_pressure_parse(arg, strlen(arg), &o->host_pressure, err, sizeof(err)) != 0) {
			fprintf(stderr, "%s: --host-pressure '%s': %s\n", cmd, arg, err);
			return -1;
		}
		return 1;
	case MGI_MOPT_HOST_SUSTAIN: {
		uint64_t ms;
		if (mgi_host_duration_ms(arg, strlen(arg), MGI_HOST_SUSTAIN_MAX_MS, &ms) != 0) {
			fprintf(stderr, "%s: --host-sustain '%s': a duration up to %ds (e.g. 500ms, 5s)\n",
				cmd, arg, MGI_HOST_SUSTAIN_MAX_MS / 1000);
			return -1;
		}
		o->host_sustain_ms = ms;
		o->host_sustain_given = true;
		return 1;
	}
	case MGI_MOPT_DRY_RUN:
		o->dry_run = true;
		return 1;
	case MGI_MOPT_THP_COMPACT: {
		char *end;
		errno = 0;
		unsigned long per = strtoul(arg, &end, 10);
		if (errno || *end || *arg < '0' || *arg > '9' || per > 60) {
			fprintf(stderr, "%s: --thp-compact-rate: compactions a minute, 0 to 60, not '%s'\n",
				cmd, arg);
			return -1;
		}
		o->thp_compact_per_min = (unsigned)per;
		return 1;
	}
	default:
		return 0;
	}
}

void mgi_manager_opts_apply(mgi_manager_t *m, const mgi_manager_opts_t *o)
{
	m->coop_wait_ms = o->coop_wait_ms;
	m->thp_compact_gap_ns = o->thp_compact_per_min ? 60000000000ULL / o->thp_compact_per_min : 0;
	m->min_available = o->min_available != UINT64_MAX ? o->min_available
							  : mgi_default_min_available();
}

bool mgi_manager_opts_host(const mgi_manager_opts_t *o, mgi_host_config_t *out)
{
	*out = (mgi_host_config_t){
		.rule = {.min_available = o->min_available != UINT64_MAX ? o->min_available : 0,
			 .pressure_bp = o->host_pressure.bp,
			 .sustain_ms = o->host_sustain_ms,
			 .pressure_some = o->host_pressure.kind == MGI_PSI_SOME},
		.pressure = o->host_pressure,
		.dry_run = o->dry_run,
	};
	/* --min-available alone keeps its first meaning (the soft limits'
	 * floor, reclaim.c): existing set-ups (and test_reclaim's 1P floor)
	 * must not start killing. The ladder, which may kill, is asked for
	 * with --host-pressure, --host-sustain or --dry-run. */
	return out->rule.pressure_bp || (out->rule.min_available && (o->host_sustain_given || o->dry_run));
}

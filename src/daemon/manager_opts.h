/* manager_opts.h - the options a manager takes on the command line, memgrpd's and `memgrp run`'s embedded one alike. */
#ifndef MGI_MANAGER_OPTS_H
#define MGI_MANAGER_OPTS_H

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>

#include "hostwatch.h"
#include "manager.h"

/* The epoll tag of the signalfd memgrpd and `memgrp run` watch with
 * mgi_manager_watch (conn.h's tags stop below it). */
#define MGI_TAG_SIGNALS 7

/* getopt_long codes of the manager's options (long options only, above any
 * character a caller's short options use). */
enum {
	MGI_MOPT_FAULT_AROUND = 0x300,
	MGI_MOPT_COOP_WAIT,
	MGI_MOPT_MIN_AVAILABLE,
	MGI_MOPT_BACKSTOP,
	MGI_MOPT_METRICS_LISTEN,
	MGI_MOPT_METRICS_FILE,
	MGI_MOPT_HOST_PRESSURE,
	MGI_MOPT_HOST_SUSTAIN,
	MGI_MOPT_DRY_RUN,
	MGI_MOPT_THP_COMPACT,
};

/* For a caller's struct option table. */
#define MGI_MANAGER_LONGOPTS                                                      \
	{"fault-around", required_argument, NULL, MGI_MOPT_FAULT_AROUND},         \
	{"coop-wait", required_argument, NULL, MGI_MOPT_COOP_WAIT},               \
	{"min-available", required_argument, NULL, MGI_MOPT_MIN_AVAILABLE},       \
	{"kernel-backstop", required_argument, NULL, MGI_MOPT_BACKSTOP},          \
	{"metrics-listen", required_argument, NULL, MGI_MOPT_METRICS_LISTEN},     \
	{"metrics-file", required_argument, NULL, MGI_MOPT_METRICS_FILE}

/* The host's options (hostwatch.h), memgrpd's only: `memgrp run`'s
 * manager watches its own group, not the host. */
#define MGI_MANAGER_HOST_LONGOPTS                                                 \
	{"host-pressure", required_argument, NULL, MGI_MOPT_HOST_PRESSURE},       \
	{"host-sustain", required_argument, NULL, MGI_MOPT_HOST_SUSTAIN},         \
	{"dry-run", no_argument, NULL, MGI_MOPT_DRY_RUN},                         \
	{"thp-compact-rate", required_argument, NULL, MGI_MOPT_THP_COMPACT}
/* --host-sustain's default and largest value */
#define MGI_HOST_SUSTAIN_DEFAULT_MS 2000
#define MGI_HOST_SUSTAIN_MAX_MS 600000

typedef struct mgi_manager_opts {
	uint32_t fault_around;    /* pages, 1..MGI_FAULT_AROUND_MAX (default 64) */
	unsigned coop_wait_ms;    /* 0..60000 (default MGI_COOP_WAIT_DEFAULT_MS) */
	uint64_t min_available;   /* bytes; UINT64_MAX: not given (the host's default) */
	bool backstop;            /* --kernel-backstop (default on) */
	bool fault_around_given, coop_wait_given, backstop_given;
	const char *metrics_listen, *metrics_file; /* NULL: not given */
	/* the host (memgrpd): --host-pressure (bp 0: not given),
	 * --host-sustain, --dry-run */
	mgi_host_pressure_t host_pressure;
	uint64_t host_sustain_ms;
	bool dry_run, host_sustain_given;
	unsigned thp_compact_per_min; /* --thp-compact-rate: 0..60 (0: never) */
} mgi_manager_opts_t;

/* Whether memgrpd runs the host's ladder (--host-pressure given, or
 * --min-available with --host-sustain or --dry-run), and the watch's
 * configuration from the options. */
bool mgi_manager_opts_host(const mgi_manager_opts_t *o, mgi_host_config_t *out);

/* The defaults. */
void mgi_manager_opts_init(mgi_manager_opts_t *o);

/* Takes opt if it is one of the manager's: 1 if it was (its value checked
 * and stored), 0 if it is not one, -1 after saying on stderr, after "cmd: ",
 * why the value is bad. */
int mgi_manager_option(const char *cmd, int opt, const char *arg, mgi_manager_opts_t *o);

/* The options a created manager takes after mgi_manager_create (the
 * cooperation wait and the host floor; fault-around goes to create). */
void mgi_manager_opts_apply(mgi_manager_t *m, const mgi_manager_opts_t *o);

#endif

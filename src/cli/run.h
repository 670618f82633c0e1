/* run.h - what `memgrp run`'s files share: its context and its own options (run.c, run_opts.c). */
#ifndef MGI_RUN_H
#define MGI_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../daemon/manager.h"
#include "../daemon/manager_opts.h"
#include "proto.h"
#include "record.h"

/* How the group is served: by this process (embedded), or by a manager
 * that already runs (memgrpd, or another run's), as its client. */
struct run_ctx {
	char group[MGI_GROUP_NAME_MAX];
	char sock[108];
	mgi_msg_set_t limits; /* as given: MGI_SET_KEEP where not */
	bool embedded;
	bool transient; /* created here: removed at the end */
	bool kernel;    /* the group is the kernel backend's: no agent */
	mgi_manager_t *m;
	int sfd;
	struct mgi_metrics *metrics; /* the embedded manager's, or NULL */
};

/* What `memgrp run`'s own options (not the limits, not the manager's) set. */
struct run_opts {
	const char *stats_json, *sock_opt, *codec, *record;
	const char *agent_only; /* the last option only the agent serves, or NULL */
	unsigned long record_period;
	uint64_t record_thr[MGI_RECORD_THRESHOLDS_MAX];
	unsigned nrecord_thr;
	mgi_manager_opts_t mo; /* for an embedded manager */
};

enum { OPT_STATS_JSON = 256, OPT_SOCKET, OPT_CODEC, OPT_SWAP_FILE, OPT_SWAP_FILE_AFTER,
       OPT_OOM_PRIORITY, OPT_RECORD, OPT_RECORD_PERIOD, OPT_RECORD_THRESHOLD, OPT_THP,
       OPT_THP_THRESHOLD, OPT_THP_RATE };

/* Takes one of run's own options: 1 if opt was one, 0 if not, -1 after
 * saying why the value is bad. */
int mgi_run_option(struct run_ctx *r, struct run_opts *o, int opt, const char *arg);

/* The options against each other and against this host, before anything
 * starts (the recorder's file opened: an unwritable one is said now; the
 * agent's path into agent). Returns 0 or the exit status. */
int mgi_run_check(const struct run_ctx *r, const struct run_opts *o, mgi_record_t *rec,
		  char *agent, size_t agentlen);

#endif

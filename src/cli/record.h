/* record.h - `memgrp run --record FILE`: a timeline of the group's figures and events, as CSV. */
#ifndef MGI_RECORD_H
#define MGI_RECORD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../daemon/manager.h"

/* --record-period: the default and the bounds, in milliseconds. */
#define MGI_RECORD_PERIOD_DEFAULT_MS 200
#define MGI_RECORD_PERIOD_MIN_MS 10
#define MGI_RECORD_PERIOD_MAX_MS 60000
/* --record-threshold: how many a run may watch */
#define MGI_RECORD_THRESHOLDS_MAX 8

/* The CSV's first line (docs/design.md "A timeline of a run" says what
 * each column holds). */
#define MGI_RECORD_HEADER                                                                  \
	"time_s,unix_time,usage,limit,max_usage,swap_usage,compressed_bytes,nr_processes," \
	"pgfault,evicted_pages,restored_pages,coop_requests,coop_freed,oom_kills,events\n"

typedef struct mgi_record {
	int fd;        /* the CSV, O_APPEND: one write() per row */
	int ready[2];  /* the recorder says "registered" on it */
	pid_t pid;     /* the recorder process, 0 before start / after stop */
	unsigned period_ms;
	/* usage thresholds whose crossings are events ("threshold_BYTES"),
	 * set by the caller after mgi_record_open */
	uint64_t thresholds[MGI_RECORD_THRESHOLDS_MAX];
	unsigned nthresholds;
} mgi_record_t;

/* Creates (or truncates) path and writes the header, so that an unwritable
 * file is said before anything runs. Returns 0 or -errno with err set. */
int mgi_record_open(mgi_record_t *rec, const char *path, unsigned period_ms, char *err,
		    size_t errlen);

/*
 * Starts the recorder: a child process that watches `group` at the manager
 * at sock as a client would (pressure levels, the usage thresholds in
 * rec->thresholds and OOM kills by eventfd, the
 * figures by STAT_REQ every period and at each event) and appends a row
 * each time. Returns once its watches are registered (m, the embedded
 * manager, is served meanwhile; NULL when the manager is another process),
 * 0 or -errno with err set.
 */
int mgi_record_start(mgi_record_t *rec, mgi_manager_t *m, const char *sock, const char *group,
		     char *err, size_t errlen);

/* Asks the recorder for its last row (the figures once the command has
 * gone) and waits for it, serving m meanwhile; closes the file. Safe on a
 * record never opened or started. */
void mgi_record_stop(mgi_record_t *rec, mgi_manager_t *m);

#endif

/* hostwatch.h - memgrpd's watch on the host's memory (PSI trigger, MemAvailable) and the ladder it runs across groups when the host is short. */
#ifndef MGI_HOSTWATCH_H
#define MGI_HOSTWATCH_H

#include <stdbool.h>
#include <stdint.h>

#include "hostmem.h"
#include "proto.h"

struct mgi_manager;

/* The tags of the watch's fds in the manager's epoll set (callers of
 * mgi_manager_poll hand them to mgi_hostwatch_event): between memgrpd's
 * signals (7) and the metrics' (0x6d00). */
#define MGI_HOST_TAG_BASE 0x6800
#define MGI_HOST_TAGS 2

/* What memgrpd was told (manager_opts.c): the rule (min_available and
 * pressure_bp 0 when not watched), the PSI trigger's kind and window, and
 * whether the ladder only logs. */
typedef struct mgi_host_config {
	mgi_host_rule_t rule;
	mgi_host_pressure_t pressure; /* bp 0: no --host-pressure */
	bool dry_run;
} mgi_host_config_t;

/*
 * Starts the watch (memgrpd, when --min-available or --host-pressure was
 * given): a PSI trigger on /proc/pressure/memory for --host-pressure
 * (polled for POLLPRI; where the kernel refuses it, the file is read at
 * each tick instead, and the log says so), and a timer that samples
 * MemAvailable (and PSI) every HOST_TICK_MS while a floor is set, more
 * often while the host is short. Returns 0 or -errno with why in err.
 */
int mgi_hostwatch_start(struct mgi_manager *m, const mgi_host_config_t *c, char *err, size_t errlen);

/* For a tag mgi_manager_poll returned: true if it was the watch's
 * (handled: a sample taken and judged, the ladder's next step). */
bool mgi_hostwatch_event(struct mgi_manager *m, int64_t tag);

/* Closes the watch's fds. */
void mgi_hostwatch_stop(void);

/* host_ladder.c: one sample's verdict acted on (the next step of the
 * ladder across groups, one at a time). avail: MemAvailable in bytes
 * (UINT64_MAX: unknown); stall_bp: the stall share since the last
 * sample. Returns true when a kill was made (or, --dry-run, logged): the
 * sustain count starts again. */
bool mgi_host_ladder_step(struct mgi_manager *m, mgi_host_verdict_t v, const mgi_host_config_t *c,
			  uint64_t avail, uint32_t stall_bp, uint64_t short_ms);

/* The host has room again: the ladder starts from its first step next
 * time, and the shortage's end is logged. */
void mgi_host_ladder_relieved(struct mgi_manager *m, uint64_t avail, uint64_t short_ms);

/* The pre-kill hook before a host kill is over (oom_prekill.c): the kill
 * (why: the shortage it was for) if the host is still short, else
 * nobody. */
void mgi_host_ladder_after_prekill(struct mgi_manager *m, const char *why);

/* Adds the host ladder's counters to the root's figures (g 0); other
 * groups' are left alone. */
void mgi_host_ladder_stats(int g, mgi_stats_t *out);

#endif

/* escalate.h - the one decision of a group's next step at pressure: ask cooperators, evict, or the OOM action. */
#ifndef MGI_ESCALATE_H
#define MGI_ESCALATE_H

#include <stdbool.h>
#include <stdint.h>

#include "tree.h"

struct mgi_manager;

/* What happened to the group (see the state machine in escalate.c). */
enum mgi_pressure_why {
	MGI_WHY_ASK,        /* usage crossed the ask watermark (notify.c) */
	MGI_WHY_HIGH,       /* usage above the high limit (notify.c, limits changed) */
	MGI_WHY_REFUSED,    /* an agent's charge was refused and it waits (OOM_REQ) */
	MGI_WHY_EVICT_REQ,  /* an agent's charge was refused, others should evict (RECLAIM_REQ) */
	MGI_WHY_COOP_DONE,  /* coop.c: every cooperator was asked, or enough was freed */
	MGI_WHY_EVICT_DONE, /* reclaim.c: an eviction episode ended */
	MGI_WHY_KERNEL,     /* backstop_oom.c: the group waits at its kernel limit */
	MGI_WHY_RELIEVED,   /* backstop_oom.c: the wait at the kernel limit ended */
};

/* The step taken. */
enum mgi_step {
	MGI_STEP_NONE,  /* nothing to do: room came, enough was freed, or no step applies */
	MGI_STEP_WAIT,  /* a step under way (an episode, a kill) or progress being made */
	MGI_STEP_COOP,  /* cooperating clients asked (coop.c) */
	MGI_STEP_EVICT, /* processes asked to evict (reclaim.c) */
	MGI_STEP_KILL,  /* the OOM action (oomkill.c) */
};

typedef struct mgi_pressure {
	enum mgi_pressure_why why;
	int req_group, req_slot; /* the agent whose charge waits, -1 if none */
	uint64_t pages;          /* EVICT_REQ: wanted; COOP_DONE: still needed (0: enough) */
	uint64_t freed;          /* EVICT_DONE: what the episode evicted */
	bool background;         /* EVICT_DONE: for a high or soft limit, not a refused charge */
} mgi_pressure_t;

/* Decides and takes group's next step. Returns the step taken. */
enum mgi_step mgi_escalate(struct mgi_manager *m, int group, const mgi_pressure_t *p);

/* A group's usage in pages as decisions see it: its counter, or for the
 * kernel backend the kernel's (no agent charges the counter there). */
uint64_t mgi_escalate_usage(const struct mgi_manager *m, int g);
/* Whether it is below its limit, on the same figures. */
bool mgi_escalate_below_limit(const struct mgi_manager *m, int g);

/* The step's name, for logs and tests. */
const char *mgi_step_name(enum mgi_step s);

/* Per-group state of the decision (in mgi_manager_t). */
struct mgi_escalation {
	uint64_t coop_last_ns;        /* when a refused charge last asked cooperators */
	uint64_t evict_empty_ns[MGI_GROUPS_MAX]; /* since when eviction freed nothing */
	uint8_t kernel_asks[MGI_GROUPS_MAX];     /* cooperative episodes in this kernel pause */
	uint64_t purge_ns[MGI_GROUPS_MAX];       /* volatile pages last asked for (mg_vrange) */
	uint64_t purge_seen[MGI_GROUPS_MAX];     /* pages purged under the group by then */
};

#endif

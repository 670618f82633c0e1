/* victim.h - the one OOM victim choice: candidates in, the index to kill and why out (pure). */
#ifndef MGI_VICTIM_H
#define MGI_VICTIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * Every OOM kill of the manager chooses here: the agent-backed group's
 * (its processes' connections), the backstop's and the kernel backend's
 * (a kernel cgroup's process list). The caller gathers the figures (they
 * need /proc and the segments); this file only ranks them, so that the
 * rule is one and is tested on struct literals (tests/test_victim.c).
 *
 * The rule, as the kernel's oom_badness: the score is the pages the
 * candidate holds plus adj thousandths of policy.total_pages (plus one, so
 * that 0 means "may not be chosen"); the highest score is chosen. adj
 * MGI_VICTIM_ADJ_MIN (-1000, the kernel's OOM_SCORE_ADJ_MIN) protects like
 * `protected_`. A negative preference takes a score down to 1 at most:
 * such a candidate is still chosen before nobody (as the kernel does). Ties go to the youngest (less
 * work is lost; 0 is "unknown" and ranks as young), then to the lowest
 * index (the caller's order: stable).
 */

#define MGI_VICTIM_ADJ_MIN (-1000)
#define MGI_VICTIM_ADJ_MAX 1000

/*
 * A group's victim policy (`--oom-policy`, issue 18): what ranks the
 * eligible candidates first. Whatever the policy, a candidate whose
 * command line matches the group's --oom-prefer is chosen before all
 * others and one matching --oom-avoid after all others (earlyoom's
 * regexes, here as tiers: a preference is a rule, not a weight); within
 * a tier the policy's key decides, then the score (pages + adj), then the
 * youngest, then the caller's order. Eligibility (protected, tried, adj
 * -1000, min_pages) is the same for every policy.
 */
enum mgi_oom_policy {
	MGI_OOM_LARGEST = 0,  /* the highest score: pages less what memory.low protects, + adj */
	MGI_OOM_NEWEST = 1,   /* the youngest (age_ms 0, unknown, ranks last here) */
	MGI_OOM_OLDEST = 2,   /* the oldest */
	MGI_OOM_PRIORITY = 3, /* the highest priority (as oom_score_adj: higher dies first) */
	MGI_OOM_GROWTH = 4,   /* grew fastest over the manager's recent window (pages) */
};
#define MGI_OOM_POLICY_MAX MGI_OOM_GROWTH
#define MGI_OOM_PRIORITY_MIN (-1000)
#define MGI_OOM_PRIORITY_MAX 1000

/* The policy's name ("largest" ...), or "?" for a value out of range. */
const char *mgi_oom_policy_name(unsigned policy);
/* The policy named name; -EINVAL if none is. */
int mgi_oom_policy_parse(const char *name);

typedef struct mgi_victim {
	pid_t pid;
	int group;           /* the caller's group index (reported, not ranked) */
	uint64_t pages;      /* what it holds: the larger of its word and the kernel's */
	int adj;             /* -1000..1000, oom_score_adj's meaning; clamped */
	uint64_t age_ms;     /* since it started (0: unknown) */
	bool protected_;     /* never chosen (e.g. the manager itself) */
	bool tried;          /* a kill of it failed in this episode: never again */
	int priority;        /* --oom-priority / mg_oom_priority_set (PRIORITY policy) */
	uint64_t low_pages;  /* of pages, what memory.low protects (LARGEST subtracts it) */
	uint64_t growth;     /* pages gained over the recent window (GROWTH policy) */
	bool prefer;         /* its command line matches --oom-prefer: first */
	bool avoid;          /* matches --oom-avoid: last */
} mgi_victim_t;

typedef struct mgi_victim_policy {
	uint64_t total_pages; /* what adj is thousandths of (the limit hit); 0: adj only protects */
	uint64_t min_pages;   /* a candidate holding fewer is not chosen (0: any) */
	unsigned policy;      /* enum mgi_oom_policy (0: largest) */
} mgi_victim_policy_t;

/*
 * Returns the index of the candidate to kill, or -1 when none may be
 * chosen. *reason (if reason is not NULL) is a static string saying why,
 * for the log: the rule that chose, or what excluded everyone.
 * Never fails otherwise; n may be 0 (cand may then be NULL).
 */
int mgi_victim_choose(const mgi_victim_t *cand, size_t n, const mgi_victim_policy_t *policy,
		      const char **reason);

/* The score the choice ranks by (exposed for the log and the tests):
 * 0 for a candidate that may not be chosen. */
uint64_t mgi_victim_score(const mgi_victim_t *v, const mgi_victim_policy_t *policy);

/*
 * Adds member's figures to a group's aggregate (acc), so that the same
 * choice ranks groups (an ancestor's OOM: which child group pays; the
 * group kill scope): pages, low_pages and growth add up; age is the
 * oldest member's (the group has run that long); priority the highest;
 * prefer if any member is preferred; avoid only if every eligible member
 * is avoided; protected only if no member may be chosen (a group of
 * protected processes cannot pay). Start from mgi_victim_group_init.
 * Pure; never fails.
 */
void mgi_victim_group_init(mgi_victim_t *acc, int group);
void mgi_victim_group_add(mgi_victim_t *acc, const mgi_victim_t *member,
			  const mgi_victim_policy_t *policy);

#endif

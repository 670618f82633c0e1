/* tree.h - a manager's group tree: one shared segment per group, paths, subtree figures. */
#ifndef MGI_TREE_H
#define MGI_TREE_H

#include <stdbool.h>
#include <stdint.h>

#include "proto.h"
#include "segment.h"

/*
 * The groups a manager serves. Node 0 is the root (name ""): unlimited,
 * with a segment of its own for processes that joined no group. Every
 * other node has a parent that exists for as long as it does (a group with
 * children cannot be removed), so a node's ancestors are found by following
 * parent indexes. Each node owns its group's segment: a memfd, mapped here
 * and by the group's agents, who also map the segments of its ancestors to
 * charge them (a process of web/api is a process of web).
 */

#define MGI_GROUPS_MAX 256

typedef struct mgi_group_node {
	bool used;
	int parent; /* index; -1 for the root */
	unsigned children;
	char name[MGI_GROUP_NAME_MAX];
	int segfd;  /* the control part, read-write (the manager's alone) */
	int acctfd; /* the accounting part */
	int rofd;   /* the control part opened read-only: what agents get */
	mgi_segment_t *seg; /* both parts, mapped back to back */
	unsigned tampered; /* enum mgi_tamper bits reported already */
	/* The grant scheme (src/daemon/grant.c): the group claimed more usage
	 * than its processes hold (its own requests are refused until the
	 * claim is believed again), and how often that was reported. */
	bool grant_suspect;
	uint64_t tamper_reports;
	/* Notification latency (notify.c): from an agent's crossing to the
	 * eventfds written, by the stats' power-of-two buckets, and the sum.
	 * The manager's own figures: an agent can skew only its group's. */
	uint64_t notify_hist[MGI_RECLAIM_BUCKETS];
	uint64_t notify_ns;
	uint64_t judged_ns; /* when its claim was last judged */
	/* Its swap claim stood against the evidence (its swap requests are
	 * refused); when its memory claim was found standing, and whether
	 * the evidence then was its processes' mappings (smaps: a kill waits
	 * for the claim to stand longer than an agent's forgetting). */
	bool swap_suspect;
	bool suspect_by_maps;
	uint64_t suspect_since_ns;
	/* The group's usage and the time at its last OOM request: a kill
	 * waits while usage is still falling (a process is evicting). */
	uint64_t oom_seen_usage, oom_seen_ns;
	char file[24]; /* the control part's in the tree's state directory
			* ("account-" and the same suffix: the accounting
			* part's); "" for memfds */
} mgi_group_node_t;

typedef struct mgi_tree {
	mgi_group_node_t node[MGI_GROUPS_MAX];
	uint32_t fault_around; /* for new groups' segments */
	int dirfd;             /* the state directory, or -1: memfds */
} mgi_tree_t;

/* Makes a tree holding the root. Returns 0 or -errno. */
int mgi_tree_init(mgi_tree_t *t, uint32_t fault_around);

/*
 * Keeps the tree's segments as files in dir (memgrpd's state directory,
 * created 0700 if missing) rather than memfds, so that its groups outlive
 * the daemon: a restarted one takes them back from there, each with its
 * limits, usage, figures and process slots, and its processes rejoin it.
 * Call once, before anything joins: the groups found in dir are restored
 * (the previous manager's registrations forgotten) once the whole of each
 * has passed mgi_segment_check; one that fails is set aside (renamed
 * NAME.rejected, never read again) and reported through say() with its
 * first problem, never half-used; misplaced ones are reported and left
 * alone. Every later group gets two files (its two parts), removed with
 * the group. Returns 0 or -errno
 * with why.
 */
int mgi_tree_use_dir(mgi_tree_t *t, const char *dir, void (*say)(void *arg, const char *msg),
		     void *arg, char *why, size_t whylen);

/* Unmaps and closes every segment (their files stay). */
void mgi_tree_destroy(mgi_tree_t *t);

/* The node of a group by full name ("" is the root), or -1. */
int mgi_tree_find(const mgi_tree_t *t, const char *name);

/*
 * Creates a group whose parent exists, with memory_max in bytes (UINT64_MAX:
 * none), swap off if it is top-level (else bounded by its ancestors'
 * alone), swappiness 60. Returns its index, or -EEXIST, -ENOENT (no
 * parent), -ENOSPC (too many groups), -EINVAL (bad name) or another -errno,
 * with why.
 */
int mgi_tree_create(mgi_tree_t *t, const char *name, uint64_t memory_max, char *why,
		    size_t whylen);

/*
 * Adopts the segment of a group that a manager before this one served,
 * handed back by one of its processes after a restart: the group comes
 * back with everything its segment holds (limits, usage, figures, process
 * slots). Its parent must be served already. Returns its index (with
 * *fresh false if it was adopted before, through another process), or
 * -EEXIST (a different group of that name is served), -ENOENT (no
 * parent), -ENOSPC, -EINVAL (not a segment of this version), with why.
 * The two parts are what the process holds (the control part read-only):
 * they must be files of the manager's user, and pass mgi_segment_check.
 * The tree opens its own fds of them; the caller keeps its fds.
 */
int mgi_tree_adopt(mgi_tree_t *t, int ctlfd, int acctfd, bool *fresh, char *why, size_t whylen);

/* Writes the comm of pid (from /proc) into its slot's identity: the
 * manager's word on the process, never its own. */
void mgi_tree_name_slot(mgi_tree_t *t, int idx, int slot, int pid);

/*
 * Audits the accounting part of every group (mgi_segment_audit): clamps
 * what no process could honestly have written there and tells say() of
 * each kind of tampering once per group, as "group 'x': its accounting was
 * tampered with: ...". Returns the number of groups newly reported.
 */
unsigned mgi_tree_audit(mgi_tree_t *t, void (*say)(void *arg, const char *msg), void *arg);

/* Removes a group with no children and no processes. Returns 0, or -EBUSY
 * or -EPERM (the root) with why. */
int mgi_tree_remove(mgi_tree_t *t, int idx, char *why, size_t whylen);

/* The counter path of a group: its counter, then each ancestor's up to (not
 * including) the root; the root's own path is its counter alone. */
mgi_counter_path_t mgi_tree_path(const mgi_tree_t *t, int idx);

/* The segments' fds in path order, two per level: the control part's
 * read-only fd, then the accounting part's (fds holds 2 * MGI_DEPTH_MAX).
 * Returns how many levels (the path's depth). */
unsigned mgi_tree_segment_fds(const mgi_tree_t *t, int idx, int *fds);

/* The path a group's processes charge, and a released slot uncharges: a
 * top-level group's (or the root's) own counter; a nested group's own
 * counter within its grant (its ancestors count it through the grant, which
 * the manager gives and takes back: grant.h). */
mgi_counter_path_t mgi_tree_charge_path(const mgi_tree_t *t, int idx);

/* A nested group's grant chain (grant.h): itself, its parent, ..., its
 * top-level ancestor, into seg. Returns how many (at least 2), or 0 for
 * the root and top-level groups (no grant). */
unsigned mgi_tree_grant_chain(const mgi_tree_t *t, int idx, mgi_segment_t **seg);

/* fd opened again read-only (through /proc): what processes of the groups
 * below get of an ancestor's accounting part. -1 with errno on failure. */
int mgi_tree_reopen_ro(int fd);

/* Whether node `idx` is node `anc` or below it. */
bool mgi_tree_is_under(const mgi_tree_t *t, int idx, int anc);

/* The group's figures: counter figures from its own (hierarchical) counter;
 * processes, faults, tracked sizes and OOM kills summed over its subtree.
 * The root's are those of its own processes only: no charge path includes
 * the root's counter, so its usage counts nothing else. */
void mgi_tree_stats(const mgi_tree_t *t, int idx, mgi_stats_t *out);

/* The STAT message for a group: figures and the processes of its subtree. */
void mgi_tree_stat_msg(const mgi_tree_t *t, int idx, mgi_msg_t *out);

/* The process holding the most pages in the subtree of idx: its group and
 * slot. Returns false if no process holds any. */
bool mgi_tree_largest(const mgi_tree_t *t, int idx, int *group, int *slot);

/* Applies the limits of a SET or CREATE (bytes; MGI_SET_UNLIMITED: none;
 * MGI_SET_KEEP: no change). Returns 0, or -EBUSY when memory_max is below
 * the usage (then nothing changed), with why. */
/* Whether SET/CREATE's OOM regexes compile (POSIX extended) and its
 * huge-page settings are in range: 0, or -EINVAL with why (regerror's
 * words for a regex). mgi_tree_set_limits checks them
 * first too. */
int mgi_tree_check_oom(const mgi_msg_set_t *set, char *why, size_t whylen);

int mgi_tree_set_limits(mgi_tree_t *t, int idx, const mgi_msg_set_t *set, char *why,
			size_t whylen);

/* Writes each group's huge-page settings that it does not set itself
 * (segment.h thp_set) from its nearest ancestor that does, or the
 * defaults (never, 90 %, 50 a second): after every SET and CREATE. */
void mgi_tree_thp_inherit(mgi_tree_t *t);

#endif

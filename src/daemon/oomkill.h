/* oomkill.h - the manager's one OOM kill: a victim chosen by core/victim.c, signalled through a pidfd, reported. */
#ifndef MGI_OOMKILL_H
#define MGI_OOMKILL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto.h"
#include "segment.h"
#include "victim.h"

struct mgi_manager;

/* One kill for a group whose limit was hit. */
typedef struct mgi_oom_kill {
	int target;          /* the group whose limit was hit */
	const char *state;   /* after "is out of memory ": the figures and why, e.g.
			      * "(usage 64M, max 64M) and nothing can be reclaimed" */
	mgi_victim_policy_t policy;
	/* Claimed 0 -> pid before the kill and given back if it fails: one
	 * kill per episode where the agents look (the segment's oom_victim);
	 * NULL: the caller keeps track. */
	_Atomic int32_t *mark;
	/* Reap the victim's memory at once (process_mrelease) after the
	 * SIGKILL. Off for agent-backed groups: the manager would block in
	 * the reap, and the victim's exit then reaches it before the OOM
	 * listeners' look at the group (measured: test_notify 'events' read
	 * "oom usage 100K" in 2 of 3 runs instead of the 64M at the kill). */
	bool reap;
	/* Looked at before each choice (agents charge and release meanwhile:
	 * nobody dies for nothing); NULL: always needed. */
	bool (*needed)(struct mgi_manager *m, int target);
	/* The victim's name (comm) and what to add after "which holds N" in
	 * the report (e.g. " (RSS); it runs without the agent: ..."). */
	void (*describe)(struct mgi_manager *m, size_t i, char *comm, size_t commlen, char *about,
			 size_t aboutlen);
	/* The signal (0: SIGKILL; SIGTERM: the caller keeps the grace) and
	 * the kill scope's name for the post-mortem record ("process" if
	 * NULL). */
	int signal;
	const char *scope;
} mgi_oom_kill_t;

/*
 * Chooses (mgi_victim_choose), tells the OOM listeners, kills with SIGKILL
 * through the pidfd (and reaps its memory at once if k->reap), and
 * logs "group 'T' is out of memory STATE: killing pid P (comm)[ of group
 * 'G'], which holds N". A kill that fails is logged and the next victim is
 * chosen at once (the failed one is marked tried). Listeners hear before
 * the SIGKILL, as memcg tells before its killer acts: so the pidfd is
 * tried with signal 0 first and the event is for a kill that can be made.
 * cand[i] is reached through pidfd[i] (the manager's, held since it
 * joined: no pid reuse in between), or, where pidfd is NULL or pidfd[i]
 * -1, through a pidfd opened by pid when chosen.
 * Returns the pid killed, 0 when none was (nobody needed it, nobody may be
 * chosen: logged, or another kill of the episode holds the mark).
 */
pid_t mgi_oom_kill(struct mgi_manager *m, const mgi_oom_kill_t *k, mgi_victim_t *cand,
		   const int *pidfd, size_t n);

/*
 * The OOM action for a group whose processes run the agent: candidates are
 * the processes this manager saw join under target (their connections and
 * the pidfds opened at HELLO); a pid found in a slot, which agents write,
 * is never signalled (reported instead). Size is the larger of the slot's
 * charge and the kernel's RssAnon + RssShmem: a process that reports less
 * than it holds cannot shift the kill onto another.
 */
void mgi_oom_kill_joined(struct mgi_manager *m, int target);

/*
 * One JSON line per kill, the post-mortem record (issue 18 item 7), in the
 * manager's log as "oom-record {...}": time, group, reason, policy, scope,
 * signal, the victim (pid, group, command line, charged bytes, age,
 * priority, why it was chosen), the group's figures and its largest
 * candidates. cand/n are the candidates the choice saw; cmdline the
 * victim's, read before the kill (a dying process's is empty).
 */
void mgi_oom_record(struct mgi_manager *m, const mgi_oom_kill_t *k, const mgi_victim_t *cand,
		    size_t n, size_t victim, const char *why, const char *cmdline);

/* OOM_RECORD_REQ from connection i: the oldest record kept of a kill
 * concerning the group (as OOM registrations hear: the group's limit or
 * an ancestor's, or a kill within its subtree) after req->after, or
 * REPLY -ENOENT. The last MGI_OOM_RECORDS kills are kept. */
#define MGI_OOM_RECORDS 32
void mgi_oom_on_record_req(struct mgi_manager *m, unsigned i, const mgi_msg_oom_record_req_t *req);

/* A process joined (join.c): its age counts from now, and its first
 * charge sample (--oom-policy growth) is 0. */
void mgi_oom_joined(struct mgi_manager *m, unsigned conn);

/* OOM_PRIORITY from connection i: sets the rank of the named process (0:
 * the sender; another's needs root or the manager's user) among the
 * processes this manager saw join. REPLY to a client; none to an agent's
 * own connection (its agent sends it at start-up and does not wait). */
void mgi_oom_on_priority(struct mgi_manager *m, unsigned i, const mgi_msg_oom_priority_t *p);

/* The OOM timer (graces ending, victims that do not exit, growth
 * samples): true if tag was its (handled). */
bool mgi_oom_event(struct mgi_manager *m, uint64_t tag);

/* Arms or stops the OOM timer as graces, dying victims and growth
 * policies need it (after a SET, a kill). */
void mgi_oom_arm(struct mgi_manager *m);

/* Closes the OOM timer. */
void mgi_oom_destroy(struct mgi_manager *m);

/*
 * The pause (--oom-kill-disable, inherited as the other settings): when
 * target's OOM action is to pause, marks it under_oom (the first time:
 * counts it, logs it, tells every OOM registration, as memcg v1 tells
 * its eventfds) and returns true: its faulting threads keep waiting. False
 * when the group kills (or m->oom_pause_off: memgrp run is ending).
 */
bool mgi_oom_pause(struct mgi_manager *m, int target);

/* Ends the pause of every group that has room again (memory freed, the
 * limit raised, a process gone): under_oom back to 0, logged. Called at
 * each OOM tick while a group is paused, and before stats are read. */
void mgi_oom_pause_check(struct mgi_manager *m);

/* OOM_ACT from connection i (memgrp oom): on a paused group, kill a
 * process of its subtree (one that joined this manager) or resume (its
 * OOM action by policy, now). REPLY either way. */
void mgi_oom_on_act(struct mgi_manager *m, unsigned i, const mgi_msg_oom_act_t *a);

/*
 * The backstop's kill at g's kernel limit: cand (pid, group and pages set,
 * by RSS) gets what g's policy ranks by (oom_score_adj, age from
 * /proc/PID/stat, the --oom-priority of a process that joined, the
 * --oom-prefer/--oom-avoid match on its command line), and pol the
 * group's (inherited) --oom-policy. Growth is not sampled for processes
 * without the agent: 0.
 */
void mgi_oom_kernel_figures(struct mgi_manager *m, int g, mgi_victim_t *cand, size_t n,
			    mgi_victim_policy_t *pol);

/*
 * The pre-kill hook before the backstop's kill at g's kernel limit
 * (backstop_oom.c): true if the kill waits, a hook running (any group's)
 * or started now for the victim the kill would take among cand by pol.
 * Once that hook is over, the backstop's next try (g still waiting at its
 * limit, within a second) kills without a hook, the victim the hook was
 * told of if it is still a candidate (every other marked tried).
 */
bool mgi_oom_prekill_kernel(struct mgi_manager *m, int g, mgi_victim_t *cand, size_t n,
			    const mgi_victim_policy_t *pol, const char *state);

/*
 * The host's kill (host_ladder.c: memgrpd's host is short): which group
 * pays is chosen over the groups under the manager's scope by the scope's
 * policy, down as an ancestor's OOM does, then the victim in it by that
 * group's own policy and scope (--oom-kill group: the whole group). A
 * group under --oom-kill-disable (its own or inherited) is never chosen.
 * adj counts in thousandths of total_pages (the host's memory). state
 * goes after "is out of memory " in the log. With dry_run only says what
 * it would kill. Returns the pid killed (or that would be; for a group
 * kill its first), 0 if none.
 */
pid_t mgi_oom_kill_host(struct mgi_manager *m, const char *state, uint64_t total_pages, bool dry_run);

/* Whether a kill for target is under way: its mark names a process that
 * joined and has not exited yet. A stale mark is cleared. */
bool mgi_oom_kill_pending(struct mgi_manager *m, int target);

#endif

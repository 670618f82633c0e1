/* oom_int.h - what the OOM files (oomkill.c, oom_figures.c, oom_prekill.c, oom_pause.c, oom_record.c, oom_timer.c) share among themselves. */
#ifndef MGI_OOM_INT_H
#define MGI_OOM_INT_H

#include "oomkill.h"

struct mgi_conn;

/* A group's OOM settings as they apply: each from the nearest group up
 * its path that sets it (segment.h), else the default. */
struct mgi_oom_eff {
	unsigned policy, scope, signal, grace_ms, kill_disable, prekill_ms;
	unsigned handler_ms;   /* --oom-handler-timeout */
	uint64_t reserve_pages; /* --oom-reserve */
	const char *prefer, *avoid, *prekill;
};
struct mgi_oom_eff mgi_oom_effective(const struct mgi_manager *m, int g);

/* A process's command line, arguments joined by spaces ("" if gone). */
void mgi_oom_cmdline(pid_t pid, char *buf, size_t len);

/* /proc/PID/oom_score_adj (the kernel's, -1000..1000; 0 if unreadable). */
int mgi_oom_score_adj(pid_t pid);

/* What the kernel says pid holds: RssAnon + RssShmem, in pages (0 if it
 * cannot tell). */
uint64_t mgi_oom_kernel_pages(pid_t pid);

/* Marks arr[i] (for i with sel[i]; sel NULL: every one) prefer/avoid by
 * e's regexes on its command line (a regex that does not compile is
 * logged and ignored). */
void mgi_oom_match_regexes(struct mgi_manager *m, const struct mgi_oom_eff *e, mgi_victim_t *arr,
			   const bool *sel, size_t n);

/* Pages c's process gained over its samples' window (--oom-policy growth). */
uint64_t mgi_oom_growth(const struct mgi_conn *c, uint64_t pages_now);

/* How long ago c's process started (since it joined when /proc cannot tell). */
uint64_t mgi_oom_age_ms(const struct mgi_conn *c);

/* The connection of a process this manager saw join (it holds its
 * pidfd), or NULL. */
struct mgi_conn *mgi_oom_joined_conn(struct mgi_manager *m, pid_t pid);

/* Whether target is still at its limit (a page of room is enough for the
 * agent's retry: nobody dies for nothing). */
bool mgi_oom_at_limit(struct mgi_manager *m, int target);

/* Whether the kill at target's OOM waits for a pre-kill hook: one runs,
 * or one starts now for the victim the kill would take among cand[i] with
 * sel[i] (oom_prekill.c). */
bool mgi_oom_prekill_first(struct mgi_manager *m, int target, const struct mgi_oom_eff *e,
			   const mgi_victim_t *cand, const bool *sel, size_t n, const char *state);

/* The hook is over (exited, or killed at its timeout): the kill follows. */
void mgi_oom_prekill_end(struct mgi_manager *m, bool timed_out);

/* The hook's pidfd events: true if tag was one of them (handled). */
bool mgi_oom_prekill_event(struct mgi_manager *m, uint64_t tag);

/* memgrp oom G --kill PID's kill (oom_pause.c): pid killed if it joined
 * under g, its memory reaped, logged as uid's choice, recorded; comm gets
 * its name. Returns 0 or -errno (-ESRCH: not a process of g). */
int mgi_oom_hand_kill(struct mgi_manager *m, int g, pid_t pid, unsigned uid, char *comm,
		      size_t commlen);

/* The same kill of a process named by someone else (a user-space OOM
 * handler): `by` follows the usage in the log line, `why` is the record's
 * reason. */
int mgi_oom_kill_named(struct mgi_manager *m, int g, pid_t pid, const char *by, const char *why,
		       char *comm, size_t commlen);

/* Whether memgrp oom --kill of v waits for g's pre-kill hook, started now
 * for it (*ms: the hook's timeout); false: no hook set, or one runs
 * already (the kill by hand does not wait for another's). */
bool mgi_oom_prekill_hand(struct mgi_manager *m, int g, const mgi_victim_t *v, unsigned uid,
			  unsigned *ms);

/* Whether the host's kill of v (in group g, the unit the host ladder
 * chose) waits for g's pre-kill hook: one runs, or one starts now (state:
 * the host's shortage, as the kill's record says it). At its end
 * mgi_host_ladder_after_prekill kills if the host is still short. */
bool mgi_oom_prekill_host(struct mgi_manager *m, int g, const struct mgi_oom_eff *e,
			  const mgi_victim_t *v, const char *state);

/* Ends a hook still running and reaps one killed (the manager ends). */
void mgi_oom_prekill_destroy(struct mgi_manager *m);

#endif

/* oom_handler.h - a user-space OOM handler per group: registered by a client, asked at OOM with a snapshot, its decision applied or the policy instead. */
#ifndef MGI_OOM_HANDLER_H
#define MGI_OOM_HANDLER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto.h"

struct mgi_manager;

/* OOM_HANDLER from connection i: it becomes the named group's handler
 * (root or the manager's user; -EBUSY if the group has one or the
 * connection handles another group). REPLY. */
void mgi_oomh_on_register(struct mgi_manager *m, unsigned i, const mgi_msg_group_t *r);

/* OOM_DECISION from connection i: checked (pids of the group, a limit
 * `memgrp set` would take), applied, answered. A decision refused, late
 * or for another snapshot kills nothing; the group's policy applies at
 * its next OOM request. */
void mgi_oomh_on_decision(struct mgi_manager *m, unsigned i, const mgi_msg_oom_decision_t *d);

/*
 * Where target's OOM action would be taken (escalate.c): true while its
 * handler decides (a snapshot sent now, or one out and its timeout not
 * passed): the faulting threads wait. False when target has no handler,
 * or when the policy applies this time (the handler timed out, went away,
 * sent a decision that was refused, or resumed three times in a row with
 * no room made).
 */
bool mgi_oomh_ask(struct mgi_manager *m, int target);

/* The same at target's kernel limit (escalate.c kernel_limit: the
 * backstop's kernel cgroup, or a --backend kernel group): the snapshot
 * lists the kernel cgroup's processes (joined or not) with the kernel's
 * figures, no reserve; a kill may name any of them. */
bool mgi_oomh_ask_kernel(struct mgi_manager *m, int target);

/* oom_handler_kernel.c: g's kernel figures (bytes; false: unreadable),
 * its kernel cgroup's processes into s (largest first), and the kill of
 * pids (each must be one of them: else nothing is killed, -ESRCH). */
bool mgi_oomh_kernel_figures(struct mgi_manager *m, int g, uint64_t *usage, uint64_t *limit);
void mgi_oomh_fill_kernel(struct mgi_manager *m, int g, mgi_msg_oom_snapshot_t *s);
/* p into s's table, kept by charged size, largest first (a full table
 * drops its smallest); counted in s->total either way. */
void mgi_oomh_snapshot_add(mgi_msg_oom_snapshot_t *s, const mgi_oomh_proc_t *p);
int mgi_oomh_kill_kernel(struct mgi_manager *m, int g, const pid_t *pids, uint32_t npids, const char *by,
			 char *why, size_t whylen);

/* Connection i sent what does not parse (why) and is dropped: if it is a
 * handler, the log says so (its end follows: mgi_oomh_conn_gone). */
void mgi_oomh_bad_message(struct mgi_manager *m, unsigned i, const char *why);

/* Connection i closed: a handler it was is unregistered (one asked now
 * falls back to the policy). */
void mgi_oomh_conn_gone(struct mgi_manager *m, unsigned i);

/* Frees the handlers' table (the manager ends). */
void mgi_oomh_destroy(struct mgi_manager *m);

#endif

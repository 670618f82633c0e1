/* conn.h - what a manager's own files share: epoll tags, connections (conn.c), joins (join.c), dispatch (dispatch.c). */
#ifndef MGI_CONN_H
#define MGI_CONN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "manager.h"

/* epoll tags: the listening socket, the caller's fds (below 2^32), and for
 * connection i its socket (CONN + i) and its process's pidfd (PIDFD + i). */
#define TAG_LISTEN 1
#define TAG_WAKE 2
#define TAG_TIMER 3
#define TAG_RECLAIM_TIMER 4
#define TAG_SOFT_TIMER 5
#define TAG_ORPHAN_TIMER 6 /* (7: memgrpd's signals) */
#define TAG_CONN_BASE (1ULL << 32)
#define TAG_PIDFD_BASE (2ULL << 32)

/* conn.c */
/* Takes the pending connections, within the per-uid limits of manager.h
 * (a refused one hears why). */
void mgi_conn_accept(mgi_manager_t *m);
/* Serves fd (a connected socket) as a connection, within the same limits
 * (a refused one hears why and is closed): its index, or -errno. */
int mgi_conn_add(mgi_manager_t *m, int fd);
/* Connection i is done (closed, exited, misbehaved): its slot is released
 * (its pages uncharged along the path), its registrations dropped. */
void mgi_conn_drop(mgi_manager_t *m, unsigned i);
/* A released victim is no longer the victim of any ancestor's OOM either. */
void mgi_conn_clear_victim(mgi_manager_t *m, int group, pid_t pid);
/* A REPLY to c (never blocks). */
void mgi_conn_reply(struct mgi_conn *c, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Root and the manager's own user may do anything. */
bool mgi_conn_privileged(const mgi_manager_t *m, const struct mgi_conn *c);
/* Others may read and watch their own group and the groups below it. */
bool mgi_conn_may_watch(const mgi_manager_t *m, const struct mgi_conn *c, int g);
/* The group a request names ("": the peer's own, else the default), or
 * -1 after replying why not. */
int mgi_conn_lookup(mgi_manager_t *m, struct mgi_conn *c, const char *name);
/* Refuses (with a reply) what only a privileged peer may do; true if so. */
bool mgi_conn_refuse_unprivileged(mgi_manager_t *m, struct mgi_conn *c, const char *what);

/* join.c */
/* HELLO: a new process joins a group (WELCOME with its slot and segments). */
void mgi_join_hello(mgi_manager_t *m, unsigned i, const mgi_msg_hello_t *h);
/* HELLO naming a slot: a process whose manager went away comes back with
 * its group's segments (fds: its own first, then its ancestors'). */
void mgi_join_rejoin(mgi_manager_t *m, unsigned i, const mgi_msg_hello_t *h, const int *fds,
		     unsigned nfds);
/* ATTACH: a process is asked to move into a group; the agent's REPLY
 * (mgi_join_move_reply) completes it and answers the requester. */
void mgi_join_attach(mgi_manager_t *m, unsigned i, const mgi_msg_attach_t *a);
void mgi_join_move_reply(mgi_manager_t *m, struct mgi_conn *c, const mgi_msg_reply_t *r);
/* Restored groups' processes that exited while no manager ran are released;
 * looks again once a second while some have not rejoined. */
void mgi_join_watch_orphans(mgi_manager_t *m);
/* Watches connection i's process's exit (its pidfd), now that it has a slot. */
void mgi_join_watch_exit(mgi_manager_t *m, unsigned i);
/* spare.c: spare slots (a fork that does not ask the manager). SPARE:
 * connection i asks for one (slot -1) or gives its own back. */
void mgi_join_spare(mgi_manager_t *m, unsigned i, const mgi_msg_spare_t *s);
/* FORKED on connection i (the parent's): its child took the spare; fd is
 * the child's own connection (closed here if not taken). */
void mgi_join_forked(mgi_manager_t *m, unsigned i, const mgi_msg_spare_t *s, int fd);
/* c is going: its spare, if any, is released (with what a child that took
 * it but was never bound charged there). */
void mgi_join_drop_spare(mgi_manager_t *m, struct mgi_conn *c);
/* Connection i's process exited: what is still queued on it (a child's
 * FORKED) is handled first, then it is dropped. */
void mgi_join_exited(mgi_manager_t *m, unsigned i);

/* dispatch.c */
/* Connection i is readable: one message read and handled. */
void mgi_dispatch(mgi_manager_t *m, unsigned i);

/* manager.c */
/* After a group's limits changed: thresholds re-placed, the host watch,
 * the kernel cgroup, and a group above its high limit reclaimed. */
void mgi_manager_limits_changed(mgi_manager_t *m, int g);

#endif

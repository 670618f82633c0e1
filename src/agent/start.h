/* start.h - what the agent's start-up pieces (start, join, exclude) call of each other. */
#ifndef MGI_AGENT_START_H
#define MGI_AGENT_START_H

#include "agent.h"

/* start.c: the agent's start in this process (the constructor's, or a
 * forked child's after its reset). */
void mgi_agent_start(void);
/* atfork child handler: everything the parent's handler owned is a stale
 * copy; starts over. */
void mgi_agent_child_after_fork(void);
/* childreset.c: every module's reset in a forked child, in order. */
void mgi_agent_child_resets(void);

/* join.c: connects to the manager at path and joins its group. */
int mgi_join_group(const char *path);
/* mgi_uffd_open's callback: the manager does UFFDIO_API on our uffd. */
int mgi_join_features(int fd, uint64_t features);

/* lazyfork.c: a deferred process's fork (a spare slot, no wait). */
/* atfork prepare of a deferred process: the spare, if one came, is the
 * child's (the first fork asks for spares, not waited for). */
void mgi_lazyfork_prepare(void);
/* The deferred process starts its handler: its spare (slot -1: the one
 * it holds, if any) goes back to the manager. */
void mgi_lazyfork_give_back(int slot);
/* In the child: takes the spare and tells the manager (FORKED). 0: joined
 * (new slot and connection, nothing charged yet), or -errno: join the
 * ordinary way. */
int mgi_lazyfork_child(void);

/* exclude.c: the extents of the objects the handler runs (nelf reset),
 * and the data they reach outside them (GOT targets, our thread's block). */
void mgi_exclude_objects(void);
void mgi_exclude_handler_data(void);

#endif

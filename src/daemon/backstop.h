/* backstop.h - the kernel memory cgroup behind every group, as a manager uses it. */
#ifndef MGI_BACKSTOP_H
#define MGI_BACKSTOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto.h"

/*
 * Each group a manager serves gets a kernel memory cgroup (kcgroup.h),
 * mirroring the tree under one directory of the manager's own: below the
 * memory cgroup the manager runs in, "memgrp@HASH" (HASH of the socket
 * path, so that managers never share one). Its limit is the group's
 * memory limit, plus what the group's compressed stores may hold (its swap
 * limit), plus MGI_BACKSTOP_SLACK: memgrp's accounting acts first on what
 * it manages, the kernel bounds the rest (processes without the agent,
 * shared memory, file cache). The kernel's OOM killer is disabled for the
 * group: when the kernel limit refuses, the group waits and the manager
 * chooses the victim (see docs/design.md, "Kernel backstop").
 *
 * Every function is a no-op when the backstop is off (m->backstop NULL).
 */

struct mgi_manager;
struct mgi_conn;

/* Room above memory + swap limit: the agents' own memory (arena, staging
 * frames, handler stacks), page tables, the file cache of the programs
 * they run, and one fault-around batch per process in flight. */
#define MGI_BACKSTOP_SLACK_MIN (16ULL << 20)
/* plus limit / MGI_BACKSTOP_SLACK_DIV */
#define MGI_BACKSTOP_SLACK_DIV 16
/* plus this much per process with the agent in the group's subtree: what
 * the kernel charges for a process beyond what memgrp counts (its page
 * tables, kernel stacks, the agent's arena and threads, libc's own
 * start-up memory). Measured on 2026-12-07: 0.51 MiB for an idle managed
 * `sleep` (400 of them: kernel usage 289 MiB, memgrp usage 85 MiB); without
 * it, 100 sleeps under -m 32M (15 MiB charged) hit the kernel bound of
 * 50 MiB and were killed there. */
#define MGI_BACKSTOP_PER_PROC (1ULL << 20)

/* Starts the backstop if `on` and the kernel offers a memory cgroup: takes
 * back the kernel cgroups of the groups the tree has (restored ones
 * included), removes what else is under its directory (a crash's
 * leftovers), and makes the missing ones. Says once, in the log, when it
 * cannot. Never fails the manager. */
void mgi_backstop_init(struct mgi_manager *m, bool on);
/* Removes the kernel cgroups that have no processes; lets the kernel's OOM
 * killer act in those that stay (no manager will choose). */
void mgi_backstop_destroy(struct mgi_manager *m);

/* A group was created / its limits changed. */
void mgi_backstop_group_added(struct mgi_manager *m, int g);
void mgi_backstop_limits(struct mgi_manager *m, int g);
/* A process joined group g: its ancestors' and its own kernel bounds grow
 * by MGI_BACKSTOP_PER_PROC at once. (They shrink at the next scan after
 * processes leave.) */
void mgi_backstop_joined(struct mgi_manager *m, int g);
/* The group (named, as the tree has forgotten it) was removed. A kernel
 * cgroup that processes without the agent still run in stays, with the
 * kernel's own OOM killer, until they are gone (looked at every scan). */
void mgi_backstop_group_removed(struct mgi_manager *m, int g, const char *name);

/*
 * Whether process pid may say HELLO for group g (0) or not (-EPERM, with
 * why): its kernel cgroup must be g's (a process may not move itself to
 * another group). A privileged peer outside every memgrp cgroup is moved
 * into g's (a process root started with the agent by hand).
 */
int mgi_backstop_hello(struct mgi_manager *m, pid_t pid, bool privileged, int g, char *why,
		       size_t whylen);
/* PLACE: moves pid into g's kernel cgroup before it runs its command
 * (`memgrp run`'s child). Allowed downwards only: g must be the group
 * whose kernel cgroup pid is in or one below it, or g's kernel cgroup
 * below pid's when that is some memgrp group's (a nested manager); or pid
 * is privileged and outside every memgrp cgroup. -EOPNOTSUPP when the
 * backstop is off. */
/* Whether pid is in group g's kernel cgroup (where only root can have put
 * it: memgrp run's PLACE, or a parent there): it may join g whatever its
 * user, as a program exec'ed after dropping root does. */
bool mgi_backstop_holds(struct mgi_manager *m, pid_t pid, int g);
int mgi_backstop_place(struct mgi_manager *m, pid_t pid, bool privileged, int g, char *why,
		       size_t whylen);
/* attach moved pid into g: its kernel cgroup follows. */
void mgi_backstop_moved(struct mgi_manager *m, pid_t pid, int g);

/* The OOM action at g's kernel limit (escalate.c decides when): the
 * largest process of g's kernel cgroup subtree by RSS, managed or not, is
 * killed (oomkill.c). Returns its pid, or 0 if none was. */
pid_t mgi_backstop_oom_kill(struct mgi_manager *m, int g);

/* Handles an epoll tag of the backstop's; false if the tag is not one. */
bool mgi_backstop_event(struct mgi_manager *m, uint64_t tag);

/* The kernel cgroups' OS layer (kcgroup.h) the backstop uses; NULL when
 * it is off. The kernel backend (kbackend.c) is built on it. */
struct mgi_kcg;
const struct mgi_kcg *mgi_backstop_kcg(const struct mgi_manager *m);

/* A kernel cgroup's figures as the stats' kernel_* fields (the one copy,
 * for the backstop's stats and the kernel backend's). */
struct mgi_kcg_figures;
void mgi_backstop_kernel_stats(const struct mgi_kcg_figures *f, mgi_stats_t *st);

/* Adds the kernel's figures of g to its stats. */
void mgi_backstop_stats(const struct mgi_manager *m, int g, mgi_stats_t *st);

#endif

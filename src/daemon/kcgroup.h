/* kcgroup.h - a kernel memory cgroup behind each group: cgroup v1 and v2 behind one interface. */
#ifndef MGI_KCGROUP_H
#define MGI_KCGROUP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * Contract: every function returns 0 (or the count or fd it says) or a
 * negative errno, never exits and never prints. Nothing here knows about
 * managers or agents: this is the OS layer the backstop (backstop.c) and a
 * future kernel-only backend are built on.
 *
 * Where things are: `mount` is the memory hierarchy's mount point (in unit
 * tests a temp dir of plain files), `base` a manager's directory relative
 * to it ("/x/memgrp@1a2b3c4d", made by mgi_kcg_open), and group "web/api"
 * lives at mount + base + "/web/api"; the group "" is base itself.
 * Version 2 forbids processes in a cgroup whose children have controllers
 * enabled, so there a group's processes go in its leaf "@procs" (not a
 * group name: '@' is not allowed in one); in version 1 in the group's own
 * directory.
 */

#define MGI_KCG_PROCS_LEAF "@procs"

typedef struct mgi_kcg {
	int version;       /* 1 or 2 */
	char mount[128];
	char base[256];    /* relative to mount, starting with '/' */
	char proc[64];     /* "/proc", or a fake one in tests */
} mgi_kcg_t;

/* A kernel cgroup's figures (its subtree's, as the kernel counts them). */
typedef struct mgi_kcg_figures {
	uint64_t usage, max_usage, limit; /* bytes; limit UINT64_MAX: none; max_usage
					     v1's max_usage_in_bytes, v2's memory.peak (0 if absent) */
	uint64_t file, shmem, anon;       /* memory.stat (v1: total_cache, total_shmem, total_rss) */
	uint64_t failcnt;                 /* v1 failcnt; v2 events "max" */
	uint64_t high_events;             /* v2 events "high"; 0 in v1 */
	uint64_t oom_kill;                /* kills by the kernel's own OOM killer */
	bool under_oom;                   /* v1: tasks wait at the limit now */
	uint64_t pgfault, pgmajfault;     /* memory.stat (v1: total_pgfault, total_pgmajfault) */
	uint64_t swap;                    /* v1: total_swap; v2: memory.swap.current (0 if absent) */
} mgi_kcg_figures_t;

/*
 * Finds the hierarchy offering the memory controller in a mounts file
 * (/proc/self/mounts): a cgroup v1 mount with option memory, else a
 * cgroup2 mount whose cgroup.controllers lists memory. Returns 1 or 2 with
 * the mount point in mount, -ENOENT if none offers it.
 */
int mgi_kcg_probe(const char *mounts, char *mount, size_t len);

/* The memory cgroup of pid (relative to the mount), from PROC/PID/cgroup. */
int mgi_kcg_pid_path(int version, const char *proc, pid_t pid, char *out, size_t len);

/* Sets k up and creates base (and its parents) if missing; in v2 memory is
 * enabled in cgroup.subtree_control from the mount down to base. */
int mgi_kcg_open(mgi_kcg_t *k, int version, const char *mount, const char *base,
		 const char *proc);

/* Creates a group's cgroup (its parent's must exist). EEXIST is success. */
int mgi_kcg_create(const mgi_kcg_t *k, const char *group);

/* Removes a group's cgroup: -EBUSY while processes are in it, -ENOENT. */
int mgi_kcg_remove(const mgi_kcg_t *k, const char *group);

/* The limit, bytes (UINT64_MAX: none). v1: memory.limit_in_bytes. v2:
 * memory.high at the limit (the kernel throttles there and tells through
 * memory.events, so the manager picks the victim) and memory.max an
 * eighth above it (the kernel's own last word). */
int mgi_kcg_set_limit(const mgi_kcg_t *k, const char *group, uint64_t bytes);

/* Moves a process (all its threads) into the group's cgroup. */
int mgi_kcg_add_pid(const mgi_kcg_t *k, const char *group, pid_t pid);

/* The processes in the group's cgroup, and with subtree in every cgroup
 * below it. Returns how many (at most max stored; more are counted). */
int mgi_kcg_pids(const mgi_kcg_t *k, const char *group, bool subtree, pid_t *pids, int max);

int mgi_kcg_read(const mgi_kcg_t *k, const char *group, mgi_kcg_figures_t *f);

/*
 * An fd that becomes ready when the group's limit refuses memory. v1: an
 * eventfd registered on memory.oom_control through cgroup.event_control
 * (readable, EPOLLIN), with the kernel's OOM killer disabled for the group,
 * so that its tasks wait at the limit for the manager's choice. v2: the
 * group's memory.events, which the kernel marks modified (EPOLLPRI).
 */
int mgi_kcg_watch_oom(const mgi_kcg_t *k, const char *group);

/* v1: lets the kernel's OOM killer act in the group again (on), or not.
 * v2 has no switch: 0. */
int mgi_kcg_kernel_killer(const mgi_kcg_t *k, const char *group, bool on);

/*
 * Writes a limit file of the group's cgroup (bytes; UINT64_MAX: none, as
 * "-1" in v1 and "max" in v2): memory.soft_limit_in_bytes,
 * memory.memsw.limit_in_bytes (v1), memory.low, memory.high (v2). -ENOENT
 * if the kernel has no such file.
 */
int mgi_kcg_set_file(const mgi_kcg_t *k, const char *group, const char *file, uint64_t bytes);
/* Reads such a file (v2's "max" as UINT64_MAX; v1's "none" is its large
 * page-counter maximum, as the kernel prints it). -ENOENT if absent. */
int mgi_kcg_get_file(const mgi_kcg_t *k, const char *group, const char *file, uint64_t *bytes);

/*
 * v1: sets memory.limit_in_bytes to limit (unless set_limit is false) and
 * memory.memsw.limit_in_bytes to memsw, in an order the kernel accepts
 * (the limit may never pass memsw: a growing memsw is written first, a
 * shrinking one last); a step the kernel refuses puts back what the steps
 * before it changed. Returns 0, or -errno with *refused naming the file
 * refused ("memory.limit_in_bytes" or "memory.memsw.limit_in_bytes");
 * -ENOENT for memsw: this kernel does not account swap per cgroup, and
 * nothing was written.
 */
int mgi_kcg_v1_set_pair(const mgi_kcg_t *k, const char *group, bool set_limit, uint64_t limit,
			uint64_t memsw, const char **refused);

/*
 * An eventfd the kernel signals each time the group's usage crosses
 * `bytes`, upwards or downwards (v1: cgroup.event_control on
 * memory.usage_in_bytes, or with memsw memory.memsw.usage_in_bytes). The kernel checks it on its per-cpu event batch,
 * not at every page (see docs/design.md, "Kernel backend"). v2 has no
 * usage thresholds: -EOPNOTSUPP (kbackend.c then polls memory.current).
 */
int mgi_kcg_watch_usage(const mgi_kcg_t *k, const char *group, bool memsw, uint64_t bytes);

/*
 * Removes the directories under base that keep() does not claim (called
 * with each group name found, children before parents). Returns how many
 * could not be removed (processes still in them), or -errno.
 */
int mgi_kcg_clean(const mgi_kcg_t *k, bool (*keep)(void *arg, const char *group), void *arg);

/*
 * The other managers' directories beside k's base ("memgrp@*" in the same
 * parent): for each that dead(arg, name) says has lost its manager, the
 * kernel's OOM killer is turned back on in every cgroup of it (nobody
 * watches them any more) and what is empty is removed, the directory too
 * once nothing is left. Returns the number of such directories still in
 * place (processes run in them), or -errno.
 */
int mgi_kcg_sweep(const mgi_kcg_t *k, bool (*dead)(void *arg, const char *name), void *arg);

#endif

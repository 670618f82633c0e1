/* backstop_int.h - what the backstop's files share: its state, timings, epoll tags and helpers. */
#ifndef MGI_BACKSTOP_INT_H
#define MGI_BACKSTOP_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/timerfd.h>
#include <sys/types.h>
#include <time.h>

#include "kcgroup.h"
#include "manager.h"
#include "oslayer.h"

/* epoll tags: above the manager's (connections, pidfds). */
#define TAG_OOM_BASE (3ULL << 32) /* + group */
#define TAG_SCAN (TAG_OOM_BASE + MGI_GROUPS_MAX)
#define TAG_OOM_TIMER (TAG_SCAN + 1)

/* How often the kernel cgroups' process lists are read. */
#define SCAN_MS 500
/* A process younger than this is not reported yet: it may be between
 * fork and exec, or its agent about to say HELLO. */
#define GRACE_MS 500
/* While a group waits at its kernel limit: how often it is looked at, how
 * long a victim has to go before the next one is chosen, and how long
 * before the kernel's own OOM killer is let act (nothing hangs). */
#define OOM_CHECK_MS 100
#define KILL_WAIT_MS 1000
#define PAUSE_MAX_MS 5000
#define PIDS_MAX 4096

struct bs_group {
	bool made;
	uint64_t bound;    /* the kernel limit last written (0: none yet) */
	int oomfd;
	uint64_t paused_ns, killed_ns, high_events;
	pid_t victim;
	bool released; /* the kernel's killer let act after PAUSE_MAX_MS */
	unsigned unmanaged;
};

struct mgi_backstop {
	mgi_kcg_t k;
	int scan_fd, oom_timer_fd;
	bool oom_timer_on;
	struct bs_group g[MGI_GROUPS_MAX];
	pid_t reported[256];
	unsigned nreported;
	/* kernel cgroups of removed groups that processes without the agent
	 * still ran in: removed by the scan once empty (children first, as
	 * they were added) */
	char lingering[32][MGI_GROUP_NAME_MAX];
	unsigned nlingering;
	int lock_fd; /* held while this manager lives: see mgi_bs_lock_take() */
};

static inline const char *gname(const mgi_manager_t *m, int g)
{
	return m->tree.node[g].name;
}

static inline void arm(int fd, unsigned ms)
{
	struct itimerspec its = {{ms / 1000, (long)(ms % 1000) * 1000000},
				 {ms / 1000, (long)(ms % 1000) * 1000000}};
	timerfd_settime(fd, 0, &its, NULL);
}

/* backstop.c */
/* The group whose kernel cgroup a path (of /proc/PID/cgroup) names, or -1. */
int mgi_bs_group_of_path(const mgi_manager_t *m, const char *path);
/* pid's memory cgroup path; 0 or -errno. */
int mgi_bs_pid_path(const mgi_manager_t *m, pid_t pid, char *out, size_t len);

/* backstop_lock.c */
/* The hash that names a manager's directory (memgrp@HASH of its socket path). */
uint32_t mgi_bs_hash(const char *s);
/* name's lock file path; 0 or -ENAMETOOLONG. */
int mgi_bs_lock_path(const char *name, char *out, size_t len);
/* Takes this manager's lock (before its directory exists): the fd, or
 * -errno if the lock directory cannot be made (the sweep is then skipped). */
int mgi_bs_lock_take(const char *name);
/* mgi_kcg_sweep's test: whether the manager of directory name is dead. */
bool mgi_bs_manager_dead(void *arg, const char *name);
/* Unlinks dead managers' lock files whose directories are gone. */
void mgi_bs_prune_locks(const mgi_kcg_t *k, const char *own);

/* backstop_scan.c */
/* Every SCAN_MS: counts and reports who runs without the agent. */
void mgi_bs_scan(mgi_manager_t *m);
/* Every SCAN_MS: each group's kernel bound follows its processes. */
void mgi_bs_follow_procs(mgi_manager_t *m);
/* pid's comm ("?" if unknown), RSS in bytes (0 if unknown). */
void mgi_bs_comm(const mgi_manager_t *m, pid_t pid, char *out, size_t len);
uint64_t mgi_bs_rss(const mgi_manager_t *m, pid_t pid);
/* Whether pid's agent is connected to this manager. */
bool mgi_bs_connected(const mgi_manager_t *m, pid_t pid);
/* Whether pid runs the agent for this manager: connected, or holding a
 * restored slot within the rejoin grace after the manager's start. */
bool mgi_bs_managed(const mgi_manager_t *m, pid_t pid);
/* Why pid runs without the agent, as far as /proc tells. */
void mgi_bs_diagnose(const mgi_manager_t *m, pid_t pid, char *out, size_t len);

#endif

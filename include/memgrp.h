/* memgrp.h - the public client API of memgrp (libmemgrp). */
#ifndef MEMGRP_H
#define MEMGRP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Versioning: the API version is MG_VERSION_MAJOR.MG_VERSION_MINOR. A minor
 * bump only adds; a major bump may break. mg_version() tells which library
 * was loaded at run time, so a program can check it against the header it
 * was built with. 0.3: mg_ladder_t grew by five fields (handler_asked ..
 * handler_fallback, with mg_oom_handler_register); a program built against
 * 0.3 that reads mg_ladder_t checks mg_version() >= 0x000300 first.
 */
#define MG_VERSION_MAJOR 0
#define MG_VERSION_MINOR 3
#define MG_VERSION_PATCH 0
#define MG_VERSION ((MG_VERSION_MAJOR << 16) | (MG_VERSION_MINOR << 8) | MG_VERSION_PATCH)

#if defined(__GNUC__)
#define MG_API __attribute__((visibility("default")))
#else
#define MG_API
#endif

/* The version of the loaded library, encoded like MG_VERSION. Cannot fail. */
MG_API unsigned mg_version(void);

/* The value of "max": no limit. */
#define MG_SIZE_MAX UINT64_MAX

/*
 * Parses a size as every memgrp interface accepts it: "4096", "64K",
 * "1.5G", "2TiB", "max". Suffixes K M G T P E are powers of 1024, in either
 * case; a fraction needs a suffix and is rounded down to a whole byte.
 * Returns 0 and stores the byte count in *bytes; or -EINVAL (malformed) or
 * -ERANGE (beyond the largest limit memgrp's counters hold, 8E less a
 * page: only the word "max" means no limit), leaving *bytes unaltered and, if err is not NULL,
 * writing a one-line reason into err (errlen bytes, always NUL-terminated).
 */
MG_API int mg_parse_size(const char *text, uint64_t *bytes, char *err, size_t errlen);

/*
 * Formats a byte count the way memgrp prints sizes ("64M", "1.5G", "max").
 * Writes at most len bytes, always NUL-terminated; returns buf.
 */
MG_API char *mg_format_size(uint64_t bytes, char *buf, size_t len);

/*
 * Talking to a manager: memgrpd, or the manager of a `memgrp run` group.
 *
 * A client is one connection, used by one thread at a time (calls on one
 * client are not thread-safe; use one client per thread, or a lock).
 * Functions that can fail return a negative errno: -ENOENT (no such group),
 * -EPERM (not allowed), -EINVAL (bad argument), -ENOSPC (the manager's or
 * the group's tables are full), -ECONNREFUSED/-ENOENT at connect (no
 * manager), -EPIPE (the manager went away). mg_last_error() then has the
 * manager's own words.
 *
 * Who may do what: root and the user the manager runs as, anything; any
 * other process, only read and watch its own group (the group its process
 * runs in) and the groups below it.
 */
typedef struct mg_client mg_client_t;

/*
 * Connects to the manager at socket_path; NULL means $MEMGRP_SOCKET (set in
 * every process `memgrp run` starts, so a managed program finds its own
 * manager), else memgrpd's /run/memgrp/memgrpd.sock. Returns the client, or
 * NULL with a negative errno in *error (if error is not NULL).
 */
MG_API mg_client_t *mg_connect(const char *socket_path, int *error);

/* Closes the connection. Every registration made through it ends, and the
 * eventfds it returned are closed. NULL is allowed. */
MG_API void mg_close(mg_client_t *c);

/* The connection's fd, to poll beside the eventfds: it reports POLLHUP when
 * the manager goes away (the registrations then end, and their eventfds
 * stay silent). Do not read or close it. */
MG_API int mg_fd(const mg_client_t *c);

/* The manager's message for the last failed call on c ("" if none). */
MG_API const char *mg_last_error(const mg_client_t *c);

/* Groups: a path such as "web/api"; NULL or "" means the caller's own
 * group (that of the calling process), else the manager's default group. */

enum mg_counter {
	MG_COUNTER_MEMORY = 0, /* the group's memory usage */
	MG_COUNTER_MEMSW = 1,  /* memory plus swap (equal to memory until
				* memgrp reclaims into a swap store) */
};

/*
 * Registers a usage threshold of `bytes` on a group's counter. Returns an
 * eventfd (close-on-exec, blocking) that becomes readable on every crossing
 * of the threshold, up (usage reaches it) or down (usage falls below it);
 * reading it (8 bytes, or mg_event_read) returns the number of crossings
 * since the last read. Every crossing is counted: there is no rate limit.
 * Which way the last one went: compare mg_stats()'s usage with `bytes`.
 * Returns the eventfd, or a negative errno.
 */
MG_API int mg_threshold_add(mg_client_t *c, const char *group, enum mg_counter counter,
			    uint64_t bytes);

enum mg_pressure_level {
	MG_PRESSURE_LOW = 0,      /* usage reached 75 % of the group's limit */
	MG_PRESSURE_MEDIUM = 1,   /* 90 % */
	MG_PRESSURE_CRITICAL = 2, /* 98 %: the next charges may be refused */
};
enum mg_pressure_mode {
	MG_PRESSURE_LOCAL = 0,     /* the group's own limit only */
	MG_PRESSURE_HIERARCHY = 1, /* also each descendant's, against its limit */
};

/*
 * Subscribes to a pressure level (see docs/design.md: pressure is usage
 * against the hard limit, not memcg's reclaim efficiency; a group without
 * a limit has none). The eventfd counts each time usage rises into the
 * level. Returns the eventfd or a negative errno.
 */
MG_API int mg_pressure_add(mg_client_t *c, const char *group, enum mg_pressure_level level,
			   enum mg_pressure_mode mode);

/*
 * Subscribes to OOM kills that concern the group: a kill because its limit
 * or an ancestor's was hit, or one within its subtree. The eventfd counts
 * kills. Returns the eventfd or a negative errno.
 */
MG_API int mg_oom_add(mg_client_t *c, const char *group);

/*
 * Cooperative reclaim: declares that the caller can free memory for the
 * group (its own group and those below it) when asked. When the group's
 * usage passes 90 % of its limit, and when a charge would fail, the manager
 * asks its cooperating clients, highest priority (0..1000) first, before it
 * reclaims by force (evicts pages, with swap; else the OOM kill). Answer from a thread that does
 * not allocate: a thread blocked at the limit cannot answer. A request arrives on the returned eventfd: the value read
 * (mg_event_read) is the number of 4 KiB pages asked for. Free what you
 * can, then call mg_cooperate_done(): the manager measures what the group's
 * usage really fell by, and asks the next client, or kills, for the rest.
 * A client that does not answer within the manager's wait (200 ms by
 * default, `--coop-wait`) is passed over for that episode.
 * Returns the eventfd or a negative errno.
 */
MG_API int mg_cooperate_add(mg_client_t *c, const char *group, unsigned priority);

/* Says the request read from a cooperation eventfd has been handled.
 * Returns 0 or a negative errno. Does not wait for the manager. */
MG_API int mg_cooperate_done(mg_client_t *c, int efd);

/*
 * Marks a process's rank in its group's OOM choice under `--oom-policy
 * priority` (higher dies first, as oom_score_adj): priority is -1000 to
 * 1000; pid 0 is the caller itself (any process may mark itself; another
 * process's needs root or the manager's user). The process must have
 * joined the manager at c (it runs under memgrp). The mark lasts while the
 * process runs (`memgrp run --oom-priority N` sets it at start-up).
 * Returns 0 or a negative errno: -EINVAL (out of range), -ESRCH (pid not
 * managed there), -EPERM.
 */
MG_API int mg_oom_priority_set(mg_client_t *c, pid_t pid, int priority);

/* Ends the registration of an eventfd returned above and closes it.
 * Returns 0 or a negative errno (-ENOENT: not one of c's). */
MG_API int mg_remove(mg_client_t *c, int efd);

/* Reads an eventfd returned above: the number of events since the last
 * read, which resets it. Blocks until there is one (the fds are blocking;
 * poll them to wait for several); returns 0 on a non-blocking fd with none,
 * or a negative errno. */
MG_API int64_t mg_event_read(int efd);

/* A group's figures; sizes in bytes. usage, max_usage, limit and failcnt
 * are its counter's (usage counts its subtree, as memcg's); the others
 * are summed over its subtree. */
typedef struct mg_stats {
	uint64_t usage, max_usage, limit, failcnt, pgfault, nr_processes;
	uint64_t tracked_bytes, untracked_bytes, oom_kill;
} mg_stats_t;

/* Reads a group's figures into *out. Returns 0 or a negative errno. */
MG_API int mg_stats(mg_client_t *c, const char *group, mg_stats_t *out);

/*
 * The ladder a group climbs when its memory runs short (docs/design.md):
 * cooperating clients asked, pages evicted, then the OOM action. Each
 * count is the number of times that step was taken (or ended so) in the
 * group and below, since the group was made; under_oom is 1 while the
 * group is paused at OOM (--oom-kill-disable).
 */
typedef struct mg_ladder {
	uint64_t coop;        /* cooperative episodes: clients asked to free memory */
	uint64_t coop_enough; /* ... that freed what was needed */
	uint64_t evict;       /* eviction episodes for refused charges */
	uint64_t evict_empty; /* ... that freed nothing */
	uint64_t oom_kill;    /* OOM kills */
	uint64_t oom_pauses;  /* OOM pauses (--oom-kill-disable) */
	uint64_t oom_none;    /* OOM actions that found no process to kill */
	uint64_t under_oom;   /* 1 while paused */
	uint64_t purge;       /* purge episodes: volatile pages (mg_vrange) asked for first */
	/* the user-space OOM handler (mg_oom_handler_register): asked, its
	 * decisions, and the policy applied instead */
	uint64_t handler_asked, handler_kill, handler_raise, handler_resume, handler_fallback;
} mg_ladder_t;

/* Subscribes to the ladder of the group (its own limit's, an ancestor's
 * or a descendant's, as mg_oom_add): the eventfd counts steps taken and
 * episodes ended; mg_ladder_read tells which. Returns the eventfd or a
 * negative errno. */
MG_API int mg_ladder_add(mg_client_t *c, const char *group);

/* Reads the group's ladder counts into *out. Returns 0 or a negative
 * errno. */
MG_API int mg_ladder_read(mg_client_t *c, const char *group, mg_ladder_t *out);

/*
 * A user-space OOM handler (the seed's memory.oom_control in user space):
 * mg_oom_handler_register makes the caller the group's handler (one per
 * group; root or the manager's user). At the group's OOM the manager,
 * instead of its policy, sends a snapshot of the group and waits up to
 * the group's --oom-handler-timeout (default 1 s) for a decision: kill
 * these pids (processes of the group), raise the limit (checked as
 * `memgrp set`), or resume (the faulting threads retry). Its faulting
 * threads wait meanwhile. If the handler does not answer in time, its
 * connection closes, or its decision is refused, the group's policy
 * applies. A handler process in the group may charge up to the group's
 * --oom-reserve beyond the limit while it decides. Use a connection of
 * its own for the handler: it ends (unregisters) when c is closed.
 * The group's OOM is that of its limit, or of its kernel cgroup's limit
 * (the backstop, or --backend kernel: the snapshot then lists the kernel
 * cgroup's processes, no reserve); a group below it with no handler of its
 * own is handled by it too (the snapshot is of that group's subtree). The
 * kernel's own OOM killer (after 5 s at a kernel limit, or with the
 * backstop off) asks no handler.
 */
#define MG_OOM_PROCS_MAX 64
typedef struct mg_oom_proc {
	pid_t pid;
	int priority;      /* --oom-priority / mg_oom_priority_set */
	uint64_t charged;  /* bytes it holds */
	uint64_t age_ms;   /* since it started */
	uint64_t growth;   /* bytes gained over the last 2 s (with --oom-policy growth) */
	char comm[16];
	char cmdline[96];  /* the start of its command line, arguments joined by spaces */
} mg_oom_proc_t;

typedef struct mg_oom_snapshot {
	uint64_t seq;      /* name it in the decision */
	char group[128];
	uint64_t usage, limit, reserve; /* bytes */
	unsigned timeout_ms; /* decide within this, from when it was sent */
	unsigned nprocs;     /* procs used: the largest processes first */
	unsigned total;      /* processes in the group (more than nprocs: the smallest left out) */
	mg_oom_proc_t procs[MG_OOM_PROCS_MAX];
} mg_oom_snapshot_t;

enum mg_oom_action { MG_OOM_KILL = 1, MG_OOM_RAISE = 2, MG_OOM_RESUME = 3 };
#define MG_OOM_PIDS_MAX 16
typedef struct mg_oom_decision {
	uint64_t seq;      /* the snapshot's */
	enum mg_oom_action action;
	uint64_t limit;    /* MG_OOM_RAISE: the new limit in bytes (UINT64_MAX: none) */
	unsigned npids;    /* MG_OOM_KILL: 1..MG_OOM_PIDS_MAX */
	pid_t pids[MG_OOM_PIDS_MAX];
} mg_oom_decision_t;

/* Makes the caller group's OOM handler ("": the client's own group).
 * Returns 0 or a negative errno: -EBUSY (the group has a handler, or c
 * handles another group), -EPERM, -ENOENT, -EOPNOTSUPP (a kernel-backend
 * group). */
MG_API int mg_oom_handler_register(mg_client_t *c, const char *group);

/* Waits up to timeout_ms (-1: forever) for the next snapshot. Returns 0
 * with *s filled, -ETIMEDOUT when none came, or a negative errno (-EPIPE:
 * the manager is gone). mg_fd(c) polls readable when one is there. */
MG_API int mg_oom_handler_read(mg_client_t *c, mg_oom_snapshot_t *s, int timeout_ms);

/* Answers a snapshot. Returns 0 when the manager applied it, or a
 * negative errno with mg_last_error saying why (-ESRCH: a pid not of the
 * group, nothing killed; -EINVAL/-EPERM: a limit `memgrp set` would
 * refuse; -ETIMEDOUT: too late, the policy acted). After a refusal the
 * group's policy applies. */
MG_API int mg_oom_handler_answer(mg_client_t *c, const mg_oom_decision_t *d);

/*
 * Volatile ranges: memory an application lends back (a cache's entries it
 * can rebuild). While [addr, addr + len) is volatile its pages stay
 * charged; when the process must make room they are purged first (dropped:
 * never compressed, swapped or written back; uncharged at once), before
 * cooperators are asked and before anything is evicted or killed. Making
 * the range non-volatile again keeps every page not purged byte for byte.
 * A touch of a purged page while the range is still volatile gets, per the
 * mode given when it was made volatile, a zero page (MG_VRANGE_ZERO, as
 * MADV_FREE) or SIGBUS (MG_VRANGE_SIGBUS, as the vrange patches); once
 * non-volatile again, purged pages read as zeros.
 *
 * No manager connection is needed: these reach the memgrp agent in the
 * calling process (loaded by `memgrp run`). addr is page aligned, len is
 * rounded up to whole 4 KiB pages, 2 GiB at most per call; a range made
 * volatile is one unit (it may not overlap another volatile range). A
 * range unmapped or moved (mremap) while volatile stops being volatile;
 * a forked child inherits its parent's volatile ranges and their purge
 * bits. Calls from several threads are serialized.
 * Returns 0 or a negative errno: -EINVAL (unaligned, bad mode), -E2BIG,
 * -EEXIST (overlaps a volatile range), -ENOENT (not volatile: for
 * NONVOLATILE and mg_vrange_purged the range must lie in one volatile
 * range), -EFAULT (not memory memgrp manages), -EOPNOTSUPP (a fast region
 * of estimate mode), -ENOTSUP (no agent in this process).
 */
#define MG_VRANGE_VOLATILE 0
#define MG_VRANGE_NONVOLATILE 1
#define MG_VRANGE_ZERO 0   /* (with VOLATILE) a purged page reads as zeros */
#define MG_VRANGE_SIGBUS 2 /* (with VOLATILE) a purged page raises SIGBUS */

/* mode: MG_VRANGE_VOLATILE (| MG_VRANGE_SIGBUS) or MG_VRANGE_NONVOLATILE;
 * with NONVOLATILE, *purged (if not NULL) is set to 1 if any page of the
 * range was purged since it was made volatile, else 0. */
MG_API int mg_vrange(void *addr, size_t len, int mode, int *purged);

/* The per-page report of a range still volatile: bit k % 8 of byte k / 8
 * of bitmap (len / 4096 bits, rounded up to whole bytes, all written) is
 * set when page k was purged since the range was made volatile. */
MG_API int mg_vrange_purged(void *addr, size_t len, uint8_t *bitmap);

#ifdef __cplusplus
}
#endif

#endif

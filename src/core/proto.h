/* proto.h - messages between agents, the manager and clients on the control socket. */
#ifndef MGI_CORE_PROTO_H
#define MGI_CORE_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "segment.h"

/*
 * The control socket is SOCK_SEQPACKET: one message per packet, fixed-size
 * little structs, host byte order (both ends are on this machine). Every
 * received packet goes through mgi_msg_parse, which checks magic, version,
 * type, exact length and field ranges (group names included) before
 * anything reads a field.
 *
 * A manager serves a tree of groups: memgrpd at /run/memgrp/memgrpd.sock,
 * or the embedded manager of `memgrp run`, which serves its own group (and
 * any groups created under it) at /run/memgrp/GROUP.sock. A message that
 * names no group ("") means the manager's default group: the embedded
 * manager's own group, memgrpd's root.
 *
 *  agent -> manager   HELLO      I am pid P and belong to group G; the
 *                                manager checks P against the peer's
 *                                credentials.
 *  manager -> agent   WELCOME    your slot, with the segments of the group and
 *                                of its ancestors (nsegments memfds, own
 *                                group first) and then the manager's wake
 *                                eventfd (written when a threshold is
 *                                crossed) as SCM_RIGHTS ancillary data.
 *  agent -> manager   OOM_KILL   I killed pid V for the group (for the log).
 *  agent -> manager   OOM_REQ    a charge was refused by the group `level`
 *                                steps up (0: the agent's own): ask its
 *                                cooperating clients, or choose a victim in
 *                                its subtree.
 *  client -> manager  STAT_REQ   group G's figures, please.
 *  manager -> client  STAT       the group's figures and its processes.
 *  client -> manager  SET        new limits for group G.
 *  client -> manager  CREATE     create group G (its parent must exist).
 *  client -> manager  RM         remove group G (no processes, no children).
 *  client -> manager  LIST_REQ   the names of the groups, please.
 *  manager -> client  LIST       the names.
 *  client -> manager  ATTACH     move process P (which runs the agent and is
 *                                connected here) into group G.
 *  manager -> agent   MOVE       join group G in slot S: its segments come as
 *                                with WELCOME; the agent moves its charge and
 *                                answers with a REPLY.
 *  client -> manager  REGISTER   tell me, through the eventfd sent along
 *                                (SCM_RIGHTS), of a threshold crossing, a
 *                                pressure level or an OOM kill in group G;
 *                                REPLY's value is the registration's id.
 *  client -> manager  UNREGISTER  stop registration `id` (it also ends when
 *                                the client's connection closes).
 *  client -> manager  COOP_DONE  the request to free memory that came on
 *                                cooperation `id`'s eventfd is handled (the
 *                                manager measures what was freed). No reply.
 *  agent -> manager   RECLAIM_REQ  a charge was refused by the group `level`
 *                                steps up and this agent cannot (or should
 *                                not) make the room alone: have the group's
 *                                coldest processes evict `pages`.
 *  manager -> agent   EVICT      evict `pages` of yours (compress them into
 *                                your store) now.
 *  agent -> manager   EVICTED    done: `freed` of the `pages` asked.
 *  client -> manager  PLACE      put me (the peer, by SO_PEERCRED) in group G's
 *                                kernel cgroup (the backstop), before I run
 *                                my command; REPLY.
 *  manager -> client  REPLY      0 or a negative errno, and why.
 *  agent -> manager   GRANT      a charge of my nested group went past its
 *                                grant (grant.h): charge `pages` more (memory
 *                                or swap) to its ancestors for it.
 *  manager -> agent   GRANTED    done, the grant raised by `pages`; or 0 and
 *                                the ancestor (`refused` levels up) whose
 *                                limit refused.
 *  client -> manager  OOM_PRIORITY  process P (0: the sender) ranks at
 *                                `priority` in its group's OOM choice
 *                                (--oom-policy priority); REPLY.
 *  client -> manager  OOM_RECORD_REQ  the oldest post-mortem record (one
 *                                JSON object) of a kill concerning group G
 *                                after sequence number `after`, please.
 *  manager -> client  OOM_RECORD  it, or REPLY -ENOENT when none is newer.
 *  client -> manager  OOM_ACT    on group G, paused at OOM
 *                                (--oom-kill-disable): kill process P (it
 *                                must be in G's subtree), or resume (the
 *                                group's OOM action, its policy, now); REPLY.
 *  client -> manager  OOM_HANDLER  make me group G's OOM handler (one per
 *                                group, one group per connection; it ends
 *                                when the connection closes); REPLY.
 *  manager -> client  OOM_SNAPSHOT  group G is out of memory: its processes
 *                                and figures; decide within timeout_ms.
 *  client -> manager  OOM_DECISION  for snapshot `seq`: kill these pids,
 *                                raise the limit to `limit`, or resume
 *                                (retry the charge); REPLY.
 *  agent -> manager   SPARE      slot -1: keep a spare slot for my forks (a
 *                                deferred start); slot S: I give spare S back.
 *  manager -> agent   SPARE      slot S is your spare: a child you fork may
 *                                take it without asking (FORKED).
 *  agent -> manager   FORKED     (sent by a forked child on its parent's
 *                                connection) I, pid P, took my parent's spare
 *                                slot S; my own connection is the socket
 *                                passed along (SCM_RIGHTS). No answer.
 *
 * The connection of an agent stays open for the life of its process image:
 * its closing, or the process's pidfd, is how the manager learns the
 * process has gone (or exec'd).
 */

#define MGI_MSG_MAGIC 0x4d475250u /* "MGRP" */
#define MGI_PROTO_VERSION 3

enum mgi_msg_type {
	MGI_MSG_HELLO = 1,
	MGI_MSG_WELCOME = 2,
	MGI_MSG_OOM_KILL = 3,
	MGI_MSG_STAT_REQ = 4,
	MGI_MSG_STAT = 5,
	MGI_MSG_SET = 6,
	MGI_MSG_REPLY = 7,
	MGI_MSG_CREATE = 8,
	MGI_MSG_RM = 9,
	MGI_MSG_LIST_REQ = 10,
	MGI_MSG_LIST = 11,
	MGI_MSG_OOM_REQ = 12,
	MGI_MSG_ATTACH = 13,
	MGI_MSG_MOVE = 14, /* laid out as WELCOME */
	MGI_MSG_REGISTER = 15,
	MGI_MSG_UNREGISTER = 16,
	MGI_MSG_COOP_DONE = 17, /* laid out as UNREGISTER: request `id` handled */
	MGI_MSG_RECLAIM_REQ = 18,
	MGI_MSG_EVICT = 19,
	MGI_MSG_EVICTED = 20, /* laid out as EVICT */
	MGI_MSG_PLACE = 21, /* laid out as STAT_REQ */
	/* An agent that may not turn on fork events (CAP_SYS_PTRACE) passes
	 * its new userfaultfd for the manager to do UFFDIO_API with `id` as
	 * the features; laid out as UNREGISTER, answered by REPLY. */
	MGI_MSG_UFFD_FEATURES = 24,
	MGI_MSG_GRANT = 30,
	MGI_MSG_GRANTED = 31, /* laid out as GRANT */
	MGI_MSG_OOM_PRIORITY = 40,
	MGI_MSG_OOM_RECORD_REQ = 41,
	MGI_MSG_OOM_RECORD = 42,
	MGI_MSG_OOM_ACT = 43,
	MGI_MSG_OOM_HANDLER = 44, /* laid out as STAT_REQ */
	MGI_MSG_OOM_SNAPSHOT = 45,
	MGI_MSG_OOM_DECISION = 46,
	MGI_MSG_SPARE = 47,
	MGI_MSG_FORKED = 48, /* laid out as SPARE */
};

/* What a REGISTER asks to hear about. */
enum mgi_reg_kind {
	MGI_REG_THRESHOLD = 1,
	MGI_REG_PRESSURE = 2,
	MGI_REG_OOM = 3,
	MGI_REG_COOPERATE = 4, /* "ask me to free memory first"; level: priority */
	MGI_REG_LADDER = 5,    /* each step of the ladder at pressure (escalate.c) and its outcome */
};
#define MGI_COOP_PRIORITY_MAX 1000
enum mgi_pressure_level { MGI_PRESSURE_LOW = 0, MGI_PRESSURE_MEDIUM = 1, MGI_PRESSURE_CRITICAL = 2 };
enum mgi_pressure_mode { MGI_PRESSURE_LOCAL = 0, MGI_PRESSURE_HIERARCHY = 1 };

typedef struct mgi_msg_hdr {
	uint32_t magic;
	uint16_t version;
	uint16_t type;
	uint32_t len; /* of the whole message */
	uint32_t reserved;
} mgi_msg_hdr_t;

typedef struct mgi_msg_hello {
	mgi_msg_hdr_t hdr;
	int32_t pid;
	int32_t slot; /* -1: none yet */
	char group[MGI_GROUP_NAME_MAX]; /* "": the manager's default group */
} mgi_msg_hello_t;

typedef struct mgi_msg_welcome {
	mgi_msg_hdr_t hdr;
	int32_t slot;
	uint32_t segment_bytes;
	uint32_t nsegments; /* fds sent: the group's, then each ancestor's */
	uint32_t flags;     /* MGI_WELCOME_* */
	char group[MGI_GROUP_NAME_MAX]; /* the group joined, in full */
} mgi_msg_welcome_t;
/* After the segments' fds and the wake eventfd, one more: /dev/userfaultfd,
 * opened by the manager for a process that may not open it itself (a
 * program exec'ed after dropping root: see docs/design.md, "Trust"). */
#define MGI_WELCOME_UFFD_DEV 1u

typedef struct mgi_msg_oom {
	mgi_msg_hdr_t hdr;
	int32_t killer;
	int32_t victim;
	uint64_t usage_pages, max_pages, victim_pages;
	char victim_comm[MGI_COMM_MAX];
} mgi_msg_oom_t;

/* An agent's charge was refused by an ancestor's limit. */
typedef struct mgi_msg_oom_req {
	mgi_msg_hdr_t hdr;
	int32_t pid;
	uint32_t level; /* 0: the agent's group, 1: its parent, 2: ... */
} mgi_msg_oom_req_t;

/* An agent needs room in the group `level` steps up from its own. */
typedef struct mgi_msg_reclaim_req {
	mgi_msg_hdr_t hdr;
	int32_t pid;
	uint32_t level;
	uint64_t pages;
} mgi_msg_reclaim_req_t;

/* What one GRANT may ask: a fault-around window, twice (the grant's
 * shortfall for a window plus the window; the manager adds the batch
 * itself, grant.h). More is no fault's need. */
#define MGI_GRANT_ASK_MAX (2 * MGI_FAULT_AROUND_MAX)

/* GRANT (agent to manager) and GRANTED (its answer). */
typedef struct mgi_msg_grant {
	mgi_msg_hdr_t hdr;
	int32_t pid;
	uint32_t swap;    /* 0: the memory grant, 1: the swap grant */
	uint64_t pages;   /* GRANT: wanted (1 to MGI_GRANT_ASK_MAX); GRANTED:
			   * given, 0 if refused */
	uint32_t refused; /* GRANTED with 0 pages: the refusing ancestor,
			   * levels up from the group (1 to MGI_DEPTH_MAX - 1) */
	uint32_t reserved;
} mgi_msg_grant_t;

/* EVICT (manager to agent) and EVICTED (its answer). */
typedef struct mgi_msg_evict {
	mgi_msg_hdr_t hdr;
	uint64_t pages; /* asked */
	uint64_t freed; /* EVICTED: memory pages it gave back */
} mgi_msg_evict_t;

typedef struct mgi_msg_attach {
	mgi_msg_hdr_t hdr;
	char group[MGI_GROUP_NAME_MAX];
	int32_t pid;
	uint32_t reserved;
} mgi_msg_attach_t;

/* A request naming one group: STAT_REQ, RM, LIST_REQ (group unused). */
typedef struct mgi_msg_group {
	mgi_msg_hdr_t hdr;
	char group[MGI_GROUP_NAME_MAX];
} mgi_msg_group_t;

/* Sizes in bytes. A process appears as pid, comm and its charged bytes. */
typedef struct mgi_proc_stat {
	int32_t pid;
	uint32_t reserved;
	uint64_t charged;
	uint64_t pgfault;
	char comm[MGI_COMM_MAX];
} mgi_proc_stat_t;

#define MGI_STAT_PROCS_MAX 256

/* A group's figures; sizes in bytes. The names are the stats' names
 * (memcg's where the meaning matches); mgi_stats_fields lists them. */
typedef struct mgi_stats {
	uint64_t usage, max_usage, limit, failcnt, pgfault, nr_processes;
	uint64_t tracked_bytes, untracked_bytes, oom_kill;
	uint64_t coop_requests, coop_freed; /* asks to cooperating clients; bytes they freed */
	/* reclaim */
	uint64_t high, low, soft, swappiness;
	/* estimate accounting (seed 001): mode 0 exact, 1 estimate; estimate
	 * is E (= usage), mapped M, resident R, in bytes */
	uint64_t mode, estimate, mapped, resident, slow_regions, fast_regions, mode_switches;
	uint64_t mode_switch_avg_us; /* what one switch took, on average */
	uint64_t swap_usage, swap_max_usage, swap_limit, memsw_usage;
	uint64_t staged_bytes, stored_pages, same_filled_pages, compressed_bytes;
	uint64_t pswpout, pswpin, pgmajfault, pgdeactivate, pgactivate;
	uint64_t refault, workingset_activate;
	uint64_t swap_file_bytes, written_back_pages; /* --swap-file */
	uint64_t reclaim_stalls, reclaim_stall_p50_us, reclaim_stall_p99_us;
	uint64_t reclaim_hist[MGI_RECLAIM_BUCKETS]; /* bucket i: stalls < 2^i us */
	/* the kernel backstop (src/daemon/backstop.c): processes in the
	 * group's kernel cgroup without an agent connected, and the kernel
	 * cgroup's own figures (0 without one) */
	uint64_t unmanaged_processes, kernel_usage, kernel_max_usage, kernel_limit;
	uint64_t kernel_file, kernel_shmem, kernel_anon;
	uint64_t backend; /* enum mgi_backend (src/daemon/kbackend.c) */
	/* groups here and below reported for claiming more usage than their
	 * processes hold (the grant scheme: src/daemon/grant.c) */
	uint64_t tamper_reports;
	uint64_t cooperators; /* clients registered to be asked to free memory (the manager's count) */
	/* faults on evicted pages: restores by how long they took (bucket i:
	 * < 2^i us), and the time they took in all */
	uint64_t restore_hist[MGI_RECLAIM_BUCKETS];
	uint64_t restore_ns;
	/* notifications: from an agent's crossing to the listeners' eventfds
	 * written, by how long (bucket i: < 2^i us), and the time in all */
	uint64_t notify_hist[MGI_RECLAIM_BUCKETS];
	uint64_t notify_ns;
	/* OOM pause (--oom-kill-disable): 1 while the group waits at OOM
	 * (memcg v1's under_oom); pauses here and below */
	uint64_t under_oom, oom_pauses;
	/* the ladder (escalate.c), here and below: cooperative episodes and
	 * those that freed enough, eviction episodes for refused charges and
	 * those that freed nothing, OOM actions that found no victim */
	uint64_t ladder_coop, ladder_coop_enough, ladder_evict, ladder_evict_empty, oom_none;
	/* volatile ranges (mg_vrange): made volatile now by the group's
	 * processes; pages purged since the group was made */
	uint64_t vrange_bytes, vrange_purged_pages;
	uint64_t ladder_purge; /* the ladder's first rung: purge episodes, here and below */
	/* the host's ladder (memgrpd --min-available/--host-pressure, the
	 * root's figures only): shortages seen, each step taken, and the
	 * steps --dry-run logged instead */
	uint64_t host_short, host_ladder_purge, host_ladder_coop, host_ladder_soft;
	uint64_t host_ladder_evict, host_ladder_kill, host_ladder_dry_run;
	/* the user-space OOM handler, here and below: asked, its decisions,
	 * and the policy applied instead (gone, late, or a refused decision) */
	uint64_t oom_handler_asked, oom_handler_kill, oom_handler_raise, oom_handler_resume;
	uint64_t oom_handler_fallback;
	/* huge pages (agent/thp.c), here and below: huge pages its processes
	 * hold now, blocks promoted and split since the groups were made, and
	 * what promotion filled with zeros (Ingens' bloat) */
	uint64_t thp_huge_pages, thp_promotions, thp_demotions, thp_fill_bytes;
	uint64_t thp_share; /* huge pages the group's subtree is entitled to (memgrpd's last figure) */
	/* memgrpd --thp-compact-rate (the root's figures only): compactions
	 * asked of the kernel and the CPU they took in memgrpd's thread */
	uint64_t thp_compactions, thp_compact_cpu_us;
} mgi_stats_t;

/* Fills reclaim_stalls and the p50/p99 (the upper bound of the bucket the
 * quantile falls in) from reclaim_hist. */
void mgi_stats_stall_quantiles(mgi_stats_t *s);

typedef struct mgi_stats_field {
	const char *name;
	size_t offset;  /* in mgi_stats_t */
	int is_size;    /* bytes (printed with a unit as text) or a count */
} mgi_stats_field_t;

/* The one table of the stats: name, where, and kind; NULL-terminated. */
extern const mgi_stats_field_t mgi_stats_fields[];

static inline uint64_t mgi_stats_get(const mgi_stats_t *s, const mgi_stats_field_t *f)
{
	return *(const uint64_t *)((const char *)s + f->offset);
}

/* The stats as JSON "key": value pairs (the table's, then
 * "reclaim_stall_hist": [...]), comma-separated, without braces, into buf
 * (NUL-terminated; cut short if len is). Returns the length the whole text
 * needs, as snprintf does: callers with a shorter buffer ask again. */
size_t mgi_stats_json_fields(const mgi_stats_t *s, char *buf, size_t len);

typedef struct mgi_msg_stat {
	mgi_msg_hdr_t hdr;
	char group[MGI_GROUP_NAME_MAX];
	mgi_stats_t figures;
	uint32_t nprocs; /* entries used in procs (at most MGI_STAT_PROCS_MAX) */
	uint32_t reserved;
	mgi_proc_stat_t procs[MGI_STAT_PROCS_MAX];
} mgi_msg_stat_t;

/* SET and CREATE: limits; a field left at MGI_SET_KEEP is not changed (or,
 * for CREATE, left at its default: no limit; swap off for a top-level
 * group, unbounded below its ancestors' for a nested one; swappiness 60). */
#define MGI_SET_KEEP UINT64_MAX
typedef struct mgi_msg_set {
	mgi_msg_hdr_t hdr;
	char group[MGI_GROUP_NAME_MAX];
	uint64_t memory_max;  /* bytes; MGI_SET_UNLIMITED for none */
	uint64_t memory_high; /* bytes: background reclaim above it */
	uint64_t memory_low;  /* bytes: protected from its ancestors' reclaim */
	uint64_t memory_soft; /* bytes: reclaimed to first when the host is short */
	uint64_t swap_max;    /* bytes in the compressed stores; 0: no swap */
	uint64_t swappiness;  /* 0-100; 0: never evict */
	uint64_t mode;        /* enum mgi_mode */
	uint64_t backend;     /* enum mgi_backend: CREATE only (SET: KEEP or the same) */
	/* OOM settings (segment.h, enum mgi_oom_set): oom_set's bits say which
	 * are given; the others are kept (SET) or inherited (CREATE). */
	uint32_t oom_set;
	uint32_t oom_policy;   /* enum mgi_oom_policy */
	uint32_t oom_scope;    /* enum mgi_oom_scope */
	uint32_t oom_signal;   /* SIGKILL or SIGTERM */
	uint32_t oom_grace_ms; /* SIGTERM's grace, <= MGI_OOM_GRACE_MAX_MS */
	uint32_t oom_kill_disable; /* with MGI_OOM_SET_DISABLE: 1 pauses at OOM, 0 kills */
	char oom_prefer[MGI_OOM_REGEX_MAX]; /* POSIX extended regex, "" none */
	char oom_avoid[MGI_OOM_REGEX_MAX];
	/* with MGI_OOM_SET_PREKILL: the pre-kill hook's words ("" none) and
	 * its timeout (1..MGI_OOM_PREKILL_TIMEOUT_MAX_MS with a command) */
	uint32_t oom_prekill_timeout_ms;
	uint32_t oom_prekill_reserved;
	char oom_prekill[MGI_OOM_PREKILL_MAX];
	/* with MGI_OOM_SET_HANDLER: the handler's timeout (1..MAX ms); with
	 * MGI_OOM_SET_RESERVE: the handler's reserve in bytes (0: none) */
	uint32_t oom_handler_timeout_ms;
	uint32_t oom_handler_reserved;
	uint64_t oom_reserve;
	/* Huge pages (segment.h, enum mgi_thp_set): thp_set's bits say which
	 * are given; the others are kept (SET) or inherited (CREATE). */
	uint32_t thp_set;
	uint32_t thp_mode;      /* enum mgi_thp_mode */
	uint32_t thp_threshold; /* percent, 1..100 */
	uint32_t thp_rate;      /* promotions a second per process, 0..MGI_THP_RATE_MAX (0: no bound) */
	uint32_t thp_weight;    /* 1..10000: its share of huge pages among its siblings */
	uint32_t thp_reserved;
} mgi_msg_set_t;
#define MGI_SET_UNLIMITED (UINT64_MAX - 1)

typedef struct mgi_msg_register {
	mgi_msg_hdr_t hdr;
	char group[MGI_GROUP_NAME_MAX]; /* "": the client's own group */
	uint32_t kind;    /* enum mgi_reg_kind */
	uint32_t counter; /* enum mgi_watch: MEMORY or MEMSW (thresholds) */
	uint64_t threshold; /* bytes (thresholds) */
	uint32_t level;   /* enum mgi_pressure_level (pressure); priority (cooperate) */
	uint32_t mode;    /* enum mgi_pressure_mode (pressure) */
} mgi_msg_register_t;

/* OOM_PRIORITY: a process's rank under --oom-policy priority. */
typedef struct mgi_msg_oom_priority {
	mgi_msg_hdr_t hdr;
	int32_t pid;      /* 0: the sender (by SO_PEERCRED) */
	int32_t priority; /* MGI_OOM_PRIORITY_MIN..MAX: higher dies first */
} mgi_msg_oom_priority_t;

/* SPARE and FORKED (issue 17 part 2: a fork that does not wait for the
 * manager, docs/design.md "A fork that does not ask"). */
typedef struct mgi_msg_spare {
	mgi_msg_hdr_t hdr;
	int32_t slot; /* SPARE: -1 (asked) or the slot; FORKED: the slot taken */
	int32_t pid;  /* FORKED: the child (its socket's SO_PEERCRED must agree); else 0 */
} mgi_msg_spare_t;

/* OOM_RECORD_REQ and OOM_RECORD: the manager keeps the last few kills'
 * post-mortem records (oomkill.c), numbered from 1. */
#define MGI_OOM_RECORD_MAX 4096
typedef struct mgi_msg_oom_record_req {
	mgi_msg_hdr_t hdr;
	char group[MGI_GROUP_NAME_MAX]; /* "": the client's own group */
	uint64_t after;                 /* 0: the oldest kept */
} mgi_msg_oom_record_req_t;

typedef struct mgi_msg_oom_record {
	mgi_msg_hdr_t hdr;
	uint64_t seq;  /* >= 1 */
	uint32_t len;  /* of text, without its NUL */
	uint32_t reserved;
	char text[MGI_OOM_RECORD_MAX]; /* one JSON object, NUL-terminated */
} mgi_msg_oom_record_t;

/* OOM_ACT: a hand on a group paused at OOM (memgrp oom). */
enum mgi_oom_act { MGI_OOM_ACT_KILL = 1, MGI_OOM_ACT_RESUME = 2 };
typedef struct mgi_msg_oom_act {
	mgi_msg_hdr_t hdr;
	char group[MGI_GROUP_NAME_MAX]; /* "": the client's own group */
	int32_t pid;     /* KILL: the process; RESUME: 0 */
	uint32_t action; /* enum mgi_oom_act */
} mgi_msg_oom_act_t;

/* OOM_SNAPSHOT: what a user-space OOM handler decides on (the figures
 * oom_figures.c ranks victims by). At most MGI_OOMH_PROCS_MAX processes,
 * the largest first; sizes in bytes. */
#define MGI_OOMH_PROCS_MAX 64
#define MGI_OOMH_CMDLINE_MAX 96 /* with its NUL: the start of the command line */
typedef struct mgi_oomh_proc {
	int32_t pid;
	int32_t priority; /* its --oom-priority */
	uint64_t charged; /* bytes it holds */
	uint64_t age_ms;  /* since it started */
	uint64_t growth;  /* bytes gained over the last 2 s (0 without samples) */
	char comm[MGI_COMM_MAX];
	char cmdline[MGI_OOMH_CMDLINE_MAX];
} mgi_oomh_proc_t;
typedef struct mgi_msg_oom_snapshot {
	mgi_msg_hdr_t hdr;
	uint64_t seq; /* >= 1: the decision names it */
	char group[MGI_GROUP_NAME_MAX];
	uint64_t usage, limit, reserve; /* bytes */
	uint32_t timeout_ms; /* the decision's deadline, from the send */
	uint32_t nprocs;     /* entries used in procs */
	uint32_t total;      /* processes in the group (more than nprocs: the smallest left out) */
	uint32_t reserved;
	mgi_oomh_proc_t procs[MGI_OOMH_PROCS_MAX];
} mgi_msg_oom_snapshot_t;

/* OOM_DECISION: a handler's answer to snapshot seq. */
enum mgi_oomh_action { MGI_OOMH_KILL = 1, MGI_OOMH_RAISE = 2, MGI_OOMH_RESUME = 3 };
#define MGI_OOMH_PIDS_MAX 16
typedef struct mgi_msg_oom_decision {
	mgi_msg_hdr_t hdr;
	uint64_t seq;
	uint32_t action; /* enum mgi_oomh_action */
	uint32_t npids;  /* KILL: 1..MGI_OOMH_PIDS_MAX; else 0 */
	uint64_t limit;  /* RAISE: the new limit in bytes; else 0 */
	int32_t pids[MGI_OOMH_PIDS_MAX]; /* npids used, the rest 0 */
} mgi_msg_oom_decision_t;

typedef struct mgi_msg_unregister {
	mgi_msg_hdr_t hdr;
	uint32_t id;
	uint32_t reserved;
} mgi_msg_unregister_t;

typedef struct mgi_msg_reply {
	mgi_msg_hdr_t hdr;
	int32_t status; /* 0 or a negative errno */
	uint32_t value;  /* REGISTER: the registration's id */
	char message[160];
} mgi_msg_reply_t;

#define MGI_LIST_MAX 256
typedef struct mgi_msg_list {
	mgi_msg_hdr_t hdr;
	uint32_t count;
	uint32_t truncated; /* 1 if the manager has more groups than fit */
	char names[MGI_LIST_MAX][MGI_GROUP_NAME_MAX];
} mgi_msg_list_t;

typedef union mgi_msg {
	mgi_msg_hdr_t hdr;
	mgi_msg_hello_t hello;
	mgi_msg_welcome_t welcome;
	mgi_msg_oom_t oom;
	mgi_msg_oom_req_t oom_req;
	mgi_msg_group_t group;
	mgi_msg_list_t list;
	mgi_msg_attach_t attach;
	mgi_msg_register_t reg;
	mgi_msg_unregister_t unreg;
	mgi_msg_stat_t stat;
	mgi_msg_set_t set;
	mgi_msg_reply_t reply;
	mgi_msg_reclaim_req_t reclaim_req;
	mgi_msg_evict_t evict;
	mgi_msg_grant_t grant;
	mgi_msg_oom_priority_t oom_priority;
	mgi_msg_oom_record_req_t oom_record_req;
	mgi_msg_oom_record_t oom_record;
	mgi_msg_oom_act_t oom_act;
	mgi_msg_oom_snapshot_t oom_snapshot;
	mgi_msg_oom_decision_t oom_decision;
	mgi_msg_spare_t spare;
} mgi_msg_t;

#include <stdarg.h>
/* Makes m a REPLY with status and a formatted message (truncated to fit). */
void mgi_msg_reply_vfmt(mgi_msg_t *m, int status, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

/* Fills in the header of a message of the given type (len from the type). */
void mgi_msg_init(mgi_msg_t *m, enum mgi_msg_type type);

/*
 * Validates len bytes at buf as one message and copies it to *out.
 * Returns its type, or -EPROTO (bad magic, version, type or length) or
 * -EINVAL (a field out of range), with a one-line reason in err.
 */
int mgi_msg_parse(const void *buf, size_t len, mgi_msg_t *out, char *err, size_t errlen);

#endif

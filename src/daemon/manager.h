/* manager.h - a manager: the control socket, agents' connections, requests, OOM. */
#ifndef MGI_MANAGER_H
#define MGI_MANAGER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "backstop.h"
#include "escalate.h"
#include "kbackend.h"
#include "proto.h"
#include "tree.h"

/*
 * A manager serves a tree of groups on one control socket. memgrpd is a
 * manager whose scope is the whole tree (its default group is the root);
 * the embedded manager of `memgrp run -g G` is one whose scope is G: it
 * creates G, serves requests for G and groups under G, and is G's default.
 *
 * It gives each agent that says HELLO a slot in its group's segment and
 * the segments of the group and its ancestors, and releases the slot,
 * uncharging its pages along the path, when the process goes: its
 * connection closes (exit, exec, kill) or its pidfd says it exited (which
 * also catches a process whose connection a child still holds). It answers
 * STAT, SET, CREATE, RM, LIST and ATTACH requests, and chooses the victim when an
 * ancestor's limit refuses a charge (an agent sees only its own group's
 * processes). It is event-driven: idle means blocked in epoll_wait, zero CPU.
 */

#define MGI_MANAGER_CONNS_MAX 1024
/* What peers other than root and the manager's own user may hold, so that
 * no user can lock the others out (a review held 1 100 idle connections
 * and root's requests went unanswered): all of them together at most
 * CONNS_MAX - CONNS_RESERVED connections (the rest are for privileged
 * peers: root's clients and agents, the manager's user's); one uid at most
 * IDLE_PER_UID connections that have not joined a group (clients; an
 * agent's connection counts only until its HELLO is served) and at most
 * REGS_PER_UID registrations. */
#define MGI_MANAGER_CONNS_RESERVED 256
#define MGI_MANAGER_IDLE_PER_UID 64
#define MGI_MANAGER_REGS_PER_UID 32
/* How long a cooperating client may take to free memory when asked (see
 * docs/benchmarks.md for the measurement behind the default). */
#define MGI_COOP_WAIT_DEFAULT_MS 200

/* Samples of each process's charge kept for --oom-policy growth (one
 * every MGI_OOM_SAMPLE_MS while a group's policy is growth): the window
 * is their span. */
#define MGI_OOM_HIST 8
#define MGI_OOM_SAMPLE_MS 250

struct mgi_conn {
	int fd;
	pid_t peer_pid;  /* SO_PEERCRED at accept */
	uid_t peer_uid;
	int pidfd;  /* -1 until HELLO */
	int group;  /* tree index; -1 until HELLO */
	int slot;   /* -1 until HELLO */
	pid_t pid;
	/* An ATTACH in progress: the agent was sent MOVE into move_group,
	 * where move_slot is claimed for it; the requester (a client's
	 * connection, index and fd) gets the agent's answer. */
	int move_group, move_slot;
	int requester, requester_fd;
	/* Joined fresh (HELLO, not a rejoin or a move) while its group counted
	 * exactly: its charges are its resident pages (grant.c judges a
	 * group's claim only by such processes). */
	bool exact;
	/* OOM (oomkill.c): when it joined, its --oom-priority, what it held
	 * at the last samples (--oom-policy growth), and a kill under way:
	 * SIGTERM sent at oom_term_ns (SIGKILL at oom_kill_ns, or when the
	 * grace ends), for the group oom_target's limit. */
	uint64_t joined_ns;
	int oom_priority;
	int oom_target;
	uint32_t oom_grace_ms;
	uint8_t hist_next, hist_n;
	uint64_t hist_ns[MGI_OOM_HIST], hist_pages[MGI_OOM_HIST];
	uint64_t oom_term_ns, oom_kill_ns;
	bool oom_stuck; /* not gone OOM_STUCK_MS after SIGKILL: reported, passed over */
	int spare; /* a spare slot kept for its forks (spare.c), or -1 */
};

/* A client's registration (notify.c): an eventfd to signal, and what for.
 * A threshold uses one listener slot in its group's segment; a pressure
 * level one in its group and, in hierarchy mode, one in each descendant;
 * an OOM registration none (the manager signals it itself). */
#define MGI_REGS_MAX 1024
struct mgi_reg {
	uint32_t id;    /* 0: free */
	int conn;       /* the client's connection (index) */
	int efd;
	int group;
	uint32_t kind, counter, level, mode;
	uint64_t threshold; /* bytes */
};

/* A cooperative reclaim in progress (coop.c): one at a time per manager. */
struct mgi_coop_episode {
	bool active;
	int group;            /* whose limit refused a charge */
	int req_group, req_slot; /* the requester, victim of last resort */
	uint64_t need;        /* pages wanted back in all */
	uint64_t freed;       /* pages freed so far, as measured */
	int reg;              /* registration being waited on, -1 if none */
	uint64_t usage_before;/* the group's usage when it was asked */
	uint64_t asked_ns;    /* when it was asked (CLOCK_MONOTONIC) */
	uint8_t asked[MGI_REGS_MAX]; /* who was asked in this episode */
};

/* A reclaim in progress (reclaim.c): one at a time per manager. */
struct mgi_reclaim_episode {
	bool active;
	bool background;      /* for a high or soft limit, not a refused charge */
	int group;            /* whose usage must come down */
	int req_group, req_slot; /* who asked: victim of last resort */
	uint64_t need, freed; /* pages */
	int conn, conn_fd;    /* the agent evicting now (index, fd), -1 if none */
	uint64_t asked, asked_ns, started_ns; /* of the agent evicting now */
	uint64_t answers0;    /* its slot's evict_answers when asked */
	uint8_t spent[MGI_MANAGER_CONNS_MAX]; /* gave less than asked: done */
};

typedef struct mgi_manager {
	mgi_tree_t tree;
	struct mgi_coop_episode coop;
	struct mgi_reclaim_episode reclaim;
	struct mgi_escalation esc; /* escalate.c's per-group state */
	uint64_t reclaim_waiting[MGI_GROUPS_MAX];  /* pages asked during another episode */
	int timerfd;       /* the cooperative wait's deadline */
	int reclaim_timerfd; /* an agent's eviction's deadline */
	int soft_timerfd;  /* the host check, while soft limits exist */
	int orphan_timerfd; /* while restored processes have not rejoined */
	uint64_t born_ns;  /* when this manager started: restored processes' rejoin grace */
	int grant_timerfd; /* the grants' take-back tick (grant.c); -1: not made yet */
	bool grant_timer_on;
	int thp_timerfd;   /* huge pages' shares, a 1 s tick (thpbalance.c); -1: not made yet */
	bool thp_timer_on;
	uint64_t thp_last_ns;
	/* memgrpd --thp-compact-rate: between two compactions (0: never);
	 * the last, how many and the CPU they cost (the manager's thread) */
	uint64_t thp_compact_gap_ns, thp_compact_last_ns, thp_compactions, thp_compact_cpu_us;
	uint64_t min_available; /* bytes: the host floor for soft limits (0: off) */
	unsigned coop_wait_ms;
	int wakefd;        /* agents write it when they count a crossing */
	int uffd_dev;      /* /dev/userfaultfd, lent to unprivileged agents; or -1 */
	uid_t uid;         /* the manager's own user: privileged like root */
	struct mgi_reg regs[MGI_REGS_MAX];
	uint32_t next_id;
	/* which registration each listener slot of each group belongs to */
	int16_t listener_reg[MGI_GROUPS_MAX][MGI_LISTENERS_MAX];
	int scope;         /* the default group; requests must name it or below */
	int listen_fd;
	int epfd;
	const char *who;   /* prefix of log lines: "memgrpd", "memgrp run" */
	char sock_path[108];
	struct mgi_conn conns[MGI_MANAGER_CONNS_MAX];
	unsigned nconns;
	int spare_fd;      /* given up to accept (and refuse) when out of fds */
	uint64_t oom_report_ns; /* last report of unkillable slots (rate) */
	uint64_t oom_none_ns;   /* last report of an OOM with nobody to kill (rate) */
	struct mgi_backstop *backstop; /* the kernel cgroups (backstop.h); NULL: off */
	struct mgi_kbackend *kbackend; /* kernel-backend crossings (kbackend.h); NULL: none */
	int oom_timerfd;   /* oomkill.c: graces, kills to watch, growth samples; 0: not made */
	bool oom_timer_armed;
	uint64_t oom_sample_ns; /* the last growth sample */
	struct mgi_oom_records *oom_records; /* oomkill.c: the last kills' records; NULL: none yet */
	bool oom_pause_off; /* --oom-kill-disable no longer pauses (memgrp run is ending) */
	/* oomkill.c: the pre-kill hook running (one at a time; pid 0: none),
	 * for the kill of `victim` at group `target`'s OOM; one killed at its
	 * timeout and not yet reaped; the kill that follows a hook */
	pid_t prekill_pid, prekill_victim, prekill_reap_pid;
	int prekill_pidfd, prekill_target, prekill_reap_pidfd;
	uint64_t prekill_start_ns, prekill_deadline_ns;
	bool prekill_done;
	struct mgi_oomh *oomh; /* oom_handler.c: the groups' OOM handlers; NULL: none yet */
} mgi_manager_t;

/*
 * Makes the tree, creates `scope` in it (unless it is "", memgrpd's root)
 * with memory_max bytes (UINT64_MAX: none) and listens at sock_path (its
 * directory is created; a stale socket file is replaced, a live one is
 * refused with -EADDRINUSE). Returns 0 or -errno with a reason in err.
 */
int mgi_manager_create(mgi_manager_t *m, const char *who, const char *scope,
		       uint64_t memory_max, uint32_t fault_around, const char *sock_path,
		       char *err, size_t errlen);

/*
 * memgrpd's state directory: the groups' segments live there as files, so
 * that a restarted memgrpd takes back every group (those without
 * processes too) with its limits and accounts. Call right after
 * mgi_manager_create. Returns 0 or -errno with a reason in err.
 */
int mgi_manager_use_state_dir(mgi_manager_t *m, const char *dir, char *err, size_t errlen);

/* Applies limits to the manager's own group (the embedded manager's, set
 * from `memgrp run`'s options). Returns 0 or -EBUSY with why. */
int mgi_manager_set_limits(mgi_manager_t *m, const mgi_msg_set_t *set, char *why, size_t whylen);

/* Adds an fd (e.g. a signalfd) for the caller to the manager's epoll set,
 * with `tag` (1 < tag < 2^32) returned by mgi_manager_poll when readable. */
int mgi_manager_watch(mgi_manager_t *m, int fd, uint64_t tag);

/*
 * Waits up to timeout_ms (-1: forever) and handles what arrived. Returns
 * the tag of a caller's fd that became readable, 0 if none did, or -errno.
 */
int64_t mgi_manager_poll(mgi_manager_t *m, int timeout_ms);

/* Stops listening, closes everything, unlinks the socket. The groups'
 * processes go on with the limits they have. */
void mgi_manager_destroy(mgi_manager_t *m);

/* notify.c: registrations and the delivery of events to their eventfds. */
struct mgi_msg_register;
/* Registers for connection ci, taking ownership of efd. Returns the id (> 0)
 * or -errno with why. */
int mgi_notify_register(mgi_manager_t *m, unsigned ci, int group,
			const mgi_msg_register_t *r, int efd, char *why, size_t whylen);
int mgi_notify_unregister(mgi_manager_t *m, unsigned ci, uint32_t id);
/* Drops every registration of connection ci (it closed). */
void mgi_notify_drop_conn(mgi_manager_t *m, unsigned ci);
/* Drops the registrations on a group just removed (its parent given, as
 * the tree no longer knows it), signalling them once. */
void mgi_notify_drop_group(mgi_manager_t *m, int group, int parent);
/* Moves counted crossings from the segments to the eventfds. */
void mgi_notify_deliver(mgi_manager_t *m);
/* Checks the thresholds along a group's path after the manager changed its
 * usage (a released slot), then delivers. */
void mgi_notify_after_uncharge(mgi_manager_t *m, int group);
/* An OOM kill in group (its limit was hit): signals the OOM registrations
 * on it, its descendants and its ancestors. */
void mgi_notify_oom(mgi_manager_t *m, int group);
/* Tells the ladder registrations (MGI_REG_LADDER) concerned by group (as
 * OOM ones are) that a step was taken or ended: they read which from the
 * ladder counters (stats). */
void mgi_notify_ladder(mgi_manager_t *m, int group);
/* Sets up the manager's own ask watermark (call once the tree exists). */
void mgi_notify_init(mgi_manager_t *m);
/* The kernel said a kernel-backend group crossed what registration ri
 * armed (kbackend.c), n times: delivered as the agents' crossings are. */
void mgi_notify_kernel_crossing(mgi_manager_t *m, int ri, int group, uint64_t n);
/* How many clients registered to cooperate on group g (asked to free
 * memory before its processes are evicted or killed). */
uint64_t mgi_notify_cooperators(const mgi_manager_t *m, int g);
/* Limits or the tree changed: re-places the pressure thresholds. */
void mgi_notify_resync(mgi_manager_t *m);

/* coop.c: cooperative reclaim before an OOM kill. Starts an episode for
 * group (its limit refused a charge) if cooperating clients can be asked
 * (true also while one runs); false if none can. The episode's end is
 * reported to mgi_escalate (COOP_DONE), which decides what follows. */
bool mgi_coop_start(mgi_manager_t *m, int group, int req_group, int req_slot);
/* The client of registration index ri said it is done, or went away. */
void mgi_coop_answered(mgi_manager_t *m, int ri);
/* The wait's timer fired. */
void mgi_coop_timeout(mgi_manager_t *m);

/* reclaim.c: choosing whose pages to evict. */
/* Whether some process under group may evict (swap room, swappiness). */
bool mgi_reclaim_possible(const mgi_manager_t *m, int group);
/* Whether a process under group holds volatile pages not purged yet
 * (mg_vrange): the ladder's first rung, before cooperators. */
bool mgi_reclaim_volatile_under(const mgi_manager_t *m, int group);
/* Has the coldest processes under group evict `pages` (one episode at a
 * time; ignored while one runs). background: for a high or soft limit.
 * The episode's end is reported to mgi_escalate (EVICT_DONE). */
void mgi_reclaim_request(mgi_manager_t *m, int group, uint64_t pages, bool background,
			 int req_group, int req_slot);
/* An agent's RECLAIM_REQ: reported to mgi_escalate (EVICT_REQ). */
void mgi_reclaim_on_request(mgi_manager_t *m, struct mgi_conn *c, const mgi_msg_reclaim_req_t *r);
/* An agent's EVICTED answer; its connection closing; the wait's timer. */
void mgi_reclaim_evicted(mgi_manager_t *m, unsigned ci, const mgi_msg_evict_t *e);
void mgi_reclaim_conn_gone(mgi_manager_t *m, unsigned ci);
/* An answer the agent evicting now left in its slot (it could not send
 * one: see the slot's evict_answers); on a wake and before a timeout. */
void mgi_reclaim_slot_answer(mgi_manager_t *m);
void mgi_reclaim_timeout(mgi_manager_t *m);
/* The default host floor for soft limits: 5 % of MemTotal. */
uint64_t mgi_default_min_available(void);
/* Soft limits changed: watch the host (or stop). The host check's timer. */
void mgi_reclaim_soft_resync(mgi_manager_t *m);
void mgi_reclaim_host_check(mgi_manager_t *m);

/* Looks at the groups' accounting parts (the processes' word) and clamps
 * what is impossible, before the manager acts on them. */
void mgi_manager_audit(mgi_manager_t *m);

/* Adds n to a client's eventfd without ever blocking the manager (see
 * manager.c). Returns 0, or -errno: -EINVAL not an eventfd, -EAGAIN the
 * client let its count come so near 2^64 that the write would block (the
 * caller drops that registration). */
int mgi_manager_efd_add(int efd, uint64_t n);
/* Whether fd is an eventfd (registration takes no other kind). */
bool mgi_manager_is_eventfd(int fd);

/* A line in the manager's log (stderr): "WHO: HH:MM:SS message". */
/* The group `level` steps above c's group (0: its own), as agents name the
 * counter that refused a charge; -1 for the root, which has no limit, or
 * when c has no group. */
int mgi_manager_limiting_group(const mgi_manager_t *m, const struct mgi_conn *c, uint32_t level);

void mgi_manager_log(const mgi_manager_t *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The default group's figures now. */
void mgi_manager_stats(const mgi_manager_t *m, mgi_stats_t *out);

#endif

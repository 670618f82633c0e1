/* segment.h - the shared accounting segment of one group (a memfd, no pointers). */
#ifndef MGI_CORE_SEGMENT_H
#define MGI_CORE_SEGMENT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "counter.h"
#include "group.h"
#include "threshold.h"

/*
 * One per group, in two parts of different trust, each its own file (a
 * memfd, or a file in memgrpd's state directory):
 *
 *  - the control part (mgi_segment_ctl_t), written by the manager only:
 *    name, limits, settings, threshold sets and listeners, the identity of
 *    each process slot (pid, comm: the manager claims a slot at HELLO), the
 *    OOM victim, and the counts only the manager makes (OOM kills,
 *    cooperation). The group's agents map it read-only from a read-only fd
 *    of a file they may not open for writing (mode 0600, the manager's);
 *  - the accounting part (mgi_segment_acct_t), written by the group's
 *    processes (and by those of the groups below it, which charge it as an
 *    ancestor): usage, watermark and failcnt of its counters, per-process
 *    figures by slot index, pending crossing counts, where the threshold
 *    checkers stand, and the group's statistics.
 *
 * Everything in the accounting part is hostile to the manager: any byte of
 * it may have been written by a managed process. The manager range-checks
 * every index and count it reads there and clamps impossible figures
 * (mgi_segment_audit). Both parts are atomics and plain numbers, no
 * pointers, so each process may map them anywhere; every process maps the
 * two back to back (control first, page-aligned) so that one pointer to an
 * mgi_segment_t reaches both, as the unit tests' static segments do.
 *
 * A slot is claimed and freed by the manager (its pid, in the control
 * part); what a process held leaves the group's counters when the manager
 * releases its slot (mgi_segment_release) or when the process itself moves
 * it elsewhere (mgi_segment_uncharge_slot).
 */

#define MGI_SEGMENT_MAGIC 0x3170726d676d656dULL /* "memgmrp1" little-endian */
#define MGI_SEGMENT_VERSION 16 /* 9: restore_hist, restore_ns, crossed_ns; 10-11: the OOM pause, ladder counters, pre-kill hook; 12: both; 13: volatile ranges (vrange_pages, vrange_purged_pages); 14: the OOM handler and its reserve; 15: evict answers in the slot; 16: huge pages per group (thp_*) */
#define MGI_SEGMENT_ALIGN MGI_PAGE_SIZE /* the parts' boundary: a page */
#define MGI_PROCS_MAX 512
#define MGI_FAULT_AROUND_MAX 64
#define MGI_COMM_MAX 16
#define MGI_SLOT_RELEASING (-1) /* pid value while a slot is being released */
/* pid value of a spare slot: claimed by the manager for a process in its
 * deferred start, which a child it forks takes without asking (FORKED);
 * the manager then binds it to the child's pid (mgi_segment_bind_spare). */
#define MGI_SLOT_SPARE (-2)
#define MGI_THRESHOLDS_MAX 128  /* per group and counter */
#define MGI_LISTENERS_MAX 256   /* per group */
#define MGI_RECLAIM_BUCKETS 24  /* stall histogram: bucket i counts < 2^i us */
#define MGI_SWAPPINESS_DEFAULT 60
#define MGI_PID_MAX (1 << 22)   /* the kernel's PID_MAX_LIMIT: no pid is above */

/* Storage for a threshold set of MGI_THRESHOLDS_MAX entries, in place. */
typedef union mgi_threshold_storage {
	mgi_threshold_set_t set;
	unsigned char bytes[sizeof(mgi_threshold_set_t) +
			    MGI_THRESHOLDS_MAX * sizeof(mgi_threshold_entry_t)];
} mgi_threshold_storage_t;

/*
 * Someone to tell about crossings: the manager owns the table (it hands out
 * listener slots and maps them to eventfds); a checker that reports a
 * crossing for listener L adds 1 to the accounting part's pending[L] and
 * wakes the manager, which moves the count to L's eventfd. A count cannot
 * overflow or be lost, so every crossing is delivered; `up_only` listeners
 * (pressure levels, in the control part) are told only of upward
 * crossings.
 */

/* How a group's processes account for their memory (seed 001). */
enum mgi_mode {
	MGI_MODE_EXACT = 0,    /* every region registered, every fault charged */
	MGI_MODE_ESTIMATE = 1, /* regions fast (charged at their size, faults
				* unseen) until the limit needs them exact */
};

/* Who accounts a group's memory. */
enum mgi_backend {
	MGI_BACKEND_AGENT = 0,  /* the agent in every process, page by page */
	MGI_BACKEND_KERNEL = 1, /* the group's kernel memory cgroup alone, no agent */
};

/*
 * The group's OOM settings (issue 18), in its control part: each applies
 * to this group and to the groups below it that do not set it themselves
 * (oom_set's bits say which this group sets; the manager walks up to the
 * nearest that does, and uses the defaults above the top).
 */
enum mgi_oom_set {
	MGI_OOM_SET_POLICY = 1 << 0, /* oom_policy */
	MGI_OOM_SET_SCOPE = 1 << 1,  /* oom_scope */
	MGI_OOM_SET_SIGNAL = 1 << 2, /* oom_signal and oom_grace_ms */
	MGI_OOM_SET_PREFER = 1 << 3, /* oom_prefer ("" clears an inherited one) */
	MGI_OOM_SET_AVOID = 1 << 4,  /* oom_avoid */
	MGI_OOM_SET_DISABLE = 1 << 5, /* oom_kill_disable (--oom-kill-disable: pause) */
	MGI_OOM_SET_PREKILL = 1 << 6, /* oom_prekill and its timeout ("" clears an inherited one) */
	MGI_OOM_SET_HANDLER = 1 << 7, /* oom_handler_timeout_ms (--oom-handler-timeout) */
	MGI_OOM_SET_RESERVE = 1 << 8, /* oom_reserve_pages (--oom-reserve) */
};
#define MGI_OOM_SET_ALL 0x1ffu
/* --oom-kill: who dies at the group's OOM. */
enum mgi_oom_scope {
	MGI_OOM_SCOPE_PROCESS = 0, /* one process, by the policy (default) */
	MGI_OOM_SCOPE_GROUP = 1,   /* every process of the group, as one unit */
};
/* --oom-grace's bound: an agent whose fault waits this long without a
 * resolution ends itself (agent/oomwait.c OOM_GIVEUP_NS, 10 s), so a grace must
 * end well before. */
#define MGI_OOM_GRACE_MAX_MS 5000
#define MGI_OOM_REGEX_MAX 128 /* with its NUL */
/* --oom-prekill CMD: its words, with the NUL; and its timeout's bound,
 * so that the hook and a grace end before an agent's 10 s give-up. */
#define MGI_OOM_PREKILL_MAX 256
#define MGI_OOM_PREKILL_TIMEOUT_MAX_MS 4000
/* --oom-handler-timeout: how long a user-space OOM handler may take to
 * decide (default 1 s); bounded as the hook is. */
#define MGI_OOM_HANDLER_TIMEOUT_DEFAULT_MS 1000
#define MGI_OOM_HANDLER_TIMEOUT_MAX_MS 4000

/* Huge pages (issue 20): a group's --thp, --thp-threshold, --thp-rate. */
enum mgi_thp_mode { MGI_THP_NEVER = 0, MGI_THP_INGENS = 1, MGI_THP_ALWAYS = 2 };
enum mgi_thp_set {
	MGI_THP_SET_MODE = 1 << 0,
	MGI_THP_SET_THRESHOLD = 1 << 1,
	MGI_THP_SET_RATE = 1 << 2,
	MGI_THP_SET_WEIGHT = 1 << 3, /* not inherited: a group's own weight */
};
#define MGI_THP_SET_ALL 0xfu
enum { MGI_THP_STOP = 1 << 0, MGI_THP_DEMOTE = 1 << 1 };
#define MGI_THP_THRESHOLD_DEFAULT 90 /* Ingens' 460 of 512 pages */
#define MGI_THP_RATE_DEFAULT 50
#define MGI_THP_RATE_MAX 1000000

/* Which counter a threshold watches. */
enum mgi_watch { MGI_WATCH_MEMORY = 0, MGI_WATCH_MEMSW = 1 };

/* A slot's identity, in the control part: the manager's word on which
 * process holds it. */
typedef struct mgi_proc_id {
	_Atomic int32_t pid;       /* 0: free; MGI_SLOT_RELEASING; else owner */
	/* its --oom-priority (-1000..1000), the manager's copy: a restarted
	 * manager gives it back to the process when it rejoins */
	int32_t oom_priority;
	char comm[MGI_COMM_MAX];
} mgi_proc_id_t;

/*
 * A process's figures, in the accounting part, at its slot's index.
 * `charged` (memory) counts its pages mapped in the process and its pages
 * in the staging area (evicted but not yet compressed: still memory);
 * `swapped` counts its pages in its compressed store (charged to the swap
 * counter). Releasing the slot uncharges both. The reclaim fields let
 * anyone who maps the segment rank its processes by coldness
 * (mgi_proc_colder) without asking them.
 */
typedef struct mgi_proc_slot {
	_Atomic uint64_t charged;  /* memory pages charged by this process now */
	_Atomic uint64_t swapped;  /* pages in its store now (swap) */
	_Atomic uint64_t pgfault;  /* missing-page faults it resolved */
	_Atomic uint64_t tracked_bytes;   /* registered with userfaultfd */
	_Atomic uint64_t untracked_bytes; /* anonymous, known, not registered */
	_Atomic uint64_t staged;          /* of `charged`: in its staging area */
	_Atomic uint64_t staged_since_ns; /* when its oldest staged page went
					   * there (CLOCK_MONOTONIC); 0: none */
	_Atomic uint64_t stored_bytes;    /* compressed data in its store's memory */
	_Atomic uint64_t file_bytes;      /* and in its write-back file */
	_Atomic uint64_t same_filled;     /* of `swapped`: same-filled markers */
	/* Estimate accounting (seed 001), in pages; in exact mode every region
	 * is slow. mapped = sum M_i; resident = sum R_i (slow regions' exact,
	 * fast regions' as last measured, about once a second). */
	_Atomic uint64_t est_mapped;
	_Atomic uint64_t est_resident;
	_Atomic uint32_t est_fast;        /* fast regions */
	_Atomic uint32_t est_slow;        /* slow regions */
	_Atomic uint64_t vrange_pages;    /* made volatile (mg_vrange) now */
	/* An answer to the manager's EVICT that could not be sent: at its
	 * kernel limit the group cannot charge the socket buffer a message
	 * needs (send fails with ENOBUFS), so the agent writes the pages it
	 * freed here, then counts the answer and writes the wake eventfd
	 * (neither allocates). Written by the agent: the manager clamps. */
	_Atomic uint64_t evict_freed;
	_Atomic uint64_t evict_answers;
	_Atomic uint64_t thp_huge_pages;  /* huge pages (2 MiB blocks) it holds now */
	_Atomic uint32_t thp_idle;        /* of those, no fault seen for a few seconds */
	_Atomic uint32_t thp_waiting;     /* blocks at the threshold, not promoted */
} mgi_proc_slot_t;

/* Written by the manager only; read-only to every agent. */
typedef struct mgi_segment_ctl {
	uint64_t magic;
	uint32_t version;
	uint32_t bytes; /* of the whole segment (both parts) */
	char group[MGI_GROUP_NAME_MAX];
	mgi_limits_t memory;
	/* The swap counter's limits: its max is the group's swap limit. */
	mgi_limits_t swap;
	_Atomic uint32_t swappiness;  /* 0: never evict; else a weight (1-100) */
	/* enum mgi_mode: how the group's processes account (seed 001). Read by
	 * an agent when it starts: a change applies to processes started
	 * afterwards. */
	_Atomic uint32_t mode;
	/* Cooperating clients registered in this group or below: when not 0,
	 * an agent whose charge this group refuses leaves the OOM decision to
	 * the manager, which asks them to free memory before it kills. */
	_Atomic uint32_t cooperators;
	_Atomic uint32_t fault_around; /* pages per resolved fault, 1..MAX */
	_Atomic int32_t oom_victim;    /* pid being killed, 0 if none */
	/* enum mgi_backend, fixed at the group's creation: with the kernel
	 * backend no agent joins; the group's kernel memory cgroup accounts
	 * (src/daemon/kbackend.c). */
	_Atomic uint32_t backend;
	_Atomic uint64_t oom_kill;
	_Atomic uint64_t coop_requests; /* requests sent to cooperating clients */
	_Atomic uint64_t coop_freed;    /* pages they freed, as measured */
	/* The grant scheme (grant.h): pages the manager charged to the
	 * group's ancestors for it, memory and swap. A nested group's agents
	 * charge its own counters within them; 0 for a top-level group. */
	_Atomic uint64_t granted;
	_Atomic uint64_t swap_granted;
	/* OOM settings (enum mgi_oom_set above); written by the manager at
	 * SET/CREATE, read by it at an OOM. The regexes are the text given,
	 * compiled again when used (a restarted manager reads them from its
	 * state files: mgi_segment_check wants them terminated). */
	uint32_t oom_set;      /* MGI_OOM_SET_* bits */
	uint32_t oom_policy;   /* enum mgi_oom_policy (victim.h) */
	uint32_t oom_scope;    /* enum mgi_oom_scope */
	uint32_t oom_signal;   /* SIGKILL (default) or SIGTERM */
	uint32_t oom_grace_ms; /* with SIGTERM: until the SIGKILL, <= MGI_OOM_GRACE_MAX_MS */
	uint32_t oom_kill_disable; /* 1: at OOM the group pauses (memcg v1's oom_kill_disable) */
	char oom_prefer[MGI_OOM_REGEX_MAX];
	char oom_avoid[MGI_OOM_REGEX_MAX];
	/* 1 while the group is paused at OOM (--oom-kill-disable): its
	 * faulting threads wait for memory freed, a higher limit or a kill.
	 * An agent whose charge this group refuses keeps waiting while it is
	 * set and its manager is there (agent/oomwait.c: no self-kill after 10 s). */
	_Atomic uint32_t under_oom;
	uint32_t ladder_reserved;
	/* The ladder's rungs and their outcomes (escalate.c), counted by the
	 * manager: cooperative episodes for this group and those that freed
	 * enough; eviction episodes for a refused charge and those that
	 * freed nothing; OOM pauses; OOM actions that found no victim. */
	_Atomic uint64_t ladder_coop, ladder_coop_enough;
	_Atomic uint64_t ladder_evict, ladder_evict_empty;
	_Atomic uint64_t ladder_purge; /* purge episodes of volatile pages (mg_vrange) */
	_Atomic uint64_t oom_pauses, oom_none;
	/* --oom-prekill (MGI_OOM_SET_PREKILL): the command run before a kill
	 * (words separated by spaces, no shell), bounded by the timeout */
	uint32_t oom_prekill_timeout_ms; /* 1..MGI_OOM_PREKILL_TIMEOUT_MAX_MS; 0 with no command */
	uint32_t oom_prekill_reserved;
	char oom_prekill[MGI_OOM_PREKILL_MAX];
	/* The user-space OOM handler (daemon/oom_handler.c): its settings
	 * (MGI_OOM_SET_HANDLER, MGI_OOM_SET_RESERVE: 1..MAX ms, 0 unset;
	 * pages), the registered handler's pid (0: none), and while it is
	 * asked to decide, oom_handling 1 and oom_reserve_now the pages its
	 * process may charge beyond the limit (agent/oomreserve.c). Counts:
	 * handlers asked, their decisions, and the times the policy applied
	 * instead (a handler gone, late or wrong). */
	uint32_t oom_handler_timeout_ms;
	_Atomic int32_t oom_handler_pid;
	uint64_t oom_reserve_pages;
	_Atomic uint64_t oom_reserve_now;
	_Atomic uint32_t oom_handling;
	uint32_t oom_handler_reserved;
	_Atomic uint64_t oomh_asked, oomh_kill, oomh_raise, oomh_resume, oomh_fallback;
	/* Huge pages (issue 20, agent/thp.c): the settings in force for the
	 * group, each this group's own (its MGI_THP_SET_* bit in thp_set) or
	 * its nearest ancestor's that sets it (the manager writes the
	 * inherited value down: mgi_tree_thp_inherit). An agent reads them
	 * when it starts, unless MEMGRP_THP* in its environment say otherwise. */
	uint32_t thp_set;               /* MGI_THP_SET_* bits */
	_Atomic uint32_t thp_mode;      /* enum mgi_thp_mode */
	_Atomic uint32_t thp_threshold; /* percent of a block in use, 1..100 */
	_Atomic uint32_t thp_rate;      /* promotions a second per process; 0: no bound */
	/* Fairness (daemon/thpbalance.c, core/thpshare.h): the group's
	 * --thp-weight (its own, not inherited); what the manager computed
	 * last: its subtree's share and its own processes' part, in huge
	 * pages, and MGI_THP_STOP/MGI_THP_DEMOTE for its agents. */
	uint32_t thp_weight;
	_Atomic uint32_t thp_flags;
	_Atomic uint64_t thp_share, thp_own;
	/* Usage thresholds on memory and memsw (seed 000 section 4.2); where
	 * the checkers stand is in the accounting part. */
	mgi_threshold_storage_t thresholds[2];
	_Atomic uint32_t up_only[MGI_LISTENERS_MAX];
	mgi_proc_id_t procs[MGI_PROCS_MAX];
} mgi_segment_ctl_t;

/* Written by the group's processes (and its descendants'): hostile. */
typedef struct mgi_segment_acct {
	mgi_counter_t memory;
	/* Pages of the group's processes in their compressed stores. memsw
	 * (memcg v1's memory + swap) is the sum of the two. A group's swap is
	 * charged up its path like memory. */
	mgi_counter_t swap;
	_Atomic uint64_t pgfault;
	/* Reclaim, counted where it happens (kept after processes exit). */
	_Atomic uint64_t pswpout;     /* pages compressed into a store */
	_Atomic uint64_t pswpin;      /* pages restored from a store */
	_Atomic uint64_t pgmajfault;  /* faults that restored from a store */
	_Atomic uint64_t pgdeactivate;/* pages moved to a staging area */
	_Atomic uint64_t pgactivate;  /* staged pages touched again, moved back */
	_Atomic uint64_t refault;     /* = pswpin: evicted pages faulted back */
	_Atomic uint64_t workingset_activate; /* refaults within the working set */
	_Atomic uint64_t written_back; /* pages written from a store to its file */
	_Atomic uint64_t vrange_purged_pages; /* volatile pages purged (mg_vrange) */
	_Atomic uint64_t mode_switches; /* estimate mode: regions turned slow or fast */
	_Atomic uint64_t mode_switch_ns; /* the time they took, in all */
	/* Huge pages (agent/thp.c), since the group was made: blocks
	 * promoted, split again, and pages filled with zeros to promote them */
	_Atomic uint64_t thp_promotions, thp_demotions, thp_fill_pages;
	_Atomic uint64_t reclaim_hist[MGI_RECLAIM_BUCKETS]; /* direct reclaim stalls */
	/* Faults on evicted pages: how long each restore took (the same
	 * power-of-two buckets), and their sum, for a histogram's _sum. */
	_Atomic uint64_t restore_hist[MGI_RECLAIM_BUCKETS];
	_Atomic uint64_t restore_ns;
	/* When an agent counted the earliest crossing the manager has not
	 * signalled yet (CLOCK_MONOTONIC ns; 0: none): the manager's
	 * notification latency starts here. */
	_Atomic uint64_t crossed_ns;
	mgi_threshold_pos_t thresholds[2];
	_Atomic uint64_t pending[MGI_LISTENERS_MAX]; /* crossings not yet told */
	mgi_proc_slot_t procs[MGI_PROCS_MAX];
} mgi_segment_acct_t;

typedef struct mgi_segment {
	mgi_segment_ctl_t ctl;
	_Alignas(MGI_SEGMENT_ALIGN) mgi_segment_acct_t acct;
} mgi_segment_t;

/* The two parts' sizes, as their files have them. */
#define MGI_SEGMENT_CTL_BYTES offsetof(mgi_segment_t, acct)
#define MGI_SEGMENT_ACCT_BYTES (sizeof(mgi_segment_t) - offsetof(mgi_segment_t, acct))

/* Initializes a segment for group (truncated to fit), unlimited. */
void mgi_segment_init(mgi_segment_t *seg, const char *group, uint32_t fault_around);

/*
 * Readies a segment that a manager before this one served (handed back
 * after a restart) for a new one: repairs threshold sets the old one may
 * have left mid-edit and forgets its registrations (thresholds, listeners,
 * pending counts, cooperators, an OOM victim being killed): the clients
 * and eventfds they were for went with it. Counters, limits, figures and
 * process slots stay. Writer: serialize (the adopting manager).
 */
void mgi_segment_forget_manager(mgi_segment_t *seg);

/* Whether mem (of `bytes`) holds a segment of this version (its header
 * only: mgi_segment_check looks at the rest). */
bool mgi_segment_valid(const void *mem, size_t bytes);

/*
 * Checks a whole segment image (control part then accounting part, as
 * mgi_segment_t lays them out) before anything of it is used, as a
 * restarted manager does with the files of its state directory: sizes,
 * magic, version, name, limits, settings, threshold sets (size within
 * capacity, sorted, listeners in range), slots (pids > 1 and below
 * MGI_PID_MAX, no pid twice), usage against what the slots hold and what
 * the counters allow, pending counts. Returns 0, or -EINVAL with the first
 * problem in why. Pure: reads nothing but mem.
 */
int mgi_segment_check(const void *mem, size_t bytes, char *why, size_t whylen);

/*
 * Checks a nested group's grants against its parent's figures (both images
 * passed mgi_segment_check): the parent's usage counts every grant given
 * below it, so a child's grant above it cannot be one the manager gave.
 * Returns 0, or -EINVAL with the problem in why. Pure.
 */
int mgi_segment_check_grant(const mgi_segment_t *parent, const mgi_segment_t *child, char *why,
			    size_t whylen);

/* Takes a free slot for pid; returns its index or -ENOSPC. Manager only
 * (the slot's identity is in the control part). */
int mgi_segment_claim(mgi_segment_t *seg, int32_t pid);
/* A spare slot (claimed with MGI_SLOT_SPARE) becomes pid's, keeping what
 * the forked child charged there already. 0, or -ESRCH if idx is not a
 * spare. Manager only. */
int mgi_segment_bind_spare(mgi_segment_t *seg, int idx, int32_t pid);

/*
 * Releases slot idx if it still belongs to pid: frees it and uncharges what
 * it held along path (the group's counter path: its own counter and its
 * ancestors') and its swap along the swap path beside it. What the slot
 * says it held is the process's word: it is clamped to the group's own
 * usage (a process cannot hold more than its group's counter), so that a
 * slot's figure cannot uncharge its ancestors of more than the group put
 * there. Returns the memory pages released, or -ESRCH if the slot was not
 * pid's (already released). pid may be MGI_SLOT_SPARE (a spare given
 * back, or whose owner went: what a child charged there goes too).
 * Manager only.
 */
long mgi_segment_release(mgi_segment_t *seg, int idx, int32_t pid, const mgi_counter_path_t *path);

/*
 * What a process moving to another group does with its own slot: uncharges
 * what the slot's figures hold along path (memory) and the swap path beside
 * it, and zeroes them. The manager frees the slot's identity once the move
 * is done. Returns the memory pages uncharged.
 */
uint64_t mgi_segment_uncharge_slot(mgi_segment_t *seg, int idx, const mgi_counter_path_t *path);

/* The slot holding the most charged pages, or -1 if none holds any.
 * Reads the processes' own figures: a process can make itself (or another
 * of its group) look the largest, no more. */
int mgi_segment_largest(const mgi_segment_t *seg);

/* A slot's charged pages as the manager may believe them: the figure,
 * clamped to the group's usage. */
uint64_t mgi_segment_slot_charged(const mgi_segment_t *seg, int idx);

/*
 * What the manager found wrong in an accounting part, by kind (bits), and
 * clamped: impossible figures written by a managed process.
 */
enum mgi_tamper {
	MGI_TAMPER_USAGE = 1 << 0,    /* a counter's usage beyond any limit */
	MGI_TAMPER_PENDING = 1 << 1,  /* a pending count absurdly high */
	MGI_TAMPER_SLOTS = 1 << 2,    /* slots hold more than the group uses */
	MGI_TAMPER_POSITION = 1 << 3, /* a threshold position out of range */
	MGI_TAMPER_FREE_SLOT = 1 << 4,/* figures in a slot nobody holds */
	MGI_TAMPER_TRUNCATED = 1 << 5,/* its state file cut (found by the manager's
				       * SIGBUS guard, not by the audit) */
};

/* Pending crossings above this are not counts but tampering: honest
 * checkers add one per crossing and the manager drains them every wakeup. */
#define MGI_PENDING_MAX (1ULL << 32)

/*
 * Checks the accounting part against what can be right and clamps what
 * cannot: usage above MGI_PAGES_UNLIMITED (and watermark below usage),
 * pending counts above MGI_PENDING_MAX or for listeners with no threshold
 * registered, threshold positions beyond their set, figures in free slots,
 * slots' charges beyond the group's usage by more than `slack` pages.
 * Returns the enum mgi_tamper bits found (0: nothing), with the first in
 * why. Manager only.
 */
unsigned mgi_segment_audit(mgi_segment_t *seg, uint64_t slack, char *why, size_t whylen);

/*
 * Whether process a is a better victim for reclaim than b, i.e. colder: a
 * process with staged pages is colder than one without, and the longer its
 * oldest staged page has gone untouched the colder it is (pages that sat
 * in the staging area since then were not used); between two without
 * staged pages, the one holding more memory. A process with nothing to
 * evict is never colder.
 */
bool mgi_proc_colder(const mgi_proc_slot_t *a, const mgi_proc_slot_t *b);

/* The coldest process of the segment (its slot), or -1 if none holds
 * memory. */
int mgi_segment_coldest(const mgi_segment_t *seg);

/* Adds one direct-reclaim stall of ns nanoseconds to the histogram. */
void mgi_segment_count_stall(mgi_segment_t *seg, uint64_t ns);

/* Counts one restore of an evicted page that took ns (the agent, at a
 * fault on it): relaxed adds to restore_hist's bucket and restore_ns. */
void mgi_segment_count_restore(mgi_segment_t *seg, uint64_t ns);

/* Notes that a crossing was counted at now_ns (the agent, when
 * mgi_segment_check_thresholds found one), unless an earlier one waits
 * to be signalled. */
void mgi_segment_note_crossing(mgi_segment_t *seg, uint64_t now_ns);

/* The power-of-two bucket of ns: bucket b counts < 2^b us, the last also
 * everything longer. */
unsigned mgi_segment_us_bucket(uint64_t ns);

/*
 * Checks the group's thresholds after its usage changed (a charge, an
 * uncharge, a move): counts each crossing in its listener's `pending`.
 * memsw thresholds watch memory plus swap. Returns the number of
 * crossings counted: if not zero, the caller wakes the manager.
 */
unsigned mgi_segment_check_thresholds(mgi_segment_t *seg);

/* Number of slots in use. */
unsigned mgi_segment_nr_procs(const mgi_segment_t *seg);

/* The charge path of a group whose segment has no ancestors to charge (a
 * top-level group, or the root): its own counter alone. Nested groups build
 * their path from their ancestors' segments too (the agent, memgrpd). */
static inline mgi_counter_path_t mgi_segment_path(mgi_segment_t *seg)
{
	mgi_counter_path_t p = {.level = {&seg->acct.memory}, .limit = {&seg->ctl.memory},
				.depth = 1};
	return p;
}

/* Appends a segment's memory counter to a path (its next level). */
static inline void mgi_segment_path_add(mgi_counter_path_t *p, mgi_segment_t *seg)
{
	p->level[p->depth] = &seg->acct.memory;
	p->limit[p->depth] = &seg->ctl.memory;
	p->depth++;
}

/* The swap counters along a memory counter path (each level is a
 * segment's memory counter; its swap counter sits beside it, and the swap
 * limits beside the memory limits). */
static inline mgi_counter_path_t mgi_segment_swap_path(const mgi_counter_path_t *memory)
{
	mgi_counter_path_t p = {.depth = memory->depth};
	for (unsigned i = 0; i < memory->depth; i++) {
		p.level[i] = (mgi_counter_t *)((char *)memory->level[i] -
					       offsetof(mgi_segment_t, acct.memory) +
					       offsetof(mgi_segment_t, acct.swap));
		p.limit[i] = (const mgi_limits_t *)((const char *)memory->limit[i] -
						    offsetof(mgi_segment_t, ctl.memory) +
						    offsetof(mgi_segment_t, ctl.swap));
	}
	return p;
}

/* The segment a path level's memory counter is in. */
static inline mgi_segment_t *mgi_segment_of(const mgi_counter_t *memory)
{
	return (mgi_segment_t *)((char *)memory - offsetof(mgi_segment_t, acct.memory));
}

#endif

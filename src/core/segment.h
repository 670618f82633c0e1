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
 * One per group, mapped shared by the manager and by that group's agents
 * only. Everything in it is atomics and plain numbers, so each process may
 * map it anywhere. Per-process figures live in slots: an agent takes a slot
 * when it starts, and the slot is released exactly once, by whoever first
 * swaps its pid to 0 (the manager when the process's connection closes, or
 * an agent that finds an OOM victim gone). Releasing a slot uncharges what
 * it held, which is how a killed process's pages leave the group.
 */

#define MGI_SEGMENT_MAGIC 0x3170726d676d656dULL /* "memgmrp1" little-endian */
#define MGI_SEGMENT_VERSION 5
#define MGI_PROCS_MAX 512
#define MGI_FAULT_AROUND_MAX 64
#define MGI_COMM_MAX 16
#define MGI_SLOT_RELEASING (-1) /* pid value while a slot is being released */
#define MGI_THRESHOLDS_MAX 128  /* per group and counter */
#define MGI_LISTENERS_MAX 256   /* per group */
#define MGI_RECLAIM_BUCKETS 24  /* stall histogram: bucket i counts < 2^i us */
#define MGI_SWAPPINESS_DEFAULT 60

/* Storage for a threshold set of MGI_THRESHOLDS_MAX entries, in place. */
typedef union mgi_threshold_storage {
	mgi_threshold_set_t set;
	unsigned char bytes[sizeof(mgi_threshold_set_t) +
			    MGI_THRESHOLDS_MAX * sizeof(mgi_threshold_entry_t)];
} mgi_threshold_storage_t;

/*
 * Someone to tell about crossings: the manager owns the table (it hands out
 * listener slots and maps them to eventfds); a checker that reports a
 * crossing for listener L adds 1 to listeners[L].pending and wakes the
 * manager, which moves the count to L's eventfd. A count cannot overflow or
 * be lost, so every crossing is delivered; `up_only` listeners (pressure
 * levels) are told only of upward crossings.
 */
typedef struct mgi_listener {
	_Atomic uint64_t pending;
	_Atomic uint32_t up_only;
	uint32_t reserved;
} mgi_listener_t;

/* How a group's processes account for their memory (seed 001). */
enum mgi_mode {
	MGI_MODE_EXACT = 0,    /* every region registered, every fault charged */
	MGI_MODE_ESTIMATE = 1, /* regions fast (charged at their size, faults
				* unseen) until the limit needs them exact */
};

/* Which counter a threshold watches. */
enum mgi_watch { MGI_WATCH_MEMORY = 0, MGI_WATCH_MEMSW = 1 };

/*
 * A process's figures. `charged` (memory) counts its pages mapped in the
 * process and its pages in the staging area (evicted but not yet
 * compressed: still memory); `swapped` counts its pages in its compressed
 * store (charged to the swap counter). Releasing the slot uncharges both.
 * The reclaim fields let anyone who maps the segment rank its processes by
 * coldness (mgi_proc_colder) without asking them.
 */
typedef struct mgi_proc_slot {
	_Atomic int32_t pid;       /* 0: free; MGI_SLOT_RELEASING; else owner */
	uint32_t reserved;
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
	char comm[MGI_COMM_MAX];
} mgi_proc_slot_t;

typedef struct mgi_segment {
	uint64_t magic;
	uint32_t version;
	uint32_t bytes;
	char group[MGI_GROUP_NAME_MAX];
	mgi_counter_t memory;
	/* Pages of the group's processes in their compressed stores; its max
	 * is the group's swap limit. memsw (memcg v1's memory + swap) is the
	 * sum of the two. A group's swap is charged up its path like memory. */
	mgi_counter_t swap;
	_Atomic uint64_t pgfault;
	_Atomic uint64_t oom_kill;
	/* Reclaim, counted where it happens (kept after processes exit). */
	_Atomic uint64_t pswpout;     /* pages compressed into a store */
	_Atomic uint64_t pswpin;      /* pages restored from a store */
	_Atomic uint64_t pgmajfault;  /* faults that restored from a store */
	_Atomic uint64_t pgdeactivate;/* pages moved to a staging area */
	_Atomic uint64_t pgactivate;  /* staged pages touched again, moved back */
	_Atomic uint64_t refault;     /* = pswpin: evicted pages faulted back */
	_Atomic uint64_t workingset_activate; /* refaults within the working set */
	_Atomic uint64_t written_back; /* pages written from a store to its file */
	_Atomic uint64_t mode_switches; /* estimate mode: regions turned slow or fast */
	_Atomic uint64_t mode_switch_ns; /* the time they took, in all */
	_Atomic uint64_t reclaim_hist[MGI_RECLAIM_BUCKETS]; /* direct reclaim stalls */
	_Atomic uint32_t swappiness;  /* 0: never evict; else a weight (1-100) */
	/* enum mgi_mode: how the group's processes account (seed 001). Read by
	 * an agent when it starts: a change applies to processes started
	 * afterwards. */
	_Atomic uint32_t mode;
	_Atomic uint64_t coop_requests; /* requests sent to cooperating clients */
	_Atomic uint64_t coop_freed;    /* pages they freed, as measured */
	/* Cooperating clients registered in this group or below: when not 0,
	 * an agent whose charge this group refuses leaves the OOM decision to
	 * the manager, which asks them to free memory before it kills. */
	_Atomic uint32_t cooperators;
	uint32_t reserved2;
	_Atomic uint32_t fault_around; /* pages per resolved fault, 1..MAX */
	_Atomic int32_t oom_victim;    /* pid being killed, 0 if none */
	/* Usage thresholds on memory and memsw (seed 000 section 4.2). */
	mgi_threshold_storage_t thresholds[2];
	mgi_listener_t listeners[MGI_LISTENERS_MAX];
	mgi_proc_slot_t procs[MGI_PROCS_MAX];
} mgi_segment_t;

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

/* Whether mem (of `bytes`) holds a segment of this version. */
bool mgi_segment_valid(const void *mem, size_t bytes);

/* Takes a free slot for pid; returns its index or -ENOSPC. */
int mgi_segment_claim(mgi_segment_t *seg, int32_t pid);

/*
 * Releases slot idx if it still belongs to pid: frees it and uncharges what
 * it held along path (the group's counter path: its own counter and its
 * ancestors') and its swap along the swap path beside it. Returns the
 * memory pages released, or -ESRCH if the slot was not pid's (already
 * released by someone else).
 */
long mgi_segment_release(mgi_segment_t *seg, int idx, int32_t pid, const mgi_counter_path_t *path);

/* The slot holding the most charged pages, or -1 if none holds any. */
int mgi_segment_largest(const mgi_segment_t *seg);

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
	mgi_counter_path_t p = {.level = {&seg->memory}, .depth = 1};
	return p;
}

/* The swap counters along a memory counter path (each level is a
 * segment's memory counter; its swap counter sits beside it). */
static inline mgi_counter_path_t mgi_segment_swap_path(const mgi_counter_path_t *memory)
{
	mgi_counter_path_t p = {.depth = memory->depth};
	for (unsigned i = 0; i < memory->depth; i++)
		p.level[i] = (mgi_counter_t *)((char *)memory->level[i] -
					       offsetof(mgi_segment_t, memory) +
					       offsetof(mgi_segment_t, swap));
	return p;
}

#endif

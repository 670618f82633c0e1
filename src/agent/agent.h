/* agent.h - the in-process agent's API between its modules; each module owns its state (docs/design.md, file map). */
#ifndef MGI_AGENT_H
#define MGI_AGENT_H

#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "arena.h"
#include "counter.h"
#include "ranges.h"
#include "registry.h"
#include "segment.h"
#include "staging.h"
#include "store.h"

#define MGI_ARENA_BYTES (1UL << 32)      /* address space only: NORESERVE */
#define MGI_HANDLER_STACK (512UL << 10)
#define MGI_WATCHDOG_STACK (64UL << 10)
#define MGI_ELF_RANGES_MAX 512
/* Larger anonymous regions are address-space reservations (sanitizer
 * shadow, language runtimes' heaps reserved up front), not memory in use:
 * they are neither registered (a bitmap and mincore over terabytes) nor
 * counted. */
#define MGI_REGION_MAX_BYTES (64UL << 30)
#define MGI_RELEASER_STACK (64UL << 10)
#define MGI_STAGE_SLOTS 4096             /* the staging area: 16 MiB of address space */
#define MGI_STORE_MAX_PAGES (1UL << 22)  /* what one process may keep in its store: 16 GiB */
#define MGI_RESTORE_MAX 16               /* pages restored by one fault (swap readahead) */
#define MGI_OWN_RANGES_MAX 4
#define MGI_LAZY_RANGES_MAX 64           /* ranges charged at size in a deferred start */

/* What resolving a fault came to. */
enum mgi_resolved {
	MGI_DONE,      /* resolved (or nothing to do): the thread runs on */
	MGI_RETRY,     /* park it and retry: events first, or memory to wait for */
	MGI_NEED_ROOM, /* the charge was refused: make room, then retry */
	MGI_ABSENT,    /* (restore) no data held after all: fill it as new */
};


/* What application threads ask of the handler, through a pipe (40 bytes:
 * writes are atomic). */
enum mgi_req_kind {
	MGI_REQ_LEARN, /* registered: add it to the registry, charge what is present */
	MGI_REQ_FAST,  /* estimate mode: mapped, its size charged, a fast region */
	MGI_REQ_ADMIT, /* estimate mode: mapped, admit it (Algorithm 2) */
	MGI_REQ_GONE,  /* estimate mode: about to be unmapped */
	MGI_REQ_FOUND, /* estimate mode: a malloc block's pages [start, end),
			* charged, in a VMA [vstart, vend) found around it:
			* admit what of the VMA is not known yet */
	MGI_REQ_HAND_OVER, /* the application registers [start, end) with a
			    * userfaultfd of its own: ours steps aside */
	MGI_REQ_VRANGE, /* mg_vrange (vrange.c): vstart the operation */
};
typedef struct mgi_learn_req {
	uintptr_t start, end;
	uintptr_t vstart, vend; /* MGI_REQ_FOUND: the VMA [start, end) lies in */
	uint32_t kind;  /* enum mgi_req_kind */
	int32_t waiter; /* MGI_REQ_ADMIT: the waiter to answer, or -1 */
} mgi_learn_req_t;

/* join.c: the connection to the manager and the group's segments (join.c
 * owns them: set by the join, a rejoin and a MOVE; a forked child keeps
 * the segments, joins its parent's group anew on its own connection). */
struct mgi_join {
	pid_t pid;
	int conn;                /* to the manager; its closing tells our end */
	int wakefd;              /* the manager's eventfd: thresholds crossed */
	mgi_segment_t *seg;      /* the group's segment: slots, figures */
	mgi_segment_t *anc[MGI_DEPTH_MAX]; /* seg, then its ancestors' */
	int segfd[2 * MGI_DEPTH_MAX];      /* their parts' fds, two a level
					    * (control, read-only; accounting):
					    * handed back to a restarted manager
					    * (rejoin) */
	unsigned nsegs;
	char sockpath[108];      /* the manager's socket, as at start */
	bool rejoin_refused;     /* a manager said no: stop asking */
	char group[MGI_GROUP_NAME_MAX]; /* as the manager named it in WELCOME */
	int slot;
	mgi_proc_slot_t *me;
	bool manager_gone;       /* its connection closed: no one to ask */
};
extern struct mgi_join mgi_join;
/* A forked child: the parent's connection closed (the segments kept). */
void mgi_join_child_reset(void);

/* start.c: faults are being handled (a full start done); the agent's own
 * allocator's reservation; /proc/self/maps, for PROCMAP_QUERY. */
extern _Atomic bool mgi_agent_active;
extern mgi_arena_t mgi_arena;
extern int mgi_maps_fd;
/* Whether the process is in its deferred start (start.c). */
bool mgi_agent_deferred(void);

/* learn.c: the registry of managed ranges (the handler thread's; reset in
 * a forked child by mgi_learn_child_reset). */
extern mgi_registry_t mgi_reg;
/* Adds to the bytes of eligible memory left unmanaged (published). */
void mgi_learn_untracked(uint64_t bytes);
/* A forked child: the parent's registry (in its arena) and figures forgotten. */
void mgi_learn_child_reset(void);

/* handler.c, fault.c */
/* What the fault handler's modules read of it (handler.c owns it: a full
 * start sets it up, a forked child's start anew). A plain struct: the
 * fault path reads it as it read the old global's fields. */
struct mgi_handler {
	int uffd;
	bool fork_events; /* UFFD_EVENT_FORK negotiated (see fork.c) */
	void *zeros;      /* MGI_FAULT_AROUND_MAX pages of zeros */
};
extern struct mgi_handler mgi_handler;
/* Its zeros and stack from the arena, its polling window: 0 or -ENOMEM. */
int mgi_handler_init(mgi_arena_t *arena);
/* Starts its thread and waits for its start-up scan: 0 or -errno. */
int mgi_handler_start(void);
void *mgi_handler_main(void *arg); /* arg: MEMGRP_HANDLER_SCHED's choice */
/* Its thread's id (0 before it runs); whether it waits with nothing to
 * do (the watchdog trusts only that state). */
pid_t mgi_handler_tid(void);
/* Its thread's stack (MGI_HANDLER_STACK bytes; NULL before the start). */
void *mgi_handler_stack(void);
bool mgi_handler_idle(void);
/* A forked child: the parent's handler state forgotten. */
void mgi_handler_child_reset(void);
/* Charging and uncharging: account.h. */
uint64_t mgi_now_ns(void);
/* For long work inside the handler (eviction): reads what the uffd has and
 * follows it at once, so that no change of the address space (nor the
 * helper's madvise) waits on us. Faults are resolved, except those that
 * need room: parked (no reclaim from inside reclaim). */
void mgi_handler_follow_events(void);

/* evict.c (run by the handler thread, except where said) */
/* Sets up the staging area, beacon, store and releaser; called at start-up
 * before the handler. Failing leaves the process unable to evict (said in
 * no_evict_why) but managed. */
void mgi_evict_init(void);
/* Whether this process may evict for a charge refused `level` steps up:
 * set up, swappiness above 0, and room in the swap counters. */
bool mgi_evict_allowed(unsigned level);
/* Evicts (compresses) up to `pages` pages of this process, oldest staged
 * first, and tops the staging area up. Returns the memory pages freed. */
uint64_t mgi_evict(uint64_t pages);
/* Evicts (compresses) the oldest staged page, if any, ahead of a charge
 * that will need the room; returns 1 if it did. For the handler's idle
 * moments near the limit (handler.c, wait_for_work). */
uint64_t mgi_evict_ahead(void);
/* Tops the staging area up to its target, evicting nothing: the pages
 * this process does not touch from now on show as cold. */
void mgi_evict_age(void);
/* Publishes the reclaim figures in the process's slot. */
void mgi_evict_publish(void);
/* Whether the handler is inside an eviction (faults do not reclaim). */
bool mgi_evict_running(void);
/* restore.c (the handler thread) */
/* Restores the out page at `page` of region r (and, if sequential, its
 * stored neighbours): MGI_DONE with *restored pages, MGI_RETRY, MGI_ABSENT,
 * or MGI_NEED_ROOM with the refusing level in *level. */
enum mgi_resolved mgi_restore(mgi_vregion_t *r, uintptr_t page, bool sequential,
			      size_t *restored, unsigned *level);
/* The process discarded or unmapped [start, end): drops what the agent held
 * for its out pages and uncharges it. */
void mgi_restore_drop(uintptr_t start, uintptr_t end);
/* mremap moved [from, from + len) to `to`, and the registry followed:
 * rekeys what the agent holds for the out pages now at the destination. */
void mgi_restore_moved(uintptr_t from, uintptr_t to, size_t len);
/* releaser.c (the handler thread's side of it) */
/* The releaser dropped frames: reads its answers (done_rd readable). */
void mgi_releaser_answers(void);
/* Where its answers come (the handler polls it), or -1. */
int mgi_releaser_done_fd(void);
/* The handler is about to wait for work: what it kept back to send the
 * releaser in a batch goes now. */
void mgi_releaser_idle(void);
/* Whether page lies in a range the helper is unsharing (its
 * MADV_POPULATE_WRITE faults there when a page went missing meanwhile). */
bool mgi_releaser_unsharing(uintptr_t page);
/* fork.c, forkchild.c */
/* In a forked child, before anything else (childreset.c): waits until the
 * parent's handler has either handed us the uffd our address space is
 * registered on, with the store we inherited to restore from (its faults
 * are served from then on), or copied in every page it held and let go. */
void mgi_fork_child_start(void);
/* The uffd handed over to this child with a kept store, once (-1: none). */
int mgi_fork_take_uffd(void);
/* In a forked child that was handed its uffd: stops serving faults from
 * the kept store alone (the handler thread, first thing). */
void mgi_fork_early_stop(void);
/* In a forked child that kept its parent's store, once the handler's scan
 * has registered the address space (before any fault is served): marks
 * the store's pages out in the registry and charges them to swap. */
void mgi_fork_adopt(void);
/* Whether this is a forked child's start, before mgi_fork_adopt. */
bool mgi_fork_adopting(void);
/* UFFD_EVENT_FORK: lets the child keep (and restore lazily) what the agent
 * holds out of the address space when its snapshot of the agent is whole,
 * else copies every such page into it (through cfd); then closes cfd. */
void mgi_fork_event(int cfd);
/* Around the handler's reads of the uffd; the application's fork (atfork
 * prepare); a forked child first (see fork.c, "A forked child's
 * userfaultfd"). */
struct uffd_msg;
void mgi_fork_read_begin(void);
void mgi_fork_read_end(const struct uffd_msg *msgs, size_t n);
void mgi_fork_prepare(void);
void mgi_fork_parent(void);
void mgi_fork_close_inflight(void);
/* watchdog.c: its stack and scratch buffer, from the arena (0 or
 * -ENOMEM); its thread started (said on stderr when it cannot be). */
int mgi_watchdog_init(mgi_arena_t *arena);
void mgi_watchdog_start(void);
/* learn.c: registers the eligible anonymous regions of the address space and learns
 * them. Called by the handler at start-up. */
void mgi_scan_and_register(void);
/* The same later on (estimate mode's tick): admits what is not known. */
void mgi_rescan(void);

/* interpose.c: registers [start, end) for the application (page aligned)
 * and asks the handler to learn it. Safe from any application thread. */
void mgi_register_for_app(uintptr_t start, uintptr_t end);
/* The same, counted exactly whatever the mode (registered, then learned by
 * the handler); for callers that checked [start, end) already. */
void mgi_register_exact(uintptr_t start, uintptr_t end);
/* The VMA around addr, registered if it is eligible and not yet. */
void mgi_register_vma_at(uintptr_t addr);
/* The handler took an UNMAP or REMAP of a range starting at start: every
 * thread forgets the ranges it knew, and what is mapped at start now is
 * registered (exact mode). Handler thread only. */
void mgi_interpose_unmapped(uintptr_t start);

/* move.c: reads what the manager sends on the connection (MOVE, EVICT) and
 * answers. Called by the handler thread when the connection is readable;
 * returns false once the manager has gone (stop polling it). */
bool mgi_agent_on_manager_message(void);

/* guards.c: whether [start, end) overlaps a range the application gave
 * back (MADV_DONTNEED) in the last 50 ms, whose old pages the kernel may
 * not have zapped yet: not to be evicted from or faulted around into. */
bool mgi_recently_removed(uintptr_t start, uintptr_t end);
/* Empties the handler's event-order guards (at every start, a forked
 * child's included). */
void mgi_handler_guards_reset(void);

/* learn.c: adds [start, end) (registered with the uffd) to the registry
 * and marks the pages already present, charging them if charge (else the
 * caller holds their charge: a fast region turning slow). Returns them. */
uint64_t mgi_learn_range(uintptr_t start, uintptr_t end, bool charge);

/* estimate.c (seed 001), all but the *_for_app calls from the handler */
/* Sets estimate mode up if the group is in it (after WELCOME). */
int mgi_est_init(void);

/* request.c: what application threads ask of the handler and wait for. */
int mgi_request_init(void);
/* Where the requests come (the handler reads it). */
int mgi_request_fd(void);
/* A forked child: the parent's pipe closed. */
void mgi_request_child_reset(void);
bool mgi_request_send(const mgi_learn_req_t *req);
/* Sends req (its waiter filled in) and waits for the handler's answer: the
 * handler's result, -ETIMEDOUT, or -EDEADLK when called on the handler. */
int mgi_request_call(mgi_learn_req_t *req);
void mgi_request_answer(int32_t waiter, int result);

/* handover.c: in the handler, [start, end) goes to the program's own
 * userfaultfd: 0, or -errno with the range still ours. */
int mgi_hand_over(uintptr_t start, uintptr_t end);
#define MGI_HANDED_TICK_MS 100 /* how often handed-over ranges are counted */
int mgi_handover_init(void);
bool mgi_handover_any(void);
void mgi_handover_tick(void); /* in the handler, every MGI_HANDED_TICK_MS */
void mgi_handover_gone(uintptr_t start, uintptr_t end, bool whole);
bool mgi_est_on(void);
/* Admits [start, end) (its unknown parts) by Algorithm 2; slow: it
 * starts slow (the main thread's stack). */
void mgi_est_admit(uintptr_t start, uintptr_t end, bool slow);
/* Handles a request of kind FAST, ADMIT or GONE. */
void mgi_est_request(const mgi_learn_req_t *req);
/* [start, end) was unmapped: its records go. */
void mgi_est_forget(uintptr_t start, uintptr_t end);
/* Whether addr lies in a fast region. */
bool mgi_est_fast_at(uintptr_t addr);
/* Stops the kernel reporting faults in [start, end) (VMA by VMA). */
void mgi_est_unregister(uintptr_t start, uintptr_t end);
/* A fault the kernel reported in a region the table holds fast: read
 * before the region turned fast, or in a range whose unregistration
 * failed; either way the fast region's whole range is unregistered (again),
 * so that the woken thread's next fault stays in the kernel. */
void mgi_est_fault_on_fast(uintptr_t addr);
/* A charge was refused: turns one fast region slow; false if none. */
bool mgi_est_demote(void);
/* The manager asks for room: turns fast regions slow until `pages` are
 * given back or none is left. Returns the pages given back. */
uint64_t mgi_est_give(uint64_t pages);
/* Whether another process of the group `level` steps up holds fast
 * regions (then the manager can make room without a kill). */
bool mgi_est_fast_elsewhere(unsigned level);
/* Once a second: unmapped fast regions, R and fault rates, fast again. */
void mgi_est_tick(void);
void mgi_est_publish(void);
/* Application threads: new memory [start, end), charged here if it fits,
 * else admitted by the handler (waited for); memory about to be unmapped. */
void mgi_est_map_for_app(uintptr_t start, uintptr_t end);
void mgi_est_unmap_for_app(uintptr_t start, uintptr_t end);
/* A VMA [vs, ve) found around a malloc block whose pages are [bs, be)
 * (0, 0: none): the block's pages charged here if they fit (the rest of
 * the VMA admitted by the handler, which gives back what of the block was
 * known already), else all admitted by the handler (waited for). */
void mgi_est_found_for_app(uintptr_t bs, uintptr_t be, uintptr_t vs, uintptr_t ve);

/* start.c */
/* A process in its deferred start: the application's new memory [start,
 * end) (page aligned) is charged at its size, or, when it does not fit in
 * the allowance, the agent starts for good (mgi_agent_start_now). Called by
 * interpose.c's entry points; single-threaded (a new thread starts the
 * agent first). */
void mgi_agent_lazy_grow(uintptr_t start, uintptr_t end);
/* Starts the userfaultfd, threads and scan of a process in its deferred
 * start (its charge at size given back): from then on as any start. */
void mgi_agent_start_now(void);

/* join.c: after the manager went away: hands this process's segments back to a
 * manager at the same socket (a restarted memgrpd), which adopts the
 * groups it does not serve yet. Waits at most 500 ms for the answer.
 * Returns 0 once rejoined; -EPROTO if refused (then never asks again). */
int mgi_agent_rejoin(void);
/* The fds a WELCOME or MOVE may carry: two a level, and the wake eventfd. */
#define MGI_AGENT_FDS_MAX (2 * MGI_DEPTH_MAX + 1)
/* Maps one segment's two parts back to back, the control part read-only,
 * and checks its header. Returns it or NULL. */
mgi_segment_t *mgi_agent_map_segment(int ctlfd, int acctfd);
/* vrange.c: volatile ranges (mg_vrange). Handler thread. */
/* An application's request (MGI_REQ_VRANGE), answered to its waiter. */
void mgi_vrange_request(const mgi_learn_req_t *req);
/* Purges up to `pages` present volatile pages; returns how many went
 * (uncharged already). */
uint64_t mgi_vrange_purge(uint64_t pages);
/* Whether the last purge found volatile pages it could not move yet
 * (staging slots still being dropped): the fault waits a moment. */
bool mgi_vrange_blocked(void);
/* A staged page reached the head of the staging area: if volatile, it is
 * purged (its out bit cleared, marked in its range) and true returned; the
 * caller drops the slot and uncharges it. */
bool mgi_vrange_take_staged(uintptr_t page);
/* [start, end) was unmapped, or moved away (mremap): no longer volatile. */
void mgi_vrange_gone(uintptr_t start, uintptr_t end);
/* The registry lets go of [start, end) (any thread may call: it takes
 * vrange.c's lock): calls there go to the handler again. */
void mgi_vrange_unmanaged(uintptr_t start, uintptr_t end);
/* A forked child's start: the parent's table, copied into the child's
 * arena (the marks are inherited). */
void mgi_vrange_child_start(void);
/* The child's fork handler, before the parent's arena goes: the table
 * saved aside. */
void mgi_vrange_child_save(void);
/* A fault on a purged page of a SIGBUS-mode range: poisoned (the thread
 * gets SIGBUS) and true returned. */
bool mgi_vrange_fault(uintptr_t page);
/* evict.c: drops the data of n present pages from run (see there). */
uint64_t mgi_evict_purge(uintptr_t run, size_t n);

/* agent.c */
void mgi_agent_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* creds.c: the agent's threads follow the application's set*id calls.
 * Marks the calling thread as the agent's (its thread start). */
void mgi_creds_agent_thread(void);
/* Wraps glibc's SIGSETXID handler; call once the agent's threads run. */
void mgi_creds_init(void);
/* thread.c: starts an agent thread on stack, all signals blocked; returns (-errno or
 * 0) once the thread runs fn, past the libraries' own thread start. */
int mgi_start_thread(pthread_t *t, void *stack, size_t size, void *(*fn)(void *), void *arg);
/* The agent's threads start here, with these attributes (interpose.c
 * tells them from the application's by either: a sanitizer's runtime
 * passes its own start routine on, the attributes unchanged). */
void *mgi_thread_trampoline(void *p);
extern const pthread_attr_t *_Atomic mgi_agent_attr;
/* The control blocks (pthread_t) of the threads the application created,
 * each once (glibc reuses a cached stack's), kept across fork (a child
 * inherits its parent's cached stacks): glibc's child code walks them
 * before our fork handler runs (fork.c). `mgi_app_tcbs_lost`: more
 * than the table holds. `mgi_agent_threads`: the agent's own threads
 * alive (mgi_start_thread's), to tell the application's by their count. */
#define MGI_APP_TCBS_MAX 256
extern uintptr_t mgi_app_tcbs[MGI_APP_TCBS_MAX];
extern _Atomic unsigned mgi_app_ntcbs;
extern _Atomic bool mgi_app_tcbs_lost;
extern _Atomic unsigned mgi_agent_threads;
/* exclude.c: whether [start, end) overlaps what the agent never registers. */
bool mgi_agent_excluded(uintptr_t start, uintptr_t end);
/* Walking [cur, *stop) for what to register: *stop is clipped before the
 * next exclusion; if one covers cur, *skip_to is where the exclusions
 * covering it end (else 0) and *is_own whether it is one of the agent's
 * own ranges (not the application's memory at all). */
void mgi_exclude_next(uintptr_t cur, uintptr_t *stop, uintptr_t *skip_to, bool *is_own);
/* The agent's own reservations (never registered, dropped in a forked
 * child): 0 or -ENOSPC. */
int mgi_own_range(uintptr_t start, size_t len);
/* A forked child: the parent's own ranges unmapped, but a store and its
 * file meta kept (forkchild.c's hand-over); none is left on the list. */
void mgi_exclude_child_reset(void);

#endif

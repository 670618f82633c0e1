/* fault.h - what the fault handler's pieces (fault loop, room, OOM, learning, guards) call of each other. */
#ifndef MGI_AGENT_FAULT_H
#define MGI_AGENT_FAULT_H

#include "agent.h"

/* Pages evicted for a refused charge (128 KiB). The fault that meets the
 * limit pays for compressing them (~5 us a page here), so this is the size
 * of a stall: memcg reclaims 32 pages at a time too (SWAP_CLUSTER_MAX).
 * Measured with bench/reclaim's random faults on evicted pages: 128 gave
 * p99.9 890 us, 32 gives 215 us (p99 45 -> 180 us). */
#define RECLAIM_BATCH 32
#define RECLAIM_GIVEUP_NS (3ULL * 1000 * 1000 * 1000) /* the manager made no room */

/* All run by the handler thread. */

/* fault.c: the fault loop. */
/* Reads the learn and hand-over requests of application threads. */
void mgi_fault_drain_requests(void);
/* Retries the parked faults (events first). */
void mgi_fault_retry_parked(void);
/* Faults parked; forgets them (a forked child's are its parent's). */
unsigned mgi_fault_parked(void);
void mgi_fault_forget_parked(void);
/* The same count, from another thread (the watchdog). */
unsigned mgi_fault_parked_any(void);
/* Pages the last resolved fault brought in. */
size_t mgi_fault_last_pages(void);

/* room.c: making room for a charge refused `level` steps up (*since: when
 * it was first refused). True if room was made now (retry at once),
 * false if the fault must wait. */
bool mgi_room_make(unsigned level, uint64_t *since);
/* Whether this process is the one to evict for the group `level` up. */
bool mgi_room_here(unsigned level);
/* Asks the manager to have the group's coldest evict; false once it
 * cannot be asked or this fault has waited too long. */
bool mgi_room_ask_manager(unsigned level, uint64_t since);
/* A forked child: the parent's last RECLAIM_REQ is not ours. */
void mgi_room_child_reset(void);

/* oomwait.c: nothing can be reclaimed for a charge refused `level` up:
 * the manager is asked to resolve the OOM; without one, this process ends. */
void mgi_oom_wait(unsigned level);

/* learn.c: learning ranges. */
int mgi_learn_init(void); /* its mincore buffer, in the arena */
/* Learns what of [start, end) the kernel maps now (a learn request). */
void mgi_learn_mapped(uintptr_t start, uintptr_t end);
/* A fault in a range not in the registry: learns its VMA if it may. */
void mgi_learn_vma(uintptr_t addr);
/* A fault the handler will not manage: its range is left to the kernel. */
void mgi_learn_unwatch(uintptr_t page);
/* After an ENOENT at page: drops what no mapping covers; false if events
 * are waiting (read them first). */
bool mgi_learn_resync_at(uintptr_t page, uintptr_t *lo, uintptr_t *hi);
/* Publishes the tracked and untracked sizes in the process's slot. */
void mgi_learn_publish_sizes(void);

/* guards.c: the event-order guards (mgi_recently_removed: agent.h). */
void mgi_guard_note_removed(uintptr_t start, uintptr_t end);
/* An mremap vacated [start, end): its UNMAP, when it comes, is skipped. */
void mgi_guard_note_vacated(uintptr_t start, uintptr_t end);
/* Whether an UNMAP of [start, end) is a vacated range's (claims it). */
bool mgi_guard_claim_vacated(uintptr_t start, uintptr_t end);

#endif

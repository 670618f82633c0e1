/* account.h - the agent's one accounting entry point: every change of this process's charge goes through here. */
#ifndef MGI_AGENT_ACCOUNT_H
#define MGI_AGENT_ACCOUNT_H

#include <stdbool.h>
#include <stdint.h>

#include "segment.h"

/*
 * A charge is three things kept together: the group's counter path (the
 * group and each limited ancestor), this process's slot (its figure, which
 * the manager's victim choice and release read), and the thresholds of
 * every level whose usage changed (a crossing wakes the manager). Sites
 * call these and nothing below them, so that the rule for what may be
 * charged (a limit, and for a nested group the grant: docs/design.md,
 * "Wiring the grant scheme") lives in one place. All run on the handler
 * thread, except mgi_charge and mgi_uncharge from application threads in
 * estimate mode (atomics only).
 */

/* Charges pages, all or nothing. On refusal returns false with the
 * refusing level of the path in *level (if not NULL), and nothing
 * changed. */
bool mgi_charge(uint64_t pages, unsigned *level);

/* Charges what fits of pages: all of them, else the tightest level's
 * margin (the fault path's fault-around and readahead near the limit).
 * Returns the pages charged; 0 with the refusing level in *level. */
uint64_t mgi_charge_upto(uint64_t pages, unsigned *level);

/* Charges pages that exist already (found present, handed over): they
 * cannot be refused, so the path may pass its limit; the caller makes room
 * afterwards. */
void mgi_charge_anyway(uint64_t pages);

/* Gives back pages this process no longer holds (or charged and did not
 * use). */
void mgi_uncharge(uint64_t pages);

/* The same for the swap counters (pages in this process's store). */
bool mgi_swap_charge(uint64_t pages);
void mgi_swap_uncharge(uint64_t pages);
/* Swap pages that exist already (a forked child's inherited store): they
 * cannot be refused, so the swap path may pass its limit. */
void mgi_swap_charge_anyway(uint64_t pages);

/* The slot's figure only, for pages whose charge the path holds already:
 * estimate mode's table hands a region to the registry or back (its own
 * charges go through mgi_charge and mgi_uncharge), and what the registry
 * let go of differs from what the table counted (estimate.c mode_changed). */
void mgi_account_adopt(uint64_t pages);
void mgi_account_disown(uint64_t pages);

/* Checks the thresholds of the group and its ancestors after a change of
 * usage made outside the calls above (estimate mode's table, a move). */
void mgi_check_thresholds(void);

/* The counter path this process charges (read it, never charge it: the
 * calls above do). */
const mgi_counter_path_t *mgi_account_path(void);

/* A forked child: the parent's path and grant requests forgotten (the
 * join sets the path anew). */
void mgi_account_child_reset(void);

/* Wakes the manager when checks counted crossings (n > 0). */
void mgi_account_wake(unsigned n);

/*
 * The grant scheme (src/core/grant.h). A nested group's processes charge
 * only their own group's counter, within its grant; its ancestors'
 * accounting parts are mapped read-only. Sets the path for the segments
 * in mgi_join.anc: the group's own counter with its grant when
 * it has an ancestor, as before (its own counter alone) when it has none.
 */
void mgi_account_use_segments(void);
/* The memory path a process of seg (nsegs levels mapped) charges. */
mgi_counter_path_t mgi_account_path_of(mgi_segment_t *seg, unsigned nsegs);

/*
 * A move to another group (move.c, MOVE): the one place a charge leaves a
 * group for another. First what this process holds (memory, then swap)
 * is charged to the new group's segments (seg, nsegs levels), all or
 * nothing: 0, or -ENOMEM with the refusing level in *refused and *swap
 * true if it was swap. Then, the new slot `me` given the figures, the old
 * slot is emptied (uncharged below the levels both share) and the
 * crossings on the old side counted: returned. Last, once the segments
 * are switched (join's), the path follows them, the new side's
 * thresholds are checked and the manager woken for all crossings.
 */
int mgi_account_move_charge(mgi_segment_t *seg, unsigned nsegs, unsigned *refused, bool *swap);
unsigned mgi_account_move_release(mgi_proc_slot_t *me);
void mgi_account_moved(unsigned crossed);

/*
 * A charge was refused by the grant (level MGI_LEVEL_GRANT): asks the
 * manager for more (GRANT; at most one request out, asked again after
 * 2 ms), and says what to do: MGI_LEVEL_GRANT, park the fault (it is
 * retried when the answer comes, or every 2 ms); else the level whose
 * limit refused (the manager's answer, or the parent when no manager runs
 * to ask): make room there as for any refusal. Handler thread.
 */
unsigned mgi_account_grant_short(void);

/* Room for `pages` asked ahead of a charge (huge-page fills, thp.c): when
 * the group's grant, and not its own limit, is what is short, asks the
 * manager for it as a refused charge would (one request out at a time).
 * Returns whether a request is out. Handler thread. */
bool mgi_account_grant_ask(uint64_t pages);

/* The manager's answer to GRANT (handler thread). */
struct mgi_msg_grant;
void mgi_account_granted(const struct mgi_msg_grant *g);

#endif

/* grant.h - the grant scheme: a nested group charges only its own counter, within pages the manager charged to its ancestors for it. */
#ifndef MGI_CORE_GRANT_H
#define MGI_CORE_GRANT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "counter.h"
#include "segment.h"

/*
 * A process of web/api must not write web's figures, so it cannot charge
 * web's counter. Instead the manager charges web (and every limited
 * ancestor) with a *grant* for web/api, kept in web/api's control part
 * (manager-written, read-only to agents), and web/api's agents charge their
 * own counter against it: a path of one level whose `grant` points there
 * (counter.h). While the group's usage stays within the grant a charge is
 * one atomic add, as before; a charge past it is refused with
 * MGI_LEVEL_GRANT and the agent asks the manager for more, who gives it
 * (mgi_grant_give) or names the ancestor that refused, whose limit then
 * runs the reclaim and OOM escalation it runs today.
 *
 * Invariant (for an honest group): usage <= granted, and each ancestor's
 * usage counts the grants of its children, not their usage. So an
 * ancestor's usage may show up to the sum of its children's unused grants
 * as used; the manager takes back what a group holds beyond its usage plus
 * a batch (mgi_grant_take_back) on its tick, and all of it beyond the
 * usage when an ancestor refuses, before it reclaims anything.
 *
 * A group lies about its usage at its own cost: under-reported, its grant
 * is taken back and its own charges are refused; over-reported, the
 * manager believes it only as far as the kernel's figures for its
 * processes go once an ancestor refuses (mgi_grant_claim_exceeds,
 * mgi_grant_cut below): its grant is cut to them and its own requests are
 * refused. Its ancestors never count more of it than its grant.
 */

/* Pages granted beyond a request: one fault-around window
 * (MGI_FAULT_AROUND_MAX), so that a sequential writer asks once per 64
 * pages at most, like memcg's per-CPU charge batch. */
#define MGI_GRANT_BATCH 64

/*
 * How many pages to charge to the ancestors for a request of want pages,
 * given their least headroom: want and a batch beyond it, so that the next
 * charges need no round trip. Near the limit the batch shrinks to a
 * quarter of what the request leaves, so that a sibling asking next still
 * finds room (and a group of many children does not hold the parent's
 * headroom in unused grants). Never less than want: a request that does
 * not fit is tried as it is, and refused by the ancestor's limit.
 */
uint64_t mgi_grant_batch(uint64_t want, uint64_t headroom);

/* What a group holds of its grant beyond its usage plus keep (0 if
 * none). The usage is the group's word: above the grant it is taken as the
 * grant (nothing to give back). */
static inline uint64_t mgi_grant_excess(uint64_t usage, uint64_t granted, uint64_t keep)
{
	if (usage >= granted || granted - usage <= keep)
		return 0;
	return granted - usage - keep;
}

/*
 * Gives a group more grant: charges the ancestors (anc: their counters,
 * nearest first, no grant of its own) with mgi_grant_batch(want, headroom),
 * or with want alone when the batch does not fit, and adds what it charged
 * to *granted. Returns the pages granted, or 0 when not even want fits:
 * then *failed_level (if not NULL) names the ancestor that refused (its
 * index in anc). want 0 grants nothing. Manager only (one writer of
 * *granted).
 */
uint64_t mgi_grant_give(const mgi_counter_path_t *anc, _Atomic uint64_t *granted, uint64_t want,
			unsigned *failed_level);

/*
 * Takes back what a group holds of its grant beyond its usage plus keep:
 * lowers *granted, then uncharges the ancestors of what it took. Its
 * agents may be charging meanwhile: they add to the usage then compare it
 * with the grant; this lowers the grant then reads the usage again (both
 * seq_cst), and gives back less if a charge came in between, so no
 * charge ever holds pages outside the grant. Returns the pages returned.
 * Manager only.
 */
uint64_t mgi_grant_take_back(const mgi_counter_path_t *anc, _Atomic uint64_t *granted,
			     const mgi_counter_t *own, uint64_t keep);

/*
 * Returns a group's whole grant to its ancestors (the group removed, or its
 * state file set aside at a restart: its processes' pages leave the
 * ancestors' usage at once). Returns the pages returned. Manager only.
 */
uint64_t mgi_grant_return_all(const mgi_counter_path_t *anc, _Atomic uint64_t *granted);

/*
 * A group's claim against the evidence. A nested group's usage is its
 * processes' word: written high, take-back never finds anything unused,
 * so the group would keep its grant of its parent's room for good. The
 * manager believes a claim only as far as it can verify it: `evidence`
 * pages (what the kernel says the group's processes hold, plus the grants
 * of its groups below, which the manager charged itself) and a slack for
 * charges in flight (mgi_grant_claim_slack). Beyond that the usage is a
 * lie, and what the group holds of its grant beyond the evidence and the
 * slack is cut (mgi_grant_cut).
 */

/* The slack: a batch, two fault-around windows per process (a charge is
 * counted before its page is mapped), and a sixteenth of the evidence
 * (pages charged that the kernel no longer counts at the moment it is
 * asked: an MADV_FREE page it reclaimed, which the agent uncharges at its
 * next fault). */
uint64_t mgi_grant_claim_slack(uint64_t evidence, unsigned nprocs);

/* Whether a usage of `usage` pages is more than the evidence allows. */
static inline bool mgi_grant_claim_exceeds(uint64_t usage, uint64_t evidence, unsigned nprocs)
{
	return usage > evidence + mgi_grant_claim_slack(evidence, nprocs);
}

/*
 * Lowers *granted to cap (no change when it holds no more) and uncharges
 * the ancestors (anc) of what it took, whatever the group's usage says.
 * Returns the pages returned. A charge of the group's agents racing with
 * it may have compared with the old grant and keep its pages: the group's
 * own counter then holds more than its grant, which hurts only the group.
 * Manager only.
 */
uint64_t mgi_grant_cut(const mgi_counter_path_t *anc, _Atomic uint64_t *granted, uint64_t cap);

/* mgi_grant_cut of a child's grant to its parent's counter. */
uint64_t mgi_grant_cut_to(mgi_segment_t *child, mgi_segment_t *parent, bool swap, uint64_t cap);

/*
 * Grants over a group tree, level by level. A nested group's grant is
 * charged to its parent's counter only, and, when the parent is nested
 * too, within the parent's own grant (raised from the grandparent when
 * short, and so on up): so every counter of a nested group, its agents'
 * charges and its children's grants alike, stays within its own grant,
 * and each ancestor's usage counts each child's grant once. A top-level
 * group holds no grant: its processes charge it directly (the root is
 * never charged). Swap has a grant of its own (swap_granted), charged
 * the same way to the swap counters.
 *
 * chain: seg[0] the group, seg[1] its parent, ..., seg[n - 1] its
 * top-level ancestor (n >= 2). Manager only.
 */

/* The path a nested group's agents charge: its own counter (memory or
 * swap) within its grant. */
mgi_counter_path_t mgi_grant_path(mgi_segment_t *seg, bool swap);

/*
 * Raises seg[0]'s grant by want pages and a batch (mgi_grant_batch over
 * the chain's tightest room), or by what of want fits when the batch does
 * not (all of it, else that room, as mgi_counter_try_charge_upto),
 * charging seg[1] (and raising its grant first when short, up the chain).
 * Returns the pages granted, or 0 with the refusing level (its index in
 * seg: 1 to n - 1) in *failed_level.
 */
uint64_t mgi_grant_give_chain(mgi_segment_t *const *seg, unsigned n, bool swap, uint64_t want,
			      unsigned *failed_level);

/* mgi_grant_take_back and mgi_grant_return_all of a child's grant to its
 * parent's counter (memory or swap). */
uint64_t mgi_grant_take_back_from(mgi_segment_t *child, mgi_segment_t *parent, bool swap,
				  uint64_t keep);
uint64_t mgi_grant_return_to(mgi_segment_t *child, mgi_segment_t *parent, bool swap);

#endif

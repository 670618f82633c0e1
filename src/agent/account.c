/* account.c - the agent's one accounting entry point: counter path, process slot and thresholds together. */
#include <errno.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include "account.h"
#include "agent.h"
#include "grant.h"
#include "oomreserve.h"
#include "proto.h"

#define GRANT_ASK_NS (2ULL * 1000 * 1000) /* a GRANT unanswered this long: asked again */

/* What the last charge refused by a grant wanted (memory, swap), the
 * request out (0: none), and the manager's last refusal not yet acted on
 * (its level, or MGI_LEVEL_GRANT: none). */
static _Atomic uint64_t grant_want[2];
static uint64_t grant_asked_ns[2];
static unsigned grant_refused = MGI_LEVEL_GRANT;
/* What this process charges: its group's counter path (set at the join
 * and at a move, from the segments). */
static mgi_counter_path_t path;

const mgi_counter_path_t *mgi_account_path(void)
{
	return &path;
}

void mgi_account_child_reset(void)
{
	/* (the parent's segments and requests: the child joins anew) */
	path = (mgi_counter_path_t){0};
	for (int i = 0; i < 2; i++) {
		atomic_store(&grant_want[i], 0);
		grant_asked_ns[i] = 0;
	}
	grant_refused = MGI_LEVEL_GRANT;
}

mgi_counter_path_t mgi_account_path_of(mgi_segment_t *seg, unsigned nsegs)
{
	return nsegs >= 2 ? mgi_grant_path(seg, false) : mgi_segment_path(seg);
}

/* The swap counters beside a memory path of seg's (its swap grant, if
 * nested). */
static mgi_counter_path_t swap_path_of(mgi_segment_t *seg, const mgi_counter_path_t *memory)
{
	mgi_counter_path_t sp = mgi_segment_swap_path(memory);

	if (memory->grant)
		sp.grant = &seg->ctl.swap_granted;
	return sp;
}

void mgi_account_use_segments(void)
{
	path = mgi_account_path_of(mgi_join.anc[0], mgi_join.nsegs);
}

static mgi_counter_path_t swap_path(void)
{
	return swap_path_of(mgi_join.anc[0], &path);
}

/* Sends a GRANT for what the group lacks: its usage and the charge wanted,
 * beyond its grant (pages it had to take without one count too). */
static bool ask_grant(int swap)
{
	const mgi_segment_t *seg = mgi_join.anc[0];
	uint64_t usage = mgi_counter_read(swap ? &seg->acct.swap : &seg->acct.memory);
	uint64_t granted = atomic_load(swap ? &seg->ctl.swap_granted : &seg->ctl.granted);
	uint64_t want = atomic_load_explicit(&grant_want[swap], memory_order_relaxed);
	uint64_t now = mgi_now_ns();
	mgi_msg_t m;

	if (grant_asked_ns[swap] && now - grant_asked_ns[swap] < GRANT_ASK_NS)
		return true; /* one out already */
	want = usage + want > granted ? usage + want - granted : want;
	if (want == 0)
		want = 1;
	if (want > MGI_GRANT_ASK_MAX)
		want = MGI_GRANT_ASK_MAX;
	mgi_msg_init(&m, MGI_MSG_GRANT);
	m.grant.pid = mgi_join.pid;
	m.grant.swap = (uint32_t)swap;
	m.grant.pages = want;
	grant_asked_ns[swap] = now;
	return send(mgi_join.conn, &m, m.hdr.len, MSG_DONTWAIT | MSG_NOSIGNAL) == (ssize_t)m.hdr.len;
}

unsigned mgi_account_grant_short(void)
{
	unsigned level = grant_refused;

	if (level != MGI_LEVEL_GRANT) {
		grant_refused = MGI_LEVEL_GRANT;
		return level;
	}
	/* No manager to ask: the parent's limit as good as refused (its
	 * room cannot be known); the OOM path waits for a manager to rejoin
	 * and never passes a limit. */
	if (mgi_join.manager_gone || !ask_grant(0))
		return 1;
	return MGI_LEVEL_GRANT;
}

bool mgi_account_grant_ask(uint64_t pages)
{
	if (!path.grant || !path.depth || mgi_join.manager_gone)
		return false;
	uint64_t usage = mgi_counter_read(path.level[0]);
	if (usage + pages <= atomic_load_explicit(path.grant, memory_order_relaxed))
		return false; /* the grant is not what is short */
	mgi_counter_path_t own = path;
	own.grant = NULL;
	if (mgi_counter_path_margin(&own) < pages)
		return false; /* the group's own limit is: no grant helps */
	atomic_store_explicit(&grant_want[0], pages, memory_order_relaxed);
	return ask_grant(0);
}

void mgi_account_granted(const mgi_msg_grant_t *g)
{
	int swap = g->swap != 0;

	grant_asked_ns[swap] = 0;
	if (!g->pages && !swap && g->refused < mgi_join.nsegs)
		grant_refused = g->refused;
}

static void slot_add(uint64_t pages)
{
	atomic_fetch_add_explicit(&mgi_join.me->charged, pages, memory_order_relaxed);
}

static void slot_sub(uint64_t pages)
{
	atomic_fetch_sub_explicit(&mgi_join.me->charged, pages, memory_order_relaxed);
}

void mgi_account_wake(unsigned n)
{
	uint64_t one = 1;

	if (!n || mgi_join.wakefd < 0)
		return;
	if (write(mgi_join.wakefd, &one, sizeof(one)) < 0) {
		/* the manager is gone: nobody to tell */
	}
	/* The manager may have been woken onto this CPU, where it would wait
	 * behind this thread's next copy (up to a tick: measured 1-3 ms tails
	 * with fault-around 64). Crossings are rare; a yield here is cheap. */
	sched_yield();
}

/* After every change of usage: the thresholds of the group and of each
 * ancestor (a charge here is a charge there too). A crossing is counted in
 * the segment; the manager, woken through its eventfd, signals the
 * listeners. One load per level when no thresholds are registered. */
void mgi_check_thresholds(void)
{
	unsigned n = 0;

	/* The levels this process charges (its own group's alone when it
	 * has ancestors: theirs change when the manager grants, and it
	 * checks them then). */
	for (unsigned i = 0; i < path.depth; i++) {
		unsigned c = mgi_segment_check_thresholds(mgi_join.anc[i]);
		/* the notification latency's start (one vDSO read per crossing) */
		if (c)
			mgi_segment_note_crossing(mgi_join.anc[i], mgi_now_ns());
		n += c;
	}
	mgi_account_wake(n);
}

bool mgi_charge(uint64_t pages, unsigned *level)
{
	if (!pages)
		return true;
	unsigned lv;

	if (!mgi_counter_try_charge(&path, pages, &lv)) {
		if (mgi_oomreserve_room(lv, pages) == pages) {
			mgi_charge_anyway(pages); /* the OOM handler's reserve */
			return true;
		}
		if (lv == MGI_LEVEL_GRANT)
			atomic_store_explicit(&grant_want[0], pages, memory_order_relaxed);
		if (level)
			*level = lv;
		return false;
	}
	slot_add(pages);
	mgi_check_thresholds();
	return true;
}

uint64_t mgi_charge_upto(uint64_t pages, unsigned *level)
{
	uint64_t n;

	if (!pages)
		return 0;
	unsigned lv;

	n = mgi_counter_try_charge_upto(&path, pages, &lv);
	if (!n && (n = mgi_oomreserve_room(lv, pages)) != 0) {
		mgi_charge_anyway(n); /* the OOM handler's reserve */
		return n;
	}
	if (!n && lv == MGI_LEVEL_GRANT)
		atomic_store_explicit(&grant_want[0], pages, memory_order_relaxed);
	if (!n && level)
		*level = lv;
	if (n) {
		slot_add(n);
		mgi_check_thresholds();
	}
	return n;
}

void mgi_charge_anyway(uint64_t pages)
{
	if (!pages)
		return;
	mgi_counter_charge(&path, pages);
	slot_add(pages);
	mgi_check_thresholds();
}

void mgi_uncharge(uint64_t pages)
{
	if (!pages)
		return;
	mgi_counter_uncharge(&path, pages);
	slot_sub(pages);
	mgi_check_thresholds();
}

bool mgi_swap_charge(uint64_t pages)
{
	mgi_counter_path_t sp = swap_path();
	unsigned lv;

	if (!pages)
		return true;
	if (!mgi_counter_try_charge(&sp, pages, &lv)) {
		/* Eviction needs swap grant: asked for, the eviction fails
		 * now (no room) and finds it next time. */
		if (lv == MGI_LEVEL_GRANT && !mgi_join.manager_gone) {
			atomic_store_explicit(&grant_want[1], pages, memory_order_relaxed);
			ask_grant(1);
		}
		return false;
	}
	atomic_fetch_add_explicit(&mgi_join.me->swapped, pages, memory_order_relaxed);
	return true;
}

void mgi_swap_charge_anyway(uint64_t pages)
{
	mgi_counter_path_t sp = swap_path();

	if (!pages)
		return;
	mgi_counter_charge(&sp, pages);
	atomic_fetch_add_explicit(&mgi_join.me->swapped, pages, memory_order_relaxed);
}

void mgi_swap_uncharge(uint64_t pages)
{
	mgi_counter_path_t sp = swap_path();

	if (!pages)
		return;
	mgi_counter_uncharge(&sp, pages);
	atomic_fetch_sub_explicit(&mgi_join.me->swapped, pages, memory_order_relaxed);
}

void mgi_account_adopt(uint64_t pages)
{
	slot_add(pages);
}

void mgi_account_disown(uint64_t pages)
{
	slot_sub(pages);
}

int mgi_account_move_charge(mgi_segment_t *seg, unsigned nsegs, unsigned *refused, bool *swap)
{
	mgi_counter_path_t to = mgi_account_path_of(seg, nsegs);
	mgi_counter_path_t to_swap = swap_path_of(seg, &to);
	uint64_t pages = atomic_load(&mgi_join.me->charged);
	uint64_t swapped = atomic_load(&mgi_join.me->swapped);

	*refused = 0;
	*swap = false;
	if (!to.depth)
		return 0;
	if (!mgi_counter_try_charge(&to, pages, refused))
		goto refused;
	if (swapped && !mgi_counter_try_charge(&to_swap, swapped, refused)) {
		mgi_counter_uncharge(&to, pages);
		*swap = true;
		goto refused;
	}
	return 0;
refused:
	if (*refused >= to.depth)
		*refused = 0; /* its grant: the manager gave too little */
	return -ENOMEM;
}

unsigned mgi_account_move_release(mgi_proc_slot_t *me)
{
	unsigned crossed = 0;

	atomic_store(&me->charged, atomic_load(&mgi_join.me->charged));
	atomic_store(&me->swapped, atomic_load(&mgi_join.me->swapped));
	/* Empties the old slot, uncharging (memory and swap) below the shared
	 * levels; the manager frees it once told the move is done. */
	mgi_segment_uncharge_slot(mgi_join.seg, mgi_join.slot, &path);
	/* The move is a change of usage on both sides (memcg's task move). */
	for (unsigned i = 0; i < path.depth; i++)
		crossed += mgi_segment_check_thresholds(mgi_join.anc[i]);
	return crossed;
}

void mgi_account_moved(unsigned crossed)
{
	mgi_account_use_segments();
	for (unsigned i = 0; i < path.depth; i++)
		crossed += mgi_segment_check_thresholds(mgi_join.anc[i]);
	mgi_account_wake(crossed);
}

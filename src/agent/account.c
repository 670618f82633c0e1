/* account.c - the agent's one accounting entry point: counter path, process slot and thresholds together. */
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

void mgi_account_use_segments(void)
{
	if (mgi_agent.nsegs >= 2) {
		mgi_agent.path = mgi_grant_path(mgi_agent.anc[0], false);
		return;
	}
	mgi_agent.path = mgi_segment_path(mgi_agent.anc[0]);
}

static mgi_counter_path_t swap_path(void)
{
	mgi_counter_path_t sp = mgi_segment_swap_path(&mgi_agent.path);

	if (mgi_agent.path.grant)
		sp.grant = &mgi_agent.anc[0]->ctl.swap_granted;
	return sp;
}

/* Sends a GRANT for what the group lacks: its usage and the charge wanted,
 * beyond its grant (pages it had to take without one count too). */
static bool ask_grant(int swap)
{
	const mgi_segment_t *seg = mgi_agent.anc[0];
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
	m.grant.pid = mgi_agent.pid;
	m.grant.swap = (uint32_t)swap;
	m.grant.pages = want;
	grant_asked_ns[swap] = now;
	return send(mgi_agent.conn, &m, m.hdr.len, MSG_DONTWAIT | MSG_NOSIGNAL) == (ssize_t)m.hdr.len;
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
	if (mgi_agent.manager_gone || !ask_grant(0))
		return 1;
	return MGI_LEVEL_GRANT;
}

void mgi_account_granted(const mgi_msg_grant_t *g)
{
	int swap = g->swap != 0;

	grant_asked_ns[swap] = 0;
	if (!g->pages && !swap && g->refused < mgi_agent.nsegs)
		grant_refused = g->refused;
}

static void slot_add(uint64_t pages)
{
	atomic_fetch_add_explicit(&mgi_agent.me->charged, pages, memory_order_relaxed);
}

static void slot_sub(uint64_t pages)
{
	atomic_fetch_sub_explicit(&mgi_agent.me->charged, pages, memory_order_relaxed);
}

void mgi_account_wake(unsigned n)
{
	uint64_t one = 1;

	if (!n || mgi_agent.wakefd < 0)
		return;
	if (write(mgi_agent.wakefd, &one, sizeof(one)) < 0) {
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
	for (unsigned i = 0; i < mgi_agent.path.depth; i++) {
		unsigned c = mgi_segment_check_thresholds(mgi_agent.anc[i]);
		/* the notification latency's start (one vDSO read per crossing) */
		if (c)
			mgi_segment_note_crossing(mgi_agent.anc[i], mgi_now_ns());
		n += c;
	}
	mgi_account_wake(n);
}

bool mgi_charge(uint64_t pages, unsigned *level)
{
	if (!pages)
		return true;
	unsigned lv;

	if (!mgi_counter_try_charge(&mgi_agent.path, pages, &lv)) {
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

	n = mgi_counter_try_charge_upto(&mgi_agent.path, pages, &lv);
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
	mgi_counter_charge(&mgi_agent.path, pages);
	slot_add(pages);
	mgi_check_thresholds();
}

void mgi_uncharge(uint64_t pages)
{
	if (!pages)
		return;
	mgi_counter_uncharge(&mgi_agent.path, pages);
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
		if (lv == MGI_LEVEL_GRANT && !mgi_agent.manager_gone) {
			atomic_store_explicit(&grant_want[1], pages, memory_order_relaxed);
			ask_grant(1);
		}
		return false;
	}
	atomic_fetch_add_explicit(&mgi_agent.me->swapped, pages, memory_order_relaxed);
	return true;
}

void mgi_swap_charge_anyway(uint64_t pages)
{
	mgi_counter_path_t sp = swap_path();

	if (!pages)
		return;
	mgi_counter_charge(&sp, pages);
	atomic_fetch_add_explicit(&mgi_agent.me->swapped, pages, memory_order_relaxed);
}

void mgi_swap_uncharge(uint64_t pages)
{
	mgi_counter_path_t sp = swap_path();

	if (!pages)
		return;
	mgi_counter_uncharge(&sp, pages);
	atomic_fetch_sub_explicit(&mgi_agent.me->swapped, pages, memory_order_relaxed);
}

void mgi_account_adopt(uint64_t pages)
{
	slot_add(pages);
}

void mgi_account_disown(uint64_t pages)
{
	slot_sub(pages);
}

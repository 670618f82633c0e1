/* account.c - the agent's one accounting entry point: counter path, process slot and thresholds together. */
#include <sched.h>
#include <unistd.h>

#include "account.h"
#include "agent.h"

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

	for (unsigned i = 0; i < mgi_agent.nsegs; i++)
		n += mgi_segment_check_thresholds(mgi_agent.anc[i]);
	mgi_account_wake(n);
}

bool mgi_charge(uint64_t pages, unsigned *level)
{
	if (!pages)
		return true;
	if (!mgi_counter_try_charge(&mgi_agent.path, pages, level))
		return false;
	slot_add(pages);
	mgi_check_thresholds();
	return true;
}

uint64_t mgi_charge_upto(uint64_t pages, unsigned *level)
{
	uint64_t n;

	if (!pages)
		return 0;
	n = mgi_counter_try_charge_upto(&mgi_agent.path, pages, level);
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
	mgi_counter_path_t sp = mgi_segment_swap_path(&mgi_agent.path);

	if (!pages)
		return true;
	if (!mgi_counter_try_charge(&sp, pages, NULL))
		return false;
	atomic_fetch_add_explicit(&mgi_agent.me->swapped, pages, memory_order_relaxed);
	return true;
}

void mgi_swap_uncharge(uint64_t pages)
{
	mgi_counter_path_t sp = mgi_segment_swap_path(&mgi_agent.path);

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

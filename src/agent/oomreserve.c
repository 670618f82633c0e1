/* oomreserve.c - the OOM handler's reserve: a charge past a group's limit, only for its handler's process and only while it decides. */
#include "oomreserve.h"

#include "agent.h"

/*
 * The seed's memory.oom_reserve_in_bytes: a user-space OOM handler that
 * lives in the group it handles needs memory to run (allocate, read
 * /proc) exactly when the group has none. The manager says in the group's
 * control part (read-only here: only the manager writes it) who the
 * handler is and, while it decides, how many pages it may charge beyond
 * the limit; this process takes them only if it is that process. Two of
 * its threads charging at once may pass the bound by one fault-around
 * window: tolerated (the charge itself is exact, only the check races).
 */
uint64_t mgi_oomreserve_room(unsigned level, uint64_t pages)
{
	if (level >= mgi_join.nsegs || !pages)
		return 0;
	const mgi_segment_t *seg = mgi_join.anc[level];
	if (!atomic_load_explicit(&seg->ctl.oom_handling, memory_order_acquire) ||
	    atomic_load_explicit(&seg->ctl.oom_handler_pid, memory_order_relaxed) != mgi_join.pid)
		return 0;
	uint64_t cap = mgi_counter_read_max(&seg->ctl.memory) +
		       atomic_load_explicit(&seg->ctl.oom_reserve_now, memory_order_relaxed);
	uint64_t usage = mgi_counter_read(&seg->acct.memory);
	if (usage >= cap)
		return 0;
	return cap - usage < pages ? cap - usage : pages;
}

/* room.c - making room for a refused charge: evict here, ask the manager, or the OOM path. */
#include <errno.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "account.h"
#include "agent.h"
#include "os.h"
#include "proto.h"
#include "recent.h"
#include "size.h"
#include "trace.h"
#include "fault.h"

/* Memory of the group held by no process (in flight between them) that
 * still lets a process make room for itself rather than ask the manager. */
#define RECLAIM_SLACK 128
#define RECLAIM_ASK_NS (20ULL * 1000 * 1000) /* between RECLAIM_REQs */
#define LOCAL_AFTER_NS (10ULL * 1000 * 1000) /* waited this long: evict our own */

static uint64_t reclaim_asked_ns; /* the last RECLAIM_REQ */

void mgi_room_child_reset(void)
{
	reclaim_asked_ns = 0;
}

/* Whether this process should make the room itself: the refusing group is
 * its own, no cooperating application is to be asked first, no process of
 * the group is colder, and no group below holds memory (only the manager
 * sees those). When the manager is gone, always. */
bool mgi_room_here(unsigned level)
{
	mgi_segment_t *seg = mgi_join.anc[level];
	uint64_t held = 0;

	if (mgi_join.manager_gone)
		return true;
	if (level != 0 || atomic_load_explicit(&seg->ctl.cooperators, memory_order_relaxed))
		return false;
	if (mgi_segment_coldest(seg) != mgi_join.slot)
		return false;
	for (int i = 0; i < MGI_PROCS_MAX; i++)
		if (atomic_load_explicit(&seg->ctl.procs[i].pid, memory_order_relaxed) > 0)
			held += atomic_load_explicit(&seg->acct.procs[i].charged, memory_order_relaxed);
	return mgi_counter_read(&seg->acct.memory) <= held + RECLAIM_SLACK;
}

/* Asks the manager to have the group's coldest processes evict (cooperating
 * applications first), at most every RECLAIM_ASK_NS. Returns false if it
 * cannot be asked, or if this fault has waited RECLAIM_GIVEUP_NS since its
 * charge was first refused (the manager made no room for it): the caller
 * then does what it can alone. */
bool mgi_room_ask_manager(unsigned level, uint64_t since)
{
	uint64_t now = mgi_now_ns();
	mgi_msg_t m;

	if (mgi_join.manager_gone || now - since > RECLAIM_GIVEUP_NS)
		return false;
	if (reclaim_asked_ns && now - reclaim_asked_ns < RECLAIM_ASK_NS)
		return true;
	reclaim_asked_ns = now;
	mgi_msg_init(&m, MGI_MSG_RECLAIM_REQ);
	m.reclaim_req.pid = mgi_join.pid;
	m.reclaim_req.level = level;
	m.reclaim_req.pages = RECLAIM_BATCH;
	return send(mgi_join.conn, &m, m.hdr.len, MSG_DONTWAIT | MSG_NOSIGNAL) == (ssize_t)m.hdr.len;
}

/* Whether the group `level` steps up and its ancestors have swap room: a
 * process below it could evict (which one, only the manager sees). */
static bool swap_room_above(unsigned level)
{
	if (mgi_join.manager_gone)
		return false;
	for (unsigned l = level; l < mgi_join.nsegs; l++)
		if (mgi_counter_margin(&mgi_join.anc[l]->acct.swap, &mgi_join.anc[l]->ctl.swap) == 0)
			return false;
	return true;
}

/*
 * A charge was refused by the group `level` steps up (seed 002 section 2.1:
 * over the limit, reclaim; still over, OOM). When this process is the one
 * to evict from, it evicts now. Otherwise the manager is asked to have the
 * group's coldest processes evict, and the fault waits for that room, but
 * at most LOCAL_AFTER_NS: then this process evicts from its own pages, as
 * a task in the kernel reclaims for itself (room made elsewhere can be
 * taken by another's fault first; a process must not starve on it). When
 * nothing can be evicted, the OOM path. Returns true if room was made now
 * (retry at once), false if the fault must wait (parked).
 */
/* How long a fault waits for volatile pages it could not purge at once
 * before it goes on up the ladder. */
#define VRANGE_WAIT_NS (500ULL * 1000 * 1000)

bool mgi_room_make(unsigned level, uint64_t *since)
{
	uint64_t now = mgi_now_ns();
	bool local = mgi_evict_allowed(level);

	/* Refused by the group's grant (it has ancestors): the manager is
	 * asked for more, and the fault waits for the answer (not a reclaim
	 * stall: no limit refused); a refusal names the ancestor whose limit
	 * is reached, handled as any. */
	if (level == MGI_LEVEL_GRANT && (level = mgi_account_grant_short()) == MGI_LEVEL_GRANT)
		return false;
	if (!*since)
		*since = now;
	if (mgi_evict_running())
		return false; /* a fault followed from inside eviction: wait for it */
	/* Volatile pages (vrange.c) are the first rung: dropped at no cost,
	 * before anyone is asked or anything evicted. */
	if (mgi_vrange_purge(RECLAIM_BATCH) > 0)
		return true;
	if (mgi_vrange_blocked() && now - *since < VRANGE_WAIT_NS)
		return false; /* parked: retried once the slots are free */
	/* Estimate mode (seed 001, Algorithm 3 amended): while a region is
	 * fast, its estimate goes before any page is evicted or anyone killed. */
	if (mgi_est_demote())
		return true;
	if (local && mgi_room_here(level)) {
		if (mgi_evict(RECLAIM_BATCH) > 0)
			return true;
		local = false; /* nothing of ours to evict */
	}
	bool asked = (local || swap_room_above(level)) && mgi_room_ask_manager(level, *since);
	if (asked && now - *since < LOCAL_AFTER_NS)
		return false;
	if (local && mgi_evict(RECLAIM_BATCH) > 0)
		return true;
	if (asked)
		return false; /* the manager decides: eviction elsewhere, or the OOM kill */
	mgi_oom_wait(level);
	return false;
}

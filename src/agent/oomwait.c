/* oomwait.c - the agent's side of an OOM: asks the manager to resolve it, ends this process if none does. */
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

#define PAGE MGI_PAGE_SIZE
#define OOM_ASK_NS (100ULL * 1000 * 1000) /* between requests to the manager */
#define OOM_EPISODE_GAP_NS (1000ULL * 1000 * 1000) /* quiet this long: a new episode */
#define OOM_GIVEUP_NS (10ULL * 1000 * 1000 * 1000) /* the manager did not resolve it */

static void format_pages(uint64_t pages, char *buf)
{
	mgi_size_format(pages * PAGE, buf, 16);
}

/*
 * Asks the manager to resolve an OOM episode of the group `level` steps up:
 * it alone chooses the victim (in any group under that one) and kills it.
 * Asks at most every OOM_ASK_NS while the episode lasts. Returns false
 * once the episode has lasted OOM_GIVEUP_NS without being resolved (the
 * manager is gone, or answered nothing), true while the fault should wait.
 */
static bool ask_manager(unsigned level)
{
	static uint64_t asked_ns, episode_ns, paused_ns;
	mgi_segment_t *anc = mgi_join.anc[level];
	uint64_t now = mgi_now_ns();
	mgi_msg_t m;

	if (!asked_ns || now - asked_ns > OOM_EPISODE_GAP_NS)
		episode_ns = now; /* not asked lately: a new episode */
	/* A group paused at OOM (--oom-kill-disable) waits as long as its
	 * manager keeps it so; the give-up counts from the pause's end or
	 * the manager's loss (the flag is the manager's: read-only here). */
	if (atomic_load_explicit(&anc->ctl.under_oom, memory_order_relaxed) && !mgi_join.manager_gone)
		paused_ns = now;
	if (now - (paused_ns > episode_ns ? paused_ns : episode_ns) > OOM_GIVEUP_NS)
		return false;
	if (asked_ns && now - asked_ns < OOM_ASK_NS)
		return true;
	if (episode_ns == now) {
		char usage[16], max[16];
		format_pages(mgi_counter_read(&anc->acct.memory), usage);
		format_pages(mgi_counter_read_max(&anc->ctl.memory), max);
		mgi_agent_log("group '%s' is out of memory (usage %s, max %s): %s", anc->ctl.group,
			      usage, max, atomic_load(&anc->ctl.cooperators)
				      ? "its cooperating applications are asked to free memory first"
				      : "the manager chooses a victim among its processes");
	}
	asked_ns = now;
	if (mgi_join.manager_gone)
		return true; /* waits for a manager to rejoin, up to OOM_GIVEUP_NS */
	mgi_msg_init(&m, MGI_MSG_OOM_REQ);
	m.oom_req.pid = mgi_join.pid;
	m.oom_req.level = level;
	send(mgi_join.conn, &m, m.hdr.len, MSG_DONTWAIT | MSG_NOSIGNAL);
	return true;
}

/*
 * The group (level 0) or an ancestor (level > 0) cannot take another page
 * and nothing can be reclaimed here. The agent kills nobody: a victim
 * chosen by an agent would be chosen from figures any process of the group
 * can write (and an agent could be made to kill any pid it names). The
 * manager is asked (OOM_REQ) and the faulting thread waits for the room
 * its kill makes. When no manager resolves the episode within
 * OOM_GIVEUP_NS (none runs, or it does not answer), this process kills
 * itself: the charge refused is its own, and its own death is the only one
 * its agent may decide. A limit is never passed for want of a manager.
 */
void mgi_oom_wait(unsigned level)
{
	/* Estimate mode: another process's fast regions hold estimate that
	 * may not be memory; the manager has them give it back first (seed
	 * 001's guarantee across the group). Bounded: after
	 * RECLAIM_GIVEUP_NS of asking, the OOM request. */
	static uint64_t est_since, est_last;
	if (mgi_est_fast_elsewhere(level)) {
		uint64_t now = mgi_now_ns();
		if (!est_last || now - est_last > RECLAIM_GIVEUP_NS)
			est_since = now; /* not asked lately: a new episode */
		est_last = now;
		if (mgi_room_ask_manager(level, est_since))
			return;
	}
	/* The manager decides every OOM kill, with the pidfds of the
	 * processes it saw join (an agent may lack the rights to kill another
	 * user's process in its group, and must not kill on a slot's word). */
	if (level >= mgi_join.nsegs || ask_manager(level))
		return;
	char usage[16], max[16];
	mgi_segment_t *anc = mgi_join.anc[level];
	format_pages(mgi_counter_read(&anc->acct.memory), usage);
	format_pages(mgi_counter_read_max(&anc->ctl.memory), max);
	mgi_agent_log("group '%s' is out of memory (usage %s, max %s) and no manager resolved it "
		      "in %llu s: pid %d, whose charge it refuses, ends itself",
		      anc->ctl.group, usage, max, (unsigned long long)(OOM_GIVEUP_NS / 1000000000ULL),
		      (int)mgi_join.pid);
	kill(mgi_join.pid, SIGKILL);
}

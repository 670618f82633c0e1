/* escalate.c - the one decision of a group's next step at pressure: ask cooperators, evict, then the OOM action. */
#include "escalate.h"

#include <time.h>

#include "backstop.h"
#include "manager.h"
#include "oslayer.h"
#include "oomkill.h"
#include "oom_handler.h"

/*
 * coop.c, reclaim.c, notify.c, the backstop and the message handlers only
 * report here (mgi_escalate with why); they carry out a step when told
 * (mgi_coop_start, mgi_reclaim_request, the kills) and never choose the
 * next one themselves. G is the group whose limit is concerned.
 *
 *   ASK        (usage past the ask watermark, 90 % of the limit)
 *                 -> COOP if G has cooperators, else NONE
 *   HIGH       (usage above the high limit)
 *                 -> EVICT (background) if G's processes can evict, else NONE
 *   REFUSED    (an agent's charge refused, the agent may not evict: OOM_REQ)
 *                 -> WAIT  a kill of this episode is under way
 *                 -> NONE  room came meanwhile (the agent retries)
 *                 -> EVICT volatile pages under G not purged yet (mg_vrange):
 *                          purged first (an episode runs: the request waits)
 *                 -> COOP  G has cooperators (one episode at a time: WAIT)
 *                 -> WAIT  G's usage still falls (oom_stalled: 200 ms),
 *                          where something under G can evict
 *                 -> KILL
 *   EVICT_REQ  (an agent's charge refused, others should evict: RECLAIM_REQ)
 *                 -> NONE  room for what it wants came meanwhile
 *                 -> EVICT volatile pages under G, purged first (as REFUSED)
 *                 -> COOP  G has cooperators, not asked in the last second
 *                 -> WAIT  a cooperative episode runs
 *                 -> KILL  nothing under G can evict
 *                 -> EVICT (direct)
 *   COOP_DONE  (every cooperator asked, or enough freed)
 *                 -> NONE  enough freed, G below its limit, or the kernel
 *                          backend (its kernel limit reports KERNEL)
 *                 -> EVICT what the clients did not free, if G can evict
 *                 -> KILL
 *   EVICT_DONE (an eviction episode ended)
 *                 -> NONE  something was freed, or it was background
 *                 -> WAIT  the first empty one, or empty for less than
 *                          OOM_AFTER_MS, or room, or usage still falls
 *                 -> KILL  empty for OOM_AFTER_MS, at the limit, stalled
 *   KERNEL     (G waits at its kernel limit: the backstop's kernel cgroup)
 *                 -> EVICT volatile pages under G, purged first (as REFUSED)
 *                 -> WAIT  a cooperative episode on G runs
 *                 -> COOP  kernel backend, up to KERNEL_COOP_ASKS per pause
 *                 -> WAIT  G's (or the nearest above) OOM handler decides
 *                 -> WAIT  G pauses at OOM (--oom-kill-disable)
 *                 -> KILL  the kernel cgroup's largest (the backstop's)
 *   RELIEVED   (the kernel pause ended) -> NONE, the pause's count reset
 *
 * Every KILL above is WAIT instead while G's user-space OOM handler (or
 * the nearest one above G) decides (oom_handler.c, mgi_oomh_ask, and at a
 * kernel limit mgi_oomh_ask_kernel): the policy acts if
 * it does not in time, goes away, or its decision is refused.
 * Every KILL above is WAIT instead when G's OOM action is the pause
 * (--oom-kill-disable, oomkill.c mgi_oom_pause): G is under_oom until
 * room comes (mgi_oom_pause_check) or memgrp oom acts.
 *
 * So a group at its limit goes ask -> evict -> kill, each step once the one
 * before has run out; what is in flight (an episode, a kill) makes the next
 * report WAIT. The agents ask again while their fault waits, so a WAIT is
 * looked at again within 100 ms.
 */

/* Eviction freeing nothing this long: OOM. As memcg does, the OOM path
 * only when reclaim keeps freeing nothing at all (memcg retries 16 times;
 * here, for a while: pages a fork left shared take a moment to become
 * evictable). A little is progress. */
#define OOM_AFTER_MS 500
/* Kernel backend: cooperative episodes asked in one pause at the limit.
 * Unlike an agent's faulting thread, which waits for the manager's
 * answer, the group's tasks wait in the kernel and are woken by what the
 * clients free, and may take it again before the episode measures it
 * (seen: "freed 0" after a client dropped 6 MiB, then a kill). So a few
 * episodes per pause, each bounded by the clients' wait. */
#define KERNEL_COOP_ASKS 4
/* Refused charges ask the cooperators at most this often. */
#define COOP_REASK_NS 1000000000ULL
/* Volatile pages asked for by a refused charge that names no amount. */
#define VOLATILE_BATCH 256
/* A purge that freed nothing is not asked again for this long. */
#define PURGE_RETRY_NS 1000000000ULL

/*
 * Whether a group's OOM episode has stopped making progress: its usage did
 * not fall since the last request, at least OOM_PROGRESS_NS ago. Agents
 * ask every 100 ms while a fault waits. A process may be evicting its own
 * excess meanwhile (a forked child charged for its parent's frames evicts
 * hundreds of MiB for itself, seconds on a busy host): while usage falls,
 * nobody is killed. Measured: 'fork512' (512 MiB under 64M, then fork)
 * killed its child in 2 of 3 runs at load ~15 without this wait, once the
 * manager decided every OOM kill. The first call of an episode returns
 * false.
 */
#define OOM_PROGRESS_NS (200ULL * 1000 * 1000)
static bool oom_stalled(mgi_manager_t *m, int g)
{
	mgi_group_node_t *n = &m->tree.node[g];
	uint64_t usage = mgi_counter_read(&n->seg->acct.memory), now = mgi_os_now_ns();

	if (!n->oom_seen_ns || now - n->oom_seen_ns > 10 * OOM_PROGRESS_NS || usage < n->oom_seen_usage) {
		/* a new episode, or usage fell since: look again later */
		n->oom_seen_ns = now;
		n->oom_seen_usage = usage;
		return false;
	}
	return now - n->oom_seen_ns >= OOM_PROGRESS_NS;
}

static bool has_room(const mgi_manager_t *m, int g, uint64_t pages)
{
	mgi_segment_t *seg = m->tree.node[g].seg;
	return mgi_counter_margin(&seg->acct.memory, &seg->ctl.memory) >= pages;
}

uint64_t mgi_escalate_usage(const mgi_manager_t *m, int g)
{
	const mgi_segment_t *seg = m->tree.node[g].seg;
	return mgi_kbackend_is(m, g) ? mgi_kbackend_usage(m, g) : mgi_counter_read(&seg->acct.memory);
}

bool mgi_escalate_below_limit(const mgi_manager_t *m, int g)
{
	mgi_segment_t *seg = m->tree.node[g].seg;
	if (mgi_kbackend_is(m, g))
		return mgi_escalate_usage(m, g) < mgi_counter_read_max(&seg->ctl.memory);
	return has_room(m, g, 1);
}

/* The OOM action: the pause (--oom-kill-disable: the faults wait, WAIT),
 * else the kill. */
/* One more of a ladder counter of group g, told to the ladder's
 * registrations. */
static void rung(mgi_manager_t *m, int g, _Atomic uint64_t *counter)
{
	atomic_fetch_add(counter, 1);
	mgi_notify_ladder(m, g);
}

/* Cooperators asked (coop.c started an episode): counted. */
static bool coop_start(mgi_manager_t *m, int g, int req_group, int req_slot)
{
	bool running = m->coop.active; /* (then only this request waits for it) */
	if (!mgi_coop_start(m, g, req_group, req_slot))
		return false;
	if (!running)
		rung(m, g, &m->tree.node[g].seg->ctl.ladder_coop);
	return true;
}

/* Eviction asked for a refused charge (reclaim.c): counted. */
static void evict_start(mgi_manager_t *m, int g, uint64_t pages, int req_group, int req_slot)
{
	mgi_reclaim_request(m, g, pages, false, req_group, req_slot);
	rung(m, g, &m->tree.node[g].seg->ctl.ladder_evict);
}

/* The first rung (issue 18 item 1): volatile pages (mg_vrange) are purged
 * before cooperators are asked. An eviction episode does it: it asks the
 * processes holding volatile pages first, and their agents purge before
 * they evict (agent/vrange.c). Once none is left unpurged, the ladder goes
 * on as before; while an episode runs, the request waits for it. */
static bool purge_volatile(mgi_manager_t *m, int g, const mgi_pressure_t *p)
{
	struct mgi_escalation *e = &m->esc;
	uint64_t purged = 0, now = mgi_os_now_ns();

	if (!mgi_reclaim_volatile_under(m, g))
		return false;
	for (int d = 1; d < MGI_GROUPS_MAX; d++)
		if (m->tree.node[d].used && mgi_tree_is_under(&m->tree, d, g))
			purged += atomic_load(&m->tree.node[d].seg->acct.vrange_purged_pages);
	/* Asked within the last PURGE_RETRY_NS and nothing purged since: the
	 * volatile pages left cannot go now (absent, shared with a child):
	 * the next rung. */
	if (!m->reclaim.active && e->purge_ns[g] && now - e->purge_ns[g] < PURGE_RETRY_NS &&
	    purged == e->purge_seen[g])
		return false;
	if (!m->reclaim.active) {
		e->purge_ns[g] = now;
		e->purge_seen[g] = purged;
		mgi_reclaim_request(m, g, p->pages ? p->pages : VOLATILE_BATCH, false, p->req_group,
				    p->req_slot);
		rung(m, g, &m->tree.node[g].seg->ctl.ladder_purge);
	}
	return true;
}

/* Volatile pages not purged yet in g's subtree (the slots' figures). */
static uint64_t volatile_pages_under(const mgi_manager_t *m, int g)
{
	uint64_t n = 0;

	for (int d = 1; d < MGI_GROUPS_MAX; d++) {
		if (!m->tree.node[d].used || !mgi_tree_is_under(&m->tree, d, g))
			continue;
		mgi_segment_t *seg = m->tree.node[d].seg;
		for (int i = 0; i < MGI_PROCS_MAX; i++)
			if (atomic_load(&seg->ctl.procs[i].pid) > 0)
				n += atomic_load(&seg->acct.procs[i].vrange_pages);
	}
	return n;
}

static enum mgi_step kill_joined(mgi_manager_t *m, int g)
{
	/* a user-space handler decides first (oom_handler.c); the policy
	 * (pause or kill) when it does not */
	if (mgi_oomh_ask(m, g))
		return MGI_STEP_WAIT;
	if (mgi_oom_pause(m, g))
		return MGI_STEP_WAIT;
	mgi_oom_kill_joined(m, g);
	return MGI_STEP_KILL;
}

static enum mgi_step refused(mgi_manager_t *m, int g, const mgi_pressure_t *p)
{
	if (mgi_oom_kill_pending(m, g))
		return MGI_STEP_WAIT;
	if (has_room(m, g, 1))
		return MGI_STEP_NONE; /* freed meanwhile: the agent's retry will succeed */
	if (purge_volatile(m, g, p))
		return MGI_STEP_EVICT;
	if (coop_start(m, g, p->req_group, p->req_slot))
		return MGI_STEP_COOP; /* (or one runs: this agent asks again) */
	/* The wait for usage to fall is for processes evicting their own
	 * excess (a fork's child: see oom_stalled). Where nothing under g can
	 * evict (no swap room, swappiness 0, no estimate to give back),
	 * usage falls only by an exit or a free, and the kill follows at once,
	 * as the kernel's memcg kills once its reclaim fails. Measured
	 * (bench/oom.sh, no swap): the refused fault waited p50 205 ms with
	 * the wait, most of it this 200 ms. */
	mgi_segment_t *seg = m->tree.node[g].seg;
	bool over = mgi_counter_read(&seg->acct.memory) > mgi_counter_read_max(&seg->ctl.memory);
	/* (over the limit: a fork's child charged for its parent's frames,
	 * which it frees or unmaps: it keeps the wait; compat stress_mmap
	 * swap was killed once without it, beside a loaded CI run) */
	if ((over || mgi_reclaim_possible(m, g)) && !oom_stalled(m, g))
		return MGI_STEP_WAIT;
	return kill_joined(m, g);
}

static enum mgi_step evict_request(mgi_manager_t *m, int g, const mgi_pressure_t *p)
{
	struct mgi_escalation *e = &m->esc;
	mgi_segment_t *seg = m->tree.node[g].seg;
	uint64_t now = mgi_os_now_ns();

	if (has_room(m, g, p->pages))
		return MGI_STEP_NONE; /* room came meanwhile: the agent's retry will succeed */
	if (purge_volatile(m, g, p))
		return MGI_STEP_EVICT;
	/* Cooperating applications first (seed 000 section 5): asked at most
	 * once a second; what they leave is evicted. */
	if (atomic_load(&seg->ctl.cooperators) && !m->coop.active && now - e->coop_last_ns > COOP_REASK_NS) {
		e->coop_last_ns = now;
		if (coop_start(m, g, p->req_group, p->req_slot))
			return MGI_STEP_COOP;
	}
	if (m->coop.active)
		return MGI_STEP_WAIT;
	if (!mgi_reclaim_possible(m, g))
		return kill_joined(m, g);
	evict_start(m, g, p->pages, p->req_group, p->req_slot);
	return MGI_STEP_EVICT;
}

static enum mgi_step coop_done(mgi_manager_t *m, int g, const mgi_pressure_t *p)
{
	if (!p->pages)
		rung(m, g, &m->tree.node[g].seg->ctl.ladder_coop_enough);
	else
		mgi_notify_ladder(m, g); /* the episode ended short */
	if (!p->pages || mgi_escalate_below_limit(m, g) || mgi_kbackend_is(m, g))
		return MGI_STEP_NONE; /* (the kernel backend's OOM is the backstop's) */
	/* Still at its limit: what the applications did not free is evicted,
	 * or, if nothing can be, the OOM kill. */
	if (mgi_reclaim_possible(m, g)) {
		evict_start(m, g, p->pages, p->req_group, p->req_slot);
		return MGI_STEP_EVICT;
	}
	return kill_joined(m, g);
}

static enum mgi_step evict_done(mgi_manager_t *m, int g, const mgi_pressure_t *p)
{
	uint64_t *empty = &m->esc.evict_empty_ns[g], now = mgi_os_now_ns();

	if (!p->background) {
		if (p->freed)
			mgi_notify_ladder(m, g); /* it freed: the agents' pswpout counts it */
		else
			rung(m, g, &m->tree.node[g].seg->ctl.ladder_evict_empty);
	}
	if (p->freed || p->background) {
		*empty = 0;
		return MGI_STEP_NONE;
	}
	if (!*empty) {
		*empty = now;
		return MGI_STEP_WAIT;
	}
	if (now - *empty <= OOM_AFTER_MS * 1000000ULL || has_room(m, g, 1) || !oom_stalled(m, g))
		return MGI_STEP_WAIT;
	*empty = 0;
	return kill_joined(m, g);
}

static enum mgi_step kernel_limit(mgi_manager_t *m, int g)
{
	/* Volatile pages first here too: what the kernel counts and memgrp
	 * does not (a process without the agent) makes room from them. The
	 * kernel does not say how much its waiting allocations need, and the
	 * next step is a kill: all of them are asked for. */
	if (purge_volatile(m, g, &(mgi_pressure_t){.why = MGI_WHY_KERNEL,
						    .pages = volatile_pages_under(m, g),
						    .req_group = -1, .req_slot = -1}))
		return MGI_STEP_EVICT;
	if (mgi_kbackend_is(m, g)) {
		/* as an agent's refused charge does: cooperators first, the
		 * kill waits for the episode */
		if (m->coop.active && m->coop.group == g)
			return MGI_STEP_WAIT;
		if (m->esc.kernel_asks[g] < KERNEL_COOP_ASKS) {
			m->esc.kernel_asks[g]++;
			if (coop_start(m, g, -1, -1))
				return MGI_STEP_COOP;
		}
	}
	/* a user-space handler first (of g, or the nearest above), asked with
	 * the kernel cgroup's processes; the policy when it does not decide */
	if (mgi_oomh_ask_kernel(m, g))
		return MGI_STEP_WAIT;
	if (mgi_oom_pause(m, g))
		return MGI_STEP_WAIT;
	return mgi_backstop_oom_kill(m, g) > 0 ? MGI_STEP_KILL : MGI_STEP_WAIT;
}

enum mgi_step mgi_escalate(mgi_manager_t *m, int group, const mgi_pressure_t *p)
{
	if (group <= 0 || group >= MGI_GROUPS_MAX || !m->tree.node[group].used)
		return MGI_STEP_NONE; /* the root has no limit; a group removed meanwhile */
	switch (p->why) {
	case MGI_WHY_ASK:
		return coop_start(m, group, -1, -1) ? MGI_STEP_COOP : MGI_STEP_NONE;
	case MGI_WHY_HIGH: {
		mgi_segment_t *seg = m->tree.node[group].seg;
		uint64_t excess = mgi_counter_high_excess(&seg->acct.memory, &seg->ctl.memory);
		if (!excess || !mgi_reclaim_possible(m, group))
			return MGI_STEP_NONE;
		mgi_reclaim_request(m, group, excess, true, -1, -1);
		return MGI_STEP_EVICT;
	}
	case MGI_WHY_REFUSED:
		return refused(m, group, p);
	case MGI_WHY_EVICT_REQ:
		return evict_request(m, group, p);
	case MGI_WHY_COOP_DONE:
		return coop_done(m, group, p);
	case MGI_WHY_EVICT_DONE:
		return evict_done(m, group, p);
	case MGI_WHY_KERNEL:
		return kernel_limit(m, group);
	case MGI_WHY_RELIEVED:
		m->esc.kernel_asks[group] = 0;
		mgi_oom_pause_check(m);
		return MGI_STEP_NONE;
	}
	return MGI_STEP_NONE;
}

const char *mgi_step_name(enum mgi_step s)
{
	static const char *const names[] = {"none", "wait", "coop", "evict", "kill"};
	return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "?";
}

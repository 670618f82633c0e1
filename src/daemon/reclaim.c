/* reclaim.c - the manager's part of reclaim: whose pages to evict, and when. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "grantd.h"
#include "manager.h"
#include "oslayer.h"
#include "size.h"

/*
 * Evicting a page happens inside its process (the agent's handler moves,
 * compresses and later restores it); deciding whose pages go is done here,
 * because only the manager sees every process of a subtree:
 *
 *  - direct reclaim: an agent whose charge a group refused, and which is
 *    not the one to evict from (another process is colder, a group below
 *    holds memory, cooperating applications are to be asked first), sends
 *    RECLAIM_REQ. Cooperating clients are asked first (coop.c); then the
 *    processes of the group's subtree are asked to EVICT, coldest first
 *    (mgi_proc_colder: the longest-untouched staged page; else the largest),
 *    one at a time, until the need is met. A group under its low limit is
 *    passed over while another can give. When no one can evict, escalate.c
 *    takes the OOM path (the largest process is killed).
 *  - background reclaim: a group whose usage rises past its high limit
 *    (an upward threshold, notify.c) is brought back under it the same way.
 *  - soft limits: while the host's MemAvailable is under the floor, the
 *    group furthest above its soft limit is reclaimed toward it, once a
 *    second (a timer armed only while some group has a soft limit).
 *
 * One episode at a time; an agent whose charge is still refused asks again.
 */

#define EVICT_WAIT_MS 2000      /* how long an agent may take to evict */
#define EVICT_MAX_PAGES 8192    /* asked of one agent at a time (32 MiB) */
#define NEED_MIN_PAGES 512      /* a direct reclaim frees at least 2 MiB */
#define HOST_CHECK_MS 1000
#define AGE_MIN_PAGES 256       /* processes smaller than 1 MiB are not aged */
#define HIGH_RETRY_MS 500       /* above high after an empty episode: again */

static void arm(int fd, unsigned ms, bool periodic)
{
	struct itimerspec its = {
		.it_value = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L},
	};
	if (periodic)
		its.it_interval = its.it_value;
	timerfd_settime(fd, 0, &its, NULL);
}

static void disarm(int fd)
{
	struct itimerspec its = {{0, 0}, {0, 0}};
	timerfd_settime(fd, 0, &its, NULL);
}

/* Whether the processes of group g may evict: swappiness above 0, and room
 * in the swap counters of g and of every ancestor (the root has none). */
static bool can_swap(const mgi_manager_t *m, int g)
{
	if (g <= 0 || !atomic_load(&m->tree.node[g].seg->ctl.swappiness))
		return false;
	for (int a = g; a > 0; a = m->tree.node[a].parent)
		if (mgi_counter_margin(&m->tree.node[a].seg->acct.swap, &m->tree.node[a].seg->ctl.swap) == 0)
			return false;
	return true;
}

/* Pages to evict to bring group g back under its high limit (with a
 * margin of 1/64), or 0 if it is not above it or cannot evict. */
static uint64_t above_high(const mgi_manager_t *m, int g)
{
	mgi_segment_t *gs = m->tree.node[g].seg;
	uint64_t excess = mgi_counter_high_excess(&gs->acct.memory, &gs->ctl.memory);

	return excess && can_swap(m, g) ? excess : 0;
}

/* Whether process c holds fast regions (estimate mode, seed 001): turning
 * them slow gives back estimate that may not be memory, before anything
 * is evicted (and whether or not its group may swap). */
static bool holds_fast(const mgi_manager_t *m, const struct mgi_conn *c)
{
	return atomic_load(&m->tree.node[c->group].seg->acct.procs[c->slot].est_fast) > 0;
}

/* Whether process c holds volatile pages not purged yet (mg_vrange): the
 * first rung of the ladder, whether or not its group may swap. */
static bool holds_volatile(const mgi_manager_t *m, const struct mgi_conn *c)
{
	return atomic_load(&m->tree.node[c->group].seg->acct.procs[c->slot].vrange_pages) > 0;
}

bool mgi_reclaim_volatile_under(const mgi_manager_t *m, int group)
{
	for (unsigned k = 0; k < m->nconns; k++) {
		const struct mgi_conn *c = &m->conns[k];
		if (c->fd >= 0 && c->slot >= 0 && m->tree.node[c->group].used &&
		    mgi_tree_is_under(&m->tree, c->group, group) && holds_volatile(m, c))
			return true;
	}
	return false;
}

bool mgi_reclaim_possible(const mgi_manager_t *m, int group)
{
	for (int g = 1; g < MGI_GROUPS_MAX; g++)
		if (m->tree.node[g].used && mgi_tree_is_under(&m->tree, g, group) && can_swap(m, g))
			return true;
	for (unsigned k = 0; k < m->nconns; k++) {
		const struct mgi_conn *c = &m->conns[k];
		if (c->fd >= 0 && c->slot >= 0 && m->tree.node[c->group].used &&
		    mgi_tree_is_under(&m->tree, c->group, group) &&
		    (holds_fast(m, c) || holds_volatile(m, c)))
			return true;
	}
	return false;
}

/* Whether g (or a group between it and the target) is under its low
 * limit: protected from the target's reclaim (not from its own limit). */
static bool protected_by_low(const mgi_manager_t *m, int g, int target)
{
	for (int a = g; a > 0 && a != target; a = m->tree.node[a].parent)
		if (mgi_counter_below_low(&m->tree.node[a].seg->acct.memory, &m->tree.node[a].seg->ctl.memory))
			return true;
	return false;
}

static const mgi_proc_slot_t *slot_of(const mgi_manager_t *m, const struct mgi_conn *c)
{
	return &m->tree.node[c->group].seg->acct.procs[c->slot];
}

/* The coldest process under the target that has not run dry in this
 * episode (a process that gave what it was asked may be asked again);
 * one holding fast regions before any other (seed 001: no page is
 * evicted, nor anyone killed, while estimate can be given back). */
static int pick(const mgi_manager_t *m, bool honour_low)
{
	const struct mgi_reclaim_episode *e = &m->reclaim;
	int best = -1;
	bool best_fast = false;

	for (unsigned k = 0; k < m->nconns; k++) {
		const struct mgi_conn *c = &m->conns[k];
		if (c->fd < 0 || c->slot < 0 || e->spent[k] || !m->tree.node[c->group].used ||
		    !mgi_tree_is_under(&m->tree, c->group, e->group))
			continue;
		bool fast = holds_fast(m, c) || holds_volatile(m, c);
		if (!fast && !can_swap(m, c->group))
			continue;
		if (best_fast && !fast)
			continue;
		if (honour_low && protected_by_low(m, c->group, e->group))
			continue;
		const mgi_proc_slot_t *s = slot_of(m, c);
		if (atomic_load(&m->tree.node[c->group].seg->ctl.procs[c->slot].pid) != c->pid ||
		    !atomic_load(&s->charged))
			continue;
		if (best < 0 || (fast && !best_fast) || mgi_proc_colder(s, slot_of(m, &m->conns[best]))) {
			best = (int)k;
			best_fast = fast;
		}
	}
	return best;
}

static void end_episode(mgi_manager_t *m)
{
	struct mgi_reclaim_episode *e = &m->reclaim;
	char freed[16];

	e->active = false;
	disarm(m->reclaim_timerfd);
	/* Routine under a limit (and the stats count it): logged only when
	 * a direct reclaim came up empty, the step before the OOM path. */
	if (!e->background && !e->freed) {
		mgi_size_format(e->freed * MGI_PAGE_SIZE, freed, sizeof(freed));
		mgi_manager_log(m, "group '%s': %s reclaim evicted %s in %llu ms",
				m->tree.node[e->group].name, e->background ? "background" : "direct",
				freed, (unsigned long long)((mgi_os_now_ns() - e->started_ns) / 1000000));
	}
	/* What waited its turn, and any group still above its high limit
	 * (a crossing that came during this episode was noted, not lost). */
	int from = e->group;
	bool progress = e->freed > 0, later = false;
	for (int k = 1; k <= MGI_GROUPS_MAX && !e->active; k++) {
		int g = (from + k) % MGI_GROUPS_MAX;
		if (!g || !m->tree.node[g].used)
			continue;
		uint64_t excess = above_high(m, g);
		if (excess && (g != from || progress))
			mgi_reclaim_request(m, g, excess, true, -1, -1);
		else if (m->reclaim_waiting[g] && (g != from || progress))
			mgi_reclaim_request(m, g, m->reclaim_waiting[g], false, -1, -1);
		else if (excess)
			later = true;
		m->reclaim_waiting[g] = 0;
	}
	/* Still above its high limit after an episode that freed nothing
	 * (its processes had nothing staged yet, or were slow to answer):
	 * no new crossing will come to say so, so look again shortly.
	 * Measured: under CPU load a holder stayed at 55 of 32 MiB high. */
	if (later && !e->active)
		arm(m->reclaim_timerfd, HIGH_RETRY_MS, false);
}

/* Asks the next coldest process; when none is left, ends the episode and
 * reports it (escalate.c decides whether an empty one means the OOM path). */
static void ask_next(mgi_manager_t *m)
{
	struct mgi_reclaim_episode *e = &m->reclaim;
	int k = pick(m, true);

	if (k < 0)
		k = pick(m, false); /* everything else gave what it could */
	if (k < 0 || e->freed >= e->need) {
		/* the outcome is reported; whether an empty episode means the
		 * OOM path is escalate.c's to decide */
		mgi_pressure_t done = {.why = MGI_WHY_EVICT_DONE, .freed = e->freed,
				       .background = e->background, .req_group = e->req_group,
				       .req_slot = e->req_slot};
		int target = e->group;
		end_episode(m);
		mgi_escalate(m, target, &done);
		return;
	}
	struct mgi_conn *c = &m->conns[k];
	mgi_msg_t msg;
	uint64_t pages = e->need - e->freed;

	if (pages > EVICT_MAX_PAGES)
		pages = EVICT_MAX_PAGES;
	e->asked = pages;
	e->conn = k;
	e->conn_fd = c->fd;
	e->asked_ns = mgi_os_now_ns();
	e->answers0 = atomic_load_explicit(&slot_of(m, c)->evict_answers, memory_order_acquire);
	/* A nested group's evicted pages are swap within its swap grant:
	 * given first, so that the eviction asked for is not refused for
	 * want of one (refused by a swap limit, it is as before). */
	mgi_grant_for_evict(m, c->group, pages);
	mgi_msg_init(&msg, MGI_MSG_EVICT);
	msg.evict.pages = pages;
	if (send(c->fd, &msg, msg.hdr.len, MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)msg.hdr.len) {
		e->spent[k] = 1;
		e->conn = -1;
		ask_next(m);
		return;
	}
	arm(m->reclaim_timerfd, EVICT_WAIT_MS, false);
}

/*
 * Coldness shows only for pages that sat untouched in a staging area (there
 * are no accessed bits to read from user space): a process that was never
 * asked to stage anything looks no colder than a busy one. So when a
 * subtree comes under reclaim, each of its processes with nothing staged is
 * asked to stage its share (EVICT of 0 pages: age, evict nothing; no
 * answer). An idle process's staged pages then stay untouched and it
 * ranks coldest from the next episode on.
 */
static void age(mgi_manager_t *m, int group)
{
	mgi_msg_t msg;

	mgi_msg_init(&msg, MGI_MSG_EVICT);
	msg.evict.pages = 0;
	for (unsigned k = 0; k < m->nconns; k++) {
		const struct mgi_conn *c = &m->conns[k];
		if (c->fd < 0 || c->slot < 0 || !m->tree.node[c->group].used ||
		    !mgi_tree_is_under(&m->tree, c->group, group) || !can_swap(m, c->group))
			continue;
		const mgi_proc_slot_t *sl = slot_of(m, c);
		if (atomic_load(&sl->staged) || atomic_load(&sl->charged) < AGE_MIN_PAGES)
			continue;
		send(c->fd, &msg, msg.hdr.len, MSG_NOSIGNAL | MSG_DONTWAIT);
	}
}

void mgi_reclaim_request(mgi_manager_t *m, int group, uint64_t pages, bool background,
			 int req_group, int req_slot)
{
	struct mgi_reclaim_episode *e = &m->reclaim;

	if (group <= 0 || !m->tree.node[group].used)
		return;
	if (e->active) {
		/* one at a time: a refused charge waits its turn (its agent
		 * also asks again); a high limit is re-checked at the end */
		if (!background && group != e->group && m->reclaim_waiting[group] < pages)
			m->reclaim_waiting[group] = pages;
		return;
	}
	if (pages < NEED_MIN_PAGES)
		pages = NEED_MIN_PAGES;
	memset(e, 0, sizeof(*e));
	e->active = true;
	e->background = background;
	e->group = group;
	e->need = pages;
	e->req_group = req_group;
	e->req_slot = req_slot;
	e->conn = -1;
	e->started_ns = mgi_os_now_ns();
	age(m, group);
	ask_next(m);
}

void mgi_reclaim_on_request(mgi_manager_t *m, struct mgi_conn *c, const mgi_msg_reclaim_req_t *r)
{
	int target = mgi_manager_limiting_group(m, c, r->level);

	if (target < 0)
		return; /* the root has no limit */
	mgi_escalate(m, target, &(mgi_pressure_t){.why = MGI_WHY_EVICT_REQ, .pages = r->pages,
						   .req_group = c->group, .req_slot = c->slot});
}

void mgi_reclaim_evicted(mgi_manager_t *m, unsigned ci, const mgi_msg_evict_t *ev)
{
	struct mgi_reclaim_episode *e = &m->reclaim;

	if (!e->active || e->conn != (int)ci || m->conns[ci].fd != e->conn_fd)
		return; /* late, or not asked: nothing to do */
	e->freed += ev->freed;
	if (ev->freed < e->asked)
		e->spent[ci] = 1; /* it gave all it could */
	e->conn = -1;
	ask_next(m);
}

void mgi_reclaim_slot_answer(mgi_manager_t *m)
{
	struct mgi_reclaim_episode *e = &m->reclaim;

	if (!e->active || e->conn < 0 || m->conns[e->conn].fd != e->conn_fd)
		return;
	const mgi_proc_slot_t *s = slot_of(m, &m->conns[e->conn]);
	if (atomic_load_explicit(&s->evict_answers, memory_order_acquire) == e->answers0)
		return;
	/* written by the agent: no more than it was asked counts */
	uint64_t freed = atomic_load_explicit(&s->evict_freed, memory_order_relaxed);
	mgi_msg_evict_t ev = {.pages = e->asked, .freed = freed < e->asked ? freed : e->asked};
	mgi_reclaim_evicted(m, (unsigned)e->conn, &ev);
}

void mgi_reclaim_conn_gone(mgi_manager_t *m, unsigned ci)
{
	struct mgi_reclaim_episode *e = &m->reclaim;

	if (e->active && e->conn == (int)ci) {
		e->spent[ci] = 1;
		e->conn = -1;
		ask_next(m);
	}
}

void mgi_reclaim_timeout(mgi_manager_t *m)
{
	struct mgi_reclaim_episode *e = &m->reclaim;
	uint64_t expirations;

	if (read(m->reclaim_timerfd, &expirations, sizeof(expirations)) < 0) {
		/* EAGAIN: disarmed meanwhile */
	}
	if (!e->active) {
		/* end_episode's later look at groups above their high limit */
		for (int g = 1; g < MGI_GROUPS_MAX && !e->active; g++) {
			uint64_t excess = m->tree.node[g].used ? above_high(m, g) : 0;
			if (excess)
				mgi_reclaim_request(m, g, excess, true, -1, -1);
		}
		return;
	}
	mgi_reclaim_slot_answer(m);
	if (e->conn >= 0 && mgi_os_now_ns() - e->asked_ns >= (uint64_t)EVICT_WAIT_MS * 1000000ULL) {
		mgi_manager_log(m, "group '%s': pid %d did not answer a request to evict within %d ms",
				m->tree.node[m->conns[e->conn].group].name, (int)m->conns[e->conn].pid,
				EVICT_WAIT_MS);
		e->spent[e->conn] = 1;
		e->conn = -1; /* it may still answer: ignored then */
		ask_next(m);
	}
}

/* ---- soft limits ---- */

/* A /proc/meminfo figure in bytes, or UINT64_MAX if it cannot be read. */
static uint64_t meminfo(const char *key)
{
	char line[128];
	size_t klen = strlen(key);
	FILE *f = fopen("/proc/meminfo", "re");
	uint64_t v = UINT64_MAX;

	if (!f)
		return v;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
			v = strtoull(line + klen + 1, NULL, 10) * 1024;
			break;
		}
	fclose(f);
	return v;
}

uint64_t mgi_default_min_available(void)
{
	uint64_t total = meminfo("MemTotal");
	return total == UINT64_MAX ? 0 : total / 20;
}

void mgi_reclaim_soft_resync(mgi_manager_t *m)
{
	bool any = false;

	for (int g = 1; g < MGI_GROUPS_MAX && !any; g++)
		any = m->tree.node[g].used &&
		      atomic_load(&m->tree.node[g].seg->ctl.memory.soft) < MGI_PAGES_UNLIMITED;
	/* Idle means zero CPU: the host is watched only while it matters. */
	if (any && m->min_available)
		arm(m->soft_timerfd, HOST_CHECK_MS, true);
	else
		disarm(m->soft_timerfd);
}

void mgi_reclaim_host_check(mgi_manager_t *m)
{
	uint64_t expirations, avail, best_excess = 0;
	int best = -1;

	if (read(m->soft_timerfd, &expirations, sizeof(expirations)) < 0) {
		/* EAGAIN */
	}
	if (m->reclaim.active || (avail = meminfo("MemAvailable")) >= m->min_available)
		return;
	/* The group furthest above its soft limit, weighted by swappiness
	 * (memcg v1's soft-limit reclaim takes the largest excess first). */
	for (int g = 1; g < MGI_GROUPS_MAX; g++) {
		if (!m->tree.node[g].used || !can_swap(m, g))
			continue;
		const mgi_segment_t *s = m->tree.node[g].seg;
		uint64_t usage = mgi_counter_read(&s->acct.memory), soft = atomic_load(&s->ctl.memory.soft);
		if (usage > MGI_PAGES_UNLIMITED)
			usage = MGI_PAGES_UNLIMITED; /* the processes' word: no overflow below */
		uint64_t w = atomic_load(&m->tree.node[g].seg->ctl.swappiness);
		if (usage <= soft)
			continue;
		uint64_t excess = (usage - soft) * w;
		if (excess > best_excess) {
			best_excess = excess;
			best = g;
		}
	}
	if (best < 0)
		return;
	const mgi_segment_t *bs = m->tree.node[best].seg;
	uint64_t over = mgi_counter_read(&bs->acct.memory) - atomic_load(&bs->ctl.memory.soft);
	uint64_t short_by = (m->min_available - avail) / MGI_PAGE_SIZE + NEED_MIN_PAGES;
	char a[16], f[16];
	mgi_size_format(avail, a, sizeof(a));
	mgi_size_format(m->min_available, f, sizeof(f));
	mgi_manager_log(m, "the host has %s available, under the floor of %s: reclaiming group "
			   "'%s' toward its soft limit", a, f, m->tree.node[best].name);
	mgi_reclaim_request(m, best, over < short_by ? over : short_by, true, -1, -1);
}

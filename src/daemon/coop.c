/* coop.c - cooperative reclaim: ask the applications to free memory before killing. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "manager.h"
#include "oslayer.h"
#include "size.h"

/*
 * Seed 000 section 5, memgrp's step: applications that register as
 * cooperating (mg_cooperate_add) are asked to free memory before the group
 * is reclaimed by force: before its pages are evicted (reclaim.c) or, when
 * the group cannot swap, before the OOM kill:
 *
 *  1. G's usage rises past its ask watermark (90 % of its limit: notify.c)
 *     and G's segment counts cooperators (registered on G or below); or a
 *     charge is refused by G's limit with cooperators there: the agent
 *     leaves the decision to the manager (OOM_REQ) and its thread waits.
 *  2. The manager asks the cooperators under G one at a time, highest
 *     priority first, for what is still needed: it writes the number of
 *     pages to the client's eventfd and waits for its COOP_DONE, at most
 *     coop_wait_ms. A client that never answers costs that wait once per
 *     episode; garbage closes its connection; a disconnect ends its wait.
 *  3. What the client freed is measured (G's usage before and after), not
 *     taken from the client, and counted in coop_freed.
 *  4. When the measured total reaches the need, the episode ends: nothing
 *     is evicted or killed. When every cooperator has been asked and G is
 *     still at its limit, the rest is evicted from G's coldest processes,
 *     or, if G cannot swap, its largest process is killed (an episode
 *     started at the watermark does either only if G reached its limit
 *     meanwhile).
 * The need is a tenth of G's limit (at least 1 MiB): enough that the group
 * does not come straight back; less would mean an episode per fault.
 */

static void arm(mgi_manager_t *m, unsigned ms)
{
	struct itimerspec its = {.it_value = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L}};

	if (ms == 0)
		its.it_value.tv_nsec = 1; /* 0 would disarm */
	timerfd_settime(m->timerfd, 0, &its, NULL);
}

static void disarm(mgi_manager_t *m)
{
	struct itimerspec its = {{0, 0}, {0, 0}};
	timerfd_settime(m->timerfd, 0, &its, NULL);
}

/* Ends the episode and reports it, with the pages still needed (0:
 * enough was freed). */
static void end_episode(mgi_manager_t *m, uint64_t still_needed)
{
	struct mgi_coop_episode *e = &m->coop;

	e->active = false;
	disarm(m);
	mgi_escalate(m, e->group, &(mgi_pressure_t){.why = MGI_WHY_COOP_DONE, .pages = still_needed,
						     .req_group = e->req_group,
						     .req_slot = e->req_slot});
}

/* Asks the next cooperator; ends the episode when none is left. */
static void ask_next(mgi_manager_t *m)
{
	struct mgi_coop_episode *e = &m->coop;
	mgi_segment_t *seg = m->tree.node[e->group].seg;
	int best = -1;

	for (int i = 0; i < MGI_REGS_MAX; i++) {
		const struct mgi_reg *r = &m->regs[i];
		if (!r->id || r->kind != MGI_REG_COOPERATE || e->asked[i] ||
		    !mgi_tree_is_under(&m->tree, r->group, e->group))
			continue;
		if (best < 0 || r->level > m->regs[best].level)
			best = i;
	}
	if (best < 0) {
		/* every cooperator asked: what follows is escalate.c's */
		end_episode(m, e->need > e->freed ? e->need - e->freed : 256);
		return;
	}
	uint64_t pages = e->need - e->freed;
	char amount[16];
	e->asked[best] = 1;
	e->reg = best;
	e->usage_before = mgi_escalate_usage(m, e->group);
	e->asked_ns = mgi_os_now_ns();
	atomic_fetch_add(&seg->ctl.coop_requests, 1);
	char usage[16], max[16];
	mgi_size_format(pages * MGI_PAGE_SIZE, amount, sizeof(amount));
	mgi_size_format(e->usage_before * MGI_PAGE_SIZE, usage, sizeof(usage));
	mgi_size_format(mgi_counter_read_max(&seg->ctl.memory) * MGI_PAGE_SIZE, max, sizeof(max));
	mgi_manager_log(m, "group '%s' is %s (usage %s, max %s): asking a cooperating client "
			   "(pid %d, priority %u) to free %s", m->tree.node[e->group].name,
			mgi_escalate_below_limit(m, e->group) ? "near its limit" : "at its limit", usage,
			max, (int)m->conns[m->regs[best].conn].peer_pid, m->regs[best].level, amount);
	if (mgi_manager_efd_add(m->regs[best].efd, pages) != 0) { /* never blocks */
		mgi_coop_answered(m, best); /* cannot be told: next one */
		return;
	}
	arm(m, m->coop_wait_ms);
}

bool mgi_coop_start(mgi_manager_t *m, int group, int req_group, int req_slot)
{
	struct mgi_coop_episode *e = &m->coop;
	mgi_segment_t *seg = m->tree.node[group].seg;

	if (e->active)
		return true; /* one at a time: this one is retried by its agent */
	if (atomic_load(&seg->ctl.cooperators) == 0)
		return false;
	memset(e, 0, sizeof(*e));
	e->active = true;
	e->group = group;
	e->req_group = req_group;
	e->req_slot = req_slot;
	e->reg = -1;
	e->need = mgi_counter_read_max(&seg->ctl.memory) / 10;
	if (e->need < 256)
		e->need = 256;
	ask_next(m);
	return true;
}

void mgi_coop_answered(mgi_manager_t *m, int ri)
{
	struct mgi_coop_episode *e = &m->coop;

	if (!e->active || e->reg != ri)
		return;
	if (!m->tree.node[e->group].used) { /* removed meanwhile */
		e->active = false;
		disarm(m);
		return;
	}
	mgi_segment_t *seg = m->tree.node[e->group].seg;
	uint64_t after = mgi_escalate_usage(m, e->group);
	uint64_t freed = e->usage_before > after ? e->usage_before - after : 0;
	char amount[16];

	e->freed += freed;
	e->reg = -1;
	atomic_fetch_add(&seg->ctl.coop_freed, freed);
	mgi_size_format(freed * MGI_PAGE_SIZE, amount, sizeof(amount));
	mgi_manager_log(m, "group '%s': the cooperating client freed %s in %llu ms",
			m->tree.node[e->group].name, amount,
			(unsigned long long)((mgi_os_now_ns() - e->asked_ns) / 1000000));
	if (e->freed >= e->need) {
		end_episode(m, 0); /* enough: nothing more is done */
		return;
	}
	ask_next(m);
}

void mgi_coop_timeout(mgi_manager_t *m)
{
	uint64_t expirations;

	if (read(m->timerfd, &expirations, sizeof(expirations)) < 0) {
		/* EAGAIN: disarmed or re-armed meanwhile */
	}
	if (m->coop.active && m->coop.reg >= 0 &&
	    mgi_os_now_ns() - m->coop.asked_ns >= (uint64_t)m->coop_wait_ms * 1000000ULL)
		mgi_coop_answered(m, m->coop.reg);
}

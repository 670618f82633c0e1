/* host_ladder.c - the ladder across groups when the host is short: volatile ranges purged, cooperators asked, groups above their soft limit or memory.low evicted, eviction, then a kill by policy across groups; one step per sample. */
#include "hostwatch.h"

#include <stdatomic.h>
#include <stdio.h>
#include <unistd.h>

#include "manager.h"
#include "oomkill.h"
#include "oslayer.h"
#include "size.h"

/*
 * hostwatch.c samples the host and hands each short sample's verdict
 * here. The cheap steps, in order, each taken on the group that has the
 * most to give for it, one per sample (the next sample shows what it did):
 *
 *   purge  a group holding volatile ranges not purged yet (mg_vrange):
 *          an eviction episode on it, whose agents purge first
 *   coop   a group with cooperating clients (mg_cooperate_add): asked
 *   soft   the group furthest above its soft limit, else above its
 *          memory.low, that can evict: evicted by that excess
 *   evict  the largest group that can evict: evicted by what the host
 *          lacks
 *
 * A step that finds no group is skipped at once. A step in flight (a
 * cooperative or eviction episode, a kill whose victim has not exited) is
 * waited for. Once the four were tried, a kill when the verdict says so
 * (hostmem.h: short for --host-sustain without a sample with room, and
 * memory itself under the floor where one is set); else the round starts
 * again a second after it began. A kill or a round ends the ladder's state
 * only when the host has room again (mgi_host_ladder_relieved).
 */
enum { STEP_PURGE, STEP_COOP, STEP_SOFT, STEP_EVICT, STEPS };
static const char *const step_what[STEPS] = {
	"purging the volatile ranges of group", "asking the cooperating clients of group",
	"evicting toward its soft limit / memory.low group", "evicting group"};
#define ROUND_NS 1000000000ULL
/* Asked of a step where no floor says how much the host lacks (pressure
 * alone): 64 MiB; and on top of what it lacks, as reclaim.c's minimum. */
#define HOST_BATCH_PAGES 16384
#define HOST_EXTRA_PAGES 512

static struct {
	bool in_short;
	unsigned next;
	uint64_t round_ns;
	_Atomic uint64_t shorts, purge, coop, soft, evict, kill, dry;
} hl;

static _Atomic uint64_t *const counter[STEPS] = {&hl.purge, &hl.coop, &hl.soft, &hl.evict};

/* What the host lacks, in pages, for a step to ask. */
static uint64_t need_pages(const mgi_host_config_t *c, uint64_t avail)
{
	if (c->rule.min_available && avail != UINT64_MAX && avail < c->rule.min_available)
		return (c->rule.min_available - avail) / MGI_PAGE_SIZE + HOST_EXTRA_PAGES;
	return HOST_BATCH_PAGES;
}

/* The group step s is taken on (-1: none applies) and how much it asks. */
static int pick(const mgi_manager_t *m, unsigned s, uint64_t need, uint64_t *amount)
{
	int best = -1;
	uint64_t most = 0;

	for (int g = 1; g < MGI_GROUPS_MAX; g++) {
		if (!m->tree.node[g].used || !mgi_tree_is_under(&m->tree, g, m->scope) || g == m->scope)
			continue;
		mgi_segment_t *seg = m->tree.node[g].seg;
		uint64_t usage = mgi_escalate_usage(m, g), low = atomic_load(&seg->ctl.memory.low);
		uint64_t soft = atomic_load(&seg->ctl.memory.soft), give = 0;
		switch (s) {
		case STEP_PURGE:
			give = mgi_reclaim_volatile_under(m, g) ? usage : 0;
			break;
		case STEP_COOP:
			give = atomic_load(&seg->ctl.cooperators) ? usage : 0;
			break;
		case STEP_SOFT:
			/* above a soft limit first (by far), then above memory.low */
			if (soft < MGI_PAGES_UNLIMITED && usage > soft)
				give = (usage - soft) + (MGI_PAGES_UNLIMITED >> 1);
			else if (low && usage > low)
				give = usage - low;
			give = give && mgi_reclaim_possible(m, g) ? give : 0;
			break;
		case STEP_EVICT:
			give = usage > low && mgi_reclaim_possible(m, g) ? usage - low : 0;
			break;
		}
		if (give > most) {
			most = give;
			best = g;
		}
	}
	if (best >= 0) {
		uint64_t excess = most >= (MGI_PAGES_UNLIMITED >> 1) ? most - (MGI_PAGES_UNLIMITED >> 1) : most;
		*amount = s == STEP_SOFT && excess < need ? excess : need;
	}
	return best;
}

/* "MemAvailable 1.2G (floor 2G), full stall 12.50 %, for 1.4 s" */
static void describe(char *buf, size_t len, const mgi_host_config_t *c, uint64_t avail, uint32_t bp,
		     uint64_t short_ms)
{
	char a[16] = "?", f[16] = "", floor[32] = "", stall[48] = "";

	if (avail != UINT64_MAX)
		mgi_size_format(avail, a, sizeof(a));
	if (c->rule.min_available) {
		mgi_size_format(c->rule.min_available, f, sizeof(f));
		snprintf(floor, sizeof(floor), " (floor %s)", f);
	}
	if (c->rule.pressure_bp)
		snprintf(stall, sizeof(stall), ", %s stall %u.%02u %%", c->rule.pressure_some ? "some" : "full",
			 bp / 100, bp % 100);
	snprintf(buf, len, "MemAvailable %s%s%s, for %llu.%llu s", a, floor, stall,
		 (unsigned long long)(short_ms / 1000), (unsigned long long)(short_ms % 1000 / 100));
}

/* One more of group g's ladder counter (the events of memgrp events
 * --ladder, on g and, its figures adding up, its ancestors). */
static void rung(mgi_manager_t *m, int g, _Atomic uint64_t *c)
{
	atomic_fetch_add(c, 1);
	mgi_notify_ladder(m, g);
}

static void take(mgi_manager_t *m, unsigned s, int g, uint64_t pages, const char *state)
{
	mgi_segment_t *seg = m->tree.node[g].seg;
	char amount[16];

	mgi_size_format(pages * MGI_PAGE_SIZE, amount, sizeof(amount));
	switch (s) {
	case STEP_COOP:
		if (!mgi_coop_start(m, g, -1, -1))
			return;
		rung(m, g, &seg->ctl.ladder_coop);
		break;
	default:
		mgi_reclaim_request(m, g, pages, true, -1, -1);
		rung(m, g, s == STEP_PURGE ? &seg->ctl.ladder_purge : &seg->ctl.ladder_evict);
		break;
	}
	atomic_fetch_add(counter[s], 1);
	mgi_manager_log(m, "host: short (%s): %s '%s' (%s)", state, step_what[s], m->tree.node[g].name,
			amount);
}

bool mgi_host_ladder_step(mgi_manager_t *m, mgi_host_verdict_t v, const mgi_host_config_t *c,
			  uint64_t avail, uint32_t stall_bp, uint64_t short_ms)
{
	uint64_t now = mgi_os_now_ns(), need = need_pages(c, avail), amount = 0;
	char state[192];

	describe(state, sizeof(state), c, avail, stall_bp, short_ms);
	if (!hl.in_short) {
		hl.in_short = true;
		hl.next = STEP_PURGE;
		hl.round_ns = now;
		atomic_fetch_add(&hl.shorts, 1);
		mgi_manager_log(m, "host: short (%s): the ladder across groups starts", state);
	}
	/* one step at a time: what is in flight is waited for */
	if (m->coop.active || m->reclaim.active || mgi_oom_kill_pending(m, m->scope))
		return false;
	while (hl.next < STEPS) {
		unsigned s = hl.next++;
		int g = pick(m, s, need, &amount);
		if (g < 0)
			continue;
		if (c->dry_run) {
			atomic_fetch_add(&hl.dry, 1);
			mgi_manager_log(m, "host: --dry-run: short (%s): would be %s '%s'; nothing done",
					state, step_what[s], m->tree.node[g].name);
		} else {
			take(m, s, g, amount, state);
		}
		return false;
	}
	if (v != MGI_HOST_KILL) {
		if (now - hl.round_ns >= ROUND_NS) {
			hl.next = STEP_PURGE; /* still short: the cheap steps again */
			hl.round_ns = now;
		}
		return false;
	}
	char why[224];
	snprintf(why, sizeof(why), "(the host is short: %s)", state);
	long pages = sysconf(_SC_PHYS_PAGES);
	pid_t pid = mgi_oom_kill_host(m, why, pages > 0 ? (uint64_t)pages : 0, c->dry_run);
	if (pid > 0)
		atomic_fetch_add(c->dry_run ? &hl.dry : &hl.kill, 1);
	/* killed, logged, or nobody to kill (said by the kill): the sustain
	 * count starts again either way, and the cheap steps come first */
	hl.next = STEP_PURGE;
	hl.round_ns = now;
	return true;
}

void mgi_host_ladder_relieved(mgi_manager_t *m, uint64_t avail, uint64_t short_ms)
{
	char a[16] = "?";

	if (avail != UINT64_MAX)
		mgi_size_format(avail, a, sizeof(a));
	if (hl.in_short)
		mgi_manager_log(m, "host: room again after %llu.%llu s (MemAvailable %s)",
				(unsigned long long)(short_ms / 1000),
				(unsigned long long)(short_ms % 1000 / 100), a);
	hl.in_short = false;
}

void mgi_host_ladder_after_prekill(mgi_manager_t *m, const char *why)
{
	if (!hl.in_short) {
		mgi_manager_log(m, "host: room again since the pre-kill hook started: nobody is killed");
		return;
	}
	long pages = sysconf(_SC_PHYS_PAGES);
	if (mgi_oom_kill_host(m, why, pages > 0 ? (uint64_t)pages : 0, false) > 0)
		atomic_fetch_add(&hl.kill, 1);
}

void mgi_host_ladder_stats(int g, mgi_stats_t *out)
{
	if (g != 0)
		return;
	out->host_short = atomic_load(&hl.shorts);
	out->host_ladder_purge = atomic_load(&hl.purge);
	out->host_ladder_coop = atomic_load(&hl.coop);
	out->host_ladder_soft = atomic_load(&hl.soft);
	out->host_ladder_evict = atomic_load(&hl.evict);
	out->host_ladder_kill = atomic_load(&hl.kill);
	out->host_ladder_dry_run = atomic_load(&hl.dry);
}

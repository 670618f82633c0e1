/* backstop_oom.c - a group waiting at its kernel limit: seen, escalated, its kill; the kernel's own killer after a while. */
#include "backstop.h"
#include "backstop_int.h"

#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include "kbackend.h"
#include "oomkill.h"
#include "size.h"

/* Whether g waits at its own kernel limit now (not an ancestor's, whose
 * OOM marks the whole subtree, nor a descendant's). */
static bool paused(struct mgi_backstop *bs, int g, const mgi_kcg_figures_t *f)
{
	if (bs->k.version == 1)
		return f->under_oom && f->limit != UINT64_MAX && f->usage + (2u << 20) >= f->limit;
	bool rose = f->high_events != bs->g[g].high_events;
	bs->g[g].high_events = f->high_events;
	return rose && f->limit != UINT64_MAX && f->usage >= f->limit;
}

/* The kernel cgroup's candidates (pid order), for describe. */
static mgi_victim_t kcands[PIDS_MAX];
static int kill_target;

static void describe_kernel(mgi_manager_t *m, size_t i, char *comm, size_t commlen, char *about,
			    size_t aboutlen)
{
	const mgi_victim_t *c = &kcands[i];
	char why[256];

	mgi_bs_comm(m, c->pid, comm, commlen);
	if (mgi_kbackend_is(m, kill_target))
		return; /* nobody runs the agent there, by design */
	if (mgi_bs_connected(m, c->pid)) {
		snprintf(about, aboutlen, " (RSS); it runs with the agent");
		return;
	}
	if (mgi_bs_managed(m, c->pid)) {
		snprintf(about, aboutlen, " (RSS); it holds a slot of a restored group and its agent "
					  "has not rejoined");
		return;
	}
	mgi_bs_diagnose(m, c->pid, why, sizeof(why));
	snprintf(about, aboutlen, " (RSS); it runs without the agent: %s", why);
}

/* The OOM action at g's kernel limit: a process of its subtree, managed
 * or not, chosen by the group's --oom-policy (largest: by the kernel's
 * RSS) through oomkill.c. Returns the pid killed, or 0. */
static pid_t kill_largest(mgi_manager_t *m, int g, const mgi_kcg_figures_t *f)
{
	static pid_t pids[PIDS_MAX];
	struct mgi_backstop *bs = m->backstop;
	char usage[16], limit[16], anon[16], file[16], shmem[16], state[200], path[512];
	int n = mgi_kcg_pids(&bs->k, gname(m, g), true, pids, PIDS_MAX);

	kill_target = g;
	for (int i = 0; i < n && i < PIDS_MAX; i++)
		kcands[i] = (mgi_victim_t){
			.pid = pids[i],
			.group = mgi_bs_pid_path(m, pids[i], path, sizeof(path)) == 0 ? mgi_bs_group_of_path(m, path) : -1,
			.pages = mgi_bs_rss(m, pids[i]) / MGI_PAGE_SIZE};
	mgi_size_format(f->usage, usage, sizeof(usage));
	mgi_size_format(f->limit, limit, sizeof(limit));
	mgi_size_format(f->anon, anon, sizeof(anon));
	mgi_size_format(f->file, file, sizeof(file));
	mgi_size_format(f->shmem, shmem, sizeof(shmem));
	/* The kernel backend: memgrp's own OOM message, the kernel's figures. */
	if (mgi_kbackend_is(m, g))
		snprintf(state, sizeof(state), "(usage %s, max %s) and nothing can be reclaimed",
			 usage, limit);
	else
		snprintf(state, sizeof(state), "at its kernel limit (kernel usage %s of %s: anon %s, "
			 "file %s, shmem %s)", usage, limit, anon, file, shmem);
	/* the group's --oom-policy over its kernel cgroup's processes (RSS
	 * for size; 1 page at least: nothing to free otherwise) */
	mgi_victim_policy_t pol = {.total_pages = 0, .min_pages = 1};
	mgi_oom_kernel_figures(m, g, kcands, n > 0 ? (size_t)(n < PIDS_MAX ? n : PIDS_MAX) : 0, &pol);
	if (mgi_oom_prekill_kernel(m, g, kcands, n > 0 ? (size_t)(n < PIDS_MAX ? n : PIDS_MAX) : 0, &pol,
				   state))
		return 0; /* the kill follows the hook (its next try) */
	const mgi_oom_kill_t kill = {
		.target = g,
		.state = state,
		.policy = pol,
		.describe = describe_kernel,
		.reap = true, /* what the kernel limit holds back: free it now */
	};
	return mgi_oom_kill(m, &kill, kcands, NULL, n > 0 ? (size_t)(n < PIDS_MAX ? n : PIDS_MAX) : 0);
}

/* The kernel limit of g refused: escalate.c decides (for the kernel
 * backend, cooperators first; then mgi_backstop_oom_kill, one victim at a
 * time); after PAUSE_MAX_MS the kernel's own killer may act. Returns
 * whether g still waits. */
static bool resolve(mgi_manager_t *m, int g)
{
	struct mgi_backstop *bs = m->backstop;
	struct bs_group *bg = &bs->g[g];
	mgi_kcg_figures_t f;
	uint64_t now = mgi_os_now_ns();

	if (mgi_kcg_read(&bs->k, gname(m, g), &f) != 0 || !paused(bs, g, &f)) {
		if (bg->released)
			mgi_kcg_kernel_killer(&bs->k, gname(m, g), false);
		if (bg->paused_ns)
			mgi_escalate(m, g, &(mgi_pressure_t){.why = MGI_WHY_RELIEVED});
		bg->paused_ns = 0;
		bg->released = false;
		return false;
	}
	if (!bg->paused_ns)
		bg->paused_ns = now;
	if (bg->victim > 0 && kill(bg->victim, 0) == 0 && now - bg->killed_ns < KILL_WAIT_MS * 1000000ULL)
		return true; /* the last victim is on its way out */
	if (now - bg->paused_ns > PAUSE_MAX_MS * 1000000ULL) {
		if (!bg->released) {
			mgi_kcg_kernel_killer(&bs->k, gname(m, g), true);
			bg->released = true;
			mgi_manager_log(m, "group '%s' still waits at its kernel limit after %d ms: the "
					   "kernel's OOM killer may act", gname(m, g), PAUSE_MAX_MS);
		}
		return true;
	}
	/* what the pause calls for (cooperators of a kernel-backend group
	 * first, then mgi_backstop_oom_kill) is escalate.c's to decide */
	mgi_escalate(m, g, &(mgi_pressure_t){.why = MGI_WHY_KERNEL, .req_group = -1, .req_slot = -1});
	return true;
}

pid_t mgi_backstop_oom_kill(mgi_manager_t *m, int g)
{
	struct mgi_backstop *bs = m->backstop;
	mgi_kcg_figures_t f;

	if (!bs || !bs->g[g].made || mgi_kcg_read(&bs->k, gname(m, g), &f) != 0)
		return 0;
	pid_t victim = kill_largest(m, g, &f);
	if (victim > 0) {
		bs->g[g].victim = victim;
		bs->g[g].killed_ns = mgi_os_now_ns();
	}
	return victim;
}

static void oom_tick(mgi_manager_t *m)
{
	struct mgi_backstop *bs = m->backstop;
	bool any = false;

	for (int g = 1; g < MGI_GROUPS_MAX; g++)
		if (bs->g[g].made && bs->g[g].paused_ns)
			any |= resolve(m, g);
	if (!any && bs->oom_timer_on) {
		struct itimerspec off = {{0, 0}, {0, 0}};
		timerfd_settime(bs->oom_timer_fd, 0, &off, NULL);
		bs->oom_timer_on = false;
	}
}

bool mgi_backstop_event(mgi_manager_t *m, uint64_t tag)
{
	struct mgi_backstop *bs = m->backstop;
	uint64_t v;
	char buf[256];

	if (mgi_kbackend_event(m, tag))
		return true;
	if (!bs || tag < TAG_OOM_BASE || tag > TAG_OOM_TIMER)
		return false;
	if (tag == TAG_SCAN) {
		if (read(bs->scan_fd, &v, sizeof(v)) < 0) {
			/* EAGAIN: nothing */
		}
		mgi_bs_scan(m);
		mgi_bs_follow_procs(m);
		return true;
	}
	if (tag == TAG_OOM_TIMER) {
		if (read(bs->oom_timer_fd, &v, sizeof(v)) < 0) {
			/* EAGAIN */
		}
		oom_tick(m);
		return true;
	}
	int g = (int)(tag - TAG_OOM_BASE);
	struct bs_group *bg = &bs->g[g];
	if (!bg->made || bg->oomfd < 0)
		return true;
	if (bs->k.version == 1) {
		if (read(bg->oomfd, &v, sizeof(v)) < 0) {
			/* EAGAIN */
		}
	} else if (pread(bg->oomfd, buf, sizeof(buf), 0) < 0) {
		/* re-read: clears the modification mark */
	}
	if (resolve(m, g) && !bs->oom_timer_on && bs->oom_timer_fd >= 0) {
		arm(bs->oom_timer_fd, OOM_CHECK_MS);
		bs->oom_timer_on = true;
	}
	return true;
}

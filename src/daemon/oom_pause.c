/* oom_pause.c - the OOM pause (--oom-kill-disable) and memgrp oom's acts on a paused group (--kill PID, --resume). */
#include "oom_int.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "manager.h"
#include "conn.h"
#include "oslayer.h"
#include "backstop.h"
#include "escalate.h"
#include "kbackend.h"
#include "size.h"

/* "(usage U, max M)" of group g, for the log and records. */
static void usage_state(mgi_manager_t *m, int g, const char *tail, char *buf, size_t len)
{
	const mgi_segment_t *seg = m->tree.node[g].seg;
	char usage[16], max[16];

	mgi_size_format(mgi_escalate_usage(m, g) * MGI_PAGE_SIZE, usage, sizeof(usage));
	mgi_size_format(mgi_counter_read_max(&seg->ctl.memory) * MGI_PAGE_SIZE, max, sizeof(max));
	snprintf(buf, len, "(usage %s, max %s)%s", usage, max, tail);
}

bool mgi_oom_pause(mgi_manager_t *m, int target)
{
	mgi_segment_t *seg = m->tree.node[target].seg;
	char state[96];

	if (m->oom_pause_off || !mgi_oom_effective(m, target).kill_disable)
		return false;
	if (atomic_exchange(&seg->ctl.under_oom, 1) == 0) {
		atomic_fetch_add(&seg->ctl.oom_pauses, 1);
		usage_state(m, target, "", state, sizeof(state));
		mgi_manager_log(m, "group '%s' is out of memory %s and nothing can be reclaimed: "
				   "paused (--oom-kill-disable): its faulting threads wait until memory "
				   "is freed, its limit is raised, or memgrp oom %s --kill PID|--resume",
				m->tree.node[target].name, state, m->tree.node[target].name);
		mgi_notify_oom(m, target);
		mgi_notify_ladder(m, target);
		mgi_oom_arm(m);
	}
	return true;
}

void mgi_oom_pause_check(mgi_manager_t *m)
{
	char state[96];

	for (int g = 0; g < MGI_GROUPS_MAX; g++) {
		if (!m->tree.node[g].used || !atomic_load(&m->tree.node[g].seg->ctl.under_oom) ||
		    !mgi_escalate_below_limit(m, g))
			continue;
		atomic_store(&m->tree.node[g].seg->ctl.under_oom, 0);
		usage_state(m, g, "", state, sizeof(state));
		mgi_manager_log(m, "group '%s' has room again %s: its OOM pause ends",
				m->tree.node[g].name, state);
	}
}

/* The candidate figures of v's process, for a hook and the record. */
static mgi_victim_t hand_cand(mgi_manager_t *m, const struct mgi_conn *v)
{
	const mgi_segment_t *vs = m->tree.node[v->group].seg;
	uint64_t charged = mgi_segment_slot_charged(vs, v->slot), kernel = mgi_oom_kernel_pages(v->pid);

	return (mgi_victim_t){.pid = v->pid, .group = v->group,
			      .pages = charged > kernel ? charged : kernel, .adj = mgi_oom_score_adj(v->pid),
			      .age_ms = mgi_oom_age_ms(v), .priority = v->oom_priority};
}

int mgi_oom_kill_named(mgi_manager_t *m, int g, pid_t pid, const char *by, const char *why,
		       char *comm, size_t commlen)
{
	struct mgi_conn *v = mgi_oom_joined_conn(m, pid);
	char state[200];
	static char cmd[1024];

	if (!v || !mgi_tree_is_under(&m->tree, v->group, g))
		return -ESRCH;
	const mgi_segment_t *vs = m->tree.node[v->group].seg;
	mgi_victim_t cand = hand_cand(m, v);
	snprintf(comm, commlen, "%.*s", MGI_COMM_MAX - 1, vs->ctl.procs[v->slot].comm);
	mgi_oom_cmdline(pid, cmd, sizeof(cmd));
	int err = mgi_pidfd_send_signal(v->pidfd, SIGKILL);
	if (err != 0)
		return err;
	atomic_fetch_add(&m->tree.node[g].seg->ctl.oom_kill, 1);
	mgi_notify_ladder(m, g);
	/* its memory back now: the waiting faults resume without its exit */
	mgi_pidfd_mrelease(v->pidfd);
	v->oom_target = g;
	v->oom_kill_ns = mgi_os_now_ns();
	mgi_oom_arm(m);
	usage_state(m, g, by, state, sizeof(state));
	mgi_manager_log(m, "group '%s' is out of memory %s: pid %d (%s)", m->tree.node[g].name, state,
			(int)pid, comm);
	const mgi_oom_kill_t rec = {.target = g, .state = state,
				    .policy = {.policy = mgi_oom_effective(m, g).policy}};
	mgi_oom_record(m, &rec, &cand, 1, 0, why, cmd);
	return 0;
}

int mgi_oom_hand_kill(mgi_manager_t *m, int g, pid_t pid, unsigned uid, char *comm, size_t commlen)
{
	char by[96];

	snprintf(by, sizeof(by), " and paused: killed by hand (memgrp oom --kill), uid %u's choice", uid);
	return mgi_oom_kill_named(m, g, pid, by, "named by memgrp oom --kill", comm, commlen);
}

/* memgrp oom G --kill PID: the process, if it joined under g; after the
 * group's pre-kill hook if it has one (the reply says so at once: the
 * hook's wait would outlive it). */
static void act_kill(mgi_manager_t *m, struct mgi_conn *c, int g, pid_t pid)
{
	struct mgi_conn *v = mgi_oom_joined_conn(m, pid);
	char comm[MGI_COMM_MAX + 1] = "";
	unsigned ms = 0;

	if (!v || !mgi_tree_is_under(&m->tree, v->group, g)) {
		mgi_conn_reply(c, -ESRCH, "pid %d is not a process of group '%s' (nor of a group "
					  "below it) that joined this manager: nothing killed", (int)pid,
			       m->tree.node[g].name);
		return;
	}
	mgi_victim_t cand = hand_cand(m, v);
	if (mgi_oom_prekill_hand(m, g, &cand, (unsigned)c->peer_uid, &ms)) {
		mgi_conn_reply(c, 0, "pid %d is killed when --oom-prekill (pid %d) ends, within %u ms, "
				     "if group '%s' is still paused", (int)pid, (int)m->prekill_pid, ms,
			       m->tree.node[g].name);
		return;
	}
	int err = mgi_oom_hand_kill(m, g, pid, (unsigned)c->peer_uid, comm, sizeof(comm));
	if (err != 0) {
		mgi_conn_reply(c, err, "could not kill pid %d: %s", (int)pid, strerror(-err));
		return;
	}
	mgi_conn_reply(c, 0, "killed pid %d (%s)", (int)pid, comm);
}

void mgi_oom_on_act(mgi_manager_t *m, unsigned i, const mgi_msg_oom_act_t *a)
{
	struct mgi_conn *c = &m->conns[i];
	int g;

	if (mgi_conn_refuse_unprivileged(m, c, "act on a group's OOM") ||
	    (g = mgi_conn_lookup(m, c, a->group)) < 0)
		return;
	mgi_segment_t *seg = m->tree.node[g].seg;
	if (!atomic_load(&seg->ctl.under_oom)) {
		mgi_conn_reply(c, -EAGAIN, "group '%s' is not paused at OOM (under_oom 0): nothing "
					   "done", m->tree.node[g].name);
		return;
	}
	if (a->action == MGI_OOM_ACT_KILL) {
		act_kill(m, c, g, a->pid);
		return;
	}
	/* --resume: the OOM action the pause held back, by the group's
	 * policy, once; the setting stays (the next OOM pauses again) */
	uint64_t before = atomic_load(&seg->ctl.oom_kill);
	mgi_manager_log(m, "group '%s': uid %u resumes its OOM pause: its policy acts",
			m->tree.node[g].name, (unsigned)c->peer_uid);
	/* by hand: no pre-kill hook (its wait would outlive the reply) */
	bool done = m->prekill_done;
	m->prekill_done = true;
	if (mgi_kbackend_is(m, g))
		mgi_backstop_oom_kill(m, g);
	else
		mgi_oom_kill_joined(m, g);
	m->prekill_done = done;
	if (atomic_load(&seg->ctl.oom_kill) == before) {
		mgi_conn_reply(c, -ESRCH, "group '%s': its policy found no process to kill (see the "
					  "manager's log): still paused", m->tree.node[g].name);
		return;
	}
	atomic_store(&seg->ctl.under_oom, 0);
	mgi_conn_reply(c, 0, "group '%s' resumed: its policy killed (see the manager's log)",
		       m->tree.node[g].name);
}

/* oomkill.c - the manager's one OOM kill: choose (core/victim.c), tell the listeners, signal the pidfd, report; the next victim at once on failure; a group's OOM by its policy, scope and the descent to the child group that pays. */
#include "oom_int.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "manager.h"
#include "conn.h"
#include "escalate.h"
#include "oslayer.h"
#include "size.h"

pid_t mgi_oom_kill(mgi_manager_t *m, const mgi_oom_kill_t *k, mgi_victim_t *cand, const int *pidfd,
		   size_t n)
{
	const char *name = m->tree.node[k->target].name, *why = NULL;
	char comm[64], about[320], holds[16], where[MGI_GROUP_NAME_MAX + 16];
	static char cmd[1024];

	for (;;) {
		if (k->needed && !k->needed(m, k->target))
			return 0;
		int best = mgi_victim_choose(cand, n, &k->policy, &why);
		if (best < 0) {
			/* a group waiting at its limit asks again and again:
			 * once a second is enough to say so */
			uint64_t now = mgi_os_now_ns();
			if (!m->oom_none_ns || now - m->oom_none_ns >= 1000000000ULL) {
				m->oom_none_ns = now;
				mgi_manager_log(m, "group '%s' is out of memory and no process can be "
						   "killed: %s", name, why);
				/* the OOM action's outcome: none (counted as often
				 * as said) */
				atomic_fetch_add(&m->tree.node[k->target].seg->ctl.oom_none, 1);
				mgi_notify_ladder(m, k->target);
			}
			return 0;
		}
		mgi_victim_t *c = &cand[best];
		int held = pidfd ? pidfd[best] : -1;
		int32_t none = 0;
		c->tried = true;
		if (k->mark && !atomic_compare_exchange_strong(k->mark, &none, c->pid))
			return 0; /* another kill of this episode is under way */
		int fd = held >= 0 ? held : mgi_pidfd_open(c->pid);
		/* signal 0 first: the event below is for a kill that can be made
		 * (only the victim's own exit can come between) */
		int err = fd < 0 ? fd : mgi_pidfd_send_signal(fd, 0);
		/* the command line before the kill: a dying process's is empty */
		mgi_oom_cmdline(c->pid, cmd, sizeof(cmd));
		comm[0] = about[0] = '\0';
		if (k->describe)
			k->describe(m, (size_t)best, comm, sizeof(comm), about, sizeof(about));
		if (err == 0) {
			atomic_fetch_add(&m->tree.node[k->target].seg->ctl.oom_kill, 1);
			mgi_notify_oom(m, k->target);
			mgi_notify_ladder(m, k->target);
			int sig = k->signal ? k->signal : SIGKILL;
			err = mgi_pidfd_send_signal(fd, sig);
			if (err == 0 && k->reap && sig == SIGKILL)
				mgi_pidfd_mrelease(fd); /* best effort (Linux 5.15+) */
		}
		if (fd >= 0 && fd != held)
			close(fd);
		where[0] = '\0';
		if (c->group >= 0 && c->group != k->target)
			snprintf(where, sizeof(where), " of group '%s'", m->tree.node[c->group].name);
		if (err != 0) {
			int32_t mine = c->pid;
			if (k->mark)
				atomic_compare_exchange_strong(k->mark, &mine, 0);
			mgi_manager_log(m, "group '%s' is out of memory: could not kill pid %d (%s)%s: %s; "
					   "choosing another", name, (int)c->pid, comm, where,
					strerror(-err));
			continue;
		}
		mgi_size_format(c->pages * MGI_PAGE_SIZE, holds, sizeof(holds));
		mgi_manager_log(m, "group '%s' is out of memory %s: %s pid %d (%s)%s, which holds "
				   "%s%s", name, k->state,
				k->signal == SIGTERM ? "sending SIGTERM to" : "killing", (int)c->pid,
				comm, where, holds, about);
		mgi_oom_record(m, k, cand, n, (size_t)best, why, cmd);
		return c->pid;
	}
}

/* Reports slots under target naming a pid this manager did not see join
 * (a slot is written by agents: someone else's pid may have been put
 * there). Such a pid is never signalled. Once a second at most. */
static void report_strangers(mgi_manager_t *m, int target)
{
	uint64_t now = mgi_os_now_ns();

	if (m->oom_report_ns && now - m->oom_report_ns < 1000000000ULL)
		return;
	for (int g = 0; g < MGI_GROUPS_MAX; g++) {
		if (!m->tree.node[g].used || !mgi_tree_is_under(&m->tree, g, target))
			continue;
		for (int sl = 0; sl < MGI_PROCS_MAX; sl++) {
			pid_t pid = atomic_load(&m->tree.node[g].seg->ctl.procs[sl].pid);
			bool known = false;
			if (pid <= 0)
				continue;
			for (unsigned k = 0; k < m->nconns && !known; k++)
				known = m->conns[k].fd >= 0 && m->conns[k].group == g &&
					m->conns[k].slot == sl && m->conns[k].pid == pid;
			if (known)
				continue;
			m->oom_report_ns = now;
			mgi_manager_log(m, "group '%s': slot %d names pid %d, which did not join this "
					   "manager: not a victim, never signalled",
					m->tree.node[g].name, sl, (int)pid);
		}
	}
}

/* A page of room is enough for the agent's retry: nobody dies for nothing
 * (a victim of an earlier kill may have gone since the caller looked). */
bool mgi_oom_at_limit(mgi_manager_t *m, int target)
{
	mgi_segment_t *seg = m->tree.node[target].seg;
	return mgi_counter_margin(&seg->acct.memory, &seg->ctl.memory) == 0;
}

/* The joined candidates' connections (index), for describe; the chosen
 * subset's (kill) is compacted from them. */
static unsigned joined_conn_of[MGI_MANAGER_CONNS_MAX], kill_conn_of[MGI_MANAGER_CONNS_MAX];
static mgi_victim_t joined[MGI_MANAGER_CONNS_MAX], kill_cand[MGI_MANAGER_CONNS_MAX];
static int kill_pidfd[MGI_MANAGER_CONNS_MAX];
static mgi_victim_t units[MGI_GROUPS_MAX + 1];
static int unit_of[MGI_MANAGER_CONNS_MAX];

static void describe_kill(mgi_manager_t *m, size_t i, char *comm, size_t commlen, char *about,
			  size_t aboutlen)
{
	const struct mgi_conn *v = &m->conns[kill_conn_of[i]];
	const mgi_proc_id_t *sl = &m->tree.node[v->group].seg->ctl.procs[v->slot];

	(void)about;
	(void)aboutlen;
	snprintf(comm, commlen, "%.*s", MGI_COMM_MAX - 1, sl->comm);
}

/* The direct child of g on the way to group d (d under g, d != g). */
static int child_toward(const mgi_manager_t *m, int g, int d)
{
	while (m->tree.node[d].parent != g)
		d = m->tree.node[d].parent;
	return d;
}

/* Signals every eligible candidate in sel (the group kill scope): one
 * unit, as cgroup v2's memory.oom.group; adj -1000 stays. Returns how
 * many were signalled. */
/* The victim's connection remembers its kill: for whom, its grace, and
 * when the signal went (SIGTERM starts the grace; SIGKILL the reap wait). */
static void mark_victim(struct mgi_conn *c, int target, const struct mgi_oom_eff *e)
{
	c->oom_target = target;
	c->oom_grace_ms = e->grace_ms;
	if (e->signal == SIGTERM)
		c->oom_term_ns = mgi_os_now_ns();
	else
		c->oom_kill_ns = mgi_os_now_ns();
}

static unsigned kill_group(mgi_manager_t *m, int target, int g, const struct mgi_oom_eff *e,
			   const bool *sel, size_t n, const char *state)
{
	const mgi_victim_policy_t any = {.policy = e->policy};
	unsigned done = 0;
	size_t k = 0;

	for (size_t i = 0; i < n; i++)
		if (sel[i] && mgi_victim_score(&joined[i], &any)) {
			kill_conn_of[k] = joined_conn_of[i];
			kill_pidfd[k] = m->conns[joined_conn_of[i]].pidfd;
			kill_cand[k++] = joined[i];
		}
	/* the record names the unit's largest as its victim: its command
	 * line is read before the kill */
	static char cmd[1024];
	int rec_victim = mgi_victim_choose(kill_cand, k, &(mgi_victim_policy_t){0}, NULL);
	cmd[0] = '\0';
	if (rec_victim >= 0)
		mgi_oom_cmdline(kill_cand[rec_victim].pid, cmd, sizeof(cmd));
	for (size_t i = 0; i < k; i++) {
		struct mgi_conn *c = &m->conns[kill_conn_of[i]];
		char comm[MGI_COMM_MAX + 1];
		describe_kill(m, i, comm, sizeof(comm), NULL, 0);
		if (mgi_pidfd_send_signal(c->pidfd, e->signal) != 0)
			continue;
		if (!done) {
			/* one event and one mark for the unit */
			int32_t none = 0;
			atomic_compare_exchange_strong(&m->tree.node[target].seg->ctl.oom_victim, &none, c->pid);
			atomic_fetch_add(&m->tree.node[target].seg->ctl.oom_kill, 1);
			mgi_notify_oom(m, target);
			mgi_notify_ladder(m, target);
		}
		done++;
		mark_victim(c, target, e);
		mgi_manager_log(m, "group '%s' is out of memory %s: --oom-kill group: %s pid %d (%s) "
				   "of group '%s'", m->tree.node[target].name, state,
				e->signal == SIGTERM ? "sending SIGTERM to" : "killing", (int)c->pid, comm,
				m->tree.node[g].name);
	}
	if (done) {
		const mgi_oom_kill_t rec = {.target = target, .state = state,
					    .policy = any, .signal = e->signal, .scope = "group"};
		mgi_oom_record(m, &rec, kill_cand, k, rec_victim < 0 ? 0 : (size_t)rec_victim,
			       "--oom-kill group: every process of the group", cmd);
	}
	return done;
}

/* Fills joined[] with the processes this manager saw join under target
 * (their figures as the choice ranks them); returns how many. */
static size_t collect_joined(mgi_manager_t *m, int target)
{
	size_t n = 0;

	for (unsigned k = 0; k < m->nconns; k++) {
		struct mgi_conn *c = &m->conns[k];
		if (c->fd < 0 || c->slot < 0 || c->pidfd < 0 || !m->tree.node[c->group].used ||
		    !mgi_tree_is_under(&m->tree, c->group, target))
			continue;
		/* the process's word, clamped to its group's usage */
		mgi_segment_t *gs = m->tree.node[c->group].seg;
		uint64_t charged = mgi_segment_slot_charged(gs, c->slot);
		uint64_t kernel = mgi_oom_kernel_pages(c->pid), pages = charged > kernel ? charged : kernel;
		/* memory.low protects the group's usage up to it: each process
		 * is covered in proportion to what it holds */
		uint64_t low = atomic_load(&gs->ctl.memory.low), gusage = mgi_counter_read(&gs->acct.memory);
		uint64_t covered = low < gusage ? low : gusage;
		joined_conn_of[n] = k;
		joined[n++] = (mgi_victim_t){
			.pid = c->pid, .group = c->group, .pages = pages,
			.adj = mgi_oom_score_adj(c->pid), .age_ms = mgi_oom_age_ms(c),
			.priority = c->oom_priority, .growth = mgi_oom_growth(c, charged),
			.low_pages = gusage ? (uint64_t)((__uint128_t)covered * charged / gusage) : 0,
			/* already told to die: not chosen again */
			.tried = c->oom_term_ns || c->oom_kill_ns};
	}
	return n;
}

/*
 * An ancestor's OOM: which child group pays is the same choice over
 * groups (each group one unit, mgi_victim_group_add), by the deciding
 * group's policy; the group's own processes are one more unit. Down to a
 * group with no child holding a candidate. Returns that group; *own_only
 * when its own processes (not its children's) were chosen as the unit.
 */
static int choose_group(mgi_manager_t *m, int target, size_t n, bool *sel, bool *own_only)
{
	int g = target;

	*own_only = false;
	for (;;) {
		struct mgi_oom_eff e = mgi_oom_effective(m, g);
		mgi_victim_policy_t pol = {.policy = e.policy};
		int nunits = 1, child_unit[MGI_GROUPS_MAX];
		bool children = false;
		for (size_t i = 0; i < n; i++)
			sel[i] = mgi_tree_is_under(&m->tree, joined[i].group, g);
		mgi_oom_match_regexes(m, &e, joined, sel, n);
		for (int x = 0; x < MGI_GROUPS_MAX; x++)
			child_unit[x] = -1;
		mgi_victim_group_init(&units[0], g);
		for (size_t i = 0; i < n; i++) {
			unit_of[i] = -1;
			if (!sel[i])
				continue;
			int u = 0;
			if (joined[i].group != g) {
				int ch = child_toward(m, g, joined[i].group);
				if (child_unit[ch] < 0) {
					child_unit[ch] = nunits;
					mgi_victim_group_init(&units[nunits++], ch);
				}
				u = child_unit[ch];
				children = true;
			}
			unit_of[i] = u;
			mgi_victim_group_add(&units[u], &joined[i], &pol);
		}
		if (!children)
			return g;
		const char *why = NULL;
		int best = mgi_victim_choose(units, (size_t)nunits, &pol, &why);
		if (best < 0)
			return g; /* nobody may be chosen below: the kill says why */
		if (best == 0) {
			*own_only = true;
			return g;
		}
		mgi_manager_log(m, "group '%s' is out of memory: its child group '%s' pays (%s, "
				   "--oom-policy %s over groups)",
				target ? m->tree.node[target].name : "/",
				m->tree.node[units[best].group].name, why, mgi_oom_policy_name(e.policy));
		g = units[best].group;
	}
}

/* The process scope: one victim among joined[i] with sel[i], by e's
 * policy, through mgi_oom_kill; its grace and kill times noted. */
static void kill_process(mgi_manager_t *m, int target, const struct mgi_oom_eff *e,
			 const bool *sel, size_t n, const char *state)
{
	mgi_segment_t *seg = m->tree.node[target].seg;
	size_t k = 0;

	for (size_t i = 0; i < n; i++)
		if (sel[i]) {
			kill_conn_of[k] = joined_conn_of[i];
			kill_pidfd[k] = m->conns[joined_conn_of[i]].pidfd;
			kill_cand[k++] = joined[i];
		}
	const mgi_oom_kill_t kill = {
		.target = target,
		.state = state,
		/* the requester may hold nothing yet; adj in thousandths of the
		 * limit, as the kernel's */
		.policy = {.total_pages = mgi_counter_read_max(&seg->ctl.memory), .min_pages = 0,
			   .policy = e->policy},
		.mark = &seg->ctl.oom_victim,
		.needed = mgi_oom_at_limit,
		.describe = describe_kill,
		.signal = (int)e->signal,
	};
	pid_t pid = mgi_oom_kill(m, &kill, kill_cand, kill_pidfd, k);
	for (size_t i = 0; pid > 0 && i < k; i++) {
		struct mgi_conn *c = &m->conns[kill_conn_of[i]];
		if (c->pid != pid)
			continue;
		mark_victim(c, target, e);
		mgi_oom_arm(m);
	}
}

void mgi_oom_kill_joined(mgi_manager_t *m, int target)
{
	mgi_segment_t *seg = m->tree.node[target].seg;
	char usage[16], max[16], state[96];
	static bool sel[MGI_MANAGER_CONNS_MAX];
	bool own_only;

	mgi_manager_audit(m); /* the figures a victim is chosen by */
	report_strangers(m, target);
	size_t n = collect_joined(m, target);
	mgi_size_format(mgi_counter_read(&seg->acct.memory) * MGI_PAGE_SIZE, usage, sizeof(usage));
	mgi_size_format(mgi_counter_read_max(&seg->ctl.memory) * MGI_PAGE_SIZE, max, sizeof(max));
	snprintf(state, sizeof(state), "(usage %s, max %s) and nothing can be reclaimed", usage, max);

	int g = choose_group(m, target, n, sel, &own_only);
	struct mgi_oom_eff e = mgi_oom_effective(m, g);
	for (size_t i = 0; i < n; i++)
		sel[i] = own_only ? joined[i].group == g : mgi_tree_is_under(&m->tree, joined[i].group, g);
	mgi_oom_match_regexes(m, &e, joined, sel, n);
	if (mgi_oom_prekill_first(m, target, &e, joined, sel, n, state))
		return; /* the kill follows the hook (mgi_oom_prekill_end) */
	/* after a hook: the victim it was told of, if still a candidate */
	for (size_t i = 0; m->prekill_done && m->prekill_victim && i < n; i++)
		if (sel[i] && joined[i].pid == m->prekill_victim)
			for (size_t j = 0; j < n; j++)
				joined[j].tried = joined[j].tried || j != i;
	if (e.scope == MGI_OOM_SCOPE_GROUP) {
		if (mgi_oom_at_limit(m, target) && !mgi_oom_kill_pending(m, target) &&
		    kill_group(m, target, g, &e, sel, n, state))
			mgi_oom_arm(m);
		return;
	}
	kill_process(m, target, &e, sel, n, state);
}

/* The connection of a process this manager saw join (it holds its pidfd),
 * or NULL. */
struct mgi_conn *mgi_oom_joined_conn(mgi_manager_t *m, pid_t pid)
{
	for (unsigned k = 0; k < m->nconns; k++)
		if (m->conns[k].fd >= 0 && m->conns[k].slot >= 0 && m->conns[k].pidfd >= 0 &&
		    m->conns[k].pid == pid)
			return &m->conns[k];
	return NULL;
}

bool mgi_oom_kill_pending(mgi_manager_t *m, int target)
{
	mgi_segment_t *seg = m->tree.node[target].seg;
	int32_t victim = atomic_load(&seg->ctl.oom_victim);

	/* A process told to die for target (or below) that has not exited:
	 * within its grace, or killed and not yet seen stuck. */
	for (unsigned k = 0; k < m->nconns; k++) {
		const struct mgi_conn *c = &m->conns[k];
		if (c->fd >= 0 && c->slot >= 0 && (c->oom_term_ns || c->oom_kill_ns) && !c->oom_stuck &&
		    c->oom_target >= 0 && m->tree.node[c->oom_target].used &&
		    (c->oom_target == target || mgi_tree_is_under(&m->tree, c->oom_target, target) ||
		     mgi_tree_is_under(&m->tree, target, c->oom_target)))
			return true;
	}
	/* A pre-kill hook runs for target or a related group: the kill
	 * follows it. */
	int h = m->prekill_pid ? m->prekill_target : -1;
	if (h >= 0 && m->tree.node[h].used &&
	    (h == target || mgi_tree_is_under(&m->tree, h, target) || mgi_tree_is_under(&m->tree, target, h)))
		return true;
	/* A kill under way is one of the manager's: its victim's pidfd has
	 * not said it exited yet (then drop_conn clears the mark). Any other
	 * pid there is stale. */
	struct mgi_conn *jc = victim > 0 ? mgi_oom_joined_conn(m, victim) : NULL;
	if (jc && !jc->oom_stuck)
		return true;
	if (victim != 0)
		atomic_compare_exchange_strong(&seg->ctl.oom_victim, &victim, 0);
	return false;
}

pid_t mgi_oom_kill_host(mgi_manager_t *m, const char *state, uint64_t total_pages, bool dry_run)
{
	static bool sel[MGI_MANAGER_CONNS_MAX];
	bool own_only;
	size_t k = 0;

	mgi_manager_audit(m);
	report_strangers(m, m->scope);
	size_t n = collect_joined(m, m->scope);
	/* a group that pauses at OOM by choice (--oom-kill-disable, its own
	 * or inherited) is never the host's victim: its processes count as
	 * protected, so its unit cannot pay either */
	for (size_t i = 0; i < n; i++)
		if (mgi_oom_effective(m, joined[i].group).kill_disable)
			joined[i].protected_ = true;
	int g = choose_group(m, m->scope, n, sel, &own_only);
	struct mgi_oom_eff e = mgi_oom_effective(m, g);
	for (size_t i = 0; i < n; i++)
		sel[i] = own_only ? joined[i].group == g : mgi_tree_is_under(&m->tree, joined[i].group, g);
	mgi_oom_match_regexes(m, &e, joined, sel, n);
	if (e.scope == MGI_OOM_SCOPE_GROUP && !dry_run) {
		pid_t first = 0;
		size_t fi = 0;
		for (size_t i = 0; i < n && !first; i++)
			if (sel[i] && mgi_victim_score(&joined[i], &(mgi_victim_policy_t){.policy = e.policy}))
				first = joined[i].pid, fi = i;
		/* the hook first (--oom-prekill), told of the unit's first */
		if (first && mgi_oom_prekill_host(m, g, &e, &joined[fi], state))
			return 0;
		if (kill_group(m, g, g, &e, sel, n, state)) {
			mgi_oom_arm(m);
			return first;
		}
		return 0;
	}
	for (size_t i = 0; i < n; i++)
		if (sel[i]) {
			kill_conn_of[k] = joined_conn_of[i];
			kill_pidfd[k] = m->conns[joined_conn_of[i]].pidfd;
			kill_cand[k++] = joined[i];
		}
	/* adj in thousandths of the host's memory, as the kernel's global OOM */
	const mgi_victim_policy_t pol = {.total_pages = total_pages, .policy = e.policy};
	const char *why = NULL;
	int best = mgi_victim_choose(kill_cand, k, &pol, &why);
	if (best < 0) {
		/* said here: the kill's own line would name the scope's group
		 * (the root's name is empty) */
		mgi_manager_log(m, "host: %s%s, and no process can be killed: %s", dry_run ? "--dry-run: " : "",
				state, why);
		return 0;
	}
	if (dry_run) {
		char comm[MGI_COMM_MAX + 1], holds[16];
		describe_kill(m, (size_t)best, comm, sizeof(comm), NULL, 0);
		mgi_size_format(kill_cand[best].pages * MGI_PAGE_SIZE, holds, sizeof(holds));
		/* (--oom-kill group: every process of g, the choice's first named) */
		mgi_manager_log(m, "host: --dry-run: would %s pid %d (%s) of group '%s'%s, which holds %s "
				   "(%s, --oom-policy %s) %s; nothing done",
				e.signal == SIGTERM ? "send SIGTERM to" : "kill", (int)kill_cand[best].pid,
				comm, m->tree.node[kill_cand[best].group].name,
				e.scope == MGI_OOM_SCOPE_GROUP ? " and every other process of its group "
								 "(--oom-kill group)" : "",
				holds, why, mgi_oom_policy_name(e.policy), state);
		return kill_cand[best].pid;
	}
	/* the hook first (--oom-prekill): the kill at its end
	 * (mgi_host_ladder_after_prekill), if the host is still short */
	if (mgi_oom_prekill_host(m, g, &e, &kill_cand[best], state))
		return 0;
	const mgi_oom_kill_t kill = {
		.target = g,
		.state = state,
		.policy = pol,
		.describe = describe_kill,
		.signal = (int)e.signal,
	};
	pid_t pid = mgi_oom_kill(m, &kill, kill_cand, kill_pidfd, k);
	for (size_t i = 0; pid > 0 && i < k; i++)
		if (m->conns[kill_conn_of[i]].pid == pid) {
			mark_victim(&m->conns[kill_conn_of[i]], g, &e);
			mgi_oom_arm(m);
		}
	return pid;
}

/* oomkill.c - the manager's one OOM kill: choose (core/victim.c), tell the listeners, signal the pidfd, report; the next victim at once on failure. */
#include "oomkill.h"

#include <errno.h>
#include <fcntl.h>
#include <regex.h>
#include <stdlib.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <spawn.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "manager.h"
#include "backstop.h"
#include "conn.h"
#include "escalate.h"
#include "oslayer.h"
#include "procstatus.h"
#include "size.h"

static void cmdline_of(pid_t pid, char *buf, size_t len);
static struct mgi_conn *joined_conn(mgi_manager_t *m, pid_t pid);

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
		cmdline_of(c->pid, cmd, sizeof(cmd));
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

/* What the kernel says pid holds: RssAnon + RssShmem, in pages (0 if it
 * cannot tell). */
static uint64_t kernel_pages(pid_t pid)
{
	mgi_proc_status_t st;

	if (mgi_proc_status_read(NULL, pid, &st) != 0)
		return 0;
	return mgi_proc_status_charged_pages(&st, MGI_PAGE_SIZE);
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
static bool at_limit(mgi_manager_t *m, int target)
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

/* A group's OOM settings as they apply: each from the nearest group up
 * its path that sets it (segment.h), else the default. */
struct oom_eff {
	unsigned policy, scope, signal, grace_ms, kill_disable, prekill_ms;
	const char *prefer, *avoid, *prekill;
};

static struct oom_eff effective(const mgi_manager_t *m, int g)
{
	struct oom_eff e = {.policy = MGI_OOM_LARGEST, .scope = MGI_OOM_SCOPE_PROCESS,
			    .signal = SIGKILL, .prefer = "", .avoid = "", .prekill = ""};
	unsigned found = 0;

	for (int a = g; a >= 0 && found != MGI_OOM_SET_ALL; a = m->tree.node[a].parent) {
		const mgi_segment_ctl_t *c = &m->tree.node[a].seg->ctl;
		unsigned take = c->oom_set & ~found;
		if (take & MGI_OOM_SET_POLICY)
			e.policy = c->oom_policy <= MGI_OOM_POLICY_MAX ? c->oom_policy : MGI_OOM_LARGEST;
		if (take & MGI_OOM_SET_SCOPE)
			e.scope = c->oom_scope;
		if (take & MGI_OOM_SET_SIGNAL) {
			e.signal = c->oom_signal == SIGTERM ? SIGTERM : SIGKILL;
			e.grace_ms = c->oom_grace_ms <= MGI_OOM_GRACE_MAX_MS ? c->oom_grace_ms : 0;
		}
		if (take & MGI_OOM_SET_PREFER)
			e.prefer = c->oom_prefer;
		if (take & MGI_OOM_SET_AVOID)
			e.avoid = c->oom_avoid;
		if (take & MGI_OOM_SET_DISABLE)
			e.kill_disable = c->oom_kill_disable ? 1 : 0;
		if ((take & MGI_OOM_SET_PREKILL) && memchr(c->oom_prekill, '\0', sizeof(c->oom_prekill))) {
			e.prekill = c->oom_prekill;
			e.prekill_ms = c->oom_prekill_timeout_ms;
			if (e.prekill_ms < 1 || e.prekill_ms > MGI_OOM_PREKILL_TIMEOUT_MAX_MS)
				e.prekill_ms = 1000;
		}
		found |= take;
	}
	return e;
}

/* A process's command line, arguments joined by spaces ("" if gone). */
static void cmdline_of(pid_t pid, char *buf, size_t len)
{
	char path[48];
	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	int n = mgi_os_read_small(path, buf, len);
	if (n <= 0) {
		buf[0] = '\0';
		return;
	}
	while (n > 0 && buf[n - 1] == '\0')
		n--;
	for (int i = 0; i < n; i++)
		if (buf[i] == '\0')
			buf[i] = ' ';
	buf[n] = '\0';
}

/* /proc/PID/oom_score_adj (the kernel's, -1000..1000; 0 if unreadable). */
static int score_adj_of(pid_t pid)
{
	char path[48], buf[16];
	snprintf(path, sizeof(path), "/proc/%d/oom_score_adj", (int)pid);
	if (mgi_os_read_small(path, buf, sizeof(buf)) <= 0)
		return 0;
	long v = strtol(buf, NULL, 10);
	return v < MGI_VICTIM_ADJ_MIN ? MGI_VICTIM_ADJ_MIN : v > MGI_VICTIM_ADJ_MAX ? MGI_VICTIM_ADJ_MAX : (int)v;
}

/* Marks cand[i] (for i with sel[i]) by e's regexes, on each process's
 * command line. A regex that no longer compiles (a state file from
 * elsewhere) is reported and ignored. */
static void match_regexes_in(mgi_manager_t *m, const struct oom_eff *e, mgi_victim_t *arr,
			     const bool *sel, size_t n);
static void match_regexes(mgi_manager_t *m, const struct oom_eff *e, const bool *sel, size_t n)
{
	match_regexes_in(m, e, joined, sel, n);
}

/* ... in arr (sel NULL: every one). */
static void match_regexes_in(mgi_manager_t *m, const struct oom_eff *e, mgi_victim_t *arr,
			     const bool *sel, size_t n)
{
	regex_t rx[2];
	const char *re[2] = {e->prefer, e->avoid};
	bool ok[2] = {false, false};
	char cmd[1024];

	for (int r = 0; r < 2; r++) {
		ok[r] = re[r][0] && regcomp(&rx[r], re[r], REG_EXTENDED | REG_NOSUB) == 0;
		if (re[r][0] && !ok[r])
			mgi_manager_log(m, "--oom-%s '%s' does not compile: ignored", r ? "avoid" : "prefer",
					re[r]);
	}
	for (size_t i = 0; i < n; i++) {
		arr[i].prefer = arr[i].avoid = false;
		if ((sel && !sel[i]) || (!ok[0] && !ok[1]))
			continue;
		cmdline_of(arr[i].pid, cmd, sizeof(cmd));
		arr[i].prefer = ok[0] && regexec(&rx[0], cmd, 0, NULL, 0) == 0;
		arr[i].avoid = ok[1] && regexec(&rx[1], cmd, 0, NULL, 0) == 0;
	}
	for (int r = 0; r < 2; r++)
		if (ok[r])
			regfree(&rx[r]);
}

/* Pages conn k gained over its samples' window (--oom-policy growth). */
static uint64_t growth_of(const struct mgi_conn *c, uint64_t pages_now)
{
	if (!c->hist_n)
		return 0;
	/* the oldest sample kept: the ring's next slot once it is full */
	unsigned oldest = c->hist_n < MGI_OOM_HIST ? 0 : c->hist_next;
	uint64_t then = c->hist_pages[oldest];
	return pages_now > then ? pages_now - then : 0;
}

/* The direct child of g on the way to group d (d under g, d != g). */
static int child_toward(const mgi_manager_t *m, int g, int d)
{
	while (m->tree.node[d].parent != g)
		d = m->tree.node[d].parent;
	return d;
}

static uint64_t now_ms_since(uint64_t ns)
{
	uint64_t now = mgi_os_now_ns();
	return ns && now > ns ? (now - ns) / 1000000ULL : 0;
}

/* How long ago c's process started, as the kernel counts it (an exec
 * keeps it); since it joined when /proc cannot tell. */
static uint64_t age_ms_of(const struct mgi_conn *c)
{
	mgi_pid_stat_t st;
	uint64_t age;

	if (mgi_pid_stat_read(NULL, c->pid, &st) == 0 && (age = mgi_pid_age_ms(&st)) != UINT64_MAX)
		return age;
	return now_ms_since(c->joined_ns);
}

/* Signals every eligible candidate in sel (the group kill scope): one
 * unit, as cgroup v2's memory.oom.group; adj -1000 stays. Returns how
 * many were signalled. */
static unsigned kill_group(mgi_manager_t *m, int target, int g, const struct oom_eff *e,
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
		cmdline_of(kill_cand[rec_victim].pid, cmd, sizeof(cmd));
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
		c->oom_target = target;
		c->oom_grace_ms = e->grace_ms;
		if (e->signal == SIGTERM)
			c->oom_term_ns = mgi_os_now_ns();
		else
			c->oom_kill_ns = mgi_os_now_ns();
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

void mgi_oom_kernel_figures(mgi_manager_t *m, int g, mgi_victim_t *cand, size_t n,
			    mgi_victim_policy_t *pol)
{
	struct oom_eff e = effective(m, g);
	mgi_pid_stat_t st;

	pol->policy = e.policy;
	for (size_t i = 0; i < n; i++) {
		mgi_victim_t *c = &cand[i];
		const struct mgi_conn *jc = joined_conn(m, c->pid);
		uint64_t age;
		c->adj = score_adj_of(c->pid);
		c->age_ms = mgi_pid_stat_read(NULL, c->pid, &st) == 0 &&
				    (age = mgi_pid_age_ms(&st)) != UINT64_MAX ? age : 0;
		c->priority = jc ? jc->oom_priority : 0;
	}
	match_regexes_in(m, &e, cand, NULL, n);
}

#define TAG_PREKILL ((6ULL << 32) + 1)
#define TAG_PREKILL_REAP ((6ULL << 32) + 2)

/*
 * The pre-kill hook (--oom-prekill): the group's command, its words split
 * at spaces (no shell), run with posix_spawnp (PATH as the manager's),
 * stdin /dev/null, stdout and stderr the manager's log, no signal
 * blocked, and an environment of its own: PATH and the MEMGRP_OOM_*
 * figures. The manager does not wait: the hook's pidfd is watched in its
 * loop and the OOM tick ends it at its timeout; the kill waits
 * (mgi_oom_kill_pending) and follows when the hook is over. Returns 0 if
 * the hook runs, or -errno (logged; the kill then goes on without it).
 */
static int prekill_start(mgi_manager_t *m, int target, const struct oom_eff *e,
			 const mgi_victim_t *v, const char *state)
{
	static char words[MGI_OOM_PREKILL_MAX], env[16][640], cmd[512];
	char *argv[33], *envp[17], comm[MGI_COMM_MAX + 1] = "";
	const mgi_segment_t *seg = m->tree.node[target].seg;
	const char *path = getenv("PATH");
	int argc = 0, nenv = 0, rc;

	snprintf(words, sizeof(words), "%s", e->prekill);
	for (char *save = NULL, *w = strtok_r(words, " ", &save); w && argc < 32;
	     w = strtok_r(NULL, " ", &save))
		argv[argc++] = w;
	argv[argc] = NULL;
	if (!argc)
		return -EINVAL;
	struct mgi_conn *vc = joined_conn(m, v->pid);
	if (vc)
		snprintf(comm, sizeof(comm), "%.*s", MGI_COMM_MAX - 1,
			 m->tree.node[vc->group].seg->ctl.procs[vc->slot].comm);
	cmdline_of(v->pid, cmd, sizeof(cmd));
#define ENV(...) snprintf(env[nenv], sizeof(env[nenv]), __VA_ARGS__), envp[nenv] = env[nenv], nenv++
	ENV("PATH=%s", path ? path : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
	ENV("MEMGRP_OOM_GROUP=%s", m->tree.node[target].name);
	ENV("MEMGRP_OOM_REASON=%s", state);
	ENV("MEMGRP_OOM_POLICY=%s", mgi_oom_policy_name(e->policy));
	ENV("MEMGRP_OOM_SCOPE=%s", e->scope == MGI_OOM_SCOPE_GROUP ? "group" : "process");
	ENV("MEMGRP_OOM_SIGNAL=%s", e->signal == SIGTERM ? "TERM" : "KILL");
	ENV("MEMGRP_OOM_USAGE=%llu", (unsigned long long)mgi_counter_read(&seg->acct.memory) * MGI_PAGE_SIZE);
	ENV("MEMGRP_OOM_LIMIT=%llu", (unsigned long long)mgi_counter_read_max(&seg->ctl.memory) * MGI_PAGE_SIZE);
	ENV("MEMGRP_OOM_VICTIM_PID=%d", (int)v->pid);
	ENV("MEMGRP_OOM_VICTIM_GROUP=%s", v->group >= 0 ? m->tree.node[v->group].name : "");
	ENV("MEMGRP_OOM_VICTIM_COMM=%s", comm);
	ENV("MEMGRP_OOM_VICTIM_CMDLINE=%s", cmd);
	ENV("MEMGRP_OOM_VICTIM_CHARGED=%llu", (unsigned long long)v->pages * MGI_PAGE_SIZE);
	ENV("MEMGRP_OOM_VICTIM_AGE_MS=%llu", (unsigned long long)v->age_ms);
	ENV("MEMGRP_OOM_TIMEOUT_MS=%u", e->prekill_ms);
#undef ENV
	envp[nenv] = NULL;

	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, dfl;
	pid_t pid;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, STDERR_FILENO, STDOUT_FILENO);
	posix_spawnattr_init(&at);
	sigemptyset(&none);
	sigfillset(&dfl);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &dfl);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	rc = -posix_spawnp(&pid, argv[0], &fa, &at, argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	if (rc != 0) {
		mgi_manager_log(m, "group '%s': --oom-prekill '%s' could not run: %s; the kill goes "
				   "on", m->tree.node[target].name, e->prekill, strerror(-rc));
		return rc;
	}
	int fd = mgi_pidfd_open(pid);
	if (fd < 0 || mgi_manager_watch(m, fd, TAG_PREKILL) != 0) {
		/* cannot watch it: end it, and kill without it */
		rc = fd < 0 ? fd : -errno;
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		if (fd >= 0)
			close(fd);
		mgi_manager_log(m, "group '%s': --oom-prekill cannot be watched: %s; the kill goes on",
				m->tree.node[target].name, strerror(-rc));
		return rc;
	}
	m->prekill_pid = pid;
	m->prekill_pidfd = fd;
	m->prekill_target = target;
	m->prekill_victim = v->pid;
	m->prekill_start_ns = mgi_os_now_ns();
	m->prekill_deadline_ns = m->prekill_start_ns + (uint64_t)e->prekill_ms * 1000000ULL;
	mgi_manager_log(m, "group '%s' is out of memory %s: running --oom-prekill (pid %d) before "
			   "the kill of pid %d (%s), for at most %u ms", m->tree.node[target].name, state,
			(int)pid, (int)v->pid, comm, e->prekill_ms);
	mgi_oom_arm(m);
	return 0;
}

/* Whether the kill at target's OOM should wait for a pre-kill hook: one
 * runs (for any group: one at a time), or one starts now for the victim
 * the kill would take (sel: the candidates). */
static bool prekill_first(mgi_manager_t *m, int target, const struct oom_eff *e, const bool *sel,
			  size_t n, const char *state)
{
	if (m->prekill_pid)
		return true;
	if (!e->prekill[0] || m->prekill_done || !at_limit(m, target))
		return false;
	/* the victim as the kill will choose it (the group scope: the unit's
	 * largest, as its record names) */
	mgi_victim_policy_t pol = {.total_pages = mgi_counter_read_max(&m->tree.node[target].seg->ctl.memory),
				   .policy = e->scope == MGI_OOM_SCOPE_GROUP ? MGI_OOM_LARGEST : e->policy};
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (sel[i])
			kill_cand[k++] = joined[i];
	int best = mgi_victim_choose(kill_cand, k, &pol, NULL);
	if (best < 0)
		return false; /* nobody: the kill says so */
	return prekill_start(m, target, e, &kill_cand[best], state) == 0;
}

/* The hook is over (exited, or killed at its timeout): the kill it
 * preceded, of the same victim if it is still a candidate. */
static void prekill_end(mgi_manager_t *m, bool timed_out)
{
	int st = 0, target = m->prekill_target;
	uint64_t ms = (mgi_os_now_ns() - m->prekill_start_ns) / 1000000ULL;
	pid_t pid = m->prekill_pid;
	char how[64];

	if (timed_out) {
		mgi_pidfd_send_signal(m->prekill_pidfd, SIGKILL);
		snprintf(how, sizeof(how), "did not finish within %llu ms: killed", (unsigned long long)ms);
	}
	pid_t r = waitpid(pid, &st, WNOHANG);
	if (!timed_out) {
		if (r == pid && WIFEXITED(st))
			snprintf(how, sizeof(how), "exited with status %d after %llu ms", WEXITSTATUS(st),
				 (unsigned long long)ms);
		else if (r == pid)
			snprintf(how, sizeof(how), "died of signal %d after %llu ms", WTERMSIG(st),
				 (unsigned long long)ms);
		else
			snprintf(how, sizeof(how), "ended after %llu ms", (unsigned long long)ms);
	}
	if (r == 0) {
		/* killed, not yet reaped: its pidfd says when (an older one
		 * still waiting is reaped now: SIGKILL was sent long ago) */
		if (m->prekill_reap_pid) {
			waitpid(m->prekill_reap_pid, NULL, 0);
			close(m->prekill_reap_pidfd);
		}
		m->prekill_reap_pid = pid;
		m->prekill_reap_pidfd = m->prekill_pidfd;
		epoll_ctl(m->epfd, EPOLL_CTL_DEL, m->prekill_pidfd, NULL);
		mgi_manager_watch(m, m->prekill_pidfd, TAG_PREKILL_REAP);
	} else {
		close(m->prekill_pidfd); /* (also leaves the epoll set) */
	}
	m->prekill_pid = 0;
	m->prekill_pidfd = -1;
	if (target < 0 || target >= MGI_GROUPS_MAX || !m->tree.node[target].used)
		return;
	mgi_manager_log(m, "group '%s': --oom-prekill (pid %d) %s; %s", m->tree.node[target].name,
			(int)pid, how, at_limit(m, target) ? "the kill follows"
							   : "the group has room now: nobody is killed");
	m->prekill_done = true;
	mgi_oom_kill_joined(m, target);
	m->prekill_done = false;
	m->prekill_victim = 0;
}

void mgi_oom_kill_joined(mgi_manager_t *m, int target)
{
	mgi_segment_t *seg = m->tree.node[target].seg;
	char usage[16], max[16], state[96];
	static bool sel[MGI_MANAGER_CONNS_MAX];
	size_t n = 0;

	mgi_manager_audit(m); /* the figures a victim is chosen by */
	report_strangers(m, target);
	for (unsigned k = 0; k < m->nconns; k++) {
		struct mgi_conn *c = &m->conns[k];
		if (c->fd < 0 || c->slot < 0 || c->pidfd < 0 || !m->tree.node[c->group].used ||
		    !mgi_tree_is_under(&m->tree, c->group, target))
			continue;
		/* the process's word, clamped to its group's usage */
		mgi_segment_t *gs = m->tree.node[c->group].seg;
		uint64_t charged = mgi_segment_slot_charged(gs, c->slot);
		uint64_t kernel = kernel_pages(c->pid), pages = charged > kernel ? charged : kernel;
		/* memory.low protects the group's usage up to it: each process
		 * is covered in proportion to what it holds */
		uint64_t low = atomic_load(&gs->ctl.memory.low), gusage = mgi_counter_read(&gs->acct.memory);
		uint64_t covered = low < gusage ? low : gusage;
		joined_conn_of[n] = k;
		joined[n++] = (mgi_victim_t){
			.pid = c->pid, .group = c->group, .pages = pages,
			.adj = score_adj_of(c->pid), .age_ms = age_ms_of(c),
			.priority = c->oom_priority, .growth = growth_of(c, charged),
			.low_pages = gusage ? (uint64_t)((__uint128_t)covered * charged / gusage) : 0,
			/* already told to die: not chosen again */
			.tried = c->oom_term_ns || c->oom_kill_ns};
	}
	mgi_size_format(mgi_counter_read(&seg->acct.memory) * MGI_PAGE_SIZE, usage, sizeof(usage));
	mgi_size_format(mgi_counter_read_max(&seg->ctl.memory) * MGI_PAGE_SIZE, max, sizeof(max));
	snprintf(state, sizeof(state), "(usage %s, max %s) and nothing can be reclaimed", usage, max);

	/* An ancestor's OOM: which child group pays is the same choice over
	 * groups (each group one unit, mgi_victim_group_add), by the deciding
	 * group's policy; the group's own processes are one more unit. Down
	 * to a group with no child holding a candidate. */
	int g = target;
	bool own_only = false;
	for (;;) {
		struct oom_eff e = effective(m, g);
		mgi_victim_policy_t pol = {.policy = e.policy};
		int nunits = 1, child_unit[MGI_GROUPS_MAX];
		bool children = false;
		for (size_t i = 0; i < n; i++)
			sel[i] = mgi_tree_is_under(&m->tree, joined[i].group, g);
		match_regexes(m, &e, sel, n);
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
			break;
		const char *why = NULL;
		int best = mgi_victim_choose(units, (size_t)nunits, &pol, &why);
		if (best < 0)
			break; /* nobody may be chosen below: the kill says why */
		if (best == 0) {
			own_only = true;
			break;
		}
		mgi_manager_log(m, "group '%s' is out of memory: its child group '%s' pays (%s, "
				   "--oom-policy %s over groups)", m->tree.node[target].name,
				m->tree.node[units[best].group].name, why, mgi_oom_policy_name(e.policy));
		g = units[best].group;
	}
	struct oom_eff e = effective(m, g);
	for (size_t i = 0; i < n; i++)
		sel[i] = own_only ? joined[i].group == g : mgi_tree_is_under(&m->tree, joined[i].group, g);
	match_regexes(m, &e, sel, n);
	if (prekill_first(m, target, &e, sel, n, state))
		return; /* the kill follows the hook (prekill_end) */
	/* after a hook: the victim it was told of, if still a candidate */
	for (size_t i = 0; m->prekill_done && m->prekill_victim && i < n; i++)
		if (sel[i] && joined[i].pid == m->prekill_victim)
			for (size_t j = 0; j < n; j++)
				joined[j].tried = joined[j].tried || j != i;
	if (e.scope == MGI_OOM_SCOPE_GROUP) {
		if (at_limit(m, target) && !mgi_oom_kill_pending(m, target) &&
		    kill_group(m, target, g, &e, sel, n, state))
			mgi_oom_arm(m);
		return;
	}
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
			   .policy = e.policy},
		.mark = &seg->ctl.oom_victim,
		.needed = at_limit,
		.describe = describe_kill,
		.signal = (int)e.signal,
	};
	pid_t pid = mgi_oom_kill(m, &kill, kill_cand, kill_pidfd, k);
	for (size_t i = 0; pid > 0 && i < k; i++) {
		struct mgi_conn *c = &m->conns[kill_conn_of[i]];
		if (c->pid != pid)
			continue;
		c->oom_target = target;
		c->oom_grace_ms = e.grace_ms;
		if (e.signal == SIGTERM)
			c->oom_term_ns = mgi_os_now_ns();
		else
			c->oom_kill_ns = mgi_os_now_ns();
		mgi_oom_arm(m);
	}
}

/* The connection of a process this manager saw join (it holds its pidfd),
 * or NULL. */
static struct mgi_conn *joined_conn(mgi_manager_t *m, pid_t pid)
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
	struct mgi_conn *jc = victim > 0 ? joined_conn(m, victim) : NULL;
	if (jc && !jc->oom_stuck)
		return true;
	if (victim != 0)
		atomic_compare_exchange_strong(&seg->ctl.oom_victim, &victim, 0);
	return false;
}

/* Writes s as a JSON string (quoted, escaped) at *p within end. */
static void json_str(char **p, char *end, const char *s)
{
	if (*p >= end)
		return;
	*(*p)++ = '"';
	for (; *s && *p < end - 8; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\') {
			*(*p)++ = '\\';
			*(*p)++ = (char)ch;
		} else if (ch < 0x20 || ch >= 0x7f) {
			/* bytes as \u00XX: a command line is the process's word,
			 * not necessarily UTF-8 */
			*p += snprintf(*p, (size_t)(end - *p), "\\u%04x", ch);
		} else {
			*(*p)++ = (char)ch;
		}
	}
	if (*p < end - 1)
		*(*p)++ = '"';
	**p = '\0';
}

#define APPEND(p, end, ...)                                                       \
	do {                                                                      \
		if ((p) < (end))                                                  \
			(p) += snprintf((p), (size_t)((end) - (p)), __VA_ARGS__); \
		if ((p) > (end))                                                  \
			(p) = (end);                                              \
	} while (0)

struct mgi_oom_records {
	uint64_t next_seq;
	struct {
		uint64_t seq; /* 0: empty */
		int target;
		char text[MGI_OOM_RECORD_MAX];
	} r[MGI_OOM_RECORDS];
};

/* Keeps a record for OOM_RECORD_REQ (memgrp events --json), the oldest
 * dropped; without memory for the ring the log alone has it. */
static void keep_record(mgi_manager_t *m, int target, const char *text, size_t len)
{
	struct mgi_oom_records *rs = m->oom_records;

	if (!rs && !(rs = m->oom_records = calloc(1, sizeof(*rs))))
		return;
	uint64_t seq = ++rs->next_seq;
	size_t slot = (size_t)(seq % MGI_OOM_RECORDS);
	rs->r[slot].seq = seq;
	rs->r[slot].target = target;
	if (len >= MGI_OOM_RECORD_MAX)
		len = MGI_OOM_RECORD_MAX - 1;
	memcpy(rs->r[slot].text, text, len);
	rs->r[slot].text[len] = '\0';
}

void mgi_oom_on_record_req(mgi_manager_t *m, unsigned i, const mgi_msg_oom_record_req_t *req)
{
	struct mgi_conn *c = &m->conns[i];
	const struct mgi_oom_records *rs = m->oom_records;
	int g = mgi_conn_lookup(m, c, req->group), best = -1;
	static mgi_msg_t out;

	if (g < 0)
		return;
	if (!mgi_conn_may_watch(m, c, g)) {
		mgi_conn_reply(c, -EPERM, "group '%s' is not yours to watch", m->tree.node[g].name);
		return;
	}
	for (int s = 0; rs && s < MGI_OOM_RECORDS; s++) {
		int t = rs->r[s].target;
		if (rs->r[s].seq <= req->after || t < 0 || t >= MGI_GROUPS_MAX || !m->tree.node[t].used ||
		    !(t == g || mgi_tree_is_under(&m->tree, t, g) || mgi_tree_is_under(&m->tree, g, t)))
			continue;
		if (best < 0 || rs->r[s].seq < rs->r[best].seq)
			best = s;
	}
	if (best < 0) {
		mgi_conn_reply(c, -ENOENT, "no OOM record after %llu for group '%s'",
			       (unsigned long long)req->after, m->tree.node[g].name);
		return;
	}
	mgi_msg_init(&out, MGI_MSG_OOM_RECORD);
	out.oom_record.seq = rs->r[best].seq;
	out.oom_record.len = (uint32_t)strlen(rs->r[best].text);
	memcpy(out.oom_record.text, rs->r[best].text, out.oom_record.len + 1);
	send(c->fd, &out, out.hdr.len, MSG_NOSIGNAL | MSG_DONTWAIT);
}

void mgi_oom_record(mgi_manager_t *m, const mgi_oom_kill_t *k, const mgi_victim_t *cand, size_t n,
		    size_t victim, const char *why, const char *cmd)
{
	static char buf[MGI_OOM_RECORD_MAX];
	char *p = buf, *end = buf + sizeof(buf) - 2; /* room for a newline */
	const mgi_segment_t *seg = m->tree.node[k->target].seg;
	const mgi_victim_t *v = &cand[victim];
	struct timespec ts;
	int sig = k->signal ? k->signal : SIGKILL;

	clock_gettime(CLOCK_REALTIME, &ts);
	APPEND(p, end, "{\"time\": %lld.%03ld, \"group\": ", (long long)ts.tv_sec, ts.tv_nsec / 1000000);
	json_str(&p, end, m->tree.node[k->target].name);
	APPEND(p, end, ", \"reason\": ");
	json_str(&p, end, k->state ? k->state : "");
	APPEND(p, end, ", \"policy\": \"%s\", \"scope\": \"%s\", \"signal\": \"%s\", \"victim\": "
		       "{\"pid\": %d, \"group\": ", mgi_oom_policy_name(k->policy.policy),
	       k->scope ? k->scope : "process", sig == SIGTERM ? "TERM" : "KILL", (int)v->pid);
	json_str(&p, end, v->group >= 0 && v->group < MGI_GROUPS_MAX ? m->tree.node[v->group].name : "");
	APPEND(p, end, ", \"cmdline\": ");
	/* at most 400 bytes of it: escaped (6 bytes a control byte at worst)
	 * the record still fits its MGI_OOM_RECORD_MAX whole */
	char shortcmd[401];
	snprintf(shortcmd, sizeof(shortcmd), "%s", cmd ? cmd : "");
	json_str(&p, end, shortcmd);
	APPEND(p, end, ", \"charged\": %llu, \"age_ms\": %llu, \"priority\": %d, \"oom_score_adj\": %d, "
		       "\"chosen\": ", (unsigned long long)v->pages * MGI_PAGE_SIZE,
	       (unsigned long long)v->age_ms, v->priority, v->adj);
	json_str(&p, end, why ? why : "");
	APPEND(p, end, "}, \"stats\": {\"usage\": %llu, \"max_usage\": %llu, \"limit\": %llu, "
		       "\"failcnt\": %llu, \"oom_kill\": %llu, \"candidates\": %zu}, \"largest\": [",
	       (unsigned long long)mgi_counter_read(&seg->acct.memory) * MGI_PAGE_SIZE,
	       (unsigned long long)atomic_load(&seg->acct.memory.watermark) * MGI_PAGE_SIZE,
	       (unsigned long long)mgi_counter_read_max(&seg->ctl.memory) * MGI_PAGE_SIZE,
	       (unsigned long long)atomic_load(&seg->acct.memory.failcnt),
	       (unsigned long long)atomic_load(&seg->ctl.oom_kill), n);
	/* the three largest candidates, largest first (n is small: a
	 * selection, not a sort) */
	static bool shown[MGI_MANAGER_CONNS_MAX];
	memset(shown, 0, sizeof(shown));
	for (int r = 0; r < 3; r++) {
		int big = -1;
		for (size_t i = 0; i < n && i < MGI_MANAGER_CONNS_MAX; i++)
			if (!shown[i] && (big < 0 || cand[i].pages > cand[big].pages))
				big = (int)i;
		if (big < 0)
			break;
		shown[big] = true;
		APPEND(p, end, "%s{\"pid\": %d, \"charged\": %llu}", r ? ", " : "", (int)cand[big].pid,
		       (unsigned long long)cand[big].pages * MGI_PAGE_SIZE);
	}
	APPEND(p, end, "]}");
	keep_record(m, k->target, buf, (size_t)(p - buf));
	/* Its own line in the log, whole: mgi_manager_log cuts at 400 bytes.
	 * Nothing in it needs escaping for the log (json_str escaped every
	 * control byte a client could have put there). One write: the line
	 * is not interleaved with another writer's. */
	char head[96];
	struct tm tm;
	localtime_r(&ts.tv_sec, &tm);
	int hn = snprintf(head, sizeof(head), "%s: %02d:%02d:%02d oom-record ", m->who, tm.tm_hour,
			  tm.tm_min, tm.tm_sec);
	if (p == buf || p[-1] != '\n')
		*p++ = '\n'; /* cut short (a huge command line): the line still ends */
	struct iovec iov[2] = {{head, (size_t)hn}, {buf, (size_t)(p - buf)}};
	if (writev(STDERR_FILENO, iov, 2) < 0) {
		/* the log is gone: nothing to tell it */
	}
}

void mgi_oom_joined(mgi_manager_t *m, unsigned conn)
{
	struct mgi_conn *c = &m->conns[conn];
	c->joined_ns = mgi_os_now_ns();
	c->hist_n = 1;
	c->hist_next = 1;
	c->hist_ns[0] = c->joined_ns;
	c->hist_pages[0] = 0;
	c->oom_target = -1;
}

void mgi_oom_on_priority(mgi_manager_t *m, unsigned i, const mgi_msg_oom_priority_t *p)
{
	struct mgi_conn *c = &m->conns[i];
	pid_t pid = p->pid ? p->pid : c->peer_pid;
	bool own = c->slot >= 0 && pid == c->pid;

	if (pid != c->peer_pid && !mgi_conn_privileged(m, c)) {
		mgi_conn_reply(c, -EPERM, "only root or the manager's user may set another process's "
					  "OOM priority (pid %d is not yours)", (int)pid);
		return;
	}
	struct mgi_conn *t = joined_conn(m, pid);
	if (!t) {
		if (!own)
			mgi_conn_reply(c, -ESRCH, "pid %d has not joined this manager", (int)pid);
		return;
	}
	t->oom_priority = p->priority;
	/* kept in its slot too: a restarted manager gives it back at rejoin */
	m->tree.node[t->group].seg->ctl.procs[t->slot].oom_priority = p->priority;
	mgi_manager_log(m, "group '%s': pid %d's OOM priority is %d", m->tree.node[t->group].name,
			(int)pid, p->priority);
	if (!own)
		mgi_conn_reply(c, 0, "%s", "");
}

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

	if (m->oom_pause_off || !effective(m, target).kill_disable)
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

/* memgrp oom G --kill PID: the process, if it joined under g. */
static void act_kill(mgi_manager_t *m, struct mgi_conn *c, int g, pid_t pid)
{
	struct mgi_conn *v = joined_conn(m, pid);
	char state[160], comm[MGI_COMM_MAX + 1];
	static char cmd[1024];

	if (!v || !mgi_tree_is_under(&m->tree, v->group, g)) {
		mgi_conn_reply(c, -ESRCH, "pid %d is not a process of group '%s' (nor of a group "
					  "below it) that joined this manager: nothing killed", (int)pid,
			       m->tree.node[g].name);
		return;
	}
	const mgi_segment_t *vs = m->tree.node[v->group].seg;
	uint64_t charged = mgi_segment_slot_charged(vs, v->slot), kernel = kernel_pages(pid);
	mgi_victim_t cand = {.pid = pid, .group = v->group,
			     .pages = charged > kernel ? charged : kernel, .adj = score_adj_of(pid),
			     .age_ms = age_ms_of(v), .priority = v->oom_priority};
	snprintf(comm, sizeof(comm), "%.*s", MGI_COMM_MAX - 1, vs->ctl.procs[v->slot].comm);
	cmdline_of(pid, cmd, sizeof(cmd));
	int err = mgi_pidfd_send_signal(v->pidfd, SIGKILL);
	if (err != 0) {
		mgi_conn_reply(c, err, "could not kill pid %d: %s", (int)pid, strerror(-err));
		return;
	}
	atomic_fetch_add(&m->tree.node[g].seg->ctl.oom_kill, 1);
	mgi_notify_ladder(m, g);
	/* its memory back now: the waiting faults resume without its exit */
	mgi_pidfd_mrelease(v->pidfd);
	v->oom_target = g;
	v->oom_kill_ns = mgi_os_now_ns();
	mgi_oom_arm(m);
	usage_state(m, g, " and paused: killed by hand (memgrp oom --kill)", state, sizeof(state));
	mgi_manager_log(m, "group '%s' is out of memory %s: pid %d (%s), uid %u's choice",
			m->tree.node[g].name, state, (int)pid, comm, (unsigned)c->peer_uid);
	const mgi_oom_kill_t rec = {.target = g, .state = state,
				    .policy = {.policy = effective(m, g).policy}};
	mgi_oom_record(m, &rec, &cand, 1, 0, "named by memgrp oom --kill", cmd);
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
	if (mgi_kbackend_is(m, g)) {
		mgi_backstop_oom_kill(m, g);
	} else {
		/* by hand: no pre-kill hook (its wait would outlive the reply) */
		bool done = m->prekill_done;
		m->prekill_done = true;
		mgi_oom_kill_joined(m, g);
		m->prekill_done = done;
	}
	if (atomic_load(&seg->ctl.oom_kill) == before) {
		mgi_conn_reply(c, -ESRCH, "group '%s': its policy found no process to kill (see the "
					  "manager's log): still paused", m->tree.node[g].name);
		return;
	}
	atomic_store(&seg->ctl.under_oom, 0);
	mgi_conn_reply(c, 0, "group '%s' resumed: its policy killed (see the manager's log)",
		       m->tree.node[g].name);
}

/* How long a victim may take to exit after SIGKILL before it is taken
 * for stuck (uninterruptible sleep) and the next one is chosen. */
#define OOM_STUCK_MS 1000
#define TAG_OOMKILL_TIMER (6ULL << 32)
#define OOM_TICK_MS 100

static bool growth_wanted(const mgi_manager_t *m)
{
	for (int g = 0; g < MGI_GROUPS_MAX; g++)
		if (m->tree.node[g].used && (m->tree.node[g].seg->ctl.oom_set & MGI_OOM_SET_POLICY) &&
		    m->tree.node[g].seg->ctl.oom_policy == MGI_OOM_GROWTH)
			return true;
	return false;
}

static bool dying(const struct mgi_conn *c)
{
	return c->fd >= 0 && c->slot >= 0 && (c->oom_term_ns || c->oom_kill_ns) && !c->oom_stuck;
}

static bool any_paused(const mgi_manager_t *m)
{
	for (int g = 0; g < MGI_GROUPS_MAX; g++)
		if (m->tree.node[g].used && atomic_load(&m->tree.node[g].seg->ctl.under_oom))
			return true;
	return false;
}

void mgi_oom_arm(mgi_manager_t *m)
{
	bool want = growth_wanted(m) || any_paused(m) || m->prekill_pid;

	for (unsigned k = 0; k < m->nconns && !want; k++)
		want = dying(&m->conns[k]);
	if (want == m->oom_timer_armed)
		return;
	if (want && m->oom_timerfd <= 0) {
		int fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
		if (fd == 0) { /* 0 means "not made" here */
			fd = fcntl(0, F_DUPFD_CLOEXEC, 1);
			close(0);
		}
		if (fd < 0 || mgi_manager_watch(m, fd, TAG_OOMKILL_TIMER) != 0) {
			mgi_manager_log(m, "OOM timer: %s: graces end at the next OOM request",
					strerror(errno));
			if (fd > 0)
				close(fd);
			return;
		}
		m->oom_timerfd = fd;
	}
	if (m->oom_timerfd <= 0)
		return;
	struct itimerspec its = {{0, 0}, {0, 0}};
	if (want)
		its.it_value.tv_nsec = its.it_interval.tv_nsec = OOM_TICK_MS * 1000000L;
	timerfd_settime(m->oom_timerfd, 0, &its, NULL);
	m->oom_timer_armed = want;
}

/* A victim's state letter from /proc/PID/stat ('?' if unknown). */
static char state_of(pid_t pid)
{
	mgi_pid_stat_t st;
	return mgi_pid_stat_read(NULL, pid, &st) == 0 ? st.state : '?';
}

static void oom_tick(mgi_manager_t *m)
{
	uint64_t now = mgi_os_now_ns();
	bool sample = growth_wanted(m) && now - m->oom_sample_ns >= MGI_OOM_SAMPLE_MS * 1000000ULL;

	if (sample)
		m->oom_sample_ns = now;
	for (unsigned k = 0; k < m->nconns; k++) {
		struct mgi_conn *c = &m->conns[k];
		if (c->fd < 0 || c->slot < 0 || !m->tree.node[c->group].used)
			continue;
		if (sample) {
			c->hist_ns[c->hist_next] = now;
			c->hist_pages[c->hist_next] = mgi_segment_slot_charged(m->tree.node[c->group].seg, c->slot);
			c->hist_next = (uint8_t)((c->hist_next + 1) % MGI_OOM_HIST);
			if (c->hist_n < MGI_OOM_HIST)
				c->hist_n++;
		}
		if (c->oom_term_ns && !c->oom_kill_ns &&
		    now - c->oom_term_ns >= (uint64_t)c->oom_grace_ms * 1000000ULL) {
			/* the grace is over: SIGKILL, and its memory back at once */
			c->oom_kill_ns = now;
			if (c->pidfd >= 0 && mgi_pidfd_send_signal(c->pidfd, SIGKILL) == 0) {
				mgi_manager_log(m, "group '%s': pid %d did not exit within its %u ms "
						   "grace: killing it", m->tree.node[c->group].name, (int)c->pid,
						c->oom_grace_ms);
				mgi_pidfd_mrelease(c->pidfd);
			}
		} else if (c->oom_kill_ns && !c->oom_stuck && now - c->oom_kill_ns >= OOM_STUCK_MS * 1000000ULL) {
			/* never a hang: report it and let the next victim be chosen */
			char st = state_of(c->pid);
			c->oom_stuck = true;
			mgi_manager_log(m, "group '%s': pid %d has not exited %d ms after SIGKILL (state "
					   "%c%s): choosing the next victim", m->tree.node[c->group].name,
					(int)c->pid, OOM_STUCK_MS, st,
					st == 'D' ? ", uninterruptible sleep" : "");
			if (c->oom_target >= 0)
				mgi_conn_clear_victim(m, c->oom_target, c->pid);
		}
	}
	if (m->prekill_pid && now >= m->prekill_deadline_ns)
		prekill_end(m, true);
	mgi_oom_pause_check(m);
	mgi_oom_arm(m);
}

bool mgi_oom_event(mgi_manager_t *m, uint64_t tag)
{
	uint64_t v;

	if (tag == TAG_PREKILL) {
		if (m->prekill_pid)
			prekill_end(m, false);
		return true;
	}
	if (tag == TAG_PREKILL_REAP) {
		if (m->prekill_reap_pid) {
			waitpid(m->prekill_reap_pid, NULL, WNOHANG);
			close(m->prekill_reap_pidfd);
			m->prekill_reap_pid = 0;
		}
		return true;
	}
	if (tag != TAG_OOMKILL_TIMER)
		return false;
	if (m->oom_timerfd > 0 && read(m->oom_timerfd, &v, sizeof(v)) < 0) {
		/* EAGAIN: nothing */
	}
	oom_tick(m);
	return true;
}

void mgi_oom_destroy(mgi_manager_t *m)
{
	/* a hook still running ends with its manager */
	if (m->prekill_pid) {
		mgi_pidfd_send_signal(m->prekill_pidfd, SIGKILL);
		waitpid(m->prekill_pid, NULL, 0);
		close(m->prekill_pidfd);
		m->prekill_pid = 0;
	}
	if (m->prekill_reap_pid) {
		waitpid(m->prekill_reap_pid, NULL, 0);
		close(m->prekill_reap_pidfd);
		m->prekill_reap_pid = 0;
	}
	if (m->oom_timerfd > 0)
		close(m->oom_timerfd);
	m->oom_timerfd = 0;
	m->oom_timer_armed = false;
	free(m->oom_records);
	m->oom_records = NULL;
}

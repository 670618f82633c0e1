/* oom_figures.c - what the OOM choice ranks processes by: a group's effective OOM settings, age, growth, oom_score_adj, command line and its regexes, --oom-priority. */
#include "oom_int.h"

#include <regex.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "manager.h"
#include "conn.h"
#include "oslayer.h"
#include "procstatus.h"

/* What the kernel says pid holds: RssAnon + RssShmem, in pages (0 if it
 * cannot tell). */
uint64_t mgi_oom_kernel_pages(pid_t pid)
{
	mgi_proc_status_t st;

	if (mgi_proc_status_read(NULL, pid, &st) != 0)
		return 0;
	return mgi_proc_status_charged_pages(&st, MGI_PAGE_SIZE);
}

struct mgi_oom_eff mgi_oom_effective(const mgi_manager_t *m, int g)
{
	struct mgi_oom_eff e = {.policy = MGI_OOM_LARGEST, .scope = MGI_OOM_SCOPE_PROCESS,
			    .signal = SIGKILL, .prefer = "", .avoid = "", .prekill = "",
			    .handler_ms = MGI_OOM_HANDLER_TIMEOUT_DEFAULT_MS};
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
		if ((take & MGI_OOM_SET_HANDLER) && c->oom_handler_timeout_ms >= 1 &&
		    c->oom_handler_timeout_ms <= MGI_OOM_HANDLER_TIMEOUT_MAX_MS)
			e.handler_ms = c->oom_handler_timeout_ms;
		if (take & MGI_OOM_SET_RESERVE)
			e.reserve_pages = c->oom_reserve_pages;
		found |= take;
	}
	return e;
}


/* A process's command line, arguments joined by spaces ("" if gone). */
void mgi_oom_cmdline(pid_t pid, char *buf, size_t len)
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
int mgi_oom_score_adj(pid_t pid)
{
	char path[48], buf[16];
	snprintf(path, sizeof(path), "/proc/%d/oom_score_adj", (int)pid);
	if (mgi_os_read_small(path, buf, sizeof(buf)) <= 0)
		return 0;
	long v = strtol(buf, NULL, 10);
	return v < MGI_VICTIM_ADJ_MIN ? MGI_VICTIM_ADJ_MIN : v > MGI_VICTIM_ADJ_MAX ? MGI_VICTIM_ADJ_MAX : (int)v;
}

/* Marks arr[i] (for i with sel[i]; sel NULL: every one) by e's regexes,
 * on each process's command line. A regex that no longer compiles (a
 * state file from elsewhere) is reported and ignored. */
void mgi_oom_match_regexes(mgi_manager_t *m, const struct mgi_oom_eff *e, mgi_victim_t *arr,
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
		mgi_oom_cmdline(arr[i].pid, cmd, sizeof(cmd));
		arr[i].prefer = ok[0] && regexec(&rx[0], cmd, 0, NULL, 0) == 0;
		arr[i].avoid = ok[1] && regexec(&rx[1], cmd, 0, NULL, 0) == 0;
	}
	for (int r = 0; r < 2; r++)
		if (ok[r])
			regfree(&rx[r]);
}


/* Pages conn k gained over its samples' window (--oom-policy growth). */
uint64_t mgi_oom_growth(const struct mgi_conn *c, uint64_t pages_now)
{
	if (!c->hist_n)
		return 0;
	/* the oldest sample kept: the ring's next slot once it is full */
	unsigned oldest = c->hist_n < MGI_OOM_HIST ? 0 : c->hist_next;
	uint64_t then = c->hist_pages[oldest];
	return pages_now > then ? pages_now - then : 0;
}

static uint64_t now_ms_since(uint64_t ns)
{
	uint64_t now = mgi_os_now_ns();
	return ns && now > ns ? (now - ns) / 1000000ULL : 0;
}

/* How long ago c's process started, as the kernel counts it (an exec
 * keeps it); since it joined when /proc cannot tell. */
uint64_t mgi_oom_age_ms(const struct mgi_conn *c)
{
	mgi_pid_stat_t st;
	uint64_t age;

	if (mgi_pid_stat_read(NULL, c->pid, &st) == 0 && (age = mgi_pid_age_ms(&st)) != UINT64_MAX)
		return age;
	return now_ms_since(c->joined_ns);
}


void mgi_oom_kernel_figures(mgi_manager_t *m, int g, mgi_victim_t *cand, size_t n,
			    mgi_victim_policy_t *pol)
{
	struct mgi_oom_eff e = mgi_oom_effective(m, g);
	mgi_pid_stat_t st;

	pol->policy = e.policy;
	for (size_t i = 0; i < n; i++) {
		mgi_victim_t *c = &cand[i];
		const struct mgi_conn *jc = mgi_oom_joined_conn(m, c->pid);
		uint64_t age;
		c->adj = mgi_oom_score_adj(c->pid);
		c->age_ms = mgi_pid_stat_read(NULL, c->pid, &st) == 0 &&
				    (age = mgi_pid_age_ms(&st)) != UINT64_MAX ? age : 0;
		c->priority = jc ? jc->oom_priority : 0;
	}
	mgi_oom_match_regexes(m, &e, cand, NULL, n);
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
	struct mgi_conn *t = mgi_oom_joined_conn(m, pid);
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


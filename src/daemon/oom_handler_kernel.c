/* oom_handler_kernel.c - the user-space OOM handler at a kernel cgroup's limit (backstop or --backend kernel): its snapshot from the kernel cgroup's processes, and the kill it names. */
#include "oom_handler.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "backstop.h"
#include "backstop_int.h"
#include "manager.h"
#include "conn.h"
#include "oom_int.h"
#include "oslayer.h"
#include "size.h"

/*
 * Where memgrpd decides the kill at a kernel limit (escalate.c
 * kernel_limit: the backstop's kernel cgroup, or a --backend kernel
 * group), the handler is asked as at an agent's refused charge. What
 * differs: the processes are the kernel cgroup's (its subtree), joined or
 * not, sized by the kernel's RSS; the figures are the kernel's; there is
 * no reserve (the limit is the kernel's, which lends nothing); and the
 * group's tasks wait in the kernel meanwhile, at most the backstop's
 * PAUSE_MAX_MS (5 s) in all, after which the kernel's own OOM killer may
 * act whatever the handler does.
 */

static pid_t kpids[PIDS_MAX];

/* The kernel cgroup's processes under g (pid order); -1 if it cannot be
 * read. */
static int kernel_pids(mgi_manager_t *m, int g)
{
	struct mgi_backstop *bs = m->backstop;
	if (!bs || !bs->g[g].made)
		return -1;
	int n = mgi_kcg_pids(&bs->k, gname(m, g), true, kpids, PIDS_MAX);
	return n < 0 ? -1 : (n < PIDS_MAX ? n : PIDS_MAX);
}

bool mgi_oomh_kernel_figures(mgi_manager_t *m, int g, uint64_t *usage, uint64_t *limit)
{
	mgi_kcg_figures_t f;
	struct mgi_backstop *bs = m->backstop;

	if (!bs || !bs->g[g].made || mgi_kcg_read(&bs->k, gname(m, g), &f) != 0)
		return false;
	*usage = f.usage;
	*limit = f.limit;
	return true;
}

void mgi_oomh_fill_kernel(mgi_manager_t *m, int g, mgi_msg_oom_snapshot_t *s)
{
	int n = kernel_pids(m, g);
	mgi_pid_stat_t st;

	s->nprocs = s->total = 0;
	for (int i = 0; i < n; i++) {
		mgi_oomh_proc_t p = {.pid = kpids[i], .charged = mgi_bs_rss(m, kpids[i])};
		struct mgi_conn *c = mgi_oom_joined_conn(m, kpids[i]);
		if (c)
			p.priority = c->oom_priority;
		if (mgi_pid_stat_read(NULL, kpids[i], &st) == 0) {
			uint64_t age = mgi_pid_age_ms(&st);
			p.age_ms = age == UINT64_MAX ? 0 : age;
		}
		mgi_bs_comm(m, kpids[i], p.comm, sizeof(p.comm));
		mgi_oom_cmdline(kpids[i], p.cmdline, sizeof(p.cmdline));
		mgi_oomh_snapshot_add(s, &p);
	}
}

/* pid killed for g (SIGKILL through a pidfd, its memory reaped), logged
 * and recorded as the handler's choice. 0 or -errno. */
static int kill_one(mgi_manager_t *m, int g, pid_t pid, const char *by)
{
	static char cmd[1024];
	char comm[MGI_COMM_MAX + 1], path[512], state[320], usage[16], max[16];
	uint64_t u = 0, l = 0;
	int fd = mgi_pidfd_open(pid);

	if (fd < 0)
		return fd;
	mgi_bs_comm(m, pid, comm, sizeof(comm));
	mgi_oom_cmdline(pid, cmd, sizeof(cmd));
	mgi_victim_t cand = {.pid = pid, .pages = mgi_bs_rss(m, pid) / MGI_PAGE_SIZE,
			     .adj = mgi_oom_score_adj(pid),
			     .group = mgi_bs_pid_path(m, pid, path, sizeof(path)) == 0
					      ? mgi_bs_group_of_path(m, path) : -1};
	int err = mgi_pidfd_send_signal(fd, SIGKILL);
	if (err != 0) {
		close(fd);
		return err;
	}
	mgi_pidfd_mrelease(fd); /* what the kernel limit holds back: free now */
	close(fd);
	struct mgi_backstop *bs = m->backstop;
	bs->g[g].victim = pid; /* the backstop waits for it before another */
	bs->g[g].killed_ns = mgi_os_now_ns();
	atomic_fetch_add(&m->tree.node[g].seg->ctl.oom_kill, 1);
	mgi_notify_oom(m, g);
	mgi_notify_ladder(m, g);
	mgi_oomh_kernel_figures(m, g, &u, &l);
	mgi_size_format(u, usage, sizeof(usage));
	mgi_size_format(l, max, sizeof(max));
	snprintf(state, sizeof(state), "at its kernel limit (kernel usage %s of %s)%s", usage, max, by);
	mgi_manager_log(m, "group '%s' is out of memory %s: pid %d (%s)", m->tree.node[g].name, state,
			(int)pid, comm);
	const mgi_oom_kill_t rec = {.target = g, .state = state,
				    .policy = {.policy = mgi_oom_effective(m, g).policy}};
	mgi_oom_record(m, &rec, &cand, 1, 0, "named by the group's OOM handler", cmd);
	return 0;
}

int mgi_oomh_kill_kernel(mgi_manager_t *m, int g, const pid_t *pids, uint32_t npids, const char *by,
			 char *why, size_t whylen)
{
	int n = kernel_pids(m, g), done = 0;

	for (uint32_t k = 0; k < npids; k++) {
		bool found = false;
		for (int i = 0; i < n && !found; i++)
			found = kpids[i] == pids[k];
		if (!found || pids[k] == getpid()) {
			snprintf(why, whylen, "pid %d is not a process of group '%s''s kernel cgroup (nor "
					      "of one below it): nothing killed", (int)pids[k],
				 m->tree.node[g].name);
			return -ESRCH;
		}
	}
	for (uint32_t k = 0; k < npids; k++)
		if (kill_one(m, g, pids[k], by) == 0)
			done++;
	snprintf(why, whylen, "killed %d of %u", done, npids);
	return done ? 0 : -ESRCH;
}

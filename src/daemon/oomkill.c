/* oomkill.c - the manager's one OOM kill: choose (core/victim.c), tell the listeners, signal the pidfd, report; the next victim at once on failure. */
#include "oomkill.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "manager.h"
#include "oslayer.h"
#include "procstatus.h"
#include "size.h"

pid_t mgi_oom_kill(mgi_manager_t *m, const mgi_oom_kill_t *k, mgi_victim_t *cand, const int *pidfd,
		   size_t n)
{
	const char *name = m->tree.node[k->target].name, *why = NULL;
	char comm[64], about[320], holds[16], where[MGI_GROUP_NAME_MAX + 16];

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
		comm[0] = about[0] = '\0';
		if (k->describe)
			k->describe(m, (size_t)best, comm, sizeof(comm), about, sizeof(about));
		if (err == 0) {
			atomic_fetch_add(&m->tree.node[k->target].seg->ctl.oom_kill, 1);
			mgi_notify_oom(m, k->target);
			err = mgi_pidfd_send_signal(fd, SIGKILL);
			if (err == 0 && k->reap)
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
		mgi_manager_log(m, "group '%s' is out of memory %s: killing pid %d (%s)%s, which holds "
				   "%s%s", name, k->state, (int)c->pid, comm, where, holds, about);
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

/* The joined candidates' connections (index), for describe. */
static unsigned joined_conn_of[MGI_MANAGER_CONNS_MAX];
static mgi_victim_t joined[MGI_MANAGER_CONNS_MAX];
static int joined_pidfd[MGI_MANAGER_CONNS_MAX];

static void describe_joined(mgi_manager_t *m, size_t i, char *comm, size_t commlen, char *about,
			    size_t aboutlen)
{
	const struct mgi_conn *v = &m->conns[joined_conn_of[i]];
	const mgi_proc_id_t *sl = &m->tree.node[v->group].seg->ctl.procs[v->slot];

	(void)about;
	(void)aboutlen;
	snprintf(comm, commlen, "%.*s", MGI_COMM_MAX - 1, sl->comm);
}

void mgi_oom_kill_joined(mgi_manager_t *m, int target)
{
	mgi_segment_t *seg = m->tree.node[target].seg;
	char usage[16], max[16], state[96];
	size_t n = 0;

	mgi_manager_audit(m); /* the figures a victim is chosen by */
	report_strangers(m, target);
	for (unsigned k = 0; k < m->nconns; k++) {
		struct mgi_conn *c = &m->conns[k];
		if (c->fd < 0 || c->slot < 0 || c->pidfd < 0 || !m->tree.node[c->group].used ||
		    !mgi_tree_is_under(&m->tree, c->group, target))
			continue;
		/* the process's word, clamped to its group's usage */
		uint64_t charged = mgi_segment_slot_charged(m->tree.node[c->group].seg, c->slot);
		uint64_t kernel = kernel_pages(c->pid);
		joined_conn_of[n] = k;
		joined_pidfd[n] = c->pidfd;
		joined[n++] = (mgi_victim_t){.pid = c->pid, .group = c->group,
					     .pages = charged > kernel ? charged : kernel};
	}
	mgi_size_format(mgi_counter_read(&seg->acct.memory) * MGI_PAGE_SIZE, usage, sizeof(usage));
	mgi_size_format(mgi_counter_read_max(&seg->ctl.memory) * MGI_PAGE_SIZE, max, sizeof(max));
	snprintf(state, sizeof(state), "(usage %s, max %s) and nothing can be reclaimed", usage, max);
	const mgi_oom_kill_t kill = {
		.target = target,
		.state = state,
		.policy = {.total_pages = 0, .min_pages = 0}, /* the requester may hold nothing yet */
		.mark = &seg->ctl.oom_victim,
		.needed = at_limit,
		.describe = describe_joined,
	};
	mgi_oom_kill(m, &kill, joined, joined_pidfd, n);
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

	/* A kill under way is one of the manager's: its victim's pidfd has
	 * not said it exited yet (then drop_conn clears the mark). Any other
	 * pid there is stale. */
	if (victim > 0 && joined_conn(m, victim))
		return true;
	if (victim != 0)
		atomic_compare_exchange_strong(&seg->ctl.oom_victim, &victim, 0);
	return false;
}

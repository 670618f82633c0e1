/* join.c - processes joining a manager: HELLO and WELCOME, a rejoin after a restart, ATTACH's move, orphans. */
#include "manager.h"
#include "conn.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/un.h>

#include "grantd.h"
#include "oomkill.h"
#include "oslayer.h"

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

/* Sends the group's segments (its own, then its ancestors') with a WELCOME
 * or MOVE message telling the slot. */
static void send_segments(mgi_manager_t *m, int fd, int type, int group, int slot,
			  bool lend_uffd)
{
	mgi_msg_t w;
	int fds[2 * MGI_DEPTH_MAX + 2];
	unsigned n = 2 * mgi_tree_segment_fds(&m->tree, group, fds);
	char cbuf[CMSG_SPACE(sizeof(fds))];
	struct iovec iov = {.iov_base = &w, .iov_len = sizeof(mgi_msg_welcome_t)};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			    .msg_controllen = CMSG_SPACE(n * sizeof(int))};
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);

	memset(cbuf, 0, sizeof(cbuf));
	mgi_msg_init(&w, (enum mgi_msg_type)type);
	w.welcome.slot = slot;
	w.welcome.segment_bytes = sizeof(mgi_segment_t);
	w.welcome.nsegments = n / 2; /* two fds a segment: its two parts */
	snprintf(w.welcome.group, sizeof(w.welcome.group), "%s", m->tree.node[group].name);
	/* Above the group's own level, accounting parts read-only: its
	 * processes charge their ancestors through grants (grant.h). */
	unsigned nseg = n;
	bool reopened = true;
	for (unsigned k = 3; k < nseg; k += 2)
		reopened &= (fds[k] = mgi_tree_reopen_ro(fds[k])) >= 0;
	fds[n++] = m->wakefd;
	if (lend_uffd && m->uffd_dev >= 0) {
		fds[n++] = m->uffd_dev;
		w.welcome.flags |= MGI_WELCOME_UFFD_DEV;
	}
	mh.msg_controllen = CMSG_SPACE(n * sizeof(int));
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(n * sizeof(int));
	memcpy(CMSG_DATA(cm), fds, n * sizeof(int));
	if (reopened)
		sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	else
		mgi_manager_log(m, "cannot reopen group '%s''s ancestors' accounting read-only: %s; "
				   "not sent", m->tree.node[group].name, strerror(errno));
	for (unsigned k = 3; k < nseg; k += 2)
		if (fds[k] >= 0)
			close(fds[k]);
}

/* An unprivileged process may join a group its parent is in: a command
 * that drops privileges (su, setpriv) stays managed; a stranger may not
 * charge its memory to someone else's group. */
static bool parent_in_group(const mgi_manager_t *m, pid_t pid, int g)
{
	mgi_proc_status_t st;
	pid_t ppid = 0;

	if (mgi_proc_status_read(NULL, pid, &st) != 0)
		return false;
	if (st.have & MGI_PS_PPID)
		ppid = st.ppid;
	for (unsigned k = 0; k < m->nconns && ppid > 0; k++)
		if (m->conns[k].fd >= 0 && m->conns[k].slot >= 0 && m->conns[k].pid == ppid &&
		    m->conns[k].group == g)
			return true;
	return false;
}

/* Whether a HELLO comes from the process it names (the kernel's word on
 * who is calling, not the message's) on a connection that has none yet;
 * if not, the connection is dropped. */
static bool hello_from_peer(mgi_manager_t *m, unsigned i, const mgi_msg_hello_t *h,
			    struct ucred *cred)
{
	struct mgi_conn *c = &m->conns[i];
	socklen_t len = sizeof(*cred);

	if (c->slot < 0 && getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, cred, &len) == 0 &&
	    cred->pid == h->pid)
		return true;
	mgi_conn_drop(m, i); /* a second HELLO, or a pid that is not the peer's */
	return false;
}

/* Releases the slots of an adopted group's processes that exited while
 * no manager watched them (their agents will not come back to say so):
 * what they held leaves the group's accounts. A slot whose process has
 * rejoined is watched through its connection instead. */
static unsigned release_orphans(mgi_manager_t *m, int g)
{
	mgi_segment_t *seg = m->tree.node[g].seg;
	mgi_counter_path_t path = mgi_tree_charge_path(&m->tree, g);
	unsigned waiting = 0;

	for (int s = 0; s < MGI_PROCS_MAX; s++) {
		pid_t pid = atomic_load(&seg->ctl.procs[s].pid);
		bool watched = false;
		if (pid <= 0)
			continue;
		for (unsigned k = 0; k < m->nconns && !watched; k++)
			watched = m->conns[k].fd >= 0 && m->conns[k].group == g &&
				  m->conns[k].slot == s;
		if (watched)
			continue;
		if (kill(pid, 0) == 0 || errno != ESRCH) {
			waiting++; /* alive: its agent will rejoin */
			continue;
		}
		long pages = mgi_segment_release(seg, s, pid, &path);
		if (pages >= 0) {
			mgi_manager_log(m, "group '%s': pid %d exited before its agent rejoined; "
					   "released its %ld KiB", m->tree.node[g].name, (int)pid,
					pages * (long)MGI_PAGE_KIB);
			mgi_notify_after_uncharge(m, g);
		}
	}
	return waiting;
}

/* Processes of restored groups that have not rejoined yet are looked at
 * once a second (no pidfd watches them): those that exit meanwhile are
 * released. The timer stops when every one has rejoined or gone. A pid
 * reused by another process in that window keeps its slot until it exits
 * (documented). */
void mgi_join_watch_orphans(mgi_manager_t *m)
{
	unsigned waiting = 0;
	struct itimerspec its = {{0, 0}, {0, 0}};

	for (int g = 0; g < MGI_GROUPS_MAX; g++)
		if (m->tree.node[g].used)
			waiting += release_orphans(m, g);
	if (waiting)
		its.it_value.tv_sec = its.it_interval.tv_sec = 1;
	timerfd_settime(m->orphan_timerfd, 0, &its, NULL);
}

/* Watches the exit of a connection's process through a pidfd (it tells of
 * the exit even if a child inherited the connection). Without pidfds (old
 * kernels) the connection closing does. */
static void watch_exit(mgi_manager_t *m, unsigned i)
{
	struct mgi_conn *c = &m->conns[i];

	mgi_oom_joined(m, i); /* its age and first charge sample (oomkill.c) */
	socklen_t len = sizeof(c->pidfd);

	/* The peer's own pidfd (6.5+): the very process that connected,
	 * with no window for its pid to be reused. */
	if (getsockopt(c->fd, SOL_SOCKET, SO_PEERPIDFD, &c->pidfd, &len) != 0 || c->pidfd < 0)
		c->pidfd = mgi_pidfd_open(c->pid);
	if (c->pidfd >= 0) {
		struct epoll_event ev = {.events = EPOLLIN, .data.u64 = TAG_PIDFD_BASE + i};
		if (epoll_ctl(m->epfd, EPOLL_CTL_ADD, c->pidfd, &ev) != 0) {
			close(c->pidfd);
			c->pidfd = -1;
		}
	}
}

void mgi_join_watch_exit(mgi_manager_t *m, unsigned i)
{
	watch_exit(m, i);
}

/*
 * A HELLO naming a slot: a process whose manager went away (memgrpd was
 * restarted) hands back its group's segments, its own first, then its
 * ancestors'. Groups this manager does not serve yet are adopted with all
 * their segments hold (limits, usage, figures, the other processes'
 * slots); the old manager's registrations are forgotten (its clients went
 * with it). Only a privileged peer may bring groups back: a segment is
 * the peer's word on what a group's limits and charges are.
 */
void mgi_join_rejoin(mgi_manager_t *m, unsigned i, const mgi_msg_hello_t *h, const int *fds,
		      unsigned nfds)
{
	struct mgi_conn *c = &m->conns[i];
	struct ucred cred;
	char why[160];
	int g = 0, adopted = 0;

	if (!hello_from_peer(m, i, h, &cred))
		return;
	if (!mgi_conn_privileged(m, c)) {
		mgi_conn_reply(c, -EPERM, "uid %u may not bring groups back to this manager (only root "
				 "or uid %u)", (unsigned)cred.uid, (unsigned)m->uid);
		mgi_conn_drop(m, i);
		return;
	}
	if (nfds == 0 || nfds > 2 * MGI_DEPTH_MAX || nfds % 2) {
		mgi_conn_reply(c, -EINVAL, "a rejoining process passes its group's segments, two fds each "
				  "(got %u fds)", nfds);
		mgi_conn_drop(m, i);
		return;
	}
	/* Outermost first: each group's parent is served by the time it
	 * comes. */
	for (int k = (int)nfds / 2 - 1; k >= 0; k--) {
		bool fresh;
		int idx = mgi_tree_adopt(&m->tree, fds[2 * k], fds[2 * k + 1], &fresh, why, sizeof(why));
		if (idx < 0) {
			mgi_conn_reply(c, idx, "cannot take group back: %s", why);
			mgi_conn_drop(m, i);
			return;
		}
		if (k < (int)nfds / 2 - 1 && m->tree.node[idx].parent != g) {
			mgi_conn_reply(c, -EINVAL, "segment '%s' is not under '%s'", m->tree.node[idx].name,
			      m->tree.node[g].name);
			mgi_conn_drop(m, i);
			return;
		}
		if (fresh) {
			mgi_segment_forget_manager(m->tree.node[idx].seg);
			mgi_manager_log(m, "adopted group '%s' from the manager before this one "
					   "(usage %llu KiB, %u processes)",
					m->tree.node[idx].name,
					(unsigned long long)mgi_counter_read(&m->tree.node[idx].seg->acct.memory) * MGI_PAGE_KIB,
					mgi_segment_nr_procs(m->tree.node[idx].seg));
			mgi_backstop_group_added(m, idx);
			adopted++;
		}
		g = idx;
	}
	if (strcmp(m->tree.node[g].name, h->group) != 0 ||
	    atomic_load(&m->tree.node[g].seg->ctl.procs[h->slot].pid) != cred.pid) {
		mgi_conn_reply(c, -ESRCH, "slot %d of group '%s' is not pid %d's", h->slot,
		      m->tree.node[g].name, (int)cred.pid);
		mgi_conn_drop(m, i);
		return;
	}
	c->pid = cred.pid;
	c->group = g;
	c->slot = h->slot;
	/* its --oom-priority, as the manager before this one kept it
	 * (mgi_segment_check bounded it) */
	c->oom_priority = m->tree.node[g].seg->ctl.procs[h->slot].oom_priority;
	watch_exit(m, i);
	if (adopted)
		mgi_notify_resync(m); /* the manager's own thresholds: pressure, high, ask */
	for (int a = g; a > 0; a = m->tree.node[a].parent)
		release_orphans(m, a);
	send_segments(m, c->fd, MGI_MSG_WELCOME, c->group, c->slot, c->peer_uid != 0);
}

void mgi_join_hello(mgi_manager_t *m, unsigned i, const mgi_msg_hello_t *h)
{
	struct mgi_conn *c = &m->conns[i];
	struct ucred cred;
	int g;

	if (!hello_from_peer(m, i, h, &cred))
		return;
	g = mgi_conn_lookup(m, c, h->group);
	if (g < 0) {
		mgi_conn_drop(m, i); /* the agent prints the reply and runs unmanaged */
		return;
	}
	if (!mgi_conn_privileged(m, c) && !parent_in_group(m, cred.pid, g) &&
	    !mgi_backstop_holds(m, cred.pid, g)) {
		mgi_conn_reply(c, -EPERM, "uid %u may not join group '%s' (only root, uid %u, a child "
				 "of one of the group's processes, or one in its kernel cgroup)",
		      (unsigned)cred.uid,
		      m->tree.node[g].name, (unsigned)m->uid);
		mgi_conn_drop(m, i);
		return;
	}
	char why[320];
	int rc = mgi_backstop_hello(m, cred.pid, mgi_conn_privileged(m, c), g, why, sizeof(why));
	if (rc != 0) {
		mgi_conn_reply(c, rc, "%s", why);
		mgi_conn_drop(m, i);
		return;
	}
	c->pid = cred.pid;
	c->group = g;
	c->slot = mgi_segment_claim(m->tree.node[g].seg, cred.pid);
	c->exact = atomic_load(&m->tree.node[g].seg->ctl.mode) == MGI_MODE_EXACT;
	if (c->slot < 0) {
		mgi_conn_reply(c, -ENOSPC, "group '%s' has %d processes, its most", m->tree.node[g].name,
		      MGI_PROCS_MAX);
		mgi_conn_drop(m, i);
		return;
	}
	mgi_tree_name_slot(&m->tree, g, c->slot, cred.pid);
	mgi_backstop_joined(m, g);
	watch_exit(m, i);
	send_segments(m, c->fd, MGI_MSG_WELCOME, c->group, c->slot, c->peer_uid != 0);
}

/* ATTACH: asks the process's agent to move into the group; the agent's
 * REPLY (on_move_reply) completes it and answers the requester. */
void mgi_join_attach(mgi_manager_t *m, unsigned i, const mgi_msg_attach_t *a)
{
	struct mgi_conn *c = &m->conns[i], *p = NULL;
	int g, slot;

	if (mgi_conn_refuse_unprivileged(m, c, "move processes"))
		return;
	if ((g = mgi_conn_lookup(m, c, a->group)) < 0)
		return;
	for (unsigned k = 0; k < m->nconns && !p; k++)
		if (m->conns[k].fd >= 0 && m->conns[k].slot >= 0 && m->conns[k].pid == a->pid)
			p = &m->conns[k];
	if (!p) {
		mgi_conn_reply(c, -ESRCH, "pid %d is not a process this manager serves (it must run "
				 "with the agent, connected to this manager's socket)", a->pid);
		return;
	}
	if (p->group == g) {
		mgi_conn_reply(c, 0, "pid %d is in group '%s' already", a->pid, m->tree.node[g].name);
		return;
	}
	if (p->move_group >= 0) {
		mgi_conn_reply(c, -EBUSY, "pid %d is being moved already", a->pid);
		return;
	}
	slot = mgi_segment_claim(m->tree.node[g].seg, a->pid);
	if (slot < 0) {
		mgi_conn_reply(c, -ENOSPC, "group '%s' has %d processes, its most", m->tree.node[g].name,
		      MGI_PROCS_MAX);
		return;
	}
	mgi_tree_name_slot(&m->tree, g, slot, a->pid);
	char gwhy[160];
	const mgi_segment_t *from = m->tree.node[p->group].seg;
	if (mgi_grant_for_move(m, g, mgi_segment_slot_charged(from, p->slot),
			       atomic_load(&from->acct.procs[p->slot].swapped), gwhy, sizeof(gwhy)) != 0) {
		mgi_counter_path_t none = {.depth = 0};
		mgi_segment_release(m->tree.node[g].seg, slot, a->pid, &none);
		mgi_conn_reply(c, -ENOMEM, "pid %d: %s", a->pid, gwhy);
		return;
	}
	p->move_group = g;
	p->move_slot = slot;
	p->requester = (int)i;
	p->requester_fd = c->fd;
	send_segments(m, p->fd, MGI_MSG_MOVE, g, slot, false);
}

/* The agent's answer to MOVE: on success it has moved its charge into the
 * new slot and released the old one itself. */
void mgi_join_move_reply(mgi_manager_t *m, struct mgi_conn *c, const mgi_msg_reply_t *r)
{
	int g = c->move_group, from = c->group;

	if (g < 0)
		return; /* nothing asked: ignore */
	if (r->status == 0) {
		mgi_join_drop_spare(m, c); /* the old group's */
		/* The agent emptied its old slot; its identity is the
		 * manager's to free (nothing left to uncharge: an empty path). */
		mgi_counter_path_t none = {.depth = 0};
		mgi_segment_release(m->tree.node[from].seg, c->slot, c->pid, &none);
		mgi_grant_after_release(m, from);
		mgi_conn_clear_victim(m, from, c->pid);
		c->group = g;
		c->slot = c->move_slot;
		mgi_backstop_moved(m, c->pid, g);
		mgi_manager_log(m, "pid %d moved from group '%s' to '%s'", c->pid, m->tree.node[from].name,
		     m->tree.node[g].name);
	} else {
		mgi_counter_path_t path = mgi_tree_charge_path(&m->tree, g);
		mgi_segment_release(m->tree.node[g].seg, c->move_slot, c->pid, &path);
	}
	c->move_group = -1;
	if (c->requester >= 0 && (unsigned)c->requester < m->nconns &&
	    m->conns[c->requester].fd == c->requester_fd)
		mgi_conn_reply(&m->conns[c->requester], r->status, "%s", r->message);
}

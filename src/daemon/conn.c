/* conn.c - a manager's connections: accept within the per-uid limits, drop, replies, who may do what. */
#include "manager.h"
#include "oslayer.h"
#include "conn.h"
#include "oom_handler.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "grantd.h"
#include "group.h"

/* Root and the manager's own user may do anything. */
static bool privileged_uid(const mgi_manager_t *m, uid_t uid)
{
	return uid == 0 || uid == m->uid;
}

/* Why a new connection from uid may not be taken (NULL: it may): the
 * per-uid limits of manager.h. Counted by a walk: accepts are rare next to
 * what a connection costs. */
static const char *conn_refusal(const mgi_manager_t *m, uid_t uid, unsigned *free_slot)
{
	unsigned unpriv = 0, idle = 0, used = 0;

	*free_slot = MGI_MANAGER_CONNS_MAX;
	for (unsigned k = 0; k < MGI_MANAGER_CONNS_MAX; k++) {
		const struct mgi_conn *c = &m->conns[k];
		if (k >= m->nconns || c->fd < 0) {
			if (*free_slot == MGI_MANAGER_CONNS_MAX)
				*free_slot = k;
			if (k >= m->nconns)
				break;
			continue;
		}
		used++;
		if (privileged_uid(m, c->peer_uid))
			continue;
		unpriv++;
		if (c->peer_uid == uid && c->slot < 0)
			idle++;
	}
	if (*free_slot == MGI_MANAGER_CONNS_MAX)
		return "the manager serves its most connections";
	if (privileged_uid(m, uid))
		return NULL;
	if (idle >= MGI_MANAGER_IDLE_PER_UID)
		return "this user holds its most connections not in a group";
	if (unpriv >= MGI_MANAGER_CONNS_MAX - MGI_MANAGER_CONNS_RESERVED)
		return "unprivileged users hold their most connections";
	return NULL;
}

/* A refused connection hears why (an agent prints it: a process is never
 * left unmanaged without a word), then is closed. */
static void refuse_conn(mgi_manager_t *m, int fd, uid_t uid, const char *why)
{
	static uint64_t logged_ns;
	uint64_t now;
	mgi_msg_t r;

	mgi_msg_init(&r, MGI_MSG_REPLY);
	r.reply.status = -EUSERS;
	snprintf(r.reply.message, sizeof(r.reply.message),
		 "connection refused: %s (uid %u)", why, (unsigned)uid);
	send(fd, &r, r.hdr.len, MSG_NOSIGNAL | MSG_DONTWAIT);
	close(fd);
	now = mgi_os_now_ns();
	if (now - logged_ns > 1000000000ULL) { /* once a second at most */
		logged_ns = now;
		mgi_manager_log(m, "refused a connection of uid %u: %s", (unsigned)uid, why);
	}
}

void mgi_conn_accept(mgi_manager_t *m)
{
	for (;;) {
		int fd = accept4(m->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

		if (fd < 0 && (errno == EMFILE || errno == ENFILE) && m->spare_fd >= 0) {
			/* Out of descriptors: a pending connection would keep
			 * the socket readable and the loop spinning. The spare
			 * makes room to take it and say no. */
			close(m->spare_fd);
			fd = accept4(m->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
			if (fd >= 0) {
				struct ucred cr = {.uid = (uid_t)-1};
				socklen_t cl = sizeof(cr);
				getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl);
				refuse_conn(m, fd, cr.uid, "the manager is out of file descriptors");
			}
			m->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
			continue;
		}
		if (fd < 0)
			return;
		mgi_conn_add(m, fd);
	}
}

int mgi_conn_add(mgi_manager_t *m, int fd)
{
	struct ucred cred = {.pid = 0, .uid = (uid_t)-1};
	socklen_t clen = sizeof(cred);
	unsigned i;

	getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen);
	const char *why = conn_refusal(m, cred.uid, &i);
	if (why) {
		refuse_conn(m, fd, cred.uid, why);
		return -EUSERS;
	}
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = TAG_CONN_BASE + i};
	if (epoll_ctl(m->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	m->conns[i] = (struct mgi_conn){.fd = fd, .pidfd = -1, .group = -1, .slot = -1,
					.move_group = -1, .peer_pid = cred.pid,
					.peer_uid = cred.uid, .spare = -1};
	if (i >= m->nconns)
		m->nconns = i + 1;
	return (int)i;
}

/* A released victim is no longer the victim of any ancestor's OOM either. */
void mgi_conn_clear_victim(mgi_manager_t *m, int group, pid_t pid)
{
	for (int g = group; g >= 0; g = m->tree.node[g].parent) {
		int32_t v = pid;
		atomic_compare_exchange_strong(&m->tree.node[g].seg->ctl.oom_victim, &v, 0);
	}
}

void mgi_conn_drop(mgi_manager_t *m, unsigned i)
{
	struct mgi_conn *c = &m->conns[i];

	mgi_notify_drop_conn(m, i);
	mgi_oomh_conn_gone(m, i);
	mgi_reclaim_conn_gone(m, i);
	mgi_join_drop_spare(m, c);
	if (c->slot >= 0) {
		mgi_manager_audit(m);
		mgi_counter_path_t path = mgi_tree_charge_path(&m->tree, c->group);
		mgi_segment_release(m->tree.node[c->group].seg, c->slot, c->pid, &path);
		mgi_grant_after_release(m, c->group);
		mgi_conn_clear_victim(m, c->group, c->pid);
		mgi_notify_after_uncharge(m, c->group);
	}
	if (c->pidfd >= 0) {
		epoll_ctl(m->epfd, EPOLL_CTL_DEL, c->pidfd, NULL);
		close(c->pidfd);
	}
	epoll_ctl(m->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	if (c->move_group >= 0) {
		/* Died during a move: the new slot may hold the charge already. */
		mgi_counter_path_t path = mgi_tree_charge_path(&m->tree, c->move_group);
		mgi_segment_release(m->tree.node[c->move_group].seg, c->move_slot, c->pid, &path);
	}
	*c = (struct mgi_conn){.fd = -1, .pidfd = -1, .group = -1, .slot = -1, .move_group = -1,
			       .spare = -1};
}

void mgi_conn_reply(struct mgi_conn *c, int status, const char *fmt, ...)
{
	mgi_msg_t r;
	va_list ap;

	va_start(ap, fmt);
	mgi_msg_reply_vfmt(&r, status, fmt, ap);
	va_end(ap);
	send(c->fd, &r, r.hdr.len, MSG_NOSIGNAL | MSG_DONTWAIT);
}

/* The group of the agent in the peer's process, or -1 if it has none. */
static int own_group(const mgi_manager_t *m, const struct mgi_conn *c)
{
	for (unsigned k = 0; k < m->nconns; k++)
		if (m->conns[k].fd >= 0 && m->conns[k].slot >= 0 && m->conns[k].pid == c->peer_pid)
			return m->conns[k].group;
	return -1;
}

bool mgi_conn_privileged(const mgi_manager_t *m, const struct mgi_conn *c)
{
	return privileged_uid(m, c->peer_uid);
}

/* Others may read and watch their own group and the groups below it. */
bool mgi_conn_may_watch(const mgi_manager_t *m, const struct mgi_conn *c, int g)
{
	int own;

	if (mgi_conn_privileged(m, c))
		return true;
	own = own_group(m, c);
	return own >= 0 && mgi_tree_is_under(&m->tree, g, own);
}

/* The group a request names: "" is the peer's own group if it is a managed
 * process, else the default; others must be within the scope and exist.
 * Returns its index, or -1 after replying why not. */
int mgi_conn_lookup(mgi_manager_t *m, struct mgi_conn *c, const char *name)
{
	const char *scope = m->tree.node[m->scope].name;
	int g;

	if (!*name) {
		g = own_group(m, c);
		return g >= 0 ? g : m->scope;
	}
	if (!mgi_group_is_under(name, scope)) {
		mgi_conn_reply(c, -ENOENT, "this manager serves '%s' and the groups under it, not '%s'",
		      scope, name);
		return -1;
	}
	g = mgi_tree_find(&m->tree, name);
	if (g < 0)
		mgi_conn_reply(c, -ENOENT, "no group '%s'", name);
	return g;
}

/* Refuses (with a reply) what only a privileged peer may do. */
bool mgi_conn_refuse_unprivileged(mgi_manager_t *m, struct mgi_conn *c, const char *what)
{
	if (mgi_conn_privileged(m, c))
		return false;
	mgi_conn_reply(c, -EPERM, "only root or uid %u (who runs this manager) may %s", (unsigned)m->uid,
	      what);
	return true;
}

/* A charge of a process in `c->group` was refused by the ancestor `level`
 * steps up: kill the process holding the most in that ancestor's subtree,
 * once per episode. */
int mgi_manager_limiting_group(const mgi_manager_t *m, const struct mgi_conn *c, uint32_t level)
{
	int g = c->group;

	for (uint32_t l = 0; l < level && g > 0; l++)
		g = m->tree.node[g].parent;
	return g > 0 ? g : -1;
}

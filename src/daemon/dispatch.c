/* dispatch.c - a connection's messages: read, fds taken, parsed, and handed to the room that handles each. */
#include "hostwatch.h"
#include "thpbalance.h"
#include "manager.h"
#include "oomkill.h"
#include "conn.h"
#include "oslayer.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "grantd.h"
#include "oom_handler.h"
#include "group.h"

/* A refused charge that the agent may not resolve by evicting itself. */
static void on_oom_request(mgi_manager_t *m, struct mgi_conn *c, const mgi_msg_oom_req_t *r)
{
	int target = mgi_manager_limiting_group(m, c, r->level);

	if (target < 0)
		return; /* the root has no limit: nothing to do */
	mgi_manager_audit(m);
	mgi_escalate(m, target, &(mgi_pressure_t){.why = MGI_WHY_REFUSED, .req_group = c->group,
						   .req_slot = c->slot});
}

/* A client's request (STAT, SET, CREATE, RM, PLACE, LIST), answered at once.
 * Over 100 lines on purpose: one plain case per request, each a few lines
 * of checks and one call into the room that does it; split, the cases
 * would only be harder to read side by side. */
static void on_request(mgi_manager_t *m, unsigned i, const mgi_msg_t *msg, int type)
{
	static mgi_msg_t out; /* large: not on the stack */
	struct mgi_conn *c = &m->conns[i];
	char why[320] = "";
	int g, rc;

	switch (type) {
	case MGI_MSG_STAT_REQ:
		if ((g = mgi_conn_lookup(m, c, msg->group.group)) < 0)
			return;
		if (!mgi_conn_may_watch(m, c, g)) {
			mgi_conn_reply(c, -EPERM, "uid %u may read only its own group and those below it",
			      (unsigned)c->peer_uid);
			return;
		}
		mgi_manager_audit(m);
		mgi_oom_pause_check(m); /* under_oom as it is now */
		mgi_tree_stat_msg(&m->tree, g, &out);
		mgi_backstop_stats(m, g, &out.stat.figures);
		mgi_host_ladder_stats(g, &out.stat.figures);
		mgi_thp_stats(m, g, &out.stat.figures);
		mgi_kbackend_stat_msg(m, g, &out);
		out.stat.figures.cooperators = mgi_notify_cooperators(m, g);
		send(c->fd, &out, out.hdr.len, MSG_NOSIGNAL | MSG_DONTWAIT);
		return;
	case MGI_MSG_SET:
		if (mgi_conn_refuse_unprivileged(m, c, "change limits") || (g = mgi_conn_lookup(m, c, msg->set.group)) < 0)
			return;
		rc = mgi_kbackend_is(m, g) ? mgi_kbackend_set(m, g, &msg->set, why, sizeof(why)) : 0;
		if (rc == 0 && msg->set.backend != MGI_SET_KEEP && !mgi_kbackend_is(m, g) &&
		    msg->set.backend != MGI_BACKEND_AGENT) {
			snprintf(why, sizeof(why), "a group's backend is fixed at its creation");
			rc = -EINVAL;
		}
		if (rc == 0)
			rc = mgi_tree_set_limits(&m->tree, g, &msg->set, why, sizeof(why));
		if (rc == 0) {
			mgi_manager_log(m, "group '%s': limits set", m->tree.node[g].name);
			mgi_manager_limits_changed(m, g);
			mgi_oom_pause_check(m); /* a raised limit ends a pause */
		}
		mgi_conn_reply(c, rc, "%s", why);
		return;
	case MGI_MSG_CREATE:
		if (mgi_conn_refuse_unprivileged(m, c, "create groups"))
			return;
		if (!mgi_group_is_under(msg->set.group, m->tree.node[m->scope].name)) {
			mgi_conn_reply(c, -EPERM, "this manager serves '%s' and the groups under it, not '%s'",
			      m->tree.node[m->scope].name, msg->set.group);
			return;
		}
		int backend = mgi_tree_check_oom(&msg->set, why, sizeof(why)) ?:
			      mgi_kbackend_check_create(m, msg->set.group, &msg->set, why, sizeof(why));
		if (backend < 0) {
			mgi_conn_reply(c, backend, "%s", why);
			return;
		}
		rc = mgi_tree_create(&m->tree, msg->set.group, msg->set.memory_max, why, sizeof(why));
		if (rc >= 0) {
			mgi_tree_set_limits(&m->tree, rc, &msg->set, why, sizeof(why));
			atomic_store(&m->tree.node[rc].seg->ctl.backend, (uint32_t)backend);
			mgi_backstop_group_added(m, rc);
			if (backend == MGI_BACKEND_KERNEL &&
			    mgi_kbackend_set(m, rc, &msg->set, why, sizeof(why)) != 0)
				mgi_manager_log(m, "group '%s': %s", msg->set.group, why);
			mgi_manager_log(m, "group '%s' created", msg->set.group);
			mgi_manager_limits_changed(m, rc);
		}
		mgi_conn_reply(c, rc < 0 ? rc : 0, "%s", why);
		return;
	case MGI_MSG_RM:
		if (mgi_conn_refuse_unprivileged(m, c, "remove groups") || (g = mgi_conn_lookup(m, c, msg->group.group)) < 0)
			return;
		if (g == m->scope) {
			mgi_conn_reply(c, -EPERM, "'%s' is this manager's own group: it ends with its manager",
			      m->tree.node[g].name);
			return;
		}
		int parent = m->tree.node[g].parent;
		char name[MGI_GROUP_NAME_MAX];
		snprintf(name, sizeof(name), "%s", m->tree.node[g].name);
		rc = mgi_tree_remove(&m->tree, g, why, sizeof(why));
		if (rc == 0) {
			mgi_backstop_group_removed(m, g, name);
			/* (the group's segment is gone: its registrations are
			 * signalled once and dropped) */
			mgi_notify_drop_group(m, g, parent);
			mgi_manager_log(m, "group '%s' removed", msg->group.group);
		}
		mgi_conn_reply(c, rc, "%s", why);
		return;
	case MGI_MSG_PLACE:
		if ((g = mgi_conn_lookup(m, c, msg->group.group)) < 0)
			return;
		rc = mgi_backstop_place(m, c->peer_pid, mgi_conn_privileged(m, c), g, why, sizeof(why));
		mgi_conn_reply(c, rc, "%s", why);
		return;
	case MGI_MSG_LIST_REQ:
		mgi_msg_init(&out, MGI_MSG_LIST);
		for (g = 1; g < MGI_GROUPS_MAX; g++) {
			if (!m->tree.node[g].used || !mgi_tree_is_under(&m->tree, g, m->scope))
				continue;
			if (!mgi_conn_may_watch(m, c, g))
				continue; /* others see only what they may read */
			if (out.list.count == MGI_LIST_MAX) {
				out.list.truncated = 1;
				break;
			}
			memcpy(out.list.names[out.list.count++], m->tree.node[g].name,
			       MGI_GROUP_NAME_MAX);
		}
		send(c->fd, &out, out.hdr.len, MSG_NOSIGNAL | MSG_DONTWAIT);
		return;
	}
}

/* REGISTER: check the group and the peer's right to watch it, then hand
 * the eventfd to notify.c. */
static void on_register(mgi_manager_t *m, unsigned i, const mgi_msg_register_t *r, int efd)
{
	struct mgi_conn *c = &m->conns[i];
	char why[160] = "";
	int g, id;

	if (efd < 0) {
		mgi_conn_reply(c, -EINVAL, "register: no eventfd came with the request");
		return;
	}
	if (!mgi_manager_is_eventfd(efd)) {
		/* A pipe or socket would block the manager's writes (a review
		 * passed a full pipe: memgrpd hung until that client exited). */
		close(efd);
		mgi_conn_reply(c, -EINVAL, "register: the descriptor sent is not an eventfd");
		return;
	}
	if (!mgi_conn_privileged(m, c)) {
		unsigned held = 0;
		for (int r2 = 0; r2 < MGI_REGS_MAX; r2++)
			if (m->regs[r2].id && m->regs[r2].conn >= 0 &&
			    m->conns[m->regs[r2].conn].peer_uid == c->peer_uid)
				held++;
		if (held >= MGI_MANAGER_REGS_PER_UID) {
			close(efd);
			mgi_conn_reply(c, -EUSERS, "uid %u holds %d registrations, the most for a user other "
					  "than root or uid %u", (unsigned)c->peer_uid,
			      MGI_MANAGER_REGS_PER_UID, (unsigned)m->uid);
			return;
		}
	}
	if ((g = mgi_conn_lookup(m, c, r->group)) < 0) {
		close(efd);
		return;
	}
	if (!mgi_conn_may_watch(m, c, g)) {
		close(efd);
		mgi_conn_reply(c, -EPERM, "uid %u may watch only its own group and those below it",
		      (unsigned)c->peer_uid);
		return;
	}
	id = mgi_notify_register(m, i, g, r, efd, why, sizeof(why));
	if (id < 0) {
		close(efd);
		mgi_conn_reply(c, id, "%s", why);
		return;
	}
	mgi_msg_t out;
	mgi_msg_init(&out, MGI_MSG_REPLY);
	out.reply.value = (uint32_t)id;
	snprintf(out.reply.message, sizeof(out.reply.message), "%s", m->tree.node[g].name);
	send(c->fd, &out, out.hdr.len, MSG_NOSIGNAL | MSG_DONTWAIT);
}

#define MGI_UFFD_FEATURE_MOVE (1ULL << 16) /* (Linux 6.8; older headers lack it) */

/* The fork events a joined agent needs and may not turn on itself: the
 * kernel asks CAP_SYS_PTRACE of UFFDIO_API's caller, not of the process
 * whose memory the userfaultfd covers (created by the agent, in its own
 * address space). Without them an agent evicts nothing (a forked child
 * would read its evicted pages as zeros), so postgres' backends, forked
 * by a postmaster running as its own user, were OOM-killed under a limit
 * with swap. Only what the agent needs, only on a userfaultfd. */
static void on_uffd_features(mgi_manager_t *m, unsigned i, uint32_t features, int fd)
{
	const uint64_t allowed = UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_EVENT_UNMAP |
				 UFFD_FEATURE_EVENT_REMAP | UFFD_FEATURE_EVENT_FORK | MGI_UFFD_FEATURE_MOVE;
	struct mgi_conn *c = &m->conns[i];
	struct uffdio_api api = {.api = UFFD_API, .features = features};
	int rc;

	if (fd < 0 || c->slot < 0) {
		mgi_conn_reply(c, -EINVAL, "uffd features: %s", fd < 0 ? "no userfaultfd passed" : "join a group first");
		goto out;
	}
	if (features & ~allowed) {
		mgi_conn_reply(c, -EPERM, "uffd features %#x: only the agent's own are granted", features);
		goto out;
	}
	if (!mgi_os_fd_is(fd, "userfaultfd")) {
		mgi_conn_reply(c, -EINVAL, "uffd features: not a userfaultfd");
		goto out;
	}
	rc = ioctl(fd, UFFDIO_API, &api) == 0 ? 0 : -errno;
	mgi_conn_reply(c, rc, "%s", rc ? strerror(-rc) : "");
out:
	if (fd >= 0)
		close(fd);
}

/* Over 100 lines on purpose: the descriptors that came with the message
 * are taken first (so that none leaks, whatever the message), then one
 * plain switch hands each message type to its room; kept as one switch so
 * that a new message is one case here. */
void mgi_dispatch(mgi_manager_t *m, unsigned i)
{
	struct mgi_conn *c = &m->conns[i];
	static char buf[sizeof(mgi_msg_t) + 1];
	static mgi_msg_t msg;
	char err[96], cbuf[CMSG_SPACE((2 * MGI_DEPTH_MAX + 1) * sizeof(int))];
	struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf)};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			    .msg_controllen = sizeof(cbuf)};
	ssize_t n = recvmsg(c->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	int type, passed[2 * MGI_DEPTH_MAX + 1];
	unsigned npassed = 0;

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	/* REGISTER carries an fd (its eventfd), a rejoining HELLO its
	 * group's segments; whatever else came is closed, whatever the
	 * message (an empty one, carrying fds, leaked them: 9 per message
	 * until memgrpd's table was full). */
	if (n >= 0)
		for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
			if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS ||
			    cm->cmsg_len < CMSG_LEN(0))
				continue;
			for (size_t k = 0; k < (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int); k++) {
				int fd;
				memcpy(&fd, CMSG_DATA(cm) + k * sizeof(int), sizeof(int));
				if (npassed < 2 * MGI_DEPTH_MAX + 1)
					passed[npassed++] = fd;
				else
					close(fd);
			}
		}
	if (n <= 0 || (mh.msg_flags & MSG_CTRUNC)) {
		/* Closed, an error, or more descriptors than any message
		 * carries (the kernel dropped those that did not fit): that
		 * client is done. */
		for (unsigned k = 0; k < npassed; k++)
			close(passed[k]);
		if (n > 0)
			mgi_conn_reply(c, -EINVAL, "bad request: more descriptors than any message carries");
		mgi_conn_drop(m, i);
		return;
	}
	type = mgi_msg_parse(buf, (size_t)n, &msg, err, sizeof(err));
	if (type == MGI_MSG_UFFD_FEATURES) {
		for (unsigned k = 1; k < npassed; k++)
			close(passed[k]);
		on_uffd_features(m, i, msg.unreg.id, npassed ? passed[0] : -1);
		return;
	}
	if (type == MGI_MSG_REGISTER) {
		for (unsigned k = 1; k < npassed; k++)
			close(passed[k]);
		on_register(m, i, &msg.reg, npassed ? passed[0] : -1);
		return;
	}
	if (type == MGI_MSG_FORKED) {
		for (unsigned k = 1; k < npassed; k++)
			close(passed[k]);
		mgi_join_forked(m, i, &msg.spare, npassed ? passed[0] : -1);
		return;
	}
	if (type == MGI_MSG_HELLO && msg.hello.slot >= 0) {
		mgi_join_rejoin(m, i, &msg.hello, passed, npassed);
		for (unsigned k = 0; k < npassed; k++)
			close(passed[k]);
		return;
	}
	for (unsigned k = 0; k < npassed; k++)
		close(passed[k]);
	switch (type) {
	case MGI_MSG_HELLO:
		mgi_join_hello(m, i, &msg.hello);
		break;
	case MGI_MSG_OOM_KILL:
		/* Only the manager kills, and only its own kills are OOM
		 * events: a client's report is not believed (a forged one
		 * made listeners hear of a kill that never was). */
		mgi_manager_log(m, "refused an OOM_KILL report from pid %d (uid %u): only the "
				   "manager kills; no event sent", (int)c->peer_pid,
				(unsigned)c->peer_uid);
		break;
	case MGI_MSG_OOM_REQ:
		if (c->slot >= 0)
			on_oom_request(m, c, &msg.oom_req);
		break;
	case MGI_MSG_RECLAIM_REQ:
		if (c->slot >= 0 && msg.reclaim_req.pid == c->pid)
			mgi_reclaim_on_request(m, c, &msg.reclaim_req);
		break;
	case MGI_MSG_EVICTED:
		if (c->slot >= 0)
			mgi_reclaim_evicted(m, i, &msg.evict);
		break;
	case MGI_MSG_GRANT:
		mgi_grant_on_request(m, c, &msg.grant);
		break;
	case MGI_MSG_ATTACH:
		mgi_join_attach(m, i, &msg.attach);
		break;
	case MGI_MSG_OOM_PRIORITY:
		mgi_oom_on_priority(m, i, &msg.oom_priority);
		break;
	case MGI_MSG_SPARE:
		mgi_join_spare(m, i, &msg.spare);
		break;
	case MGI_MSG_OOM_RECORD_REQ:
		mgi_oom_on_record_req(m, i, &msg.oom_record_req);
		break;
	case MGI_MSG_OOM_ACT:
		mgi_oom_on_act(m, i, &msg.oom_act);
		break;
	case MGI_MSG_OOM_HANDLER:
		mgi_oomh_on_register(m, i, &msg.group);
		break;
	case MGI_MSG_OOM_DECISION:
		mgi_oomh_on_decision(m, i, &msg.oom_decision);
		break;
	case MGI_MSG_COOP_DONE:
		for (int r = 0; r < MGI_REGS_MAX; r++)
			if (m->regs[r].id == msg.unreg.id && m->regs[r].conn == (int)i)
				mgi_coop_answered(m, r);
		break; /* no reply: the client does not wait */
	case MGI_MSG_UNREGISTER:
		if (mgi_notify_unregister(m, i, msg.unreg.id) == 0)
			mgi_conn_reply(c, 0, "%s", "");
		else
			mgi_conn_reply(c, -ENOENT, "no registration %u of this connection", msg.unreg.id);
		break;
	case MGI_MSG_REPLY:
		if (c->slot >= 0)
			mgi_join_move_reply(m, c, &msg.reply);
		break;
	case MGI_MSG_STAT_REQ:
	case MGI_MSG_SET:
	case MGI_MSG_CREATE:
	case MGI_MSG_RM:
	case MGI_MSG_LIST_REQ:
	case MGI_MSG_PLACE:
		on_request(m, i, &msg, type);
		break;
	default:
		/* Unparsable or unexpected: say why, and that client is done. */
		mgi_conn_reply(c, type < 0 ? type : -EPROTO, "bad request: %s",
		      type < 0 ? err : "unexpected message type");
		mgi_oomh_bad_message(m, i, type < 0 ? err : "unexpected message type");
		mgi_conn_drop(m, i);
		break;
	}
}

/* spare.c - spare slots: a deferred process's forked child joins without waiting for the manager (FORKED). */
#include "manager.h"
#include "conn.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include "grantd.h"

/*
 * A process in its deferred start (src/agent/start.c) that forks would
 * make its child wait for a round trip to us before it runs (HELLO and
 * WELCOME: its slot), and on a busy host that wait is most of what a
 * fork costs (docs/benchmarks.md, "Process start"). So such a process
 * asks for a spare slot in advance (SPARE -1). Its child takes the spare
 * at fork, charges into it at once, and tells us on its parent's
 * connection (FORKED, with a socket of its own for its connection),
 * without waiting for an answer. We bind the slot to the child's pid and
 * give the parent a new spare. Until then the slot is marked
 * MGI_SLOT_SPARE: no listing, OOM choice or audit counts it as a process.
 *
 * Trust: the child's pid is the kernel's word (SO_PEERCRED of the socket
 * it created), not the message's; the slot must be the spare of the
 * connection it comes on, and only a process holding that connection (the
 * parent, or a child that inherited it) can send there; the pid must be
 * in the group's kernel cgroup when there is one (mgi_backstop_hello), as
 * for a HELLO. A FORKED that does not fit is ignored: a child that took
 * the spare then charges a slot that is released with its owner's.
 */

/* A spare only while the group's slots are at most half taken: a spare is
 * a slot no other process can join into. */
static bool room_for_spare(const mgi_segment_t *seg)
{
	unsigned used = 0;

	for (int s = 0; s < MGI_PROCS_MAX; s++)
		used += atomic_load_explicit(&seg->ctl.procs[s].pid, memory_order_relaxed) != 0;
	return used < MGI_PROCS_MAX / 2;
}

static void give_spare(mgi_manager_t *m, struct mgi_conn *c)
{
	mgi_segment_t *seg;
	mgi_msg_t r;
	int s;

	if (c->fd < 0 || c->slot < 0 || c->spare >= 0 || c->group < 0 || c->move_group >= 0)
		return;
	seg = m->tree.node[c->group].seg;
	if (!room_for_spare(seg) || (s = mgi_segment_claim(seg, MGI_SLOT_SPARE)) < 0)
		return;
	c->spare = s;
	mgi_msg_init(&r, MGI_MSG_SPARE);
	r.spare.slot = s;
	send(c->fd, &r, r.hdr.len, MSG_NOSIGNAL | MSG_DONTWAIT);
}

void mgi_join_drop_spare(mgi_manager_t *m, struct mgi_conn *c)
{
	int s = c->spare;

	c->spare = -1;
	if (s < 0 || c->group < 0)
		return;
	mgi_counter_path_t path = mgi_tree_charge_path(&m->tree, c->group);
	if (mgi_segment_release(m->tree.node[c->group].seg, s, MGI_SLOT_SPARE, &path) > 0) {
		mgi_grant_after_release(m, c->group);
		mgi_notify_after_uncharge(m, c->group);
	}
}

void mgi_join_spare(mgi_manager_t *m, unsigned i, const mgi_msg_spare_t *s)
{
	struct mgi_conn *c = &m->conns[i];

	if (s->slot < 0)
		give_spare(m, c);
	else if (s->slot == c->spare)
		mgi_join_drop_spare(m, c); /* given back: its process started its handler */
}

void mgi_join_forked(mgi_manager_t *m, unsigned k, const mgi_msg_spare_t *s, int fd)
{
	struct mgi_conn *p = &m->conns[k];
	struct ucred cred = {.pid = 0};
	socklen_t len = sizeof(cred);
	char why[320];
	int i, rc;

	if (fd < 0)
		return;
	if (p->slot < 0 || p->spare < 0 || s->slot != p->spare ||
	    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || cred.pid != s->pid) {
		mgi_manager_log(m, "a FORKED on pid %d's connection names slot %d and pid %d (its "
				   "socket's pid %d, the spare %d): ignored", (int)p->pid, s->slot,
				s->pid, (int)cred.pid, p->spare);
		close(fd);
		return;
	}
	int g = p->group, slot = p->spare;
	mgi_segment_t *seg = m->tree.node[g].seg;
	p->spare = -1;
	if (mgi_segment_bind_spare(seg, slot, cred.pid) != 0) {
		close(fd);
		return;
	}
	mgi_tree_name_slot(&m->tree, g, slot, cred.pid);
	seg->ctl.procs[slot].oom_priority = p->oom_priority; /* as its parent's, inherited */
	rc = mgi_backstop_hello(m, cred.pid, cred.uid == 0 || cred.uid == m->uid, g, why,
				sizeof(why));
	/* Gone already (a child that exits at once): its connection's end
	 * tells of it as any process's does. */
	if (rc == -ESRCH || rc == -ENOENT)
		rc = 0;
	if (rc != 0) {
		close(fd);
		i = rc;
	} else {
		/* non-blocking as an accepted connection is (the child's
		 * end is its own file) */
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
		i = mgi_conn_add(m, fd);
		snprintf(why, sizeof(why), "%s", strerror(-i));
	}
	p = &m->conns[k];
	if (i < 0) {
		/* It runs on, charging the slot it took: watched as the
		 * processes of an adopted group are, released at its exit. */
		mgi_manager_log(m, "pid %d (forked by pid %d) is not served: %s; its slot is "
				   "released when it exits", (int)cred.pid, (int)p->pid, why);
		mgi_join_watch_orphans(m);
		give_spare(m, p);
		return;
	}
	struct mgi_conn *c = &m->conns[i];
	c->pid = cred.pid;
	c->group = g;
	c->slot = slot;
	c->exact = atomic_load(&seg->ctl.mode) == MGI_MODE_EXACT;
	c->oom_priority = p->oom_priority;
	mgi_backstop_joined(m, g);
	mgi_join_watch_exit(m, (unsigned)i);
	give_spare(m, p);
}

void mgi_join_exited(mgi_manager_t *m, unsigned i)
{
	int fd = m->conns[i].fd;

	if (m->conns[i].spare >= 0) {
		/* A child that took the spare may have said so just before
		 * its parent exited: what is queued is read first. Shut for
		 * reading, a later FORKED fails in the child, which then
		 * joins the ordinary way. */
		shutdown(fd, SHUT_RD);
		for (int n = 0; n < 64 && m->conns[i].fd == fd; n++)
			mgi_dispatch(m, i);
	}
	if (m->conns[i].fd == fd && fd >= 0)
		mgi_conn_drop(m, i);
}

/* oom_handler.c - a user-space OOM handler per group: registered by a client, asked at OOM with a snapshot, its decision applied or the policy instead. */
#include "oom_handler.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "manager.h"
#include "conn.h"
#include "oom_int.h"
#include "oslayer.h"
#include "size.h"

/*
 * One handler per group, one group per connection. At the group's OOM
 * action (escalate.c, where the policy would act) the handler is sent a
 * snapshot and the faulting threads wait (their OOM_REQ every 100 ms
 * finds it deciding: WAIT) until its decision, its timeout, or its
 * connection's end; these last two, and a decision that cannot be applied,
 * leave the action to the group's policy. The deadline is looked at on
 * those requests: a fault that waits asks again within 100 ms, and none
 * waiting means nobody needs the decision.
 *
 * While it decides, the group's control part says so (oom_handling) with
 * the handler's pid and the reserve its process may charge beyond the
 * limit (agent/oomreserve.c): only the manager writes them.
 *
 * Whose handler is asked: the OOM is that of the group whose limit
 * refused the charge (the target: the faulting process's group or one of
 * its ancestors, dispatch.c). Its own handler is asked; if it has none,
 * the nearest handler registered above it: a handler decides for its
 * group's whole subtree. The snapshot is of the target's subtree, and the
 * decision acts there (its processes killed, its limit raised). A handler
 * registered below the target is not asked (it sees only part of the
 * subtree whose limit is concerned). One target at a time per handler:
 * another OOM it would decide waits for the first decision.
 */

/* Resumes in a row that made no room: then the policy (never a loop of
 * asks that frees nothing). An OOM this long after the last decision is
 * a new episode: the count starts again. */
#define RESUMES_MAX 3
#define EPISODE_GAP_NS 1000000000ULL

struct handler {
	int conn, conn_fd;   /* the handler's connection (index, fd); -1: none */
	pid_t pid;
	char group[MGI_GROUP_NAME_MAX]; /* whose handler (an index may be reused) */
	uint64_t seq, deadline_ns, decided_ns;
	int target;          /* the group it decides for (while deciding) */
	bool kernel;         /* at target's kernel limit (oom_handler_kernel.c) */
	char target_name[MGI_GROUP_NAME_MAX];
	bool deciding;
	bool fallback;       /* the policy applies at the next OOM action */
	unsigned resumes;
};

struct mgi_oomh {
	struct handler h[MGI_GROUPS_MAX];
	uint64_t next_seq;
};

static struct mgi_oomh *table(mgi_manager_t *m)
{
	if (!m->oomh) {
		m->oomh = calloc(1, sizeof(*m->oomh));
		if (!m->oomh)
			return NULL;
		for (int g = 0; g < MGI_GROUPS_MAX; g++)
			m->oomh->h[g].conn = m->oomh->h[g].conn_fd = -1;
	}
	return m->oomh;
}

/* g's handler if one is registered for it (the group it was registered
 * for, not a later one in the same index), else NULL. */
static struct handler *handler_of(mgi_manager_t *m, int g)
{
	if (!m->oomh || g <= 0 || g >= MGI_GROUPS_MAX || !m->tree.node[g].used)
		return NULL;
	struct handler *h = &m->oomh->h[g];
	if (h->conn < 0)
		return NULL;
	if (strcmp(h->group, m->tree.node[g].name) != 0 || m->conns[h->conn].fd != h->conn_fd) {
		h->conn = h->conn_fd = -1;
		return NULL;
	}
	return h;
}

/* The handler asked at g's OOM: g's own, else the nearest above (*at:
 * the group it is registered on), else NULL. */
static struct handler *nearest_handler(mgi_manager_t *m, int g, int *at)
{
	for (; g > 0; g = m->tree.node[g].parent) {
		struct handler *h = handler_of(m, g);
		if (h) {
			*at = g;
			return h;
		}
	}
	return NULL;
}

/* Whether the group h decides for is still the one it was asked for. */
static bool target_alive(const mgi_manager_t *m, const struct handler *h)
{
	return h->target > 0 && h->target < MGI_GROUPS_MAX && m->tree.node[h->target].used &&
	       strcmp(m->tree.node[h->target].name, h->target_name) == 0;
}

/* " (pid P)" for g's own handler, " (pid P, registered on 'A')" for one
 * above it: how the log names it. */
static const char *who(const mgi_manager_t *m, const struct handler *h, int g, char *buf, size_t len)
{
	if (strcmp(h->group, m->tree.node[g].name) == 0)
		snprintf(buf, len, "(pid %d)", (int)h->pid);
	else
		snprintf(buf, len, "(pid %d, registered on '%s')", (int)h->pid, h->group);
	return buf;
}

/* The decision is over (made, or the policy's): the reserve closes. */
static void end_deciding(mgi_manager_t *m, struct handler *h)
{
	h->deciding = false;
	if (!target_alive(m, h))
		return;
	mgi_segment_t *seg = m->tree.node[h->target].seg;
	atomic_store(&seg->ctl.oom_reserve_now, 0);
	atomic_store(&seg->ctl.oom_handling, 0);
	if (strcmp(h->group, h->target_name) != 0) /* lent for this decision */
		atomic_store(&seg->ctl.oom_handler_pid, 0);
}

/* The policy applies at the next OOM action of h's target: counted, told. */
static void fall_back(mgi_manager_t *m, struct handler *h, const char *why)
{
	char w[MGI_GROUP_NAME_MAX + 48];

	if (h->deciding)
		end_deciding(m, h);
	h->fallback = true;
	h->resumes = 0;
	if (!target_alive(m, h))
		return;
	int g = h->target;
	atomic_fetch_add(&m->tree.node[g].seg->ctl.oomh_fallback, 1);
	mgi_notify_ladder(m, g);
	mgi_manager_log(m, "group '%s': its OOM handler %s %s: the group's policy applies",
			m->tree.node[g].name, who(m, h, g, w, sizeof(w)), why);
}

void mgi_oomh_on_register(mgi_manager_t *m, unsigned i, const mgi_msg_group_t *r)
{
	struct mgi_conn *c = &m->conns[i];
	struct mgi_oomh *t;
	int g;

	if (mgi_conn_refuse_unprivileged(m, c, "handle a group's OOM") ||
	    (g = mgi_conn_lookup(m, c, r->group)) < 0)
		return;
	if (g == 0) {
		mgi_conn_reply(c, -EINVAL, "the root has no limit: no OOM to handle");
		return;
	}
	if (!(t = table(m))) {
		mgi_conn_reply(c, -ENOMEM, "no memory for the handlers' table");
		return;
	}
	struct handler *h = handler_of(m, g);
	if (h) {
		mgi_conn_reply(c, -EBUSY, "group '%s' has an OOM handler already (pid %d)",
			       m->tree.node[g].name, (int)h->pid);
		return;
	}
	for (int o = 1; o < MGI_GROUPS_MAX; o++)
		if (o != g && (h = handler_of(m, o)) && h->conn == (int)i) {
			mgi_conn_reply(c, -EBUSY, "this connection handles group '%s' already: one group "
						  "per connection", m->tree.node[o].name);
			return;
		}
	h = &t->h[g];
	*h = (struct handler){.conn = (int)i, .conn_fd = c->fd, .pid = c->peer_pid};
	snprintf(h->group, sizeof(h->group), "%s", m->tree.node[g].name);
	atomic_store(&m->tree.node[g].seg->ctl.oom_handler_pid, (int32_t)c->peer_pid);
	mgi_manager_log(m, "group '%s': pid %d (uid %u) is its OOM handler", m->tree.node[g].name,
			(int)c->peer_pid, (unsigned)c->peer_uid);
	mgi_conn_reply(c, 0, "%s", m->tree.node[g].name);
}

void mgi_oomh_bad_message(mgi_manager_t *m, unsigned i, const char *why)
{
	if (!m->oomh)
		return;
	for (int g = 1; g < MGI_GROUPS_MAX; g++) {
		struct handler *h = handler_of(m, g);
		if (h && h->conn == (int)i)
			mgi_manager_log(m, "group '%s': its OOM handler (pid %d) sent a message that is "
					   "no decision (%s): nothing done on its word, its connection "
					   "dropped", m->tree.node[g].name, (int)h->pid, why);
	}
}

void mgi_oomh_conn_gone(mgi_manager_t *m, unsigned i)
{
	if (!m->oomh)
		return;
	for (int g = 1; g < MGI_GROUPS_MAX; g++) {
		struct handler *h = handler_of(m, g);
		if (!h || h->conn != (int)i)
			continue;
		if (h->deciding)
			fall_back(m, h, "went away while deciding");
		else
			mgi_manager_log(m, "group '%s': its OOM handler (pid %d) went away",
					m->tree.node[g].name, (int)h->pid);
		h->conn = h->conn_fd = -1;
		h->fallback = false;
		atomic_store(&m->tree.node[g].seg->ctl.oom_handler_pid, 0);
	}
}

void mgi_oomh_snapshot_add(mgi_msg_oom_snapshot_t *s, const mgi_oomh_proc_t *p)
{
	s->total++;
	/* insertion by size; a full table drops its smallest */
	uint32_t at = s->nprocs;
	while (at > 0 && s->procs[at - 1].charged < p->charged)
		at--;
	if (at >= MGI_OOMH_PROCS_MAX)
		return;
	uint32_t last = s->nprocs < MGI_OOMH_PROCS_MAX ? s->nprocs : MGI_OOMH_PROCS_MAX - 1;
	memmove(&s->procs[at + 1], &s->procs[at], (last - at) * sizeof(*p));
	s->procs[at] = *p;
	if (s->nprocs < MGI_OOMH_PROCS_MAX)
		s->nprocs++;
}

/* Fills the snapshot's processes: those that joined under g, the largest
 * first (at most MGI_OOMH_PROCS_MAX). */
static void fill_procs(mgi_manager_t *m, int g, mgi_msg_oom_snapshot_t *s)
{
	s->nprocs = s->total = 0;
	for (unsigned k = 0; k < m->nconns; k++) {
		struct mgi_conn *c = &m->conns[k];
		if (c->fd < 0 || c->slot < 0 || c->pidfd < 0 || !m->tree.node[c->group].used ||
		    !mgi_tree_is_under(&m->tree, c->group, g))
			continue;
		const mgi_segment_t *gs = m->tree.node[c->group].seg;
		uint64_t charged = mgi_segment_slot_charged(gs, c->slot), kernel = mgi_oom_kernel_pages(c->pid);
		mgi_oomh_proc_t p = {.pid = c->pid, .priority = c->oom_priority,
				     .charged = (charged > kernel ? charged : kernel) * MGI_PAGE_SIZE,
				     .age_ms = mgi_oom_age_ms(c),
				     .growth = mgi_oom_growth(c, charged) * MGI_PAGE_SIZE};
		snprintf(p.comm, sizeof(p.comm), "%.*s", MGI_COMM_MAX - 1, gs->ctl.procs[c->slot].comm);
		mgi_oom_cmdline(c->pid, p.cmdline, sizeof(p.cmdline));
		mgi_oomh_snapshot_add(s, &p);
	}
}

/* Whether h, asked now at target's OOM, leaves the action to the policy
 * this time (false: it is to be asked). WAIT (*wait) while it decides,
 * for target or, first, for another group. */
static bool policy_now(mgi_manager_t *m, struct handler *h, int target, uint64_t now, bool *wait)
{
	*wait = false;
	if (h->deciding && !target_alive(m, h))
		end_deciding(m, h); /* its group was removed meanwhile */
	if (h->deciding && h->target != target) {
		if (now < h->deadline_ns) {
			*wait = true; /* one decision at a time: this OOM waits its turn */
			return true;
		}
		fall_back(m, h, "did not answer in time (--oom-handler-timeout)");
		h->fallback = false; /* (that group's policy acts at its next request) */
	}
	if (h->fallback) {
		h->fallback = false; /* this once: the next OOM asks again */
		return true;
	}
	if (h->deciding) {
		if (now < h->deadline_ns) {
			*wait = true;
			return true;
		}
		fall_back(m, h, "did not answer in time (--oom-handler-timeout)");
		h->fallback = false;
		return true;
	}
	if (h->decided_ns && now - h->decided_ns > EPISODE_GAP_NS)
		h->resumes = 0;
	if (h->resumes >= RESUMES_MAX) {
		h->target = target;
		snprintf(h->target_name, sizeof(h->target_name), "%s", m->tree.node[target].name);
		fall_back(m, h, "resumed 3 times in a row and no room came");
		h->fallback = false;
		return true;
	}
	return false;
}

/* The snapshot's figures: the segment's, or at a kernel limit the
 * kernel cgroup's (no reserve there: the kernel lends nothing). False if
 * they cannot be read (the policy then). */
static bool snapshot_fill(mgi_manager_t *m, int target, bool kernel, const struct mgi_oom_eff *e,
			  mgi_msg_oom_snapshot_t *s)
{
	mgi_segment_t *seg = m->tree.node[target].seg;

	if (kernel) {
		if (!mgi_oomh_kernel_figures(m, target, &s->usage, &s->limit))
			return false;
		s->reserve = 0;
		mgi_oomh_fill_kernel(m, target, s);
		return true;
	}
	s->usage = mgi_counter_read(&seg->acct.memory) * MGI_PAGE_SIZE;
	s->limit = mgi_counter_read_max(&seg->ctl.memory) * MGI_PAGE_SIZE;
	s->reserve = e->reserve_pages * MGI_PAGE_SIZE;
	mgi_manager_audit(m); /* the figures it decides on */
	fill_procs(m, target, s);
	return true;
}

static bool ask(mgi_manager_t *m, int target, bool kernel)
{
	static mgi_msg_t out; /* large: not on the stack */
	int at = -1;
	struct handler *h = nearest_handler(m, target, &at);
	mgi_segment_t *seg;
	uint64_t now = mgi_os_now_ns();
	bool wait;
	char w[MGI_GROUP_NAME_MAX + 48];

	if (!h)
		return false;
	seg = m->tree.node[target].seg;
	/* paused (--oom-kill-disable) after the handler's turn: the pause
	 * holds until room comes or memgrp oom acts, without asking again */
	if (atomic_load(&seg->ctl.under_oom))
		return false;
	if (policy_now(m, h, target, now, &wait))
		return wait;
	struct mgi_oom_eff e = mgi_oom_effective(m, target);
	mgi_msg_init(&out, MGI_MSG_OOM_SNAPSHOT);
	mgi_msg_oom_snapshot_t *s = &out.oom_snapshot;
	s->seq = ++m->oomh->next_seq;
	snprintf(s->group, sizeof(s->group), "%s", m->tree.node[target].name);
	s->timeout_ms = e.handler_ms;
	if (!snapshot_fill(m, target, kernel, &e, s))
		return false;
	h->target = target;
	h->kernel = kernel;
	snprintf(h->target_name, sizeof(h->target_name), "%s", m->tree.node[target].name);
	/* the reserve opens before the handler hears: it may fault at once
	 * (a handler registered above is lent target's reserve) */
	if (at != target)
		atomic_store(&seg->ctl.oom_handler_pid, (int32_t)h->pid);
	atomic_store(&seg->ctl.oom_reserve_now, kernel ? 0 : e.reserve_pages);
	atomic_store(&seg->ctl.oom_handling, 1);
	if (send(h->conn_fd, &out, out.hdr.len, MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)out.hdr.len) {
		h->deciding = true;
		fall_back(m, h, "could not be told (its socket is full or closed)");
		h->fallback = false;
		return false;
	}
	h->seq = s->seq;
	h->deciding = true;
	h->deadline_ns = now + (uint64_t)e.handler_ms * 1000000ULL;
	atomic_fetch_add(&seg->ctl.oomh_asked, 1);
	mgi_notify_ladder(m, target);
	char usage[16], max[16];
	mgi_manager_log(m, "group '%s' is out of memory (%susage %s, max %s): its OOM handler %s "
			   "decides, within %u ms (snapshot %llu, %u processes)", m->tree.node[target].name,
			kernel ? "at its kernel limit: " : "", mgi_size_format(s->usage, usage, sizeof(usage)),
			mgi_size_format(s->limit, max, sizeof(max)), who(m, h, target, w, sizeof(w)),
			e.handler_ms, (unsigned long long)s->seq, s->total);
	return true;
}

bool mgi_oomh_ask(mgi_manager_t *m, int target)
{
	return ask(m, target, false);
}

bool mgi_oomh_ask_kernel(mgi_manager_t *m, int target)
{
	return ask(m, target, true);
}

/* KILL: every pid must be a process that joined under g (checked first:
 * one stranger and nothing is killed). */
static int apply_kill(mgi_manager_t *m, int g, struct handler *h, const mgi_msg_oom_decision_t *d,
		      char *why, size_t whylen)
{
	char by[96], comm[MGI_COMM_MAX + 1];
	int done = 0;

	snprintf(by, sizeof(by), ": killed by its OOM handler (pid %d)", (int)h->pid);
	if (h->kernel) /* any process of its kernel cgroup, joined or not */
		return mgi_oomh_kill_kernel(m, g, d->pids, d->npids, by, why, whylen);

	for (uint32_t k = 0; k < d->npids; k++) {
		struct mgi_conn *v = mgi_oom_joined_conn(m, d->pids[k]);
		if (!v || !mgi_tree_is_under(&m->tree, v->group, g)) {
			snprintf(why, whylen, "pid %d is not a process of group '%s' (nor of a group below "
					      "it) that joined this manager: nothing killed",
				 (int)d->pids[k], m->tree.node[g].name);
			return -ESRCH;
		}
	}
	snprintf(by, sizeof(by), ": killed by its OOM handler (pid %d)", (int)h->pid);
	for (uint32_t k = 0; k < d->npids; k++)
		if (mgi_oom_kill_named(m, g, d->pids[k], by, "named by the group's OOM handler", comm,
				       sizeof(comm)) == 0)
			done++;
	snprintf(why, whylen, "killed %d of %u", done, d->npids);
	return done ? 0 : -ESRCH;
}

/* RAISE: the same checks as memgrp set (the parent's limit, the rules). */
static int apply_raise(mgi_manager_t *m, int g, const mgi_msg_oom_decision_t *d, char *why,
		       size_t whylen)
{
	mgi_msg_set_t set;
	char lim[16];

	if (mgi_kbackend_is(m, g)) {
		snprintf(why, whylen, "a kernel-backend group's limit is not raised by a handler");
		return -EOPNOTSUPP;
	}
	memset(&set, 0, sizeof(set));
	set.memory_max = d->limit;
	set.memory_high = set.memory_low = set.memory_soft = set.swap_max = MGI_SET_KEEP;
	set.swappiness = set.mode = set.backend = MGI_SET_KEEP;
	int rc = mgi_tree_set_limits(&m->tree, g, &set, why, whylen);
	if (rc != 0)
		return rc;
	mgi_manager_limits_changed(m, g);
	mgi_oom_pause_check(m);
	if (d->limit == MGI_SET_UNLIMITED)
		snprintf(lim, sizeof(lim), "max");
	else
		mgi_size_format(d->limit, lim, sizeof(lim));
	snprintf(why, whylen, "limit raised to %s", lim);
	return 0;
}

void mgi_oomh_on_decision(mgi_manager_t *m, unsigned i, const mgi_msg_oom_decision_t *d)
{
	struct mgi_conn *c = &m->conns[i];
	struct handler *h = NULL;
	char why[320] = "";
	int g, rc;

	for (g = 1; g < MGI_GROUPS_MAX; g++)
		if ((h = handler_of(m, g)) && h->conn == (int)i)
			break;
	if (g == MGI_GROUPS_MAX) {
		mgi_conn_reply(c, -ENOENT, "this connection is no group's OOM handler");
		return;
	}
	if (!h->deciding || d->seq != h->seq) {
		mgi_conn_reply(c, -ETIMEDOUT, "decision for snapshot %llu: not the one awaited (%s): "
					      "nothing done", (unsigned long long)d->seq,
			       h->deciding ? "another was sent since" : "too late, the policy acted");
		return;
	}
	if (!target_alive(m, h)) {
		end_deciding(m, h);
		mgi_conn_reply(c, -ENOENT, "group '%s' was removed meanwhile: nothing done", h->target_name);
		return;
	}
	g = h->target; /* (the group it decides for: its own or one below) */
	mgi_segment_t *seg = m->tree.node[g].seg;
	switch (d->action) {
	case MGI_OOMH_KILL:
		rc = apply_kill(m, g, h, d, why, sizeof(why));
		break;
	case MGI_OOMH_RAISE:
		rc = apply_raise(m, g, d, why, sizeof(why));
		break;
	default:
		rc = 0;
		snprintf(why, sizeof(why), "resume: the faulting threads retry");
		break;
	}
	if (rc != 0) {
		char said[400];
		snprintf(said, sizeof(said), "sent a decision that was refused (%s)", why);
		fall_back(m, h, said);
		mgi_conn_reply(c, rc, "%s; the group's policy applies", why);
		return;
	}
	end_deciding(m, h);
	_Atomic uint64_t *count = d->action == MGI_OOMH_KILL    ? &seg->ctl.oomh_kill
				  : d->action == MGI_OOMH_RAISE ? &seg->ctl.oomh_raise
								: &seg->ctl.oomh_resume;
	atomic_fetch_add(count, 1);
	h->resumes = d->action == MGI_OOMH_RESUME ? h->resumes + 1 : 0;
	h->decided_ns = mgi_os_now_ns();
	mgi_notify_ladder(m, g);
	char w[MGI_GROUP_NAME_MAX + 48];
	mgi_manager_log(m, "group '%s': its OOM handler %s decided: %s", m->tree.node[g].name,
			who(m, h, g, w, sizeof(w)), why);
	mgi_conn_reply(c, 0, "%s", why);
}

void mgi_oomh_destroy(mgi_manager_t *m)
{
	free(m->oomh);
	m->oomh = NULL;
}

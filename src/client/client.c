/* client.c - libmemgrp: sizes, and a client of a manager's control socket. */
#include "memgrp.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "../core/proto.h"
#include "../core/size.h"
#include "../core/victim.h"

#define DEFAULT_SOCKET "/run/memgrp/memgrpd.sock"
#define REGS_MAX 256

struct mg_client {
	int fd;
	char error[160];
	/* message buffers (large: not on the stack; one call at a time) */
	mgi_msg_t req, ans;
	char buf[sizeof(mgi_msg_t) + 1];
	/* eventfd -> registration id, to end it by its fd */
	struct {
		int efd;
		uint32_t id;
	} regs[REGS_MAX];
	/* an OOM snapshot that came while another answer was awaited */
	bool have_snap;
	mgi_msg_oom_snapshot_t snap;
};

unsigned mg_version(void)
{
	return MG_VERSION;
}

int mg_parse_size(const char *text, uint64_t *bytes, char *err, size_t errlen)
{
	return mgi_size_parse_limit(text, bytes, err, errlen);
}

char *mg_format_size(uint64_t bytes, char *buf, size_t len)
{
	return mgi_size_format(bytes, buf, len);
}

mg_client_t *mg_connect(const char *socket_path, int *error)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct timeval tv = {.tv_sec = 5};
	mg_client_t *c;
	int e;

	if (!socket_path || !*socket_path)
		socket_path = getenv("MEMGRP_SOCKET");
	if (!socket_path || !*socket_path)
		socket_path = DEFAULT_SOCKET;
	if (strlen(socket_path) >= sizeof(sa.sun_path)) {
		e = -ENAMETOOLONG;
		goto fail;
	}
	strcpy(sa.sun_path, socket_path);
	c = calloc(1, sizeof(*c));
	if (!c) {
		e = -ENOMEM;
		goto fail;
	}
	for (int i = 0; i < REGS_MAX; i++)
		c->regs[i].efd = -1;
	c->fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		e = -errno;
		if (c->fd >= 0)
			close(c->fd);
		free(c);
		goto fail;
	}
	/* A manager that hangs must not hang the application. */
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return c;
fail:
	if (error)
		*error = e;
	return NULL;
}

void mg_close(mg_client_t *c)
{
	if (!c)
		return;
	for (int i = 0; i < REGS_MAX; i++)
		if (c->regs[i].efd >= 0)
			close(c->regs[i].efd);
	close(c->fd);
	free(c);
}

int mg_fd(const mg_client_t *c)
{
	return c ? c->fd : -EINVAL;
}

const char *mg_last_error(const mg_client_t *c)
{
	return c ? c->error : "no client";
}

static int set_error(mg_client_t *c, int rc, const char *msg)
{
	snprintf(c->error, sizeof(c->error), "%s", msg);
	return rc;
}

/* Sends req (with fd, if >= 0) and receives the answer into *ans. */
static int request(mg_client_t *c, const mgi_msg_t *req, int fd, mgi_msg_t *ans)
{
	char cbuf[CMSG_SPACE(sizeof(int))], why[96];
	struct iovec iov = {.iov_base = (void *)req, .iov_len = req->hdr.len};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	ssize_t n;
	int type;

	c->error[0] = '\0';
	if (fd >= 0) {
		memset(cbuf, 0, sizeof(cbuf));
		mh.msg_control = cbuf;
		mh.msg_controllen = sizeof(cbuf);
		struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	}
	if (sendmsg(c->fd, &mh, MSG_NOSIGNAL) < 0)
		return set_error(c, -errno, "the manager is gone");
	for (;;) {
		do
			n = recv(c->fd, c->buf, sizeof(c->buf), 0);
		while (n < 0 && errno == EINTR);
		if (n <= 0)
			return set_error(c, n == 0 ? -EPIPE : -errno, "the manager did not answer");
		type = mgi_msg_parse(c->buf, (size_t)n, ans, why, sizeof(why));
		if (type < 0)
			return set_error(c, -EPROTO, why);
		if (type != MGI_MSG_OOM_SNAPSHOT)
			break;
		/* a handler's snapshot sent before this answer: kept for
		 * mg_oom_handler_read (a newer one replaces it) */
		c->snap = ans->oom_snapshot;
		c->have_snap = true;
	}
	if (type == MGI_MSG_REPLY && ans->reply.status < 0)
		return set_error(c, ans->reply.status, ans->reply.message);
	return type;
}

static int put_group(mg_client_t *c, char *dst, const char *group)
{
	if (!group)
		group = "";
	if (strlen(group) >= MGI_GROUP_NAME_MAX)
		return set_error(c, -EINVAL, "group name too long");
	strcpy(dst, group);
	return 0;
}

static int add(mg_client_t *c, const char *group, uint32_t kind, uint32_t counter,
	       uint64_t bytes, uint32_t level, uint32_t mode)
{
	mgi_msg_t *req, *ans;
	int slot, efd, rc;

	if (!c)
		return -EINVAL;
	req = &c->req;
	ans = &c->ans;
	for (slot = 0; slot < REGS_MAX && c->regs[slot].efd >= 0; slot++)
		;
	if (slot == REGS_MAX)
		return set_error(c, -ENOSPC, "this client holds 256 registrations, its most");
	mgi_msg_init(req, MGI_MSG_REGISTER);
	if ((rc = put_group(c, req->reg.group, group)) != 0)
		return rc;
	req->reg.kind = kind;
	req->reg.counter = counter;
	req->reg.threshold = bytes;
	req->reg.level = level;
	req->reg.mode = mode;
	efd = eventfd(0, EFD_CLOEXEC);
	if (efd < 0)
		return set_error(c, -errno, "eventfd failed");
	rc = request(c, req, efd, ans);
	if (rc < 0) {
		close(efd);
		return rc;
	}
	if (rc != MGI_MSG_REPLY || ans->reply.value == 0) {
		close(efd);
		return set_error(c, -EPROTO, "unexpected answer from the manager");
	}
	c->regs[slot].efd = efd;
	c->regs[slot].id = ans->reply.value;
	return efd;
}

int mg_threshold_add(mg_client_t *c, const char *group, enum mg_counter counter, uint64_t bytes)
{
	if (c && (bytes == 0 || (counter != MG_COUNTER_MEMORY && counter != MG_COUNTER_MEMSW)))
		return set_error(c, -EINVAL, "a threshold is above 0 bytes, on memory or memsw");
	return add(c, group, MGI_REG_THRESHOLD, (uint32_t)counter, bytes, 0, 0);
}

int mg_pressure_add(mg_client_t *c, const char *group, enum mg_pressure_level level,
		    enum mg_pressure_mode mode)
{
	return add(c, group, MGI_REG_PRESSURE, 0, 0, (uint32_t)level, (uint32_t)mode);
}

int mg_oom_add(mg_client_t *c, const char *group)
{
	return add(c, group, MGI_REG_OOM, 0, 0, 0, 0);
}

int mg_ladder_add(mg_client_t *c, const char *group)
{
	return add(c, group, MGI_REG_LADDER, 0, 0, 0, 0);
}

int mg_cooperate_add(mg_client_t *c, const char *group, unsigned priority)
{
	if (c && priority > MGI_COOP_PRIORITY_MAX)
		return set_error(c, -EINVAL, "priority is 0 to 1000");
	return add(c, group, MGI_REG_COOPERATE, 0, 0, priority, 0);
}

int mg_oom_priority_set(mg_client_t *c, pid_t pid, int priority)
{
	int rc;

	if (!c)
		return -EINVAL;
	if (priority < MGI_OOM_PRIORITY_MIN || priority > MGI_OOM_PRIORITY_MAX || pid < 0)
		return set_error(c, -EINVAL, "an OOM priority is -1000 to 1000, for pid 0 (yourself) or a pid");
	mgi_msg_init(&c->req, MGI_MSG_OOM_PRIORITY);
	c->req.oom_priority.pid = pid;
	c->req.oom_priority.priority = priority;
	rc = request(c, &c->req, -1, &c->ans);
	if (rc < 0)
		return rc;
	return rc == MGI_MSG_REPLY ? 0 : set_error(c, -EPROTO, "unexpected answer from the manager");
}

/* The client's registration slot of an eventfd, or -1 (with the error set). */
static int slot_of(mg_client_t *c, int efd)
{
	for (int i = 0; i < REGS_MAX && efd >= 0; i++)
		if (c->regs[i].efd == efd)
			return i;
	return set_error(c, -1, "not an eventfd of this client");
}

int mg_cooperate_done(mg_client_t *c, int efd)
{
	int i;

	if (!c)
		return -EINVAL;
	if ((i = slot_of(c, efd)) < 0)
		return -ENOENT;
	mgi_msg_init(&c->req, MGI_MSG_COOP_DONE);
	c->req.unreg.id = c->regs[i].id;
	if (send(c->fd, &c->req, c->req.hdr.len, MSG_NOSIGNAL) < 0)
		return set_error(c, -errno, "the manager is gone");
	return 0;
}

int mg_remove(mg_client_t *c, int efd)
{
	int i, rc;

	if (!c)
		return -EINVAL;
	if ((i = slot_of(c, efd)) < 0)
		return -ENOENT;
	mgi_msg_init(&c->req, MGI_MSG_UNREGISTER);
	c->req.unreg.id = c->regs[i].id;
	rc = request(c, &c->req, -1, &c->ans);
	close(efd);
	c->regs[i].efd = -1;
	return rc < 0 ? rc : 0;
}

int64_t mg_event_read(int efd)
{
	uint64_t n;
	ssize_t r;

	do
		r = read(efd, &n, sizeof(n));
	while (r < 0 && errno == EINTR);
	if (r == sizeof(n))
		return (int64_t)n;
	return r < 0 && errno == EAGAIN ? 0 : -(errno ? errno : EIO);
}

/* Asks the manager for a group's figures (out: the caller's, checked): *f
 * points at them, in c->ans, when it returns 0. */
static int stat_request(mg_client_t *c, const char *group, const void *out,
			const mgi_stats_t **f)
{
	int rc;

	if (!c || !out)
		return -EINVAL;
	mgi_msg_init(&c->req, MGI_MSG_STAT_REQ);
	if ((rc = put_group(c, c->req.group.group, group)) != 0)
		return rc;
	rc = request(c, &c->req, -1, &c->ans);
	if (rc < 0)
		return rc;
	if (rc != MGI_MSG_STAT)
		return set_error(c, -EPROTO, "unexpected answer from the manager");
	*f = &c->ans.stat.figures;
	return 0;
}

int mg_stats(mg_client_t *c, const char *group, mg_stats_t *out)
{
	const mgi_stats_t *f;
	int rc = stat_request(c, group, out, &f);

	if (rc != 0)
		return rc;
	*out = (mg_stats_t){f->usage, f->max_usage, f->limit, f->failcnt, f->pgfault,
			    f->nr_processes, f->tracked_bytes, f->untracked_bytes, f->oom_kill};
	return 0;
}

int mg_ladder_read(mg_client_t *c, const char *group, mg_ladder_t *out)
{
	const mgi_stats_t *f;
	int rc = stat_request(c, group, out, &f);

	if (rc != 0)
		return rc;
	*out = (mg_ladder_t){.coop = f->ladder_coop, .coop_enough = f->ladder_coop_enough,
			     .evict = f->ladder_evict, .evict_empty = f->ladder_evict_empty,
			     .oom_kill = f->oom_kill, .oom_pauses = f->oom_pauses,
			     .oom_none = f->oom_none, .under_oom = f->under_oom,
			     .purge = f->ladder_purge, .handler_asked = f->oom_handler_asked,
			     .handler_kill = f->oom_handler_kill, .handler_raise = f->oom_handler_raise,
			     .handler_resume = f->oom_handler_resume,
			     .handler_fallback = f->oom_handler_fallback};
	return 0;
}

int mg_oom_handler_register(mg_client_t *c, const char *group)
{
	int rc;

	if (!c)
		return -EINVAL;
	mgi_msg_init(&c->req, MGI_MSG_OOM_HANDLER);
	if ((rc = put_group(c, c->req.group.group, group)) != 0)
		return rc;
	rc = request(c, &c->req, -1, &c->ans);
	if (rc < 0)
		return rc;
	return rc == MGI_MSG_REPLY ? 0 : set_error(c, -EPROTO, "unexpected answer from the manager");
}

static void snap_out(const mgi_msg_oom_snapshot_t *in, mg_oom_snapshot_t *s)
{
	memset(s, 0, sizeof(*s));
	s->seq = in->seq;
	snprintf(s->group, sizeof(s->group), "%s", in->group);
	s->usage = in->usage;
	s->limit = in->limit;
	s->reserve = in->reserve;
	s->timeout_ms = in->timeout_ms;
	s->nprocs = in->nprocs;
	s->total = in->total;
	for (uint32_t i = 0; i < in->nprocs; i++) {
		const mgi_oomh_proc_t *p = &in->procs[i];
		mg_oom_proc_t *o = &s->procs[i];
		o->pid = p->pid;
		o->priority = p->priority;
		o->charged = p->charged;
		o->age_ms = p->age_ms;
		o->growth = p->growth;
		snprintf(o->comm, sizeof(o->comm), "%s", p->comm);
		snprintf(o->cmdline, sizeof(o->cmdline), "%s", p->cmdline);
	}
}

int mg_oom_handler_read(mg_client_t *c, mg_oom_snapshot_t *s, int timeout_ms)
{
	struct pollfd p;
	char why[96];
	ssize_t n;
	int rc, type;

	if (!c || !s)
		return -EINVAL;
	if (c->have_snap) {
		c->have_snap = false;
		snap_out(&c->snap, s);
		return 0;
	}
	for (;;) {
		p = (struct pollfd){.fd = c->fd, .events = POLLIN};
		do
			rc = poll(&p, 1, timeout_ms);
		while (rc < 0 && errno == EINTR);
		if (rc < 0)
			return set_error(c, -errno, "poll failed");
		if (rc == 0)
			return set_error(c, -ETIMEDOUT, "no OOM snapshot came");
		n = recv(c->fd, c->buf, sizeof(c->buf), MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n <= 0)
			return set_error(c, n == 0 ? -EPIPE : -errno, "the manager is gone");
		type = mgi_msg_parse(c->buf, (size_t)n, &c->ans, why, sizeof(why));
		if (type < 0)
			return set_error(c, -EPROTO, why);
		if (type == MGI_MSG_OOM_SNAPSHOT) {
			snap_out(&c->ans.oom_snapshot, s);
			return 0;
		}
		/* anything else unasked (a late REPLY): not a snapshot, skipped */
	}
}

int mg_oom_handler_answer(mg_client_t *c, const mg_oom_decision_t *d)
{
	char why[96];
	int rc;

	if (!c || !d)
		return -EINVAL;
	mgi_msg_init(&c->req, MGI_MSG_OOM_DECISION);
	mgi_msg_oom_decision_t *o = &c->req.oom_decision;
	o->seq = d->seq;
	o->action = (uint32_t)d->action;
	if (d->action == MG_OOM_KILL) {
		if (d->npids > MG_OOM_PIDS_MAX)
			return set_error(c, -EINVAL, "at most 16 pids per decision");
		o->npids = d->npids;
		for (unsigned i = 0; i < d->npids; i++)
			o->pids[i] = d->pids[i];
	}
	if (d->action == MG_OOM_RAISE)
		o->limit = d->limit == UINT64_MAX ? MGI_SET_UNLIMITED : d->limit;
	/* the manager refuses what its parser refuses; say so here, before
	 * the connection (and with it the registration) is dropped for it */
	if (mgi_msg_parse(&c->req, c->req.hdr.len, &c->ans, why, sizeof(why)) < 0)
		return set_error(c, -EINVAL, why);
	rc = request(c, &c->req, -1, &c->ans);
	if (rc < 0)
		return rc;
	return rc == MGI_MSG_REPLY ? 0 : set_error(c, -EPROTO, "unexpected answer from the manager");
}

/* manager.c - serves one group: HELLO/WELCOME, slot release on disconnect, stats. */
#include "manager.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "proto.h"
#include "size.h"

#define TAG_LISTEN 1
#define TAG_CONN_BASE 0x100000000ULL /* conn index + base; callers use < this */

static int fail(char *err, size_t errlen, int code, const char *what)
{
	snprintf(err, errlen, "%s: %s", what, strerror(-code));
	return code;
}

static int make_dirs(const char *sock_path)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char *slash;

	snprintf(dir, sizeof(dir), "%s", sock_path);
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = '\0';
	for (char *p = dir + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		mkdir(dir, 0755);
		*p = '/';
	}
	if (mkdir(dir, 0755) != 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* A socket file nobody listens on (left by a crash) may be replaced. */
static bool socket_is_live(const struct sockaddr_un *sa)
{
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	bool live;

	if (fd < 0)
		return false;
	live = connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0;
	close(fd);
	return live;
}

int mgi_manager_create(mgi_manager_t *m, const char *group, const mgi_limits_t *lim,
		       uint32_t fault_around, const char *sock_path, char *err, size_t errlen)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct epoll_event ev = {.events = EPOLLIN};
	uint64_t pages;
	int rc;

	memset(m, 0, sizeof(*m));
	m->segfd = m->listen_fd = m->epfd = -1;
	if (strlen(sock_path) >= sizeof(sa.sun_path))
		return fail(err, errlen, -ENAMETOOLONG, sock_path);
	strcpy(sa.sun_path, sock_path);
	snprintf(m->sock_path, sizeof(m->sock_path), "%s", sock_path);

	m->segfd = memfd_create("memgrp-segment", MFD_CLOEXEC);
	if (m->segfd < 0 || ftruncate(m->segfd, sizeof(mgi_segment_t)) != 0)
		return fail(err, errlen, -errno, "memfd_create");
	m->seg = mmap(NULL, sizeof(mgi_segment_t), PROT_READ | PROT_WRITE, MAP_SHARED, m->segfd, 0);
	if (m->seg == MAP_FAILED) {
		m->seg = NULL;
		return fail(err, errlen, -errno, "mmap segment");
	}
	mgi_segment_init(m->seg, group, fault_around);
	pages = lim->memory_max == UINT64_MAX ? MGI_PAGES_UNLIMITED : lim->memory_max / 4096;
	if (pages > MGI_PAGES_UNLIMITED)
		pages = MGI_PAGES_UNLIMITED;
	mgi_counter_set_max(&m->seg->memory, pages);

	if ((rc = make_dirs(sock_path)) != 0)
		return fail(err, errlen, rc, "cannot create the socket's directory");
	if (access(sock_path, F_OK) == 0) {
		if (socket_is_live(&sa))
			return fail(err, errlen, -EADDRINUSE, sock_path);
		unlink(sock_path);
	}
	m->listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (m->listen_fd < 0 || bind(m->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    listen(m->listen_fd, 128) != 0)
		return fail(err, errlen, -errno, sock_path);
	m->epfd = epoll_create1(EPOLL_CLOEXEC);
	ev.data.u64 = TAG_LISTEN;
	if (m->epfd < 0 || epoll_ctl(m->epfd, EPOLL_CTL_ADD, m->listen_fd, &ev) != 0)
		return fail(err, errlen, -errno, "epoll");
	return 0;
}

int mgi_manager_watch(mgi_manager_t *m, int fd, uint64_t tag)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = tag};
	return epoll_ctl(m->epfd, EPOLL_CTL_ADD, fd, &ev) == 0 ? 0 : -errno;
}

static void drop_conn(mgi_manager_t *m, unsigned i)
{
	struct mgi_conn *c = &m->conns[i];

	if (c->slot >= 0)
		mgi_segment_release(m->seg, c->slot, c->pid);
	epoll_ctl(m->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -1;
	c->slot = -1;
	c->pid = 0;
}

static void accept_conns(mgi_manager_t *m)
{
	for (;;) {
		int fd = accept4(m->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		unsigned i;

		if (fd < 0)
			return;
		for (i = 0; i < MGI_MANAGER_CONNS_MAX && m->conns[i].fd > 0; i++)
			;
		if (i == MGI_MANAGER_CONNS_MAX) {
			close(fd); /* full: the agent reports it cannot join */
			continue;
		}
		struct epoll_event ev = {.events = EPOLLIN, .data.u64 = TAG_CONN_BASE + i};
		if (epoll_ctl(m->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
			close(fd);
			continue;
		}
		m->conns[i] = (struct mgi_conn){.fd = fd, .slot = -1, .pid = 0};
		if (i >= m->nconns)
			m->nconns = i + 1;
	}
}

static void send_welcome(mgi_manager_t *m, struct mgi_conn *c)
{
	mgi_msg_t w;
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = {.iov_base = &w, .iov_len = sizeof(mgi_msg_welcome_t)};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			    .msg_controllen = sizeof(cbuf)};
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);

	mgi_msg_init(&w, MGI_MSG_WELCOME);
	w.welcome.slot = c->slot;
	w.welcome.segment_bytes = sizeof(mgi_segment_t);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &m->segfd, sizeof(int));
	sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
}

int mgi_manager_set(mgi_manager_t *m, const mgi_msg_set_t *set, char *why, size_t whylen)
{
	uint64_t pages;
	char usage[16];

	if (set->memory_max == MGI_SET_KEEP)
		return 0;
	pages = set->memory_max == MGI_SET_UNLIMITED ? MGI_PAGES_UNLIMITED : set->memory_max / 4096;
	if (pages > MGI_PAGES_UNLIMITED)
		pages = MGI_PAGES_UNLIMITED;
	if (mgi_counter_set_max(&m->seg->memory, pages) != 0) {
		/* Lowering below usage needs reclaim, which memgrp lacks yet:
		 * refuse rather than kill to get there. */
		mgi_size_format(mgi_counter_read(&m->seg->memory) * 4096, usage, sizeof(usage));
		snprintf(why, whylen,
			 "the group uses %s, more than the new limit, and memgrp cannot "
			 "reclaim yet: free memory in the group first", usage);
		return -EBUSY;
	}
	return 0;
}

static void handle_conn(mgi_manager_t *m, unsigned i)
{
	struct mgi_conn *c = &m->conns[i];
	char buf[sizeof(mgi_msg_t) + 1], err[96];
	mgi_msg_t msg;
	ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);

	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		drop_conn(m, i);
		return;
	}
	if (n < 0)
		return;
	switch (mgi_msg_parse(buf, (size_t)n, &msg, err, sizeof(err))) {
	case MGI_MSG_HELLO: {
		struct ucred cred;
		socklen_t len = sizeof(cred);
		/* The kernel's word on who is calling, not the message's. */
		if (c->slot >= 0 || getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 ||
		    cred.pid != msg.hello.pid) {
			drop_conn(m, i); /* a second HELLO, or a pid that is not the peer's */
			return;
		}
		c->pid = cred.pid;
		c->slot = mgi_segment_claim(m->seg, cred.pid);
		if (c->slot < 0) {
			drop_conn(m, i); /* no slot: the agent says so and runs unmanaged */
			return;
		}
		send_welcome(m, c);
		break;
	}
	case MGI_MSG_OOM_KILL:
		break; /* the agent logged it and counted it in the segment */
	case MGI_MSG_STAT_REQ: {
		static mgi_msg_t reply; /* large: not on the stack */
		mgi_manager_stat_msg(m->seg, &reply);
		send(c->fd, &reply, reply.hdr.len, MSG_NOSIGNAL | MSG_DONTWAIT);
		break;
	}
	case MGI_MSG_SET: {
		mgi_msg_t reply;
		mgi_msg_init(&reply, MGI_MSG_REPLY);
		reply.reply.status = mgi_manager_set(m, &msg.set, reply.reply.message,
						     sizeof(reply.reply.message));
		send(c->fd, &reply, reply.hdr.len, MSG_NOSIGNAL | MSG_DONTWAIT);
		break;
	}
	default: /* unparsable or unexpected: that client is done */
		drop_conn(m, i);
		break;
	}
}

int64_t mgi_manager_poll(mgi_manager_t *m, int timeout_ms)
{
	struct epoll_event evs[64];
	int64_t caller_tag = 0;
	int n = epoll_wait(m->epfd, evs, 64, timeout_ms);

	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	for (int k = 0; k < n; k++) {
		uint64_t tag = evs[k].data.u64;
		if (tag == TAG_LISTEN)
			accept_conns(m);
		else if (tag >= TAG_CONN_BASE)
			handle_conn(m, (unsigned)(tag - TAG_CONN_BASE));
		else
			caller_tag = (int64_t)tag;
	}
	return caller_tag;
}

void mgi_manager_destroy(mgi_manager_t *m)
{
	for (unsigned i = 0; i < m->nconns; i++)
		if (m->conns[i].fd > 0)
			drop_conn(m, i);
	if (m->listen_fd >= 0) {
		close(m->listen_fd);
		unlink(m->sock_path);
	}
	if (m->epfd >= 0)
		close(m->epfd);
	if (m->seg)
		munmap(m->seg, sizeof(mgi_segment_t));
	if (m->segfd >= 0)
		close(m->segfd);
	memset(m, 0, sizeof(*m));
	m->segfd = m->listen_fd = m->epfd = -1;
}

void mgi_manager_stats(const mgi_segment_t *seg, mgi_stats_t *out)
{
	memset(out, 0, sizeof(*out));
	out->usage = mgi_counter_read(&seg->memory) * 4096;
	out->max_usage = atomic_load(&seg->memory.watermark) * 4096;
	out->limit = mgi_counter_read_max(&seg->memory) * 4096;
	out->failcnt = atomic_load(&seg->memory.failcnt);
	out->pgfault = atomic_load(&seg->pgfault);
	out->oom_kill = atomic_load(&seg->oom_kill);
	for (int i = 0; i < MGI_PROCS_MAX; i++) {
		const mgi_proc_slot_t *s = &seg->procs[i];
		if (atomic_load(&s->pid) <= 0)
			continue;
		out->nr_processes++;
		out->tracked_bytes += atomic_load(&s->tracked_bytes);
		out->untracked_bytes += atomic_load(&s->untracked_bytes);
	}
}

void mgi_manager_stat_msg(const mgi_segment_t *seg, mgi_msg_t *out)
{
	mgi_stats_t st;
	mgi_msg_stat_t *r = &out->stat;

	mgi_msg_init(out, MGI_MSG_STAT);
	mgi_manager_stats(seg, &st);
	snprintf(r->group, sizeof(r->group), "%s", seg->group);
	r->figures = st;
	for (int i = 0; i < MGI_PROCS_MAX && r->nprocs < MGI_STAT_PROCS_MAX; i++) {
		const mgi_proc_slot_t *sl = &seg->procs[i];
		int32_t pid = atomic_load(&sl->pid);
		if (pid <= 0)
			continue;
		mgi_proc_stat_t *p = &r->procs[r->nprocs++];
		p->pid = pid;
		p->charged = atomic_load(&sl->charged) * 4096;
		p->pgfault = atomic_load(&sl->pgfault);
		memcpy(p->comm, sl->comm, sizeof(p->comm));
		p->comm[sizeof(p->comm) - 1] = '\0';
	}
}

void mgi_stats_print_json_fields(FILE *f, const mgi_stats_t *s)
{
	for (const mgi_stats_field_t *fl = mgi_stats_fields; fl->name; fl++)
		fprintf(f, "%s\"%s\": %llu", fl == mgi_stats_fields ? "" : ", ", fl->name,
			(unsigned long long)mgi_stats_get(s, fl));
}

int mgi_stats_write_json(const mgi_stats_t *s, const char *path)
{
	FILE *f = fopen(path, "w");

	if (!f)
		return -errno;
	fputc('{', f);
	mgi_stats_print_json_fields(f, s);
	fputs("}\n", f);
	return fclose(f) == 0 ? 0 : -errno;
}

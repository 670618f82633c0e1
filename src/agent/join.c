/* join.c - joining the group: HELLO and WELCOME, the segments mapped, rejoining a restarted manager. */
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "account.h"
#include "agent.h"
#include "options.h"
#include "victim.h"
#include "os.h"
#include "proto.h"
#include "size.h"
#include "trace.h"
#include "start.h"

struct mgi_join mgi_join = {.conn = -1, .wakefd = -1, .slot = -1};

void mgi_join_child_reset(void)
{
	/* The parent's connection (its closing would tell the manager the
	 * parent left); the segments stay: the child joins the same group. */
	if (mgi_join.conn >= 0)
		close(mgi_join.conn);
	mgi_join.conn = -1;
	mgi_join.manager_gone = false;
}

mgi_segment_t *mgi_agent_map_segment(int ctlfd, int acctfd)
{
	struct stat sc, sa;
	char *m;
	int fl = fcntl(acctfd, F_GETFL);
	/* An ancestor's accounting part comes read-only (grant.h): mapped
	 * so, no write through it is possible. */
	int acct_prot = fl >= 0 && (fl & O_ACCMODE) == O_RDWR ? PROT_READ | PROT_WRITE : PROT_READ;

	if (fstat(ctlfd, &sc) != 0 || (size_t)sc.st_size != MGI_SEGMENT_CTL_BYTES ||
	    fstat(acctfd, &sa) != 0 || (size_t)sa.st_size != MGI_SEGMENT_ACCT_BYTES)
		return NULL;
	/* One reservation, the two parts mapped over it: a single pointer
	 * reaches both. The control part only readable: the manager's fd is
	 * read-only, so no mapping of it here could ever be written. */
	m = mgi_raw_mmap(NULL, sizeof(mgi_segment_t), PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return NULL;
	if (mgi_raw_mmap(m, MGI_SEGMENT_CTL_BYTES, PROT_READ, MAP_SHARED | MAP_FIXED, ctlfd, 0) ==
		    MAP_FAILED ||
	    mgi_raw_mmap(m + MGI_SEGMENT_CTL_BYTES, MGI_SEGMENT_ACCT_BYTES, acct_prot,
			 MAP_SHARED | MAP_FIXED, acctfd, 0) == MAP_FAILED ||
	    !mgi_segment_valid(m, sizeof(mgi_segment_t))) {
		mgi_raw_munmap(m, sizeof(mgi_segment_t));
		return NULL;
	}
	return (mgi_segment_t *)m;
}

/*
 * Connects to the manager at path, says hello (passing the fds in `pass`,
 * if any) and receives the answer: a WELCOME with the group's segment fds
 * and the manager's wake eventfd last, into fds/nfds. Waits at most
 * timeout_ms for it (-1: as long as it takes). Returns the connection, or
 * -errno: -EPROTO for a refusal (the manager's words in why) or a garbled
 * answer. Long (~107 lines): one connection's steps (socket, send with
 * SCM_RIGHTS, the timed receive, the checks of the answer) with one
 * cleanup path.
 */
static int say_hello(const char *path, const mgi_msg_t *hello, const int *pass, unsigned npass,
		     int timeout_ms, mgi_msg_t *reply, int *fds, unsigned *nfds, char *why,
		     size_t whylen)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char cbuf[CMSG_SPACE(sizeof(int) * MGI_AGENT_FDS_MAX)], err[96];
	char buf[sizeof(mgi_msg_t)];
	struct iovec iov = {.iov_base = (void *)hello, .iov_len = hello->hdr.len};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	struct cmsghdr *c;
	ssize_t n;
	int fd, type, e;

	*nfds = 0;
	why[0] = '\0';
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		goto fail;
	if (npass) {
		memset(cbuf, 0, sizeof(cbuf));
		mh.msg_control = cbuf;
		mh.msg_controllen = CMSG_SPACE(npass * sizeof(int));
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(npass * sizeof(int));
		memcpy(CMSG_DATA(c), pass, npass * sizeof(int));
	}
	if (sendmsg(fd, &mh, MSG_NOSIGNAL) != (ssize_t)hello->hdr.len) {
		/* A manager that refused the connection said why before
		 * closing it: print that rather than "broken pipe". */
		mgi_msg_t no;
		int saved = errno;
		ssize_t r = recv(fd, &no, sizeof(no), MSG_DONTWAIT);
		if (r > 0 && mgi_msg_parse(&no, (size_t)r, reply, err, sizeof(err)) == MGI_MSG_REPLY) {
			snprintf(why, whylen, "the manager refused: %s", reply->reply.message);
			errno = EPROTO;
		} else {
			errno = saved;
		}
		goto fail;
	}
	if (timeout_ms >= 0) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int rc;
		do
			rc = poll(&p, 1, timeout_ms);
		while (rc < 0 && errno == EINTR);
		if (rc == 0)
			errno = ETIMEDOUT;
		if (rc <= 0)
			goto fail;
	}
	iov = (struct iovec){.iov_base = buf, .iov_len = sizeof(buf)};
	mh = (struct msghdr){.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf)};
	do
		n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		goto fail;
	if (n == 0) {
		errno = ECONNRESET; /* closed without a word */
		goto fail;
	}
	for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t j = 0; j < k; j++) {
			int got;
			memcpy(&got, CMSG_DATA(c) + j * sizeof(int), sizeof(int));
			if (*nfds < MGI_AGENT_FDS_MAX)
				fds[(*nfds)++] = got;
			else
				close(got);
		}
	}
	type = mgi_msg_parse(buf, (size_t)n, reply, err, sizeof(err));
	if (type == MGI_MSG_REPLY) {
		snprintf(why, whylen, "the manager refused: %s", reply->reply.message);
		errno = EPROTO;
		goto fail;
	}
	if (type == MGI_MSG_WELCOME && (reply->welcome.flags & MGI_WELCOME_UFFD_DEV) && *nfds > 3) {
		/* the last fd: /dev/userfaultfd, lent by the manager */
		mgi_uffd_lend(fds[--*nfds]);
	}
	if (type != MGI_MSG_WELCOME || *nfds != 2 * reply->welcome.nsegments + 1 || *nfds < 3) {
		snprintf(why, whylen, "the manager sent a bad welcome: %s",
			 type != MGI_MSG_WELCOME ? err : "wrong number of segments");
		errno = EPROTO;
		goto fail;
	}
	return fd;
fail:
	e = errno ? errno : EPROTO;
	for (unsigned i = 0; i < *nfds; i++)
		close(fds[i]);
	*nfds = 0;
	close(fd);
	return -e;
}

/* Takes a WELCOME's connection, slot and wake eventfd (the last of fds;
 * the segment fds before it are closed: the process has its own). */
static void take_welcome(int conn, const mgi_msg_t *reply, int *fds, unsigned nfds)
{
	for (unsigned i = 0; i + 1 < nfds; i++)
		if (fds[i] >= 0) /* -1: kept by join_group */
			close(fds[i]);
	/* Replaced in place (a forked child's copy of its parent's, or that of
	 * a manager before a restart): another thread may be writing to it as
	 * it changes, and must never meet a closed or reused number. */
	if (mgi_join.wakefd >= 0 && dup3(fds[nfds - 1], mgi_join.wakefd, O_CLOEXEC) >= 0)
		close(fds[nfds - 1]);
	else
		mgi_join.wakefd = fds[nfds - 1];
	if (mgi_join.conn >= 0)
		close(mgi_join.conn);
	mgi_join.conn = conn;
	mgi_join.slot = reply->welcome.slot;
	mgi_join.me = &mgi_join.seg->acct.procs[mgi_join.slot];
}

/* The manager does UFFDIO_API on our new userfaultfd (we may not turn on
 * fork events ourselves: see dispatch.c on_uffd_features). Only while
 * starting: the handler thread does not run yet, so the answer on our
 * connection is ours to read. Returns 0 or -errno. */
int mgi_join_features(int fd, uint64_t features)
{
	char cbuf[CMSG_SPACE(sizeof(int))];
	mgi_msg_t m, r, got;
	struct iovec iov = {.iov_base = &m, .iov_len = 0};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			    .msg_controllen = sizeof(cbuf)};
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	struct pollfd p = {.fd = mgi_join.conn, .events = POLLIN};
	char err[96];
	ssize_t n;

	if (mgi_join.conn < 0 || features >> 32)
		return -EINVAL;
	mgi_msg_init(&m, MGI_MSG_UFFD_FEATURES);
	m.unreg.id = (uint32_t)features;
	iov.iov_len = m.hdr.len;
	memset(cbuf, 0, sizeof(cbuf));
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	if (sendmsg(mgi_join.conn, &mh, MSG_NOSIGNAL) != (ssize_t)m.hdr.len)
		return -errno;
	if (poll(&p, 1, 2000) != 1)
		return -ETIMEDOUT;
	n = recv(mgi_join.conn, &got, sizeof(got), 0);
	if (n <= 0 || mgi_msg_parse(&got, (size_t)n, &r, err, sizeof(err)) != MGI_MSG_REPLY)
		return -EPROTO;
	return r.reply.status;
}

/* Connects, says HELLO naming the group ($MEMGRP_GROUP, else the manager's
 * default), receives WELCOME with the segments of the group and of its
 * ancestors and maps them (unless already mapped, as in a forked child,
 * which stays in its parent's group). Returns 0 or -errno. */
/* MEMGRP_OOM_PRIORITY (memgrp run --oom-priority): the process's rank
 * under --oom-policy priority, told to the manager once joined. The
 * manager does not answer on an agent's connection. A bad value is
 * logged and not sent. */
static void send_oom_priority(void)
{
	const char *v = mgi_env_str(MGI_ENV_OOM_PRIORITY);
	char *end;
	mgi_msg_t m;

	if (!v || !*v)
		return;
	errno = 0;
	long p = strtol(v, &end, 10);
	if (errno || *end || p < MGI_OOM_PRIORITY_MIN || p > MGI_OOM_PRIORITY_MAX) {
		mgi_agent_log("MEMGRP_OOM_PRIORITY '%s': not a number from -1000 to 1000: ignored", v);
		return;
	}
	mgi_msg_init(&m, MGI_MSG_OOM_PRIORITY);
	m.oom_priority.pid = 0;
	m.oom_priority.priority = (int32_t)p;
	send(mgi_join.conn, &m, m.hdr.len, MSG_DONTWAIT | MSG_NOSIGNAL);
}

int mgi_join_group(const char *path)
{
	const char *group = mgi_env_str(MGI_ENV_GROUP);
	mgi_msg_t hello, reply;
	int fds[MGI_AGENT_FDS_MAX], conn;
	unsigned nfds;
	char why[256];

	mgi_msg_init(&hello, MGI_MSG_HELLO);
	hello.hello.pid = mgi_join.pid;
	hello.hello.slot = -1;
	if (mgi_join.seg) /* a forked child: its parent's group, whatever the env says */
		group = mgi_join.group;
	if (group && strlen(group) < sizeof(hello.hello.group))
		strcpy(hello.hello.group, group);
	conn = say_hello(path, &hello, NULL, 0, -1, &reply, fds, &nfds, why, sizeof(why));
	if (conn < 0) {
		if (why[0])
			mgi_agent_log("%s", why);
		return conn;
	}
	if (!mgi_join.seg) {
		for (unsigned i = 0; 2 * i + 1 < nfds; i++) {
			mgi_join.anc[i] = mgi_agent_map_segment(fds[2 * i], fds[2 * i + 1]);
			if (!mgi_join.anc[i]) {
				for (unsigned j = 0; j < nfds; j++)
					close(fds[j]);
				close(conn);
				return -EPROTO;
			}
		}
		/* Kept, not closed: handed back if the manager restarts. */
		for (unsigned i = 0; i + 1 < nfds; i++) {
			mgi_join.segfd[i] = fds[i];
			fds[i] = -1;
		}
		mgi_join.nsegs = (nfds - 1) / 2;
		mgi_join.seg = mgi_join.anc[0];
		memcpy(mgi_join.group, reply.welcome.group, sizeof(mgi_join.group));
	}
	take_welcome(conn, &reply, fds, nfds);
	mgi_account_use_segments();
	send_oom_priority();
	return 0;
}

int mgi_agent_rejoin(void)
{
	mgi_msg_t hello, reply;
	int fds[MGI_AGENT_FDS_MAX], conn;
	unsigned nfds;
	char why[256];

	if (mgi_join.rejoin_refused || !mgi_join.seg || mgi_join.slot < 0 ||
	    !mgi_join.sockpath[0])
		return -EPERM;
	mgi_msg_init(&hello, MGI_MSG_HELLO);
	hello.hello.pid = mgi_join.pid;
	hello.hello.slot = mgi_join.slot;
	memcpy(hello.hello.group, mgi_join.group, sizeof(hello.hello.group));
	conn = say_hello(mgi_join.sockpath, &hello, mgi_join.segfd, 2 * mgi_join.nsegs, 500, &reply,
			 fds, &nfds, why, sizeof(why));
	if (conn < 0) {
		if (conn == -EPROTO) {
			/* A manager answered and said no (or garbled): asking
			 * again would get the same. */
			mgi_join.rejoin_refused = true;
			mgi_agent_log("cannot rejoin the manager at %s: %s; going on with the "
				      "last limits", mgi_join.sockpath, why);
		}
		return conn;
	}
	take_welcome(conn, &reply, fds, nfds);
	mgi_join.manager_gone = false;
	mgi_agent_log("rejoined the manager at %s (group '%s')", mgi_join.sockpath,
		      mgi_join.group);
	return 0;
}

/* manager.c - the control socket: agents' HELLO and exit, requests, OOM victims. */
#include "manager.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/userfaultfd.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "escape.h"
#include "grantd.h"
#include "group.h"
#include "oslayer.h"
#include "size.h"

/* epoll tags: the listening socket, the caller's fds (below 2^32), and for
 * connection i its socket (CONN + i) and its process's pidfd (PIDFD + i). */
#define TAG_LISTEN 1
#define TAG_WAKE 2
#define TAG_TIMER 3
#define TAG_RECLAIM_TIMER 4
#define TAG_SOFT_TIMER 5
#define TAG_ORPHAN_TIMER 6 /* (7: memgrpd's signals) */
#define TAG_CONN_BASE (1ULL << 32)
#define TAG_PIDFD_BASE (2ULL << 32)

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

void mgi_manager_log(const mgi_manager_t *m, const char *fmt, ...)
{
	char line[512];
	struct timespec ts;
	struct tm tm;
	va_list ap;
	int n;

	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	n = snprintf(line, sizeof(line), "%s: %02d:%02d:%02d ", m->who, tm.tm_hour, tm.tm_min,
		     tm.tm_sec);
	char msg[400];
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* Names, comms and messages come from clients: no newline or control
	 * byte of theirs may start a line of its own in the log. */
	mgi_escape(msg, sizeof(msg), line + n, sizeof(line) - (size_t)n - 1);
	strcat(line, "\n");
	fputs(line, stderr);
}

bool mgi_manager_is_eventfd(int fd)
{
	char path[64], target[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, target, sizeof(target) - 1);
	if (n < 0)
		return false;
	target[n] = '\0';
	return strcmp(target, "anon_inode:[eventfd]") == 0;
}

/* An eventfd's count, from /proc/self/fdinfo ("eventfd-count: HEX"). */
static int eventfd_count(int efd, uint64_t *count)
{
	char path[64], line[128];
	FILE *f;
	int rc = -EINVAL;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", efd);
	if (!(f = fopen(path, "re")))
		return -errno;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "eventfd-count: %" SCNx64, count) == 1) {
			rc = 0;
			break;
		}
	fclose(f);
	return rc;
}

static void interrupt_write(int sig)
{
	(void)sig; /* only to make a blocked write return EINTR */
}

/*
 * A write to an eventfd blocks only when the count would pass 2^64 - 2, and
 * the client controls the count (it may write 2^64 - 2 itself, or never
 * read): the manager must not wait on it (a review blocked memgrpd in a
 * pipe's write until the client exited). O_NONBLOCK cannot be set: the file
 * description is the client's too, and an eventfd cannot be reopened
 * (ENXIO), nor does it take RWF_NOWAIT (EOPNOTSUPP), both measured on
 * 6.18. So: the count is read first (fdinfo) and a write that would block
 * is not made; only a client that raises its own count between that look
 * and the write can make it wait, and then a one-shot timer's signal ends
 * the wait after EFD_GUARD_MS (the write returns EINTR). Either way the
 * caller drops the registration.
 */
#define EFD_GUARD_MS 10
int mgi_manager_efd_add(int efd, uint64_t n)
{
	static timer_t guard;
	static bool guard_ok;
	uint64_t count;
	ssize_t w;
	int rc;

	if (n == 0)
		return 0;
	if ((rc = eventfd_count(efd, &count)) != 0)
		return rc;
	if (count >= UINT64_MAX - n)
		return -EAGAIN;
	if (!guard_ok) {
		struct sigaction sa = {.sa_handler = interrupt_write}; /* no SA_RESTART */
		struct sigevent sev = {.sigev_notify = SIGEV_THREAD_ID,
				       .sigev_signo = SIGRTMIN + 3};
		sigset_t one;
		sev._sigev_un._tid = (pid_t)syscall(SYS_gettid);
		sigemptyset(&sa.sa_mask);
		sigemptyset(&one);
		sigaddset(&one, SIGRTMIN + 3);
		guard_ok = sigaction(SIGRTMIN + 3, &sa, NULL) == 0 &&
			   pthread_sigmask(SIG_UNBLOCK, &one, NULL) == 0 &&
			   timer_create(CLOCK_MONOTONIC, &sev, &guard) == 0;
	}
	struct itimerspec arm = {.it_value = {.tv_nsec = EFD_GUARD_MS * 1000000L}}, off = {0};
	if (guard_ok)
		timer_settime(guard, 0, &arm, NULL);
	w = write(efd, &n, sizeof(n));
	rc = w == (ssize_t)sizeof(n) ? 0 : (w < 0 && errno != EINTR ? -errno : -EAGAIN);
	if (guard_ok)
		timer_settime(guard, 0, &off, NULL);
	return rc;
}

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

int mgi_manager_create(mgi_manager_t *m, const char *who, const char *scope,
		       uint64_t memory_max, uint32_t fault_around, const char *sock_path,
		       char *err, size_t errlen)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct epoll_event ev = {.events = EPOLLIN};
	int rc;

	memset(m, 0, sizeof(*m));
	m->listen_fd = m->epfd = m->wakefd = m->timerfd = m->reclaim_timerfd = m->soft_timerfd = -1;
	m->orphan_timerfd = -1;
	m->reclaim.conn = -1;
	/* An unprivileged program (one exec'ed after dropping root: postgres
	 * under runuser) may not open a userfaultfd that takes kernel faults;
	 * its agent gets this one in WELCOME (absent: it runs unmanaged, and
	 * says why). */
	m->uffd_dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	m->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	m->coop_wait_ms = MGI_COOP_WAIT_DEFAULT_MS;
	m->who = who;
	m->uid = geteuid();
	memset(m->listener_reg, 0xff, sizeof(m->listener_reg)); /* all -1: free */
	/* First, so that mgi_manager_destroy may follow any failure below. */
	if ((rc = mgi_tree_init(&m->tree, fault_around)) != 0)
		return fail(err, errlen, rc, "cannot make the root group's segment");
	if (strlen(sock_path) >= sizeof(sa.sun_path))
		return fail(err, errlen, -ENAMETOOLONG, sock_path);
	strcpy(sa.sun_path, sock_path);
	snprintf(m->sock_path, sizeof(m->sock_path), "%s", sock_path);
	if (*scope) {
		/* The embedded manager's group: top-level in its own tree. */
		char why[160];
		rc = mgi_tree_create(&m->tree, scope, memory_max, why, sizeof(why));
		if (rc < 0) {
			snprintf(err, errlen, "%s", why);
			return rc;
		}
		m->scope = rc;
	}
	mgi_notify_init(m);

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
	/* Anyone may connect; what a peer may do is decided by its
	 * credentials (see allowed()). */
	chmod(sock_path, 0666);
	m->epfd = epoll_create1(EPOLL_CLOEXEC);
	ev.data.u64 = TAG_LISTEN;
	if (m->epfd < 0 || epoll_ctl(m->epfd, EPOLL_CTL_ADD, m->listen_fd, &ev) != 0)
		return fail(err, errlen, -errno, "epoll");
	m->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (m->wakefd < 0 || mgi_manager_watch(m, m->wakefd, TAG_WAKE) != 0)
		return fail(err, errlen, -errno, "eventfd");
	m->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (m->timerfd < 0 || mgi_manager_watch(m, m->timerfd, TAG_TIMER) != 0)
		return fail(err, errlen, -errno, "timerfd");
	m->reclaim_timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (m->reclaim_timerfd < 0 || mgi_manager_watch(m, m->reclaim_timerfd, TAG_RECLAIM_TIMER) != 0)
		return fail(err, errlen, -errno, "timerfd");
	m->soft_timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (m->soft_timerfd < 0 || mgi_manager_watch(m, m->soft_timerfd, TAG_SOFT_TIMER) != 0)
		return fail(err, errlen, -errno, "timerfd");
	m->orphan_timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (m->orphan_timerfd < 0 || mgi_manager_watch(m, m->orphan_timerfd, TAG_ORPHAN_TIMER) != 0)
		return fail(err, errlen, -errno, "timerfd");
	return 0;
}

int mgi_manager_watch(mgi_manager_t *m, int fd, uint64_t tag)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = tag};
	return epoll_ctl(m->epfd, EPOLL_CTL_ADD, fd, &ev) == 0 ? 0 : -errno;
}

static void say_to_log(void *arg, const char *msg);

/* The groups' accounting parts are their processes' word: looked at (and
 * clamped where impossible) before the manager acts on them. */
static void audit(mgi_manager_t *m)
{
	mgi_tree_audit(&m->tree, say_to_log, m);
}

/* A released victim is no longer the victim of any ancestor's OOM either. */
static void clear_victim(mgi_manager_t *m, int group, pid_t pid)
{
	for (int g = group; g >= 0; g = m->tree.node[g].parent) {
		int32_t v = pid;
		atomic_compare_exchange_strong(&m->tree.node[g].seg->ctl.oom_victim, &v, 0);
	}
}

static void drop_conn(mgi_manager_t *m, unsigned i)
{
	struct mgi_conn *c = &m->conns[i];

	mgi_notify_drop_conn(m, i);
	mgi_reclaim_conn_gone(m, i);
	if (c->slot >= 0) {
		audit(m);
		mgi_counter_path_t path = mgi_tree_charge_path(&m->tree, c->group);
		mgi_segment_release(m->tree.node[c->group].seg, c->slot, c->pid, &path);
		mgi_grant_after_release(m, c->group);
		clear_victim(m, c->group, c->pid);
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
	*c = (struct mgi_conn){.fd = -1, .pidfd = -1, .group = -1, .slot = -1, .move_group = -1};
}

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
	struct timespec ts;
	uint64_t now;
	mgi_msg_t r;

	mgi_msg_init(&r, MGI_MSG_REPLY);
	r.reply.status = -EUSERS;
	snprintf(r.reply.message, sizeof(r.reply.message),
		 "connection refused: %s (uid %u)", why, (unsigned)uid);
	send(fd, &r, r.hdr.len, MSG_NOSIGNAL | MSG_DONTWAIT);
	close(fd);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
	if (now - logged_ns > 1000000000ULL) { /* once a second at most */
		logged_ns = now;
		mgi_manager_log(m, "refused a connection of uid %u: %s", (unsigned)uid, why);
	}
}

static void accept_conns(mgi_manager_t *m)
{
	for (;;) {
		int fd = accept4(m->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		unsigned i;

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
		struct ucred cred = {.pid = 0, .uid = (uid_t)-1};
		socklen_t clen = sizeof(cred);
		getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen);
		const char *why = conn_refusal(m, cred.uid, &i);
		if (why) {
			refuse_conn(m, fd, cred.uid, why);
			continue;
		}
		struct epoll_event ev = {.events = EPOLLIN, .data.u64 = TAG_CONN_BASE + i};
		if (epoll_ctl(m->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
			close(fd);
			continue;
		}
		m->conns[i] = (struct mgi_conn){.fd = fd, .pidfd = -1, .group = -1, .slot = -1,
						.move_group = -1, .peer_pid = cred.pid,
						.peer_uid = cred.uid};
		if (i >= m->nconns)
			m->nconns = i + 1;
	}
}

static void reply(struct mgi_conn *c, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void reply(struct mgi_conn *c, int status, const char *fmt, ...)
{
	mgi_msg_t r;
	va_list ap;

	va_start(ap, fmt);
	mgi_msg_reply_vfmt(&r, status, fmt, ap);
	va_end(ap);
	send(c->fd, &r, r.hdr.len, MSG_NOSIGNAL | MSG_DONTWAIT);
}

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

/* The group of the agent in the peer's process, or -1 if it has none. */
static int own_group(const mgi_manager_t *m, const struct mgi_conn *c)
{
	for (unsigned k = 0; k < m->nconns; k++)
		if (m->conns[k].fd >= 0 && m->conns[k].slot >= 0 && m->conns[k].pid == c->peer_pid)
			return m->conns[k].group;
	return -1;
}

static bool privileged(const mgi_manager_t *m, const struct mgi_conn *c)
{
	return privileged_uid(m, c->peer_uid);
}

/* Others may read and watch their own group and the groups below it. */
static bool may_watch(const mgi_manager_t *m, const struct mgi_conn *c, int g)
{
	int own;

	if (privileged(m, c))
		return true;
	own = own_group(m, c);
	return own >= 0 && mgi_tree_is_under(&m->tree, g, own);
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

/* The group a request names: "" is the peer's own group if it is a managed
 * process, else the default; others must be within the scope and exist.
 * Returns its index, or -1 after replying why not. */
static int lookup(mgi_manager_t *m, struct mgi_conn *c, const char *name)
{
	const char *scope = m->tree.node[m->scope].name;
	int g;

	if (!*name) {
		g = own_group(m, c);
		return g >= 0 ? g : m->scope;
	}
	if (!mgi_group_is_under(name, scope)) {
		reply(c, -ENOENT, "this manager serves '%s' and the groups under it, not '%s'",
		      scope, name);
		return -1;
	}
	g = mgi_tree_find(&m->tree, name);
	if (g < 0)
		reply(c, -ENOENT, "no group '%s'", name);
	return g;
}

/* Refuses (with a reply) what only a privileged peer may do. */
static bool refuse_unprivileged(mgi_manager_t *m, struct mgi_conn *c, const char *what)
{
	if (privileged(m, c))
		return false;
	reply(c, -EPERM, "only root or uid %u (who runs this manager) may %s", (unsigned)m->uid,
	      what);
	return true;
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
	drop_conn(m, i); /* a second HELLO, or a pid that is not the peer's */
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
			mgi_manager_log(m, "group '%s': pid %d exited while no manager ran; "
					   "released its %ld KiB", m->tree.node[g].name, (int)pid,
					pages * 4);
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
static void watch_orphans(mgi_manager_t *m)
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

static void say_to_log(void *arg, const char *msg)
{
	mgi_manager_log(arg, "%s", msg);
}

int mgi_manager_use_state_dir(mgi_manager_t *m, const char *dir, char *err, size_t errlen)
{
	int rc = mgi_tree_use_dir(&m->tree, dir, say_to_log, m, err, errlen);

	if (rc != 0)
		return rc;
	mgi_notify_resync(m); /* the manager's own thresholds in the restored groups */
	watch_orphans(m);
	return 0;
}

/* Watches the exit of a connection's process through a pidfd (it tells of
 * the exit even if a child inherited the connection). Without pidfds (old
 * kernels) the connection closing does. */
static void watch_exit(mgi_manager_t *m, unsigned i)
{
	struct mgi_conn *c = &m->conns[i];

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

/*
 * A HELLO naming a slot: a process whose manager went away (memgrpd was
 * restarted) hands back its group's segments, its own first, then its
 * ancestors'. Groups this manager does not serve yet are adopted with all
 * their segments hold (limits, usage, figures, the other processes'
 * slots); the old manager's registrations are forgotten (its clients went
 * with it). Only a privileged peer may bring groups back: a segment is
 * the peer's word on what a group's limits and charges are.
 */
static void on_rejoin(mgi_manager_t *m, unsigned i, const mgi_msg_hello_t *h, const int *fds,
		      unsigned nfds)
{
	struct mgi_conn *c = &m->conns[i];
	struct ucred cred;
	char why[160];
	int g = 0, adopted = 0;

	if (!hello_from_peer(m, i, h, &cred))
		return;
	if (!privileged(m, c)) {
		reply(c, -EPERM, "uid %u may not bring groups back to this manager (only root "
				 "or uid %u)", (unsigned)cred.uid, (unsigned)m->uid);
		drop_conn(m, i);
		return;
	}
	if (nfds == 0 || nfds > 2 * MGI_DEPTH_MAX || nfds % 2) {
		reply(c, -EINVAL, "a rejoining process passes its group's segments, two fds each "
				  "(got %u fds)", nfds);
		drop_conn(m, i);
		return;
	}
	/* Outermost first: each group's parent is served by the time it
	 * comes. */
	for (int k = (int)nfds / 2 - 1; k >= 0; k--) {
		bool fresh;
		int idx = mgi_tree_adopt(&m->tree, fds[2 * k], fds[2 * k + 1], &fresh, why, sizeof(why));
		if (idx < 0) {
			reply(c, idx, "cannot take group back: %s", why);
			drop_conn(m, i);
			return;
		}
		if (k < (int)nfds / 2 - 1 && m->tree.node[idx].parent != g) {
			reply(c, -EINVAL, "segment '%s' is not under '%s'", m->tree.node[idx].name,
			      m->tree.node[g].name);
			drop_conn(m, i);
			return;
		}
		if (fresh) {
			mgi_segment_forget_manager(m->tree.node[idx].seg);
			mgi_manager_log(m, "adopted group '%s' from the manager before this one "
					   "(usage %llu KiB, %u processes)",
					m->tree.node[idx].name,
					(unsigned long long)mgi_counter_read(&m->tree.node[idx].seg->acct.memory) * 4,
					mgi_segment_nr_procs(m->tree.node[idx].seg));
			mgi_backstop_group_added(m, idx);
			adopted++;
		}
		g = idx;
	}
	if (strcmp(m->tree.node[g].name, h->group) != 0 ||
	    atomic_load(&m->tree.node[g].seg->ctl.procs[h->slot].pid) != cred.pid) {
		reply(c, -ESRCH, "slot %d of group '%s' is not pid %d's", h->slot,
		      m->tree.node[g].name, (int)cred.pid);
		drop_conn(m, i);
		return;
	}
	c->pid = cred.pid;
	c->group = g;
	c->slot = h->slot;
	watch_exit(m, i);
	if (adopted)
		mgi_notify_resync(m); /* the manager's own thresholds: pressure, high, ask */
	for (int a = g; a > 0; a = m->tree.node[a].parent)
		release_orphans(m, a);
	send_segments(m, c->fd, MGI_MSG_WELCOME, c->group, c->slot, c->peer_uid != 0);
}

static void on_hello(mgi_manager_t *m, unsigned i, const mgi_msg_hello_t *h)
{
	struct mgi_conn *c = &m->conns[i];
	struct ucred cred;
	int g;

	if (!hello_from_peer(m, i, h, &cred))
		return;
	g = lookup(m, c, h->group);
	if (g < 0) {
		drop_conn(m, i); /* the agent prints the reply and runs unmanaged */
		return;
	}
	if (!privileged(m, c) && !parent_in_group(m, cred.pid, g) &&
	    !mgi_backstop_holds(m, cred.pid, g)) {
		reply(c, -EPERM, "uid %u may not join group '%s' (only root, uid %u, a child "
				 "of one of the group's processes, or one in its kernel cgroup)",
		      (unsigned)cred.uid,
		      m->tree.node[g].name, (unsigned)m->uid);
		drop_conn(m, i);
		return;
	}
	char why[320];
	int rc = mgi_backstop_hello(m, cred.pid, privileged(m, c), g, why, sizeof(why));
	if (rc != 0) {
		reply(c, rc, "%s", why);
		drop_conn(m, i);
		return;
	}
	c->pid = cred.pid;
	c->group = g;
	c->slot = mgi_segment_claim(m->tree.node[g].seg, cred.pid);
	if (c->slot < 0) {
		reply(c, -ENOSPC, "group '%s' has %d processes, its most", m->tree.node[g].name,
		      MGI_PROCS_MAX);
		drop_conn(m, i);
		return;
	}
	mgi_tree_name_slot(&m->tree, g, c->slot, cred.pid);
	watch_exit(m, i);
	send_segments(m, c->fd, MGI_MSG_WELCOME, c->group, c->slot, c->peer_uid != 0);
}

/* ATTACH: asks the process's agent to move into the group; the agent's
 * REPLY (on_move_reply) completes it and answers the requester. */
static void on_attach(mgi_manager_t *m, unsigned i, const mgi_msg_attach_t *a)
{
	struct mgi_conn *c = &m->conns[i], *p = NULL;
	int g, slot;

	if (refuse_unprivileged(m, c, "move processes"))
		return;
	if ((g = lookup(m, c, a->group)) < 0)
		return;
	for (unsigned k = 0; k < m->nconns && !p; k++)
		if (m->conns[k].fd >= 0 && m->conns[k].slot >= 0 && m->conns[k].pid == a->pid)
			p = &m->conns[k];
	if (!p) {
		reply(c, -ESRCH, "pid %d is not a process this manager serves (it must run "
				 "with the agent, connected to this manager's socket)", a->pid);
		return;
	}
	if (p->group == g) {
		reply(c, 0, "pid %d is in group '%s' already", a->pid, m->tree.node[g].name);
		return;
	}
	if (p->move_group >= 0) {
		reply(c, -EBUSY, "pid %d is being moved already", a->pid);
		return;
	}
	slot = mgi_segment_claim(m->tree.node[g].seg, a->pid);
	if (slot < 0) {
		reply(c, -ENOSPC, "group '%s' has %d processes, its most", m->tree.node[g].name,
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
		reply(c, -ENOMEM, "pid %d: %s", a->pid, gwhy);
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
static void on_move_reply(mgi_manager_t *m, struct mgi_conn *c, const mgi_msg_reply_t *r)
{
	int g = c->move_group, from = c->group;

	if (g < 0)
		return; /* nothing asked: ignore */
	if (r->status == 0) {
		/* The agent emptied its old slot; its identity is the
		 * manager's to free (nothing left to uncharge: an empty path). */
		mgi_counter_path_t none = {.depth = 0};
		mgi_segment_release(m->tree.node[from].seg, c->slot, c->pid, &none);
		mgi_grant_after_release(m, from);
		clear_victim(m, from, c->pid);
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
		reply(&m->conns[c->requester], r->status, "%s", r->message);
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

/*
 * Whether a group's OOM episode has stopped making progress: its usage did
 * not fall since the last request, at least OOM_PROGRESS_NS ago. Agents
 * ask every 100 ms while a fault waits. A process may be evicting its own
 * excess meanwhile (a forked child charged for its parent's frames evicts
 * hundreds of MiB for itself, seconds on a busy host): while usage falls,
 * nobody is killed. Measured: 'fork512' (512 MiB under 64M, then fork)
 * killed its child in 2 of 3 runs at load ~15 without this wait, once the
 * manager decided every OOM kill.
 */
#define OOM_PROGRESS_NS (200ULL * 1000 * 1000)
bool mgi_manager_oom_stalled(mgi_manager_t *m, int g)
{
	mgi_group_node_t *n = &m->tree.node[g];
	uint64_t usage = mgi_counter_read(&n->seg->acct.memory);
	struct timespec ts;
	uint64_t now;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
	if (!n->oom_seen_ns || now - n->oom_seen_ns > 10 * OOM_PROGRESS_NS || usage < n->oom_seen_usage) {
		/* a new episode, or usage fell since: look again later */
		n->oom_seen_ns = now;
		n->oom_seen_usage = usage;
		return false;
	}
	return now - n->oom_seen_ns >= OOM_PROGRESS_NS;
}

static void on_oom_request(mgi_manager_t *m, struct mgi_conn *c, const mgi_msg_oom_req_t *r)
{
	int target = mgi_manager_limiting_group(m, c, r->level);

	if (target < 0)
		return; /* the root has no limit: nothing to do */
	audit(m);
	mgi_segment_t *seg = m->tree.node[target].seg;
	int32_t victim = atomic_load(&seg->ctl.oom_victim);
	/* A kill under way is one of the manager's: its victim's pidfd has
	 * not said it exited yet (then drop_conn clears the mark). Any other
	 * pid there is stale. */
	if (victim > 0 && joined_conn(m, victim))
		return;
	if (victim != 0)
		atomic_compare_exchange_strong(&seg->ctl.oom_victim, &victim, 0);
	if (mgi_counter_margin(&seg->acct.memory, &seg->ctl.memory) > 0)
		return; /* freed meanwhile: the agent's retry will succeed */
	if (mgi_coop_start(m, target, c->group, c->slot))
		return; /* cooperating clients are asked first */
	if (!mgi_manager_oom_stalled(m, target))
		return;
	mgi_manager_oom_kill(m, target, c->group, c->slot);
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
	struct timespec ts;
	uint64_t now;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
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

/*
 * The victim is chosen among the processes this manager saw join (their
 * connections, with the pidfds opened when they did) and signalled only
 * through that pidfd: a pid found in a slot, which agents write, is never
 * signalled (a review planted root's `sleep` there and memgrpd killed it).
 * Size is the larger of what the process's slot says it charged and what
 * the kernel says it holds (RssAnon + RssShmem): a process that reports
 * less than it holds cannot shift the kill onto another. The requester
 * ranks like any other. A kill that fails is said so, and the next
 * largest is taken at once; an OOM event follows only a kill made.
 */
void mgi_manager_oom_kill(mgi_manager_t *m, int target, int req_group, int req_slot)
{
	mgi_segment_t *seg = m->tree.node[target].seg;
	char usage[16], max[16], holds[16], comm[MGI_COMM_MAX];
	bool tried[MGI_MANAGER_CONNS_MAX] = {false};
	int32_t none = 0;

	(void)req_group;
	(void)req_slot;
	audit(m); /* the figures a victim is chosen by */
	report_strangers(m, target);
	for (;;) {
		/* Agents charge and release concurrently: a victim of an
		 * earlier kill may have gone since the caller looked. A page
		 * of room is enough for the agent's retry; nobody dies for
		 * nothing. */
		if (mgi_counter_margin(&seg->acct.memory, &seg->ctl.memory) > 0)
			return;
		int best = -1;
		uint64_t most = 0;
		for (unsigned k = 0; k < m->nconns; k++) {
			struct mgi_conn *c = &m->conns[k];
			if (c->fd < 0 || c->slot < 0 || c->pidfd < 0 || tried[k] ||
			    !m->tree.node[c->group].used || !mgi_tree_is_under(&m->tree, c->group, target))
				continue;
			/* the process's word, clamped to its group's usage */
			uint64_t charged = mgi_segment_slot_charged(m->tree.node[c->group].seg, c->slot);
			uint64_t kernel = kernel_pages(c->pid), size = charged > kernel ? charged : kernel;
			if (best < 0 || size > most) {
				best = (int)k;
				most = size;
			}
		}
		if (best < 0) {
			mgi_manager_log(m, "group '%s' is out of memory and no process this manager saw "
					   "join can be killed", m->tree.node[target].name);
			return;
		}
		tried[best] = true;
		struct mgi_conn *v = &m->conns[best];
		const mgi_proc_id_t *sl = &m->tree.node[v->group].seg->ctl.procs[v->slot];
		none = 0;
		if (!atomic_compare_exchange_strong(&seg->ctl.oom_victim, &none, v->pid))
			return; /* another kill of this episode is under way */
		memcpy(comm, sl->comm, sizeof(comm));
		comm[sizeof(comm) - 1] = '\0';
		mgi_size_format(mgi_counter_read(&seg->acct.memory) * MGI_PAGE_SIZE, usage, sizeof(usage));
		mgi_size_format(mgi_counter_read_max(&seg->ctl.memory) * MGI_PAGE_SIZE, max, sizeof(max));
		mgi_size_format(most * MGI_PAGE_SIZE, holds, sizeof(holds));
		/* Listeners hear of the kill before it is made, as memcg tells
		 * before its OOM killer acts: by the time they ask, the victim's
		 * pages may be gone. So the pidfd is tried with signal 0 first:
		 * the event is for a kill that can be made (only the victim's
		 * own exit can come between). */
		int err = mgi_pidfd_send_signal(v->pidfd, 0);
		bool sent = err == 0;
		if (sent) {
			atomic_fetch_add(&seg->ctl.oom_kill, 1);
			mgi_notify_oom(m, target);
		}
		if (!sent || (err = mgi_pidfd_send_signal(v->pidfd, SIGKILL)) != 0) {
			int e = -err;
			int32_t mine = v->pid;
			atomic_compare_exchange_strong(&seg->ctl.oom_victim, &mine, 0);
			mgi_manager_log(m, "group '%s' is out of memory: could not kill pid %d (%s) of "
					   "group '%s': %s; choosing another", m->tree.node[target].name,
					(int)v->pid, comm, m->tree.node[v->group].name, strerror(e));
			continue;
		}
		char where[MGI_GROUP_NAME_MAX + 16] = "";
		if (v->group != target)
			snprintf(where, sizeof(where), " of group '%s'", m->tree.node[v->group].name);
		mgi_manager_log(m, "group '%s' is out of memory (usage %s, max %s) and nothing can be "
				   "reclaimed: killing pid %d (%s)%s, which holds %s",
				m->tree.node[target].name, usage, max, (int)v->pid, comm, where, holds);
		return;
	}
}

/* After a group's limits changed: pressure and high thresholds are
 * re-placed, the host watch follows the soft limits, and a group now above
 * its high limit is reclaimed down to it. */
static void limits_changed(mgi_manager_t *m, int g)
{
	mgi_segment_t *seg = m->tree.node[g].seg;
	uint64_t usage = mgi_counter_read(&seg->acct.memory), high = atomic_load(&seg->ctl.memory.high);

	mgi_notify_resync(m);
	mgi_reclaim_soft_resync(m);
	mgi_backstop_limits(m, g);
	if (usage > high && mgi_reclaim_possible(m, g))
		mgi_reclaim_request(m, g, usage - high + high / 64, true, -1, -1);
}

static void on_request(mgi_manager_t *m, unsigned i, const mgi_msg_t *msg, int type)
{
	static mgi_msg_t out; /* large: not on the stack */
	struct mgi_conn *c = &m->conns[i];
	char why[320] = "";
	int g, rc;

	switch (type) {
	case MGI_MSG_STAT_REQ:
		if ((g = lookup(m, c, msg->group.group)) < 0)
			return;
		if (!may_watch(m, c, g)) {
			reply(c, -EPERM, "uid %u may read only its own group and those below it",
			      (unsigned)c->peer_uid);
			return;
		}
		audit(m);
		mgi_tree_stat_msg(&m->tree, g, &out);
		mgi_backstop_stats(m, g, &out.stat.figures);
		mgi_kbackend_stat_msg(m, g, &out);
		send(c->fd, &out, out.hdr.len, MSG_NOSIGNAL | MSG_DONTWAIT);
		return;
	case MGI_MSG_SET:
		if (refuse_unprivileged(m, c, "change limits") || (g = lookup(m, c, msg->set.group)) < 0)
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
			limits_changed(m, g);
		}
		reply(c, rc, "%s", why);
		return;
	case MGI_MSG_CREATE:
		if (refuse_unprivileged(m, c, "create groups"))
			return;
		if (!mgi_group_is_under(msg->set.group, m->tree.node[m->scope].name)) {
			reply(c, -EPERM, "this manager serves '%s' and the groups under it, not '%s'",
			      m->tree.node[m->scope].name, msg->set.group);
			return;
		}
		int backend = mgi_kbackend_check_create(m, msg->set.group, &msg->set, why, sizeof(why));
		if (backend < 0) {
			reply(c, backend, "%s", why);
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
			limits_changed(m, rc);
		}
		reply(c, rc < 0 ? rc : 0, "%s", why);
		return;
	case MGI_MSG_RM:
		if (refuse_unprivileged(m, c, "remove groups") || (g = lookup(m, c, msg->group.group)) < 0)
			return;
		if (g == m->scope) {
			reply(c, -EPERM, "'%s' is this manager's own group: it ends with its manager",
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
		reply(c, rc, "%s", why);
		return;
	case MGI_MSG_PLACE:
		if ((g = lookup(m, c, msg->group.group)) < 0)
			return;
		rc = mgi_backstop_place(m, c->peer_pid, privileged(m, c), g, why, sizeof(why));
		reply(c, rc, "%s", why);
		return;
	case MGI_MSG_LIST_REQ:
		mgi_msg_init(&out, MGI_MSG_LIST);
		for (g = 1; g < MGI_GROUPS_MAX; g++) {
			if (!m->tree.node[g].used || !mgi_tree_is_under(&m->tree, g, m->scope))
				continue;
			if (!may_watch(m, c, g))
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
		reply(c, -EINVAL, "register: no eventfd came with the request");
		return;
	}
	if (!mgi_manager_is_eventfd(efd)) {
		/* A pipe or socket would block the manager's writes (a review
		 * passed a full pipe: memgrpd hung until that client exited). */
		close(efd);
		reply(c, -EINVAL, "register: the descriptor sent is not an eventfd");
		return;
	}
	if (!privileged(m, c)) {
		unsigned held = 0;
		for (int r2 = 0; r2 < MGI_REGS_MAX; r2++)
			if (m->regs[r2].id && m->regs[r2].conn >= 0 &&
			    m->conns[m->regs[r2].conn].peer_uid == c->peer_uid)
				held++;
		if (held >= MGI_MANAGER_REGS_PER_UID) {
			close(efd);
			reply(c, -EUSERS, "uid %u holds %d registrations, the most for a user other "
					  "than root or uid %u", (unsigned)c->peer_uid,
			      MGI_MANAGER_REGS_PER_UID, (unsigned)m->uid);
			return;
		}
	}
	if ((g = lookup(m, c, r->group)) < 0) {
		close(efd);
		return;
	}
	if (!may_watch(m, c, g)) {
		close(efd);
		reply(c, -EPERM, "uid %u may watch only its own group and those below it",
		      (unsigned)c->peer_uid);
		return;
	}
	id = mgi_notify_register(m, i, g, r, efd, why, sizeof(why));
	if (id < 0) {
		close(efd);
		reply(c, id, "%s", why);
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
	char link[64] = "";
	int rc;

	if (fd < 0 || c->slot < 0) {
		reply(c, -EINVAL, "uffd features: %s", fd < 0 ? "no userfaultfd passed" : "join a group first");
		goto out;
	}
	if (features & ~allowed) {
		reply(c, -EPERM, "uffd features %#x: only the agent's own are granted", features);
		goto out;
	}
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	char target[64] = "";
	if (readlink(link, target, sizeof(target) - 1) < 0 || strcmp(target, "anon_inode:[userfaultfd]") != 0) {
		reply(c, -EINVAL, "uffd features: not a userfaultfd");
		goto out;
	}
	rc = ioctl(fd, UFFDIO_API, &api) == 0 ? 0 : -errno;
	reply(c, rc, "%s", rc ? strerror(-rc) : "");
out:
	if (fd >= 0)
		close(fd);
}

static void handle_conn(mgi_manager_t *m, unsigned i)
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
			reply(c, -EINVAL, "bad request: more descriptors than any message carries");
		drop_conn(m, i);
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
	if (type == MGI_MSG_HELLO && msg.hello.slot >= 0) {
		on_rejoin(m, i, &msg.hello, passed, npassed);
		for (unsigned k = 0; k < npassed; k++)
			close(passed[k]);
		return;
	}
	for (unsigned k = 0; k < npassed; k++)
		close(passed[k]);
	switch (type) {
	case MGI_MSG_HELLO:
		on_hello(m, i, &msg.hello);
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
		on_attach(m, i, &msg.attach);
		break;
	case MGI_MSG_COOP_DONE:
		for (int r = 0; r < MGI_REGS_MAX; r++)
			if (m->regs[r].id == msg.unreg.id && m->regs[r].conn == (int)i)
				mgi_coop_answered(m, r);
		break; /* no reply: the client does not wait */
	case MGI_MSG_UNREGISTER:
		if (mgi_notify_unregister(m, i, msg.unreg.id) == 0)
			reply(c, 0, "%s", "");
		else
			reply(c, -ENOENT, "no registration %u of this connection", msg.unreg.id);
		break;
	case MGI_MSG_REPLY:
		if (c->slot >= 0)
			on_move_reply(m, c, &msg.reply);
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
		reply(c, type < 0 ? type : -EPROTO, "bad request: %s",
		      type < 0 ? err : "unexpected message type");
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
		if (mgi_backstop_event(m, tag))
			continue;
		if (tag == TAG_LISTEN) {
			accept_conns(m);
		} else if (tag == TAG_WAKE) {
			uint64_t v;
			if (read(m->wakefd, &v, sizeof(v)) < 0) {
				/* EAGAIN: drained by an earlier event */
			}
			audit(m);
			mgi_notify_deliver(m);
		} else if (tag == TAG_TIMER) {
			mgi_coop_timeout(m);
		} else if (tag == TAG_RECLAIM_TIMER) {
			mgi_reclaim_timeout(m);
		} else if (tag == TAG_SOFT_TIMER) {
			mgi_reclaim_host_check(m);
		} else if (tag == TAG_ORPHAN_TIMER) {
			uint64_t v;
			if (read(m->orphan_timerfd, &v, sizeof(v)) < 0) {
				/* EAGAIN */
			}
			watch_orphans(m);
		}
		else if (tag >= TAG_PIDFD_BASE) {
			unsigned i = (unsigned)(tag - TAG_PIDFD_BASE);
			if (i < m->nconns && m->conns[i].pidfd >= 0)
				drop_conn(m, i); /* the process exited */
		} else if (tag >= TAG_CONN_BASE) {
			unsigned i = (unsigned)(tag - TAG_CONN_BASE);
			if (i < m->nconns && m->conns[i].fd >= 0)
				handle_conn(m, i);
		} else
			caller_tag = (int64_t)tag;
	}
	mgi_grant_tick(m);
	return caller_tag;
}

void mgi_manager_destroy(mgi_manager_t *m)
{
	/* Close, do not release: a process still running keeps its slot and
	 * its charges in the segment it maps, and goes on under its limits. */
	for (unsigned i = 0; i < m->nconns; i++) {
		if (m->conns[i].fd >= 0)
			close(m->conns[i].fd);
		if (m->conns[i].pidfd >= 0)
			close(m->conns[i].pidfd);
	}
	if (m->listen_fd >= 0) {
		close(m->listen_fd);
		unlink(m->sock_path);
	}
	mgi_backstop_destroy(m);
	for (int r = 0; r < MGI_REGS_MAX; r++)
		if (m->regs[r].id)
			close(m->regs[r].efd);
	if (m->wakefd >= 0)
		close(m->wakefd);
	if (m->timerfd >= 0)
		close(m->timerfd);
	if (m->reclaim_timerfd >= 0)
		close(m->reclaim_timerfd);
	if (m->soft_timerfd >= 0)
		close(m->soft_timerfd);
	if (m->orphan_timerfd >= 0)
		close(m->orphan_timerfd);
	if (m->epfd >= 0)
		close(m->epfd);
	if (m->spare_fd >= 0)
		close(m->spare_fd);
	m->spare_fd = -1;
	mgi_tree_destroy(&m->tree);
	m->listen_fd = m->epfd = -1;
	m->nconns = 0;
}

int mgi_manager_set_limits(mgi_manager_t *m, const mgi_msg_set_t *set, char *why, size_t whylen)
{
	int rc = mgi_kbackend_is(m, m->scope) ? mgi_kbackend_set(m, m->scope, set, why, whylen) : 0;
	if (rc == 0)
		rc = mgi_tree_set_limits(&m->tree, m->scope, set, why, whylen);
	if (rc == 0)
		limits_changed(m, m->scope);
	return rc;
}

void mgi_manager_stats(const mgi_manager_t *m, mgi_stats_t *out)
{
	mgi_tree_stats(&m->tree, m->scope, out);
	mgi_backstop_stats(m, m->scope, out);
}

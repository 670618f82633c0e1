/* manager.c - a manager's life: create, the epoll loop, destroy; its log, eventfd writes and limits. */
#include "manager.h"
#include "oslayer.h"
#include "oomkill.h"
#include "conn.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/un.h>

#include "grantd.h"
#include "thpbalance.h"
#include "oom_handler.h"
#include "escape.h"

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
	return mgi_os_fd_is(fd, "eventfd");
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
	m->orphan_timerfd = m->grant_timerfd = m->thp_timerfd = -1;
	m->reclaim.conn = -1;
	m->born_ns = mgi_os_now_ns();
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

static void say_to_log(void *arg, const char *msg)
{
	mgi_manager_log(arg, "%s", msg);
}

/* The groups' accounting parts are their processes' word: looked at (and
 * clamped where impossible) before the manager acts on them. */
void mgi_manager_audit(mgi_manager_t *m)
{
	mgi_tree_audit(&m->tree, say_to_log, m);
}

int mgi_manager_use_state_dir(mgi_manager_t *m, const char *dir, char *err, size_t errlen)
{
	int rc = mgi_tree_use_dir(&m->tree, dir, say_to_log, m, err, errlen);

	if (rc != 0)
		return rc;
	mgi_notify_resync(m); /* the manager's own thresholds in the restored groups */
	mgi_join_watch_orphans(m);
	return 0;
}

/* After a group's limits changed: pressure and high thresholds are
 * re-placed, the host watch follows the soft limits, and a group now above
 * its high limit is reclaimed down to it. */
void mgi_manager_limits_changed(mgi_manager_t *m, int g)
{
	mgi_notify_resync(m);
	mgi_reclaim_soft_resync(m);
	mgi_backstop_limits(m, g);
	mgi_oom_arm(m); /* a growth policy wants samples */
	mgi_escalate(m, g, &(mgi_pressure_t){.why = MGI_WHY_HIGH, .req_group = -1, .req_slot = -1});
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
		if (mgi_backstop_event(m, tag) || mgi_oom_event(m, tag))
			continue;
		if (mgi_grant_event(m, tag) || mgi_thp_event(m, tag))
			continue;
		if (tag == TAG_LISTEN) {
			mgi_conn_accept(m);
		} else if (tag == TAG_WAKE) {
			uint64_t v;
			if (read(m->wakefd, &v, sizeof(v)) < 0) {
				/* EAGAIN: drained by an earlier event */
			}
			mgi_reclaim_slot_answer(m);
			mgi_manager_audit(m);
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
			mgi_join_watch_orphans(m);
		}
		else if (tag >= TAG_PIDFD_BASE) {
			unsigned i = (unsigned)(tag - TAG_PIDFD_BASE);
			if (i < m->nconns && m->conns[i].pidfd >= 0)
				mgi_join_exited(m, i); /* the process exited */
		} else if (tag >= TAG_CONN_BASE) {
			unsigned i = (unsigned)(tag - TAG_CONN_BASE);
			if (i < m->nconns && m->conns[i].fd >= 0)
				mgi_dispatch(m, i);
		} else
			caller_tag = (int64_t)tag;
	}
	mgi_grant_tick(m);
	mgi_thp_tick(m);
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
	mgi_oom_destroy(m);
	mgi_oomh_destroy(m);
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
	if (m->grant_timerfd >= 0)
		close(m->grant_timerfd);
	if (m->thp_timerfd >= 0)
		close(m->thp_timerfd);
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
		mgi_manager_limits_changed(m, m->scope);
	return rc;
}

void mgi_manager_stats(const mgi_manager_t *m, mgi_stats_t *out)
{
	mgi_tree_stats(&m->tree, m->scope, out);
	mgi_backstop_stats(m, m->scope, out);
}


/* metrics.c - a manager's Prometheus endpoint (libmicrohttpd) and textfile writer. */
#include "metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "hostwatch.h"
#include "thpbalance.h"
#include "manager.h"
#include "promtext.h"

/*
 * Threads. The HTTP server is libmicrohttpd's, in its own thread
 * (MHD_USE_INTERNAL_POLLING_THREAD): a client that connects and sends
 * nothing, or sends garbage, or reads slowly, costs that thread a
 * connection slot until its timeout, never the manager's loop. The
 * figures, though, are read by the manager's thread only, as for STAT (the
 * tree changes under it otherwise: groups are made and removed there). So
 * a scrape asks: the server thread writes the request eventfd, the
 * manager's loop wakes on it, renders every group into a buffer and
 * publishes it under the lock; the server thread waits for that (at most
 * WAIT_MS, then it serves the last snapshot, so a manager busy elsewhere
 * delays a scrape, never fails it). At idle without scrapes nothing runs:
 * no timer, unless --metrics-file asks for one. (MHD's external-select
 * mode in the manager's loop was the other choice; it would put the HTTP
 * parsing, and a slow client's sends, on the loop that answers faults'
 * OOM requests.)
 */
#define WAIT_MS 1000
#define CONN_LIMIT 16
#define CONN_TIMEOUT_S 10

struct mgi_metrics {
	mgi_manager_t *m;
	struct MHD_Daemon *mhd;
	int listen_fd;   /* bound, listening; owned by MHD once started */
	unsigned port;
	char where[80];
	int reqfd;       /* eventfd: a scrape wants a snapshot */
	int timerfd;     /* the file's period, or -1 */
	char *file, *tmp;
	int file_err;    /* the last write's error reported (0: none) */
	/* the manager's side: its render buffer and the figures */
	char *render;
	size_t render_cap;
	mgi_stats_t st[MGI_GROUPS_MAX];
	mgi_prom_group_t g[MGI_GROUPS_MAX];
	/* shared with the server thread, under lock */
	pthread_mutex_t lock;
	pthread_cond_t fresh;
	char *text;      /* the last snapshot (NULL: none yet) */
	size_t text_len, text_cap;
	uint64_t gen;    /* snapshots published */
	bool stopping;
};

static int fail(char *err, size_t errlen, int rc, const char *what, const char *detail)
{
	snprintf(err, errlen, "%s: %s", what, detail ? detail : strerror(-rc));
	return rc;
}

static int bind_listen(struct mgi_metrics *x, const char *listen_s, char *err, size_t errlen)
{
	mgi_listen_addr_t a;
	struct sockaddr_storage ss = {0};
	socklen_t sl;
	char why[160];
	int one = 1, rc;

	if (mgi_listen_parse(listen_s, &a, why, sizeof(why)) != 0)
		return fail(err, errlen, -EINVAL, "--metrics-listen", why);
	mgi_listen_format(&a, x->where, sizeof(x->where));
	if (a.family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(a.port);
		memcpy(&s6->sin6_addr, a.addr, 16);
		sl = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		s4->sin_port = htons(a.port);
		memcpy(&s4->sin_addr, a.addr, 4);
		sl = sizeof(*s4);
	}
	x->listen_fd = socket(a.family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (x->listen_fd < 0)
		return fail(err, errlen, -errno, "--metrics-listen: socket", NULL);
	/* TIME_WAIT connections of a previous run must not keep the port. */
	setsockopt(x->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (a.family == AF_INET6)
		setsockopt(x->listen_fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(x->listen_fd, (struct sockaddr *)&ss, sl) != 0 || listen(x->listen_fd, 16) != 0) {
		rc = -errno;
		snprintf(why, sizeof(why), "--metrics-listen %s", x->where);
		return fail(err, errlen, rc, why,
			    rc == -EADDRINUSE ? "the port is in use (another program listens there)"
			    : rc == -EADDRNOTAVAIL ? "no interface of this host has that address"
						   : NULL);
	}
	sl = sizeof(ss);
	if (getsockname(x->listen_fd, (struct sockaddr *)&ss, &sl) == 0)
		x->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
							 : ((struct sockaddr_in *)&ss)->sin_port);
	a.port = (uint16_t)x->port;
	mgi_listen_format(&a, x->where, sizeof(x->where));
	return 0;
}

/* Writes text to the file's twin and renames it over the file: a reader
 * (node_exporter's textfile collector) sees the old text or the new, never
 * a part. */
static int write_file(struct mgi_metrics *x, const char *text, size_t len)
{
	int fd = open(x->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	size_t done = 0;
	int rc = 0;

	if (fd < 0)
		return -errno;
	while (done < len) {
		ssize_t w = write(fd, text + done, len - done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			rc = w < 0 ? -errno : -EIO;
			break;
		}
		done += (size_t)w;
	}
	if (close(fd) != 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && rename(x->tmp, x->file) != 0)
		rc = -errno;
	if (rc != 0)
		unlink(x->tmp);
	return rc;
}

int mgi_metrics_open(struct mgi_metrics **out, const char *listen_s, const char *file, char *err,
		     size_t errlen)
{
	struct mgi_metrics *x;
	pthread_condattr_t ca;
	int rc;

	*out = NULL;
	if (!listen_s && !file)
		return 0;
	if (!(x = calloc(1, sizeof(*x))))
		return fail(err, errlen, -ENOMEM, "metrics", NULL);
	x->listen_fd = x->reqfd = x->timerfd = -1;
	pthread_mutex_init(&x->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&x->fresh, &ca);
	pthread_condattr_destroy(&ca);
	*out = x;
	if (listen_s && (rc = bind_listen(x, listen_s, err, errlen)) != 0)
		return rc;
	if (file) {
		size_t n = strlen(file);
		if (!n || file[n - 1] == '/')
			return fail(err, errlen, -EINVAL, "--metrics-file", "a file name, not a directory");
		x->file = strdup(file);
		x->tmp = malloc(n + 5);
		if (!x->file || !x->tmp)
			return fail(err, errlen, -ENOMEM, "metrics", NULL);
		snprintf(x->tmp, n + 5, "%s.tmp", file);
		/* Tried now, so that an unwritable place is said at start
		 * (the twin made and removed: the file itself is written
		 * only with figures in it). */
		char what[300];
		struct stat sb;
		int fd;
		snprintf(what, sizeof(what), "--metrics-file %s", file);
		if (stat(file, &sb) == 0 && !S_ISREG(sb.st_mode))
			return fail(err, errlen, -EISDIR, what, "exists and is not a regular file");
		fd = open(x->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
		if (fd < 0)
			return fail(err, errlen, -errno, what, errno == ENOENT ? "its directory does not exist" : NULL);
		close(fd);
		unlink(x->tmp);
	}
	return 0;
}

/* The manager's thread: every group in its scope, rendered and published. */
static void publish(struct mgi_metrics *x)
{
	mgi_manager_t *m = x->m;
	size_t n = 0, need;

	/* No mgi_manager_audit here, unlike STAT: the figures are the
	 * processes' word, but nothing is decided on them here, and the
	 * renderer takes any value (fuzz_promtext). The audit was the largest
	 * part of a scrape's CPU (perf, 100 groups: 29 %), and the manager
	 * audits on every wake-up from the agents anyway. */
	for (int i = 0; i < MGI_GROUPS_MAX; i++) {
		if (!m->tree.node[i].used || !mgi_tree_is_under(&m->tree, i, m->scope))
			continue;
		mgi_tree_stats(&m->tree, i, &x->st[n]);
		mgi_backstop_stats(m, i, &x->st[n]);
		mgi_host_ladder_stats(i, &x->st[n]);
		mgi_thp_stats(m, i, &x->st[n]);
		if (mgi_kbackend_is(m, i))
			mgi_kbackend_stats(m, i, &x->st[n]);
		x->st[n].cooperators = mgi_notify_cooperators(m, i);
		x->g[n] = (mgi_prom_group_t){.name = m->tree.node[i].name, .st = &x->st[n]};
		n++;
	}
	need = mgi_prom_render(x->g, n, x->render, x->render_cap);
	if (need >= x->render_cap) {
		size_t cap = need + need / 4 + 1;
		char *b = malloc(cap);
		if (!b)
			return; /* the last snapshot stays */
		free(x->render);
		x->render = b;
		x->render_cap = cap;
		need = mgi_prom_render(x->g, n, x->render, x->render_cap);
	}
	/* Double-buffered: the old snapshot is the next render's buffer. */
	pthread_mutex_lock(&x->lock);
	char *old = x->text;
	size_t old_cap = x->text_cap;
	x->text = x->render;
	x->text_cap = x->render_cap;
	x->text_len = need;
	x->gen++;
	pthread_cond_broadcast(&x->fresh);
	pthread_mutex_unlock(&x->lock);
	x->render = old;
	x->render_cap = old_cap;
}

static void write_due(struct mgi_metrics *x)
{
	int rc;

	publish(x);
	pthread_mutex_lock(&x->lock);
	/* The server thread only reads text under the lock; the manager's
	 * thread is the only writer, so reading it here unlocked would be
	 * fine too, but the lock costs nothing at this rate. */
	rc = x->text ? write_file(x, x->text, x->text_len) : 0;
	pthread_mutex_unlock(&x->lock);
	if (rc != x->file_err) {
		if (rc)
			mgi_manager_log(x->m, "metrics file %s: %s (the last good one stays)", x->file,
					strerror(-rc));
		else
			mgi_manager_log(x->m, "metrics file %s: written again", x->file);
		x->file_err = rc;
	}
}

static enum MHD_Result answer(struct MHD_Connection *c, unsigned status, const char *text,
			      size_t len, enum MHD_ResponseMemoryMode mode)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)text, mode);
	enum MHD_Result rc;

	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type",
				status == MHD_HTTP_OK ? "text/plain; version=0.0.4; charset=utf-8"
						      : "text/plain; charset=utf-8");
	rc = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return rc;
}

/* The server thread: one call per request once its headers are in. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **req_cls)
{
	static const char not_found[] = "only /metrics is served here\n";
	static const char bad_method[] = "GET or HEAD /metrics\n";
	static const char none[] = "no figures yet: the manager has not answered\n";
	static int seen;
	struct mgi_metrics *x = cls;
	uint64_t one = 1, want;
	struct timespec until;
	char *copy;
	size_t len;

	(void)version;
	(void)upload;
	if (*req_cls == NULL) {
		*req_cls = &seen; /* headers in; a body, if any, comes next */
		return MHD_YES;
	}
	if (*upload_size) {
		*upload_size = 0; /* a body is read and ignored */
		return MHD_YES;
	}
	if (strcmp(url, "/metrics") != 0)
		return answer(c, MHD_HTTP_NOT_FOUND, not_found, sizeof(not_found) - 1,
			      MHD_RESPMEM_PERSISTENT);
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
		return answer(c, MHD_HTTP_METHOD_NOT_ALLOWED, bad_method, sizeof(bad_method) - 1,
			      MHD_RESPMEM_PERSISTENT);
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += WAIT_MS / 1000;
	until.tv_nsec += (WAIT_MS % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&x->lock);
	want = x->gen + 1;
	if (write(x->reqfd, &one, sizeof(one)) < 0) {
		/* EAGAIN: the count is full of asks already; they are seen */
	}
	while (x->gen < want && !x->stopping)
		if (pthread_cond_timedwait(&x->fresh, &x->lock, &until) == ETIMEDOUT)
			break;
	len = x->text_len;
	copy = x->text ? malloc(len ? len : 1) : NULL;
	if (copy)
		memcpy(copy, x->text, len);
	pthread_mutex_unlock(&x->lock);
	if (!copy)
		return answer(c, MHD_HTTP_SERVICE_UNAVAILABLE, none, sizeof(none) - 1,
			      MHD_RESPMEM_PERSISTENT);
	return answer(c, MHD_HTTP_OK, copy, len, MHD_RESPMEM_MUST_FREE);
}

int mgi_metrics_start(struct mgi_metrics *x, mgi_manager_t *m, char *err, size_t errlen)
{
	sigset_t all, old;
	int rc = 0;

	x->m = m;
	x->reqfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (x->reqfd < 0)
		return fail(err, errlen, -errno, "metrics: eventfd", NULL);
	if ((rc = mgi_manager_watch(m, x->reqfd, MGI_METRICS_TAG_BASE)) != 0)
		return fail(err, errlen, rc, "metrics: epoll", NULL);
	if (x->file) {
		struct itimerspec every = {.it_interval = {MGI_METRICS_FILE_INTERVAL_S, 0},
					   .it_value = {MGI_METRICS_FILE_INTERVAL_S, 0}};
		x->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
		if (x->timerfd < 0 || timerfd_settime(x->timerfd, 0, &every, NULL) != 0)
			return fail(err, errlen, -errno, "metrics: timerfd", NULL);
		if ((rc = mgi_manager_watch(m, x->timerfd, MGI_METRICS_TAG_BASE + 1)) != 0)
			return fail(err, errlen, rc, "metrics: epoll", NULL);
		write_due(x);
		if (x->file_err)
			return fail(err, errlen, x->file_err, x->file, NULL);
		mgi_manager_log(m, "metrics written to %s every %d s", x->file,
				MGI_METRICS_FILE_INTERVAL_S);
	}
	if (x->listen_fd < 0)
		return 0;
	/* The server's thread takes no signal: they are the manager's
	 * (signalfd, and the eventfd write guard's timer signal). */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	x->mhd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO, 0, NULL, NULL,
				  on_request, x,
				  MHD_OPTION_LISTEN_SOCKET, (MHD_socket)x->listen_fd,
				  MHD_OPTION_CONNECTION_LIMIT, (unsigned)CONN_LIMIT,
				  MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CONN_TIMEOUT_S,
				  MHD_OPTION_END);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!x->mhd)
		return fail(err, errlen, -EIO, "metrics", "libmicrohttpd would not start");
	x->listen_fd = -1; /* MHD closes it */
	mgi_manager_log(m, "metrics served at http://%s/metrics", x->where);
	return 0;
}

bool mgi_metrics_event(struct mgi_metrics *x, int64_t tag)
{
	uint64_t v;

	if (!x || tag < MGI_METRICS_TAG_BASE || tag >= MGI_METRICS_TAG_BASE + MGI_METRICS_TAGS)
		return false;
	if (tag == MGI_METRICS_TAG_BASE) {
		if (read(x->reqfd, &v, sizeof(v)) < 0) {
			/* EAGAIN: read by an earlier wake-up */
		}
		publish(x); /* one render answers every scrape waiting */
	} else {
		if (read(x->timerfd, &v, sizeof(v)) < 0) {
			/* EAGAIN */
		}
		write_due(x);
	}
	return true;
}

unsigned mgi_metrics_port(const struct mgi_metrics *x)
{
	return x ? x->port : 0;
}

void mgi_metrics_close(struct mgi_metrics *x)
{
	if (!x)
		return;
	pthread_mutex_lock(&x->lock);
	x->stopping = true;
	pthread_cond_broadcast(&x->fresh);
	pthread_mutex_unlock(&x->lock);
	if (x->mhd)
		MHD_stop_daemon(x->mhd);
	if (x->listen_fd >= 0)
		close(x->listen_fd);
	if (x->reqfd >= 0)
		close(x->reqfd);
	if (x->timerfd >= 0)
		close(x->timerfd);
	pthread_mutex_destroy(&x->lock);
	pthread_cond_destroy(&x->fresh);
	free(x->text);
	free(x->render);
	free(x->file);
	free(x->tmp);
	free(x);
}

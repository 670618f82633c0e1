/* record.c - `memgrp run --record FILE`: a child process samples the group's figures and events to CSV. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "memgrp.h"
#include "oslayer.h"
#include "page.h"
#include "record.h"

/*
 * Why a process of its own: it asks the manager as any client does, so the
 * same code records a group served by memgrpd, by another run, or by this
 * run's embedded manager (which must go on serving while the recorder
 * waits for its answers: one process cannot be both ends). Each row is
 * one write() to a file opened O_APPEND, so a run killed at any moment
 * leaves whole rows behind (at worst without the last one).
 */

int mgi_record_open(mgi_record_t *rec, const char *path, unsigned period_ms, char *err,
		    size_t errlen)
{
	static const char header[] = MGI_RECORD_HEADER;

	memset(rec, 0, sizeof(*rec));
	rec->ready[0] = rec->ready[1] = -1;
	rec->period_ms = period_ms;
	rec->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
	if (rec->fd < 0) {
		snprintf(err, errlen, "--record %s: %s", path, strerror(errno));
		return -errno;
	}
	if (write(rec->fd, header, sizeof(header) - 1) != (ssize_t)sizeof(header) - 1) {
		int e = errno ? errno : EIO;
		snprintf(err, errlen, "--record %s: %s", path, strerror(e));
		close(rec->fd);
		rec->fd = -1;
		return -e;
	}
	return 0;
}

static double mono_s(void)
{
	return (double)mgi_os_now_ns() / 1e9;
}

/* What the recorder keeps between rows. */
struct recorder {
	int fd;
	const char *sock, *group;
	double t0, unix0;
	mgi_stats_t prev;
	bool have_prev;
	const uint64_t *thresholds;
	unsigned nthresholds;
};

/* One event word into the row's events column: NAME, or NAME*N. */
static void add_event(char *buf, size_t len, size_t *at, const char *name, uint64_t n)
{
	if (!n || *at >= len)
		return;
	int k = n > 1 ? snprintf(buf + *at, len - *at, "%s%s*%llu", *at ? ";" : "", name,
				 (unsigned long long)n)
		      : snprintf(buf + *at, len - *at, "%s%s", *at ? ";" : "", name);
	if (k > 0)
		*at += (size_t)k;
}

/* Samples the group and appends a row with `events` (words from the
 * eventfds), the events its counters' steps since the last row show, and
 * "end" for the last.
 * Returns 0, or -errno when the manager does not answer. */
static int sample(struct recorder *r, const char *events, bool end)
{
	static mgi_msg_t req, reply;
	char err[200], ev[512], row[1024], limit[24] = "";
	size_t at = 0;
	const uint64_t unlimited = (uint64_t)MGI_PAGES_UNLIMITED * MGI_PAGE_SIZE;

	mgi_msg_init(&req, MGI_MSG_STAT_REQ);
	snprintf(req.group.group, sizeof(req.group.group), "%s", r->group);
	int rc = mgi_request(r->sock, &req, MGI_MSG_STAT, &reply, err, sizeof(err));
	if (rc != 0)
		return rc;
	double now = mono_s();
	const mgi_stats_t *s = &reply.stat.figures, *p = r->have_prev ? &r->prev : s;
	/* counters only grow; a step below zero (none known) is read as 0 */
#define STEP(f) (s->f >= p->f ? s->f - p->f : 0)
	uint64_t evicted = STEP(pswpout), restored = STEP(pswpin), coop = STEP(coop_requests);
	uint64_t freed = STEP(coop_freed), kills = STEP(oom_kill);
#undef STEP
	ev[0] = '\0';
	if (events && *events)
		at = (size_t)snprintf(ev, sizeof(ev), "%s", events);
	add_event(ev, sizeof(ev), &at, "evict", evicted ? 1 : 0);
	add_event(ev, sizeof(ev), &at, "coop_request", coop);
	add_event(ev, sizeof(ev), &at, "oom_kill", kills);
	add_event(ev, sizeof(ev), &at, "end", end);
	if (s->limit < unlimited)
		snprintf(limit, sizeof(limit), "%llu", (unsigned long long)s->limit);
	int n = snprintf(row, sizeof(row),
			 "%.3f,%.3f,%llu,%s,%llu,%llu,%llu,%llu,%llu,%llu,%llu,%llu,%llu,%llu,%s\n",
			 now - r->t0, r->unix0 + (now - r->t0), (unsigned long long)s->usage, limit,
			 (unsigned long long)s->max_usage, (unsigned long long)s->swap_usage,
			 (unsigned long long)s->compressed_bytes,
			 (unsigned long long)s->nr_processes, (unsigned long long)s->pgfault,
			 (unsigned long long)evicted, (unsigned long long)restored,
			 (unsigned long long)coop, (unsigned long long)freed,
			 (unsigned long long)kills, ev);
	if (n <= 0 || (size_t)n >= sizeof(row))
		return -EOVERFLOW;
	if (write(r->fd, row, (size_t)n) != n)
		return -(errno ? errno : EIO);
	r->prev = *s;
	r->have_prev = true;
	return 0;
}

enum { W_LOW, W_MEDIUM, W_CRITICAL, W_OOM, W_SIGNAL, W_MANAGER, W_COUNT };
static const char *const watch_name[] = {"pressure_low", "pressure_medium", "pressure_critical",
					 "oom"};

/* The recorder process: never returns. */
static void __attribute__((noreturn)) recorder_main(struct recorder *r, int ready, unsigned period_ms)
{
	/* the usage thresholds' watches follow the fixed ones */
	struct pollfd pf[W_COUNT + MGI_RECORD_THRESHOLDS_MAX];
	char thr_name[MGI_RECORD_THRESHOLDS_MAX][40];
	const unsigned npf = W_COUNT + r->nthresholds;
	mg_client_t *c = NULL;
	sigset_t term;
	int rc;

	/* A run killed outright leaves its recorder to stop on its own. */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	sigprocmask(SIG_BLOCK, &term, NULL);
	/* Ctrl-C at the terminal reaches the whole process group: the run
	 * passes it to the command, whose end stops the recorder. */
	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	for (unsigned i = 0; i < npf; i++)
		pf[i] = (struct pollfd){.fd = -1, .events = POLLIN};
	pf[W_SIGNAL].fd = signalfd(-1, &term, SFD_CLOEXEC | SFD_NONBLOCK);
	c = mg_connect(r->sock, &rc);
	if (!c || pf[W_SIGNAL].fd < 0) {
		fprintf(stderr, "memgrp run: --record: cannot reach the manager at %s: %s\n", r->sock,
			strerror(c ? errno : -rc));
		_exit(1);
	}
	/* A group without a limit has no pressure (the registration may be
	 * refused or stay silent): the rows are still taken. */
	for (int l = MG_PRESSURE_LOW; l <= MG_PRESSURE_CRITICAL; l++)
		pf[W_LOW + l].fd = mg_pressure_add(c, r->group, (enum mg_pressure_level)l,
						   MG_PRESSURE_LOCAL);
	pf[W_OOM].fd = mg_oom_add(c, r->group);
	for (unsigned i = 0; i < r->nthresholds; i++) {
		snprintf(thr_name[i], sizeof(thr_name[i]), "threshold_%llu",
			 (unsigned long long)r->thresholds[i]);
		pf[W_COUNT + i].fd = mg_threshold_add(c, r->group, MG_COUNTER_MEMORY, r->thresholds[i]);
		if (pf[W_COUNT + i].fd < 0) {
			fprintf(stderr, "memgrp run: --record-threshold %llu: the manager refused it: %s\n",
				(unsigned long long)r->thresholds[i], strerror(-pf[W_COUNT + i].fd));
			_exit(1);
		}
	}
	pf[W_MANAGER].fd = mg_fd(c);
	pf[W_MANAGER].events = 0; /* POLLHUP only */
	rc = sample(r, "start", false);
	if (write(ready, rc == 0 ? "1" : "0", 1) != 1 || rc != 0)
		_exit(1);
	close(ready);
	double next = mono_s() + period_ms / 1e3;
	for (;;) {
		double wait = next - mono_s();
		int ms = wait > 0 ? (int)(wait * 1e3) + 1 : 0;
		if (poll(pf, npf, ms) < 0 && errno != EINTR)
			break;
		if (pf[W_MANAGER].revents)
			break; /* gone: no figures to take any more */
		char ev[256];
		size_t at = 0;
		ev[0] = '\0';
		for (int i = W_LOW; i <= W_OOM; i++) {
			if (pf[i].fd < 0 || !(pf[i].revents & POLLIN))
				continue;
			int64_t n = mg_event_read(pf[i].fd);
			/* the kill itself is told by the oom_kill counter's step */
			if (n > 0 && i != W_OOM)
				add_event(ev, sizeof(ev), &at, watch_name[i], (uint64_t)n);
		}
		/* a crossing either way: the row's usage says which */
		for (unsigned i = 0; i < r->nthresholds; i++) {
			if (!(pf[W_COUNT + i].revents & POLLIN))
				continue;
			int64_t n = mg_event_read(pf[W_COUNT + i].fd);
			if (n > 0)
				add_event(ev, sizeof(ev), &at, thr_name[i], (uint64_t)n);
		}
		bool stop = pf[W_SIGNAL].revents & POLLIN;
		bool due = mono_s() >= next;
		bool event = pf[W_OOM].revents & POLLIN;
		if (at || due || stop || event) {
			if (sample(r, ev, stop) != 0)
				break;
			if (due)
				next += period_ms / 1e3;
			if (next < mono_s()) /* late (a busy host): no burst of rows */
				next = mono_s() + period_ms / 1e3;
		}
		if (stop)
			break;
	}
	mg_close(c);
	_exit(0);
}

/* Serves the embedded manager (if any) for about 10 ms. A caller's fd
 * (run's signalfd) may stay readable and end the poll at once: the sleep
 * keeps that from spinning. */
static void serve(mgi_manager_t *m)
{
	if (!m || mgi_manager_poll(m, 10) != 0)
		usleep(m ? 1000 : 10000);
}

int mgi_record_start(mgi_record_t *rec, mgi_manager_t *m, const char *sock, const char *group,
		     char *err, size_t errlen)
{
	struct recorder r = {.fd = rec->fd, .sock = sock, .group = group,
			     .thresholds = rec->thresholds, .nthresholds = rec->nthresholds};
	struct timespec rt;
	char ok = 0;

	if (pipe2(rec->ready, O_CLOEXEC) != 0) {
		snprintf(err, errlen, "--record: pipe: %s", strerror(errno));
		return -errno;
	}
	clock_gettime(CLOCK_REALTIME, &rt);
	r.unix0 = (double)rt.tv_sec + rt.tv_nsec / 1e9;
	r.t0 = mono_s();
	pid_t pid = fork();
	if (pid < 0) {
		snprintf(err, errlen, "--record: fork: %s", strerror(errno));
		return -errno;
	}
	if (pid == 0) {
		/* Nothing of the manager's (its sockets, the segments) stays
		 * open here: the CSV to 3, the pipe to 4, the rest closed. */
		int fd = fcntl(rec->fd, F_DUPFD, 10), ready = fcntl(rec->ready[1], F_DUPFD, 10);
		if (fd < 0 || ready < 0 || dup2(fd, 3) != 3 || dup2(ready, 4) != 4)
			_exit(1);
		syscall(SYS_close_range, 5U, ~0U, 0U);
		r.fd = 3;
		recorder_main(&r, 4, rec->period_ms);
	}
	rec->pid = pid;
	close(rec->ready[1]);
	rec->ready[1] = -1;
	/* The embedded manager answers the recorder's registrations from
	 * this loop; 10 s is far beyond what they take. */
	for (double end = mono_s() + 10; mono_s() < end;) {
		struct pollfd p = {.fd = rec->ready[0], .events = POLLIN};
		if (m)
			serve(m);
		if (poll(&p, 1, m ? 0 : 10) > 0) {
			if (read(rec->ready[0], &ok, 1) != 1)
				ok = 0;
			break;
		}
	}
	close(rec->ready[0]);
	rec->ready[0] = -1;
	if (ok != '1') {
		snprintf(err, errlen, "--record: the recorder could not watch group '%s' (see above)",
			 group);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		rec->pid = 0;
		return -EIO;
	}
	return 0;
}

void mgi_record_stop(mgi_record_t *rec, mgi_manager_t *m)
{
	if (rec->pid > 0) {
		kill(rec->pid, SIGTERM);
		/* ~5 s for its last row, then it goes anyway */
		for (double end = mono_s() + 5;;) {
			pid_t w = waitpid(rec->pid, NULL, WNOHANG);
			if (w == rec->pid || (w < 0 && errno == ECHILD))
				break;
			if (mono_s() > end) {
				kill(rec->pid, SIGKILL);
				waitpid(rec->pid, NULL, 0);
				break;
			}
			serve(m);
		}
		rec->pid = 0;
	}
	if (rec->fd >= 0)
		close(rec->fd);
	rec->fd = -1;
}

/* run.c - `memgrp run`: a command in a managed group, with an embedded manager. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "oslayer.h"
#include "../daemon/manager.h"
#include "../daemon/manager_opts.h"
#include "../daemon/metrics.h"
#include "promtext.h"
#include "record.h"
#include "run.h"
#include "cli.h"
#include "size.h"
#include "victim.h"

static void run_usage(FILE *out)
{
	fprintf(out,
		"Usage: memgrp run [OPTIONS] -- COMMAND [ARGS...]\n"
		"\n"
		"Runs COMMAND (and every process it starts) in a group whose anonymous\n"
		"memory memgrp accounts page by page and limits; memgrp run exits with\n"
		"COMMAND's status (128+N if it died of signal N).\n"
		"\n"
		"The group's manager is memgrpd if one answers (or the manager at\n"
		"--socket / $MEMGRP_SOCKET); for GROUP under a running `memgrp run -g TOP`,\n"
		"that run's manager. A group that does not exist is created there with\n"
		"the limits given and removed when COMMAND and its processes are gone;\n"
		"an existing group is joined (its limits are changed with memgrp set).\n"
		"When no manager answers, memgrp run serves a top-level GROUP itself, at\n"
		"/run/memgrp/GROUP.sock, for as long as COMMAND runs.\n"
		"\n"
		"Options:\n"
		"  -g, --group NAME         group name, a path such as web/api\n"
		"                           (default: run-PID)\n"
		"%s"
		"      --codec lz4|zstd     how the group's processes compress evicted\n"
		"                           pages (default lz4)\n"
		"      --swap-file DIR      write the coldest compressed pages back to files\n"
		"                           in DIR (one unnamed file per process, gone with\n"
		"                           it) once the group's in-memory store passes\n"
		"      --swap-file-after SIZE  this size (default: a quarter of the group's\n"
		"                           memory limit; 256M without one)\n"
		"      --fault-around N     pages resolved per sequential fault, 1..64\n"
		"                           (default 64; an isolated fault gets one page)\n"
		"      --coop-wait MS       how long a cooperating application may take to\n"
		"                           free memory when asked at the limit (default 200)\n"
		"      --min-available SIZE the host floor for soft limits (default: 5%% of\n"
		"                           the host's memory)\n"
		"      --kernel-backstop on|off  a kernel memory cgroup behind the group\n"
		"                           (default on where the kernel offers one): it\n"
		"                           bounds what the agent does not see (static\n"
		"                           binaries, shared memory) at the limit + swap\n"
		"                           limit + a slack; the manager kills at it\n"
		"      --oom-priority N     -1000..1000: COMMAND's processes rank at N under\n"
		"                           --oom-policy priority (higher dies first; a\n"
		"                           process may change its own: mg_oom_priority_set)\n"
		"      --thp never|ingens|always  huge pages (default never): ingens\n"
		"                           promotes a 2 MiB block once --thp-threshold of\n"
		"                           it is in use, filling the rest (charged) and\n"
		"                           collapsing it off the fault path; always, at\n"
		"                           its first fault (as Linux THP)\n"
		"      --thp-threshold PCT  1..100 (default 90: 460 of 512 pages)\n"
		"      --thp-rate N         promotions a second at most, per process\n"
		"                           (default 50; 0: no bound)\n"
		"      --stats-json FILE    write the group's stats as JSON at exit\n"
		"      --record FILE        a timeline of the run as CSV: the group's usage,\n"
		"                           limit and figures every period and at each\n"
		"                           event (pressure levels reached, evictions,\n"
		"                           cooperator requests, OOM kills); draw it with\n"
		"                           scripts/plot-timeline.py FILE\n"
		"      --record-period MS   how often --record samples, %d..%d\n"
		"                           (default %d)\n"
		"      --record-threshold SIZE  --record marks each crossing of usage past\n"
		"                           SIZE, up or down (up to 8 of them)\n"
		"      --metrics-listen [ADDR:]PORT  the embedded manager serves Prometheus\n"
		"                           metrics at http://ADDR:PORT/metrics (ADDR\n"
		"                           defaults to 127.0.0.1; port 0: a free one, logged)\n"
		"      --metrics-file PATH  and/or writes them to PATH every 5 s, atomically\n"
		"      --socket PATH        the manager's control socket (see above)\n"
		"  -h, --help               show this help\n"
		"\n"
		"With --backend kernel the command runs without the agent, in the group's\n"
		"kernel memory cgroup (limited at --memory-max exactly); --codec,\n"
		"--swap-file, --fault-around, --thp and --mode estimate need the agent and are\n"
		"refused there.\n"
		"\n"
		"Environment: MEMGRP_AGENT overrides the path of libmemgrp-agent.so.\n",
		mgi_limits_help, MGI_RECORD_PERIOD_MIN_MS, MGI_RECORD_PERIOD_MAX_MS,
		MGI_RECORD_PERIOD_DEFAULT_MS);
}

/* Waits for the child, passing signals on and reaping orphans (we are their
 * subreaper). The embedded manager serves its socket meanwhile. */
static int wait_child(struct run_ctx *r, pid_t child)
{
	int status = 0;

	for (;;) {
		if (r->m) {
			int64_t tag = mgi_manager_poll(r->m, -1);
			if (mgi_metrics_event(r->metrics, tag) || tag != MGI_TAG_SIGNALS)
				continue;
		} else {
			struct pollfd p = {.fd = r->sfd, .events = POLLIN};
			if (poll(&p, 1, -1) < 0)
				continue;
		}
		struct signalfd_siginfo si;
		while (read(r->sfd, &si, sizeof(si)) == sizeof(si)) {
			if (si.ssi_signo != SIGCHLD) {
				kill(child, (int)si.ssi_signo); /* pass it on */
				/* Never a hang: a group paused at OOM
				 * (--oom-kill-disable) kills by its policy
				 * from now on, should the command catch the
				 * signal and still wait for a page. */
				if (r->m && !r->m->oom_pause_off) {
					r->m->oom_pause_off = true;
					mgi_manager_log(r->m, "signal %u: OOM pauses end; the groups' "
							      "policies act", si.ssi_signo);
				}
				continue;
			}
			int st;
			pid_t p;
			while ((p = waitpid(-1, &st, WNOHANG)) > 0)
				if (p == child)
					return st;
		}
	}
	return status;
}

/* The group's figures from its manager once the processes that just ended
 * have left it (their exits are seen through connections and pidfds). */
static int final_stats(struct run_ctx *r, mgi_stats_t *st)
{
	static mgi_msg_t req, reply;
	char err[256];

	if (r->m) {
		/* Up to 200 ms for the exits to be seen, and no longer than
		 * that takes: waiting it out every time made every run 0.2 s
		 * longer (a third of a short program's time under memgrp). */
		mgi_manager_stats(r->m, st);
		for (int i = 0; i < 20 && st->nr_processes > 0 && mgi_manager_poll(r->m, 10) >= 0; i++)
			mgi_manager_stats(r->m, st);
		return 0;
	}
	mgi_msg_init(&req, MGI_MSG_STAT_REQ);
	snprintf(req.group.group, sizeof(req.group.group), "%s", r->group);
	for (int i = 0; i < 50; i++) {
		if (mgi_request(r->sock, &req, MGI_MSG_STAT, &reply, err, sizeof(err)) != 0) {
			fprintf(stderr, "memgrp run: %s\n", err);
			return -1;
		}
		if (reply.stat.figures.nr_processes == 0)
			break;
		usleep(20000);
	}
	*st = reply.stat.figures;
	return 0;
}

/* Joins or creates the group at a manager that answers. Returns 0 or an
 * exit code. */
static int use_manager(struct run_ctx *r)
{
	static mgi_msg_t req, reply;
	char err[256];
	int rc;

	mgi_msg_init(&req, MGI_MSG_STAT_REQ);
	snprintf(req.group.group, sizeof(req.group.group), "%s", r->group);
	rc = mgi_request(r->sock, &req, MGI_MSG_STAT, &reply, err, sizeof(err));
	if (rc == 0) {
		bool kernel = reply.stat.figures.backend == MGI_BACKEND_KERNEL;
		if (r->limits.backend != MGI_SET_KEEP && r->limits.backend != reply.stat.figures.backend) {
			fprintf(stderr, "memgrp run: group '%s' exists with the %s backend (fixed at its "
					"creation), not --backend %s\n", r->group, kernel ? "kernel" : "agent",
				kernel ? "agent" : "kernel");
			return MGI_EXIT_FAILURE;
		}
		r->kernel = kernel;
		if (mgi_limits_given(&r->limits)) {
			fprintf(stderr, "memgrp run: group '%s' exists (served at %s); change its "
					"limits with memgrp set, or run without limits to join it\n",
				r->group, r->sock);
			return MGI_EXIT_FAILURE;
		}
		return 0;
	}
	if (rc != -ENOENT) {
		fprintf(stderr, "memgrp run: %s\n", err);
		return MGI_EXIT_FAILURE;
	}
	mgi_msg_init(&req, MGI_MSG_CREATE);
	mgi_msg_hdr_t hdr = req.hdr; /* (req.hdr is req.set.hdr: keep it) */
	req.set = r->limits;
	req.set.hdr = hdr;
	snprintf(req.set.group, sizeof(req.set.group), "%s", r->group);
	if (mgi_request_reply(r->sock, &req, err, sizeof(err)) != 0) {
		fprintf(stderr, "memgrp run: cannot create group '%s': %s\n", r->group, err);
		return MGI_EXIT_FAILURE;
	}
	r->transient = true;
	r->kernel = r->limits.backend == MGI_BACKEND_KERNEL;
	return 0;
}

static void remove_transient(struct run_ctx *r, const mgi_stats_t *st)
{
	static mgi_msg_t req;
	char err[256];

	if (!r->transient)
		return;
	if (st->nr_processes) {
		fprintf(stderr, "memgrp run: group '%s' still has %llu process(es): left in place\n",
			r->group, (unsigned long long)st->nr_processes);
		return;
	}
	mgi_msg_init(&req, MGI_MSG_RM);
	snprintf(req.group.group, sizeof(req.group.group), "%s", r->group);
	if (mgi_request_reply(r->sock, &req, err, sizeof(err)) != 0)
		fprintf(stderr, "memgrp run: cannot remove group '%s': %s\n", r->group, err);
}

/* No manager answers: this run serves its top-level group itself (r->m set
 * once made). Returns 0 or the exit status, the manager destroyed. */
static int embed_manager(struct run_ctx *r, mgi_manager_t *m, const mgi_manager_opts_t *mo)
{
	uint64_t max = r->limits.memory_max;
	bool kernel = r->limits.backend == MGI_BACKEND_KERNEL;
	char err[256];
	int rc = MGI_EXIT_FAILURE;

	/* Bad metrics options are said before the socket is made. */
	if (mgi_metrics_open(&r->metrics, mo->metrics_listen, mo->metrics_file, err,
			     sizeof(err)) != 0) {
		fprintf(stderr, "memgrp run: %s\n", err);
		mgi_metrics_close(r->metrics);
		return MGI_EXIT_FAILURE;
	}
	if (mgi_manager_create(m, "memgrp run", r->group,
			       max == MGI_SET_KEEP || max == MGI_SET_UNLIMITED ? UINT64_MAX : max,
			       mo->fault_around, r->sock, err, sizeof(err)) != 0) {
		fprintf(stderr, "memgrp run: %s\n", err);
		goto fail;
	}
	r->embedded = true;
	r->m = m;
	mgi_manager_opts_apply(m, mo);
	r->kernel = kernel;
	if (!kernel) {
		mgi_manager_set_limits(m, &r->limits, err, sizeof(err));
		mgi_backstop_init(m, mo->backstop);
		return 0;
	}
	/* The kernel cgroup first: the limits go to it. */
	atomic_store(&m->tree.node[m->scope].seg->ctl.backend, MGI_BACKEND_KERNEL);
	mgi_backstop_init(m, true);
	if (!m->backstop) {
		fprintf(stderr, "memgrp run: --backend kernel needs a kernel memory "
				"cgroup, and there is none to use here (see the line above)\n");
		goto fail;
	}
	if (mgi_manager_set_limits(m, &r->limits, err, sizeof(err)) != 0) {
		fprintf(stderr, "memgrp run: %s\n", err);
		rc = MGI_EXIT_USAGE;
		goto fail;
	}
	return 0;
fail:
	mgi_metrics_close(r->metrics);
	r->metrics = NULL;
	mgi_manager_destroy(m);
	r->m = NULL;
	return rc;
}

/* The group's manager: memgrpd's (or --socket's) if one answers, else one
 * embedded here. Returns 0 or the exit status. */
static int find_or_embed(struct run_ctx *r, mgi_manager_t *m, const struct run_opts *o)
{
	const mgi_manager_opts_t *mo = &o->mo;
	char err[256];

	if (mgi_find_manager(o->sock_opt, r->group, r->sock, sizeof(r->sock), err, sizeof(err)) != 0) {
		fprintf(stderr, "memgrp run: %s\n", err);
		return MGI_EXIT_USAGE;
	}
	if (mgi_manager_answers(r->sock)) {
		if (mo->fault_around_given || mo->coop_wait_given || mo->min_available != UINT64_MAX ||
		    mo->backstop_given)
			fprintf(stderr, "memgrp run: --fault-around, --coop-wait, --min-available and "
					"--kernel-backstop are the manager's (at %s): ignored\n", r->sock);
		if (mo->metrics_listen || mo->metrics_file)
			fprintf(stderr, "memgrp run: --metrics-listen and --metrics-file are the "
					"manager's (at %s): ignored\n", r->sock);
		return use_manager(r);
	}
	if (strchr(r->group, '/')) {
		fprintf(stderr, "memgrp run: no manager serves '%s' (at %s): start memgrpd, or "
				"run the top-level group with memgrp run -g first\n", r->group, r->sock);
		return MGI_EXIT_FAILURE;
	}
	return embed_manager(r, m, mo);
}

/* Signals come through r->sfd (the embedded manager's loop watches it);
 * the previous mask into oldmask, for the child. Orphans of the group are
 * reparented to this process, so their exits are seen. 0 or -1, said. */
static int watch_signals(struct run_ctx *r, sigset_t *oldmask)
{
	sigset_t mask;

	prctl(PR_SET_CHILD_SUBREAPER, 1);
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, oldmask);
	r->sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (r->sfd < 0 || (r->m && mgi_manager_watch(r->m, r->sfd, MGI_TAG_SIGNALS) != 0)) {
		fprintf(stderr, "memgrp run: signalfd: %s\n", strerror(errno));
		return -1;
	}
	return 0;
}

/* The command has gone: the group's last figures (the recorder's last
 * row, --stats-json), a group made here removed, the manager stopped. */
static void finish(struct run_ctx *r, mgi_record_t *rec, const char *stats_json)
{
	mgi_stats_t st;

	if (final_stats(r, &st) == 0) {
		/* its last row: the figures once the command has gone */
		mgi_record_stop(rec, r->m);
		if (stats_json && mgi_stats_write_json(&st, stats_json) != 0)
			fprintf(stderr, "memgrp run: cannot write %s: %s\n", stats_json,
				strerror(errno));
		remove_transient(r, &st);
	}
	mgi_record_stop(rec, r->m);
	mgi_metrics_close(r->metrics);
	if (r->m)
		mgi_manager_destroy(r->m);
}

int mgi_cmd_run(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"group", required_argument, NULL, 'g'},
		MGI_LIMIT_LONGOPTS,
		MGI_MANAGER_LONGOPTS,
		{"stats-json", required_argument, NULL, OPT_STATS_JSON},
		{"socket", required_argument, NULL, OPT_SOCKET},
		{"codec", required_argument, NULL, OPT_CODEC},
		{"swap-file", required_argument, NULL, OPT_SWAP_FILE},
		{"swap-file-after", required_argument, NULL, OPT_SWAP_FILE_AFTER},
		{"oom-priority", required_argument, NULL, OPT_OOM_PRIORITY},
		{"thp", required_argument, NULL, OPT_THP},
		{"thp-threshold", required_argument, NULL, OPT_THP_THRESHOLD},
		{"thp-rate", required_argument, NULL, OPT_THP_RATE},
		{"record", required_argument, NULL, OPT_RECORD},
		{"record-period", required_argument, NULL, OPT_RECORD_PERIOD},
		{"record-threshold", required_argument, NULL, OPT_RECORD_THRESHOLD},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	static struct run_ctx r;
	static struct run_opts o;
	static mgi_manager_t m;
	static mgi_record_t rec;
	char agent[PATH_MAX];
	char err[256];
	int opt, status, rc;
	sigset_t oldmask;
	pid_t child;

	memset(&r, 0, sizeof(r));
	memset(&rec, 0, sizeof(rec));
	memset(&o, 0, sizeof(o));
	o.record_period = MGI_RECORD_PERIOD_DEFAULT_MS;
	mgi_manager_opts_init(&o.mo);
	rec.fd = -1;
	mgi_limits_init(&r.limits);
	r.sfd = -1;
	snprintf(r.group, sizeof(r.group), "run-%d", (int)getpid());
	optind = 1;
	/* "+": stop at the first non-option, so COMMAND's own options pass. */
	while ((opt = getopt_long(argc, argv, "+g:m:h", longopts, NULL)) != -1) {
		if ((rc = mgi_limits_option("run", opt, optarg, &r.limits)) == 0 &&
		    (rc = mgi_manager_option("memgrp run", opt, optarg, &o.mo)) == 0 &&
		    (rc = mgi_run_option(&r, &o, opt, optarg)) == 0) {
			if (opt != 'h')
				return MGI_EXIT_USAGE;
			run_usage(stdout);
			return MGI_EXIT_OK;
		}
		if (rc < 0)
			return MGI_EXIT_USAGE;
		if (opt == MGI_MOPT_FAULT_AROUND)
			o.agent_only = "--fault-around"; /* the agent resolves the faults */
	}
	if (mgi_limits_check("run", &r.limits) != 0)
		return MGI_EXIT_USAGE;
	if (optind >= argc) {
		fprintf(stderr, "memgrp run: no command given (memgrp run [OPTIONS] -- COMMAND)\n");
		return MGI_EXIT_USAGE;
	}
	if ((rc = mgi_run_check(&r, &o, &rec, agent, sizeof(agent))) != 0 ||
	    (rc = find_or_embed(&r, &m, &o)) != 0)
		return rc;
	if (watch_signals(&r, &oldmask) != 0)
		goto fail;
	if (o.record && mgi_record_start(&rec, r.m, r.sock, r.group, err, sizeof(err)) != 0) {
		fprintf(stderr, "memgrp run: %s\n", err);
		goto fail;
	}
	if (r.metrics && mgi_metrics_start(r.metrics, r.m, err, sizeof(err)) != 0) {
		fprintf(stderr, "memgrp run: %s\n", err);
		goto fail;
	}
	if (r.kernel && (o.agent_only || r.limits.mode == MGI_MODE_ESTIMATE)) {
		fprintf(stderr, "memgrp run: group '%s' is served by the kernel backend: %s needs "
				"the agent\n", r.group, o.agent_only ? o.agent_only : "--mode estimate");
		goto fail;
	}
	child = mgi_run_spawn(argv + optind, r.kernel ? NULL : agent, r.sock, r.group, o.codec, &oldmask);
	if (child < 0) {
		fprintf(stderr, "memgrp run: fork: %s\n", strerror(errno));
		goto fail;
	}
	status = wait_child(&r, child);
	finish(&r, &rec, o.stats_json);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
fail:
	mgi_record_stop(&rec, r.m);
	mgi_metrics_close(r.metrics);
	if (r.m)
		mgi_manager_destroy(r.m);
	else if (r.transient) {
		mgi_stats_t none = {0};
		remove_transient(&r, &none);
	}
	return MGI_EXIT_FAILURE;
}

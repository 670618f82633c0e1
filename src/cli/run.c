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
#include "../daemon/metrics.h"
#include "promtext.h"
#include "record.h"
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

/* libmemgrp-agent.so next to this binary: in the build tree
 * (src/cli/memgrp -> src/agent/) or installed (bin/ -> lib/memgrp/). */
static int find_agent(char *out, size_t len)
{
	const char *env = getenv("MEMGRP_AGENT");
	const char *rel[] = {"/../agent/libmemgrp-agent.so", "/../lib/memgrp/libmemgrp-agent.so",
			     "/../lib/libmemgrp-agent.so"};
	char exe[PATH_MAX];
	ssize_t n;

	if (env && *env) {
		if (realpath(env, out) && access(out, R_OK) == 0)
			return 0;
		return -ENOENT;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return -ENOENT;
	exe[n] = '\0';
	*strrchr(exe, '/') = '\0';
	for (size_t i = 0; i < sizeof(rel) / sizeof(rel[0]); i++) {
		char cand[PATH_MAX + 64];
		snprintf(cand, sizeof(cand), "%s%s", exe, rel[i]);
		if (realpath(cand, out) && access(out, R_OK) == 0 && strlen(out) < len)
			return 0;
	}
	return -ENOENT;
}

/* In the child, before exec: asks the manager to put this process in the
 * group's kernel cgroup (PLACE; the manager checks the asker by
 * SO_PEERCRED), so that the command is bounded from its first
 * instruction, whether the agent loads or not. A manager without the
 * backstop says so and the command runs as before, unless the group is
 * the kernel backend's (required: nothing else would account it). */
static void place(const char *sock, const char *group, bool required)
{
	static mgi_msg_t req;
	char err[400];
	int rc;

	mgi_msg_init(&req, MGI_MSG_PLACE);
	snprintf(req.group.group, sizeof(req.group.group), "%s", group);
	rc = mgi_request_reply(sock, &req, err, sizeof(err));
	if (rc == 0 || (rc == -EOPNOTSUPP && !required))
		return;
	fprintf(stderr, "memgrp run: cannot place the command in group '%s': %s\n", group, err);
	_exit(126);
}

/* A static binary (every Go program, busybox-static) has no dynamic linker
 * to load the agent: said at start, with the way out, rather than only by
 * the backstop's scan once it runs. */
static void say_if_static(const char *cmd)
{
	char path[PATH_MAX];
	const char *dirs = getenv("PATH");

	if (strchr(cmd, '/')) {
		snprintf(path, sizeof(path), "%s", cmd);
	} else {
		path[0] = 0;
		for (const char *d = dirs ? dirs : "/usr/bin:/bin"; d && *d;) {
			const char *end = strchr(d, ':');
			int n = end ? (int)(end - d) : (int)strlen(d);
			snprintf(path, sizeof(path), "%.*s/%s", n, n ? d : ".", cmd);
			if (access(path, X_OK) == 0)
				break;
			path[0] = 0;
			d = end ? end + 1 : NULL;
		}
	}
	if (path[0] && mgi_os_elf_static(path) == 1)
		fprintf(stderr, "memgrp run: %s is linked statically: no dynamic linker loads the agent "
				"into it, so memgrp sees none of its memory and only its kernel cgroup "
				"bounds it; run it with --backend kernel for memgrp's limits, thresholds "
				"and OOM handling through the kernel\n", path);
}

static pid_t spawn(char **argv, const char *agent, const char *sock, const char *group,
		   const char *codec, const sigset_t *oldmask)
{
	pid_t pid = fork();

	if (pid != 0)
		return pid;
	place(sock, group, agent == NULL);
	if (!agent) {
		/* The kernel backend: the command runs as it is, no agent; a
		 * libmemgrp client in it still finds its group's manager. */
		setenv("MEMGRP_SOCKET", sock, 1);
		setenv("MEMGRP_GROUP", group, 1);
		sigprocmask(SIG_SETMASK, oldmask, NULL);
		execvp(argv[0], argv);
		fprintf(stderr, "memgrp run: cannot run '%s': %s\n", argv[0], strerror(errno));
		_exit(errno == ENOENT ? 127 : 126);
	}
	const char *prev = getenv("LD_PRELOAD");
	char preload[PATH_MAX * 2];
	/* After what is already preloaded: the user's own preloads (an
	 * allocator, a sanitizer runtime, which must come first) keep
	 * precedence; the agent still comes before libc. */
	snprintf(preload, sizeof(preload), "%s%s%s", prev ? prev : "", prev && *prev ? " " : "",
		 agent);
	setenv("LD_PRELOAD", preload, 1);
	setenv("MEMGRP_SOCKET", sock, 1);
	setenv("MEMGRP_GROUP", group, 1);
	if (codec)
		setenv("MEMGRP_CODEC", codec, 1);
	say_if_static(argv[0]);
	sigprocmask(SIG_SETMASK, oldmask, NULL);
	execvp(argv[0], argv);
	fprintf(stderr, "memgrp run: cannot run '%s': %s\n", argv[0], strerror(errno));
	_exit(errno == ENOENT ? 127 : 126);
}

/* How the group is served: by this process (embedded), or by a manager
 * that already runs (memgrpd, or another run's), as its client. */
struct run_ctx {
	char group[MGI_GROUP_NAME_MAX];
	char sock[108];
	mgi_msg_set_t limits; /* as given: MGI_SET_KEEP where not */
	bool embedded;
	bool transient; /* created here: removed at the end */
	bool kernel;    /* the group is the kernel backend's: no agent */
	mgi_manager_t *m;
	int sfd;
	struct mgi_metrics *metrics; /* the embedded manager's, or NULL */
};

#define TAG_SIGNALS 7

/* Waits for the child, passing signals on and reaping orphans (we are their
 * subreaper). The embedded manager serves its socket meanwhile. */
static int wait_child(struct run_ctx *r, pid_t child)
{
	int status = 0;

	for (;;) {
		if (r->m) {
			int64_t tag = mgi_manager_poll(r->m, -1);
			if (mgi_metrics_event(r->metrics, tag) || tag != TAG_SIGNALS)
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
		for (int i = 0; i < 20 && mgi_manager_poll(r->m, 10) >= 0; i++)
			;
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

int mgi_cmd_run(int argc, char **argv)
{
	enum { OPT_FAULT_AROUND = 256, OPT_STATS_JSON, OPT_SOCKET, OPT_COOP_WAIT, OPT_CODEC,
	       OPT_MIN_AVAILABLE, OPT_SWAP_FILE, OPT_SWAP_FILE_AFTER, OPT_BACKSTOP, OPT_OOM_PRIORITY,
	       OPT_METRICS_LISTEN, OPT_METRICS_FILE, OPT_RECORD, OPT_RECORD_PERIOD,
	       OPT_RECORD_THRESHOLD, OPT_THP, OPT_THP_THRESHOLD, OPT_THP_RATE };
	static const struct option longopts[] = {
		{"group", required_argument, NULL, 'g'},
		MGI_LIMIT_LONGOPTS,
		{"fault-around", required_argument, NULL, OPT_FAULT_AROUND},
		{"stats-json", required_argument, NULL, OPT_STATS_JSON},
		{"socket", required_argument, NULL, OPT_SOCKET},
		{"coop-wait", required_argument, NULL, OPT_COOP_WAIT},
		{"codec", required_argument, NULL, OPT_CODEC},
		{"swap-file", required_argument, NULL, OPT_SWAP_FILE},
		{"swap-file-after", required_argument, NULL, OPT_SWAP_FILE_AFTER},
		{"min-available", required_argument, NULL, OPT_MIN_AVAILABLE},
		{"kernel-backstop", required_argument, NULL, OPT_BACKSTOP},
		{"oom-priority", required_argument, NULL, OPT_OOM_PRIORITY},
		{"thp", required_argument, NULL, OPT_THP},
		{"thp-threshold", required_argument, NULL, OPT_THP_THRESHOLD},
		{"thp-rate", required_argument, NULL, OPT_THP_RATE},
		{"metrics-listen", required_argument, NULL, OPT_METRICS_LISTEN},
		{"metrics-file", required_argument, NULL, OPT_METRICS_FILE},
		{"record", required_argument, NULL, OPT_RECORD},
		{"record-period", required_argument, NULL, OPT_RECORD_PERIOD},
		{"record-threshold", required_argument, NULL, OPT_RECORD_THRESHOLD},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	static struct run_ctx r;
	static mgi_manager_t m;
	char agent[PATH_MAX], err[256];
	const char *stats_json = NULL, *sock_opt = NULL, *codec = NULL, *agent_only = NULL;
	const char *metrics_listen = NULL, *metrics_file = NULL, *record = NULL;
	unsigned long record_period = MGI_RECORD_PERIOD_DEFAULT_MS;
	uint64_t record_thr[MGI_RECORD_THRESHOLDS_MAX];
	unsigned nrecord_thr = 0;
	static mgi_record_t rec;
	uint64_t min_available = UINT64_MAX;
	unsigned long fault_around = 64, coop_wait = MGI_COOP_WAIT_DEFAULT_MS;
	bool fault_around_given = false, coop_wait_given = false, backstop = true;
	bool backstop_given = false;
	int opt, status, rc;
	sigset_t mask, oldmask;
	pid_t child;

	memset(&r, 0, sizeof(r));
	memset(&rec, 0, sizeof(rec));
	rec.fd = -1;
	mgi_limits_init(&r.limits);
	r.sfd = -1;
	snprintf(r.group, sizeof(r.group), "run-%d", (int)getpid());
	optind = 1;
	/* "+": stop at the first non-option, so COMMAND's own options pass. */
	int longindex = 0;
	while ((opt = getopt_long(argc, argv, "+g:m:h", longopts, &longindex)) != -1) {
		if ((rc = mgi_limits_option("run", opt, optarg, &r.limits)) != 0) {
			if (rc < 0)
				return MGI_EXIT_USAGE;
			continue;
		}
		switch (opt) {
		case 'g':
			if (mgi_group_name_check(optarg, err, sizeof(err)) != 0) {
				fprintf(stderr, "memgrp run: --group '%s': %s\n", optarg, err);
				return MGI_EXIT_USAGE;
			}
			snprintf(r.group, sizeof(r.group), "%s", optarg);
			break;
		case OPT_CODEC:
			if (strcmp(optarg, "lz4") != 0 && strcmp(optarg, "zstd") != 0) {
				fprintf(stderr, "memgrp run: --codec: lz4 or zstd, not '%s'\n", optarg);
				return MGI_EXIT_USAGE;
			}
			codec = optarg;
			agent_only = "--codec";
			break;
		case OPT_SWAP_FILE: {
			/* Each process makes an unnamed file there (O_TMPFILE):
			 * nothing to clean up after a crash. Tried now, so that a
			 * directory that cannot have one is said at once. */
			int fd = open(optarg, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
			if (fd < 0) {
				fprintf(stderr, "memgrp run: --swap-file %s: %s\n", optarg,
					errno == EISDIR || errno == EOPNOTSUPP
						? "this file system has no unnamed files (O_TMPFILE)"
						: errno == ENOTDIR ? "not a directory" : strerror(errno));
				return MGI_EXIT_USAGE;
			}
			close(fd);
			setenv("MEMGRP_SWAP_FILE", optarg, 1);
			agent_only = "--swap-file";
			break;
		}
		case OPT_SWAP_FILE_AFTER: {
			uint64_t after;
			char num[32];
			if (mgi_size_parse(optarg, &after, err, sizeof(err)) != 0) {
				fprintf(stderr, "memgrp run: --swap-file-after: %s\n", err);
				return MGI_EXIT_USAGE;
			}
			snprintf(num, sizeof(num), "%llu", (unsigned long long)after);
			setenv("MEMGRP_SWAP_FILE_AFTER", num, 1);
			agent_only = "--swap-file-after";
			break;
		}
		case OPT_MIN_AVAILABLE:
			if (mgi_size_parse(optarg, &min_available, err, sizeof(err)) != 0) {
				fprintf(stderr, "memgrp run: --min-available: %s\n", err);
				return MGI_EXIT_USAGE;
			}
			break;
		case OPT_FAULT_AROUND: {
			char *end;
			errno = 0;
			fault_around = strtoul(optarg, &end, 10);
			if (errno || *end || !*optarg || fault_around < 1 ||
			    fault_around > MGI_FAULT_AROUND_MAX) {
				fprintf(stderr, "memgrp run: --fault-around: a number of pages from 1 to %d\n",
					MGI_FAULT_AROUND_MAX);
				return MGI_EXIT_USAGE;
			}
			fault_around_given = true;
			agent_only = "--fault-around";
			break;
		}
		case OPT_COOP_WAIT: {
			char *end;
			errno = 0;
			coop_wait = strtoul(optarg, &end, 10);
			if (errno || *end || !*optarg || coop_wait > 60000) {
				fprintf(stderr, "memgrp run: --coop-wait: milliseconds, 0 to 60000\n");
				return MGI_EXIT_USAGE;
			}
			coop_wait_given = true;
			break;
		}
		case OPT_BACKSTOP:
			if (strcmp(optarg, "on") != 0 && strcmp(optarg, "off") != 0) {
				fprintf(stderr, "memgrp run: --kernel-backstop: on or off, not '%s'\n",
					optarg);
				return MGI_EXIT_USAGE;
			}
			backstop = !strcmp(optarg, "on");
			backstop_given = true;
			break;
		case OPT_OOM_PRIORITY: {
			/* the agent tells the manager once joined (agent/join.c) */
			char *end;
			errno = 0;
			long p = strtol(optarg, &end, 10);
			if (errno || *end || !*optarg || p < MGI_OOM_PRIORITY_MIN || p > MGI_OOM_PRIORITY_MAX) {
				fprintf(stderr, "memgrp run: --oom-priority: a number from -1000 to 1000, "
						"not '%s'\n", optarg);
				return MGI_EXIT_USAGE;
			}
			setenv("MEMGRP_OOM_PRIORITY", optarg, 1);
			agent_only = "--oom-priority";
			break;
		}
		case OPT_THP:
			/* read by each process's agent (src/agent/thp.c) */
			if (strcmp(optarg, "never") != 0 && strcmp(optarg, "ingens") != 0 &&
			    strcmp(optarg, "always") != 0) {
				fprintf(stderr, "memgrp run: --thp: never, ingens or always, not '%s'\n",
					optarg);
				return MGI_EXIT_USAGE;
			}
			setenv("MEMGRP_THP", optarg, 1);
			agent_only = "--thp";
			break;
		case OPT_THP_THRESHOLD:
		case OPT_THP_RATE: {
			bool thr = opt == OPT_THP_THRESHOLD;
			unsigned long max = thr ? 100 : 1000000;
			char *end;
			errno = 0;
			unsigned long v = strtoul(optarg, &end, 10);
			if (errno || *end || !*optarg || *optarg == '-' || v > max || (thr && v == 0)) {
				fprintf(stderr, "memgrp run: --%s: a number from %d to %lu, not '%s'\n",
					thr ? "thp-threshold" : "thp-rate", thr ? 1 : 0, max, optarg);
				return MGI_EXIT_USAGE;
			}
			setenv(thr ? "MEMGRP_THP_THRESHOLD" : "MEMGRP_THP_RATE", optarg, 1);
			agent_only = thr ? "--thp-threshold" : "--thp-rate";
			break;
		}
		case OPT_STATS_JSON:
			stats_json = optarg;
			break;
		case OPT_METRICS_LISTEN: {
			mgi_listen_addr_t la;
			if (mgi_listen_parse(optarg, &la, err, sizeof(err)) != 0) {
				fprintf(stderr, "memgrp run: --metrics-listen %s\n", err);
				return MGI_EXIT_USAGE;
			}
			metrics_listen = optarg;
			break;
		}
		case OPT_METRICS_FILE:
			metrics_file = optarg;
			break;
		case OPT_RECORD:
			record = optarg;
			break;
		case OPT_RECORD_PERIOD: {
			char *end;
			errno = 0;
			record_period = strtoul(optarg, &end, 10);
			if (errno || *end || !*optarg || record_period < MGI_RECORD_PERIOD_MIN_MS ||
			    record_period > MGI_RECORD_PERIOD_MAX_MS) {
				fprintf(stderr, "memgrp run: --record-period: milliseconds, %d to %d, "
						"not '%s'\n", MGI_RECORD_PERIOD_MIN_MS,
					MGI_RECORD_PERIOD_MAX_MS, optarg);
				return MGI_EXIT_USAGE;
			}
			break;
		}
		case OPT_RECORD_THRESHOLD: {
			uint64_t bytes = 0;
			if (nrecord_thr == MGI_RECORD_THRESHOLDS_MAX) {
				fprintf(stderr, "memgrp run: --record-threshold: at most %d of them\n",
					MGI_RECORD_THRESHOLDS_MAX);
				return MGI_EXIT_USAGE;
			}
			bool parsed = mgi_size_parse(optarg, &bytes, err, sizeof(err)) == 0;
			if (!parsed || !bytes) {
				fprintf(stderr, "memgrp run: --record-threshold %s: %s\n", optarg,
					!parsed ? err : "a size above 0, such as 48M");
				return MGI_EXIT_USAGE;
			}
			record_thr[nrecord_thr++] = bytes;
			break;
		}
		case OPT_SOCKET:
			sock_opt = optarg;
			break;
		case 'h':
			run_usage(stdout);
			return MGI_EXIT_OK;
		default:
			return MGI_EXIT_USAGE;
		}
	}
	if (mgi_limits_check("run", &r.limits) != 0)
		return MGI_EXIT_USAGE;
	if (optind >= argc) {
		fprintf(stderr, "memgrp run: no command given (memgrp run [OPTIONS] -- COMMAND)\n");
		return MGI_EXIT_USAGE;
	}
	/* An unwritable file is said before anything starts. */
	if (nrecord_thr && !record) {
		fprintf(stderr, "memgrp run: --record-threshold needs --record FILE\n");
		return MGI_EXIT_USAGE;
	}
	if (record && mgi_record_open(&rec, record, (unsigned)record_period, err, sizeof(err)) != 0) {
		fprintf(stderr, "memgrp run: %s\n", err);
		return MGI_EXIT_USAGE;
	}
	memcpy(rec.thresholds, record_thr, nrecord_thr * sizeof(record_thr[0]));
	rec.nthresholds = nrecord_thr;
	bool kernel = r.limits.backend == MGI_BACKEND_KERNEL;
	if (kernel && (agent_only || r.limits.mode == MGI_MODE_ESTIMATE)) {
		/* What only the agent does: the kernel backend has no
		 * compressed store and no per-fault accounting. */
		fprintf(stderr, "memgrp run: %s needs the agent (%s): not with --backend kernel\n",
			agent_only ? agent_only : "--mode estimate",
			agent_only && !strcmp(agent_only, "--fault-around")
				? "it resolves the faults"
			: agent_only ? "the per-group compressed store is the agent's"
				     : "it charges regions as the agent sees them mapped");
		return MGI_EXIT_USAGE;
	}
	if (kernel && backstop_given && !backstop) {
		fprintf(stderr, "memgrp run: --backend kernel is served by the kernel memory cgroup: "
				"not with --kernel-backstop off\n");
		return MGI_EXIT_USAGE;
	}
	if (!kernel && find_agent(agent, sizeof(agent)) != 0) {
		fprintf(stderr, "memgrp run: cannot find libmemgrp-agent.so next to this program; "
				"set MEMGRP_AGENT to its path\n");
		return MGI_EXIT_FAILURE;
	}
	/* Fail here, with the reason, rather than in every child. */
	int probe = kernel ? -1 : mgi_uffd_open(NULL, NULL, err, sizeof(err));
	if (!kernel && probe < 0) {
		fprintf(stderr, "memgrp run: %s\n", err);
		return MGI_EXIT_FAILURE;
	}
	if (probe >= 0)
		close(probe);

	if (mgi_find_manager(sock_opt, r.group, r.sock, sizeof(r.sock), err, sizeof(err)) != 0) {
		fprintf(stderr, "memgrp run: %s\n", err);
		return MGI_EXIT_USAGE;
	}
	if (mgi_manager_answers(r.sock)) {
		if (fault_around_given || coop_wait_given || min_available != UINT64_MAX ||
		    backstop_given)
			fprintf(stderr, "memgrp run: --fault-around, --coop-wait, --min-available and "
					"--kernel-backstop are the manager's (at %s): ignored\n", r.sock);
		if (metrics_listen || metrics_file)
			fprintf(stderr, "memgrp run: --metrics-listen and --metrics-file are the "
					"manager's (at %s): ignored\n", r.sock);
		if ((rc = use_manager(&r)) != 0)
			return rc;
	} else if (strchr(r.group, '/')) {
		fprintf(stderr, "memgrp run: no manager serves '%s' (at %s): start memgrpd, or "
				"run the top-level group with memgrp run -g first\n", r.group, r.sock);
		return MGI_EXIT_FAILURE;
	} else {
		uint64_t max = r.limits.memory_max;
		/* Bad metrics options are said before the socket is made. */
		if (mgi_metrics_open(&r.metrics, metrics_listen, metrics_file, err, sizeof(err)) != 0) {
			fprintf(stderr, "memgrp run: %s\n", err);
			mgi_metrics_close(r.metrics);
			return MGI_EXIT_FAILURE;
		}
		if (mgi_manager_create(&m, "memgrp run", r.group,
				       max == MGI_SET_KEEP || max == MGI_SET_UNLIMITED ? UINT64_MAX : max,
				       (uint32_t)fault_around, r.sock, err, sizeof(err)) != 0) {
			fprintf(stderr, "memgrp run: %s\n", err);
			mgi_metrics_close(r.metrics);
			mgi_manager_destroy(&m);
			return MGI_EXIT_FAILURE;
		}
		r.embedded = true;
		r.m = &m;
		m.coop_wait_ms = (unsigned)coop_wait;
		m.min_available = min_available != UINT64_MAX ? min_available
							       : mgi_default_min_available();
		if (kernel) {
			/* The kernel cgroup first: the limits go to it. */
			atomic_store(&m.tree.node[m.scope].seg->ctl.backend, MGI_BACKEND_KERNEL);
			mgi_backstop_init(&m, true);
			if (!m.backstop) {
				fprintf(stderr, "memgrp run: --backend kernel needs a kernel memory "
						"cgroup, and there is none to use here (see the line above)\n");
				mgi_metrics_close(r.metrics);
				mgi_manager_destroy(&m);
				return MGI_EXIT_FAILURE;
			}
			if (mgi_manager_set_limits(&m, &r.limits, err, sizeof(err)) != 0) {
				fprintf(stderr, "memgrp run: %s\n", err);
				mgi_metrics_close(r.metrics);
				mgi_manager_destroy(&m);
				return MGI_EXIT_USAGE;
			}
		} else {
			mgi_manager_set_limits(&m, &r.limits, err, sizeof(err));
			mgi_backstop_init(&m, backstop);
		}
		r.kernel = kernel;
	}
	/* Orphans of the group are reparented to us, so their exits are seen. */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, &oldmask);
	r.sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (r.sfd < 0 || (r.m && mgi_manager_watch(r.m, r.sfd, TAG_SIGNALS) != 0)) {
		fprintf(stderr, "memgrp run: signalfd: %s\n", strerror(errno));
		goto fail;
	}
	if (record && mgi_record_start(&rec, r.m, r.sock, r.group, err, sizeof(err)) != 0) {
		fprintf(stderr, "memgrp run: %s\n", err);
		goto fail;
	}
	if (r.metrics && mgi_metrics_start(r.metrics, r.m, err, sizeof(err)) != 0) {
		fprintf(stderr, "memgrp run: %s\n", err);
		goto fail;
	}
	if (r.kernel && (agent_only || r.limits.mode == MGI_MODE_ESTIMATE)) {
		fprintf(stderr, "memgrp run: group '%s' is served by the kernel backend: %s needs "
				"the agent\n", r.group, agent_only ? agent_only : "--mode estimate");
		goto fail;
	}
	child = spawn(argv + optind, r.kernel ? NULL : agent, r.sock, r.group, codec, &oldmask);
	if (child < 0) {
		fprintf(stderr, "memgrp run: fork: %s\n", strerror(errno));
		goto fail;
	}
	status = wait_child(&r, child);

	mgi_stats_t st;
	if (final_stats(&r, &st) == 0) {
		/* its last row: the figures once the command has gone */
		mgi_record_stop(&rec, r.m);
		if (stats_json && mgi_stats_write_json(&st, stats_json) != 0)
			fprintf(stderr, "memgrp run: cannot write %s: %s\n", stats_json,
				strerror(errno));
		remove_transient(&r, &st);
	}
	mgi_record_stop(&rec, r.m);
	mgi_metrics_close(r.metrics);
	if (r.m)
		mgi_manager_destroy(r.m);
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

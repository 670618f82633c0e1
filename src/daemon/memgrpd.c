/* memgrpd.c - the daemon: serves the whole group tree on one control socket. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "manager.h"
#include "manager_opts.h"
#include "hostwatch.h"
#include "metrics.h"

#define DEFAULT_SOCKET "/run/memgrp/memgrpd.sock"

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: memgrpd [--socket PATH] [--state-dir DIR|none] [--fault-around N]\n"
		"               [--coop-wait MS] [--min-available SIZE] [--kernel-backstop on|off]\n"
		"               [--metrics-listen [ADDR:]PORT] [--metrics-file PATH]\n"
		"               [--host-pressure KIND PCT%%[/WINDOW]] [--host-sustain DURATION]\n"
		"               [--dry-run]\n"
		"\n"
		"Serves memgrp's group tree: groups are created, changed and removed with\n"
		"`memgrp create|set|rm`, and `memgrp run -g GROUP -- CMD` runs commands in\n"
		"them. Runs in the foreground and logs to stderr (group changes and OOM\n"
		"kills). On SIGTERM or SIGINT it stops; the groups' processes go on with\n"
		"the limits they have. Started again (or after a crash), it takes the\n"
		"groups back from its state directory and the processes rejoin it.\n"
		"\n"
		"Options:\n"
		"  --socket PATH     control socket (default: $MEMGRP_SOCKET, else\n"
		"                    /run/memgrp/memgrpd.sock)\n"
		"  --state-dir DIR   where the groups' accounts are kept as files, so that\n"
		"                    they outlive the daemon (default: /run/memgrp/groups\n"
		"                    with the default socket, else the socket's path with\n"
		"                    \".groups\" added; \"none\": in memory only, and a\n"
		"                    restart takes back only groups whose processes rejoin)\n"
		"  --fault-around N  pages resolved per sequential fault in new groups,\n"
		"                    1..64 (default 64)\n"
		"  --coop-wait MS    how long a cooperating client may take to free memory\n"
		"                    when its group is at its limit (default 200)\n"
		"  --min-available SIZE\n"
		"                    the host floor: while MemAvailable is under it, groups\n"
		"                    above their soft limit are evicted toward it (default\n"
		"                    5%% of the host's memory; 0: never). With --host-sustain\n"
		"                    or --dry-run, also the floor of the host's ladder\n"
		"  --kernel-backstop on|off\n"
		"                    a kernel memory cgroup behind every group (default on\n"
		"                    where the kernel offers one): it bounds what the agent\n"
		"                    does not see (static binaries, shared memory, file\n"
		"                    cache) at the limit + swap limit + a slack. At that\n"
		"                    limit memgrpd decides the kill (the group's OOM\n"
		"                    handler, pre-kill hook, policy, record); a group\n"
		"                    still waiting there after 5 s, or any with the\n"
		"                    backstop off, is left to the kernel's OOM killer,\n"
		"                    which asks no handler, runs no hook, writes no record\n"
		"  --metrics-listen [ADDR:]PORT\n"
		"                    serve Prometheus metrics at http://ADDR:PORT/metrics\n"
		"                    (every group, labelled group=\"PATH\"; the root is \"/\").\n"
		"                    ADDR defaults to 127.0.0.1: any other address, IPv4 or\n"
		"                    [IPv6], must be given; port 0 picks a free one (logged)\n"
		"  --metrics-file PATH\n"
		"                    write the same text to PATH every %d s, atomically\n"
		"                    (for node_exporter's textfile collector: name it *.prom)\n"
		"  --host-pressure KIND PCT%%[/WINDOW]\n"
		"                    the host is short when PSI's KIND (some: a task waited\n"
		"                    on memory; full: every task did) stalled PCT%% (0.01 to\n"
		"                    100) of WINDOW (500ms to 10s, default 1s), e.g. \"full\n"
		"                    10%%\" or \"some 25%%/2s\" (a PSI trigger, polled)\n"
		"  --host-sustain DURATION\n"
		"                    with --min-available (or --host-pressure, which starts\n"
		"                    it alone), the host's ladder runs across groups while\n"
		"                    the host is short: a\n"
		"                    group's volatile ranges purged, cooperators asked,\n"
		"                    groups above their soft limit or memory.low evicted,\n"
		"                    eviction, one step per sample; a kill by policy across\n"
		"                    groups only once every sample for DURATION said short\n"
		"                    and MemAvailable is still under the floor (default 2s,\n"
		"                    at most 600s; no group under --oom-kill-disable dies)\n"
		"  --dry-run         the host's ladder logs each step and the process it\n"
		"                    would kill, and does nothing\n"
		"  -h, --help        show this help\n"
		"\n"
		"Exit codes: 0 stopped by a signal, 1 could not start, 2 bad command line.\n",
		MGI_METRICS_FILE_INTERVAL_S);
}

/* A full table holds two fds per connection (socket, pidfd), an eventfd
 * per registration and a segment per group: more than the usual soft limit
 * of 1024. */
static void raise_nofile(void)
{
	struct rlimit nofile;

	if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < 8192) {
		nofile.rlim_cur = nofile.rlim_max < 8192 ? nofile.rlim_max : 8192;
		setrlimit(RLIMIT_NOFILE, &nofile);
	}
}

/* Serves until SIGINT or SIGTERM (SIGHUP is ignored: the daemon has no
 * configuration file to read again). Returns 0, or 1 when it could not
 * start. */
static int serve(mgi_manager_t *m, struct mgi_metrics *metrics, const char *sock)
{
	char err[256];
	sigset_t mask;
	int sfd;

	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0 || mgi_manager_watch(m, sfd, MGI_TAG_SIGNALS) != 0) {
		fprintf(stderr, "memgrpd: signalfd: %s\n", strerror(errno));
		return 1;
	}
	if (metrics && mgi_metrics_start(metrics, m, err, sizeof(err)) != 0) {
		fprintf(stderr, "memgrpd: %s\n", err);
		return 1;
	}
	fprintf(stderr, "memgrpd: serving at %s\n", sock);
	for (;;) {
		int64_t tag = mgi_manager_poll(m, -1);
		if (tag < 0) {
			fprintf(stderr, "memgrpd: epoll: %s\n", strerror((int)-tag));
			return 0;
		}
		if (mgi_metrics_event(metrics, tag) || mgi_hostwatch_event(m, tag) || tag != MGI_TAG_SIGNALS)
			continue;
		struct signalfd_siginfo si;
		if (read(sfd, &si, sizeof(si)) == sizeof(si) && si.ssi_signo != SIGHUP) {
			fprintf(stderr, "memgrpd: stopping on signal %u\n", si.ssi_signo);
			return 0;
		}
	}
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"socket", required_argument, NULL, 's'},
		{"state-dir", required_argument, NULL, 'd'},
		MGI_MANAGER_LONGOPTS,
		MGI_MANAGER_HOST_LONGOPTS,
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	static mgi_manager_t m;
	const char *sock = getenv("MEMGRP_SOCKET"), *state_dir = NULL;
	struct mgi_metrics *metrics = NULL;
	mgi_manager_opts_t mo;
	char dir_buf[160], err[256];
	int opt, rc;

	if (!sock || !*sock)
		sock = DEFAULT_SOCKET;
	mgi_manager_opts_init(&mo);
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		if ((rc = mgi_manager_option("memgrpd", opt, optarg, &mo)) != 0) {
			if (rc < 0)
				return 2;
			continue;
		}
		switch (opt) {
		case 's':
			sock = optarg;
			break;
		case 'd':
			state_dir = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "memgrpd: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	mgi_host_config_t host;
	bool watch_host = mgi_manager_opts_host(&mo, &host);
	if (!watch_host && (mo.dry_run || mo.host_sustain_given)) {
		fprintf(stderr, "memgrpd: --dry-run and --host-sustain are for the host's ladder: give "
				"--min-available or --host-pressure too\n");
		return 2;
	}
	raise_nofile();
	/* The metrics' address and file first: bad ones are said before
	 * anything (the socket, the state directory) is touched. */
	if (mgi_metrics_open(&metrics, mo.metrics_listen, mo.metrics_file, err, sizeof(err)) != 0) {
		fprintf(stderr, "memgrpd: %s\n", err);
		mgi_metrics_close(metrics);
		return 1;
	}
	rc = 1;
	if (mgi_manager_create(&m, "memgrpd", "", UINT64_MAX, mo.fault_around, sock, err,
			       sizeof(err)) != 0) {
		fprintf(stderr, "memgrpd: %s\n", err);
		goto out;
	}
	if (!state_dir) {
		if (!strcmp(sock, DEFAULT_SOCKET))
			state_dir = "/run/memgrp/groups";
		else if ((size_t)snprintf(dir_buf, sizeof(dir_buf), "%s.groups", sock) < sizeof(dir_buf))
			state_dir = dir_buf;
	}
	if (state_dir && strcmp(state_dir, "none") != 0 &&
	    mgi_manager_use_state_dir(&m, state_dir, err, sizeof(err)) != 0) {
		fprintf(stderr, "memgrpd: %s\n", err);
		goto out;
	}
	mgi_manager_opts_apply(&m, &mo);
	mgi_backstop_init(&m, mo.backstop); /* after the state directory: takes its groups back */
	if (watch_host && mgi_hostwatch_start(&m, &host, err, sizeof(err)) != 0) {
		fprintf(stderr, "memgrpd: %s\n", err);
		goto out;
	}
	rc = serve(&m, metrics, sock);
out:
	mgi_hostwatch_stop();
	mgi_metrics_close(metrics);
	mgi_manager_destroy(&m);
	return rc;
}

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
#include "metrics.h"
#include "promtext.h"
#include "size.h"

#define TAG_SIGNALS 7
#define DEFAULT_SOCKET "/run/memgrp/memgrpd.sock"

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: memgrpd [--socket PATH] [--state-dir DIR|none] [--fault-around N]\n"
		"               [--coop-wait MS] [--min-available SIZE] [--kernel-backstop on|off]\n"
		"               [--metrics-listen [ADDR:]PORT] [--metrics-file PATH]\n"
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
		"                    5%% of the host's memory; 0: never)\n"
		"  --kernel-backstop on|off\n"
		"                    a kernel memory cgroup behind every group (default on\n"
		"                    where the kernel offers one): it bounds what the agent\n"
		"                    does not see (static binaries, shared memory, file\n"
		"                    cache) at the limit + swap limit + a slack\n"
		"  --metrics-listen [ADDR:]PORT\n"
		"                    serve Prometheus metrics at http://ADDR:PORT/metrics\n"
		"                    (every group, labelled group=\"PATH\"; the root is \"/\").\n"
		"                    ADDR defaults to 127.0.0.1: any other address, IPv4 or\n"
		"                    [IPv6], must be given; port 0 picks a free one (logged)\n"
		"  --metrics-file PATH\n"
		"                    write the same text to PATH every %d s, atomically\n"
		"                    (for node_exporter's textfile collector: name it *.prom)\n"
		"  -h, --help        show this help\n"
		"\n"
		"Exit codes: 0 stopped by a signal, 1 could not start, 2 bad command line.\n",
		MGI_METRICS_FILE_INTERVAL_S);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"socket", required_argument, NULL, 's'},
		{"state-dir", required_argument, NULL, 'd'},
		{"fault-around", required_argument, NULL, 'f'},
		{"coop-wait", required_argument, NULL, 'w'},
		{"min-available", required_argument, NULL, 'a'},
		{"kernel-backstop", required_argument, NULL, 'k'},
		{"metrics-listen", required_argument, NULL, 'L'},
		{"metrics-file", required_argument, NULL, 'F'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	static mgi_manager_t m;
	const char *sock = getenv("MEMGRP_SOCKET"), *state_dir = NULL;
	const char *metrics_listen = NULL, *metrics_file = NULL;
	struct mgi_metrics *metrics = NULL;
	char dir_buf[160];
	unsigned long fault_around = 64, coop_wait = MGI_COOP_WAIT_DEFAULT_MS;
	uint64_t min_available = mgi_default_min_available();
	char err[256], *end;
	sigset_t mask;
	int opt, sfd;
	bool backstop = true;

	if (!sock || !*sock)
		sock = DEFAULT_SOCKET;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case 's':
			sock = optarg;
			break;
		case 'd':
			state_dir = optarg;
			break;
		case 'f':
			errno = 0;
			fault_around = strtoul(optarg, &end, 10);
			if (errno || *end || !*optarg || fault_around < 1 ||
			    fault_around > MGI_FAULT_AROUND_MAX) {
				fprintf(stderr, "memgrpd: --fault-around: a number of pages from 1 to %d\n",
					MGI_FAULT_AROUND_MAX);
				return 2;
			}
			break;
		case 'w':
			errno = 0;
			coop_wait = strtoul(optarg, &end, 10);
			if (errno || *end || !*optarg || coop_wait > 60000) {
				fprintf(stderr, "memgrpd: --coop-wait: milliseconds, 0 to 60000\n");
				return 2;
			}
			break;
		case 'a':
			if (mgi_size_parse(optarg, &min_available, err, sizeof(err)) != 0) {
				fprintf(stderr, "memgrpd: --min-available: %s\n", err);
				return 2;
			}
			break;
		case 'k':
			if (strcmp(optarg, "on") != 0 && strcmp(optarg, "off") != 0) {
				fprintf(stderr, "memgrpd: --kernel-backstop: on or off, not '%s'\n", optarg);
				return 2;
			}
			backstop = !strcmp(optarg, "on");
			break;
		case 'L': {
			mgi_listen_addr_t la;
			if (mgi_listen_parse(optarg, &la, err, sizeof(err)) != 0) {
				fprintf(stderr, "memgrpd: --metrics-listen %s\n", err);
				return 2;
			}
			metrics_listen = optarg;
			break;
		}
		case 'F':
			metrics_file = optarg;
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
	/* A full table holds two fds per connection (socket, pidfd), an
	 * eventfd per registration and a segment per group: more than the
	 * usual soft limit of 1024. */
	struct rlimit nofile;
	if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < 8192) {
		nofile.rlim_cur = nofile.rlim_max < 8192 ? nofile.rlim_max : 8192;
		setrlimit(RLIMIT_NOFILE, &nofile);
	}
	/* The metrics' address and file first: bad ones are said before
	 * anything (the socket, the state directory) is touched. */
	if (mgi_metrics_open(&metrics, metrics_listen, metrics_file, err, sizeof(err)) != 0) {
		fprintf(stderr, "memgrpd: %s\n", err);
		mgi_metrics_close(metrics);
		return 1;
	}
	if (mgi_manager_create(&m, "memgrpd", "", UINT64_MAX, (uint32_t)fault_around, sock, err,
			       sizeof(err)) != 0) {
		fprintf(stderr, "memgrpd: %s\n", err);
		mgi_metrics_close(metrics);
		mgi_manager_destroy(&m);
		return 1;
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
		mgi_metrics_close(metrics);
		mgi_manager_destroy(&m);
		return 1;
	}
	m.coop_wait_ms = (unsigned)coop_wait;
	m.min_available = min_available;
	mgi_backstop_init(&m, backstop); /* after the state directory: takes its groups back */
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0 || mgi_manager_watch(&m, sfd, TAG_SIGNALS) != 0) {
		fprintf(stderr, "memgrpd: signalfd: %s\n", strerror(errno));
		mgi_metrics_close(metrics);
		mgi_manager_destroy(&m);
		return 1;
	}
	if (metrics && mgi_metrics_start(metrics, &m, err, sizeof(err)) != 0) {
		fprintf(stderr, "memgrpd: %s\n", err);
		mgi_metrics_close(metrics);
		mgi_manager_destroy(&m);
		return 1;
	}
	fprintf(stderr, "memgrpd: serving at %s\n", sock);
	for (;;) {
		int64_t tag = mgi_manager_poll(&m, -1);
		if (tag < 0) {
			fprintf(stderr, "memgrpd: epoll: %s\n", strerror((int)-tag));
			break;
		}
		if (mgi_metrics_event(metrics, tag) || tag != TAG_SIGNALS)
			continue;
		struct signalfd_siginfo si;
		if (read(sfd, &si, sizeof(si)) == sizeof(si) && si.ssi_signo != SIGHUP) {
			fprintf(stderr, "memgrpd: stopping on signal %u\n", si.ssi_signo);
			break;
		}
	}
	mgi_metrics_close(metrics);
	mgi_manager_destroy(&m);
	return 0;
}

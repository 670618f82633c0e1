/* run.c - `memgrp run`: a command in a managed group, with an embedded manager. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../agent/os.h"
#include "../daemon/manager.h"
#include "cli.h"
#include "size.h"

#define TAG_SIGNALS 7

static void run_usage(FILE *out)
{
	fprintf(out,
		"Usage: memgrp run [OPTIONS] -- COMMAND [ARGS...]\n"
		"\n"
		"Runs COMMAND (and every process it starts) in a group whose anonymous\n"
		"memory memgrp accounts page by page and limits. An embedded manager\n"
		"serves the group for as long as COMMAND runs; memgrp run exits with\n"
		"COMMAND's status (128+N if it died of signal N).\n"
		"\n"
		"Options:\n"
		"  -g, --group NAME         group name (default: run-PID)\n"
		"  -m, --memory-max SIZE    hard limit (default: max); when the group\n"
		"                           cannot get a page, its largest process is killed\n"
		"      --fault-around N     pages resolved per sequential fault, 1..64\n"
		"                           (default 64; an isolated fault gets one page)\n"
		"      --stats-json FILE    write the group's stats as JSON at exit\n"
		"      --socket PATH        control socket (default: $MEMGRP_SOCKET, else\n"
		"                           /run/memgrp/GROUP.sock, where `memgrp stat GROUP`\n"
		"                           finds it)\n"
		"  -h, --help               show this help\n"
		"\n"
		"Not implemented yet (exit code 3): --memory-high, --memory-low,\n"
		"--memory-soft, --swap-max, --mode (estimate accounting).\n"
		"\n"
		"Environment: MEMGRP_AGENT overrides the path of libmemgrp-agent.so.\n");
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

static pid_t spawn(char **argv, const char *agent, const char *sock, const sigset_t *oldmask)
{
	pid_t pid = fork();

	if (pid != 0)
		return pid;
	const char *prev = getenv("LD_PRELOAD");
	char preload[PATH_MAX * 2];
	/* After what is already preloaded: the user's own preloads (an
	 * allocator, a sanitizer runtime, which must come first) keep
	 * precedence; the agent still comes before libc. */
	snprintf(preload, sizeof(preload), "%s%s%s", prev ? prev : "", prev && *prev ? " " : "",
		 agent);
	setenv("LD_PRELOAD", preload, 1);
	setenv("MEMGRP_SOCKET", sock, 1);
	sigprocmask(SIG_SETMASK, oldmask, NULL);
	execvp(argv[0], argv);
	fprintf(stderr, "memgrp run: cannot run '%s': %s\n", argv[0], strerror(errno));
	_exit(errno == ENOENT ? 127 : 126);
}

int mgi_cmd_run(int argc, char **argv)
{
	enum { OPT_FAULT_AROUND = 256, OPT_STATS_JSON, OPT_SOCKET, OPT_UNSUPPORTED };
	static const struct option longopts[] = {
		{"group", required_argument, NULL, 'g'},
		{"memory-max", required_argument, NULL, 'm'},
		{"fault-around", required_argument, NULL, OPT_FAULT_AROUND},
		{"stats-json", required_argument, NULL, OPT_STATS_JSON},
		{"socket", required_argument, NULL, OPT_SOCKET},
		{"memory-high", required_argument, NULL, OPT_UNSUPPORTED},
		{"memory-low", required_argument, NULL, OPT_UNSUPPORTED},
		{"memory-soft", required_argument, NULL, OPT_UNSUPPORTED},
		{"swap-max", required_argument, NULL, OPT_UNSUPPORTED},
		{"mode", required_argument, NULL, OPT_UNSUPPORTED},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	mgi_limits_t lim = {.memory_max = UINT64_MAX};
	char group[MGI_GROUP_NAME_MAX], sock[108], agent[PATH_MAX], err[256];
	const char *stats_json = NULL, *sock_opt = getenv("MEMGRP_SOCKET");
	unsigned long fault_around = 64;
	int opt, status = 0, code;
	mgi_manager_t m;
	sigset_t mask, oldmask;
	pid_t child;
	bool child_done = false;

	snprintf(group, sizeof(group), "run-%d", (int)getpid());
	optind = 1;
	/* "+": stop at the first non-option, so COMMAND's own options pass. */
	int longindex = 0;
	while ((opt = getopt_long(argc, argv, "+g:m:h", longopts, &longindex)) != -1) {
		switch (opt) {
		case 'g':
			if (strchr(optarg, '/')) {
				fprintf(stderr, "memgrp run: --group: nested groups (a/b) need memgrpd, "
						"which is not implemented yet\n");
				return MGI_EXIT_UNSUPPORTED;
			}
			if (!*optarg || strlen(optarg) >= 64 || optarg[0] == '.') {
				fprintf(stderr, "memgrp run: --group: a name of 1 to 63 characters, "
						"not starting with '.'\n");
				return MGI_EXIT_USAGE;
			}
			snprintf(group, sizeof(group), "%s", optarg);
			break;
		case 'm':
			if (mgi_size_parse(optarg, &lim.memory_max, err, sizeof(err)) != 0) {
				fprintf(stderr, "memgrp run: --memory-max: %s\n", err);
				return MGI_EXIT_USAGE;
			}
			if (lim.memory_max < 4096) {
				fprintf(stderr, "memgrp run: --memory-max: at least one page (4K)\n");
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
			break;
		}
		case OPT_STATS_JSON:
			stats_json = optarg;
			break;
		case OPT_SOCKET:
			sock_opt = optarg;
			break;
		case OPT_UNSUPPORTED:
			fprintf(stderr, "memgrp run: --%s is not implemented yet\n", longopts[longindex].name);
			return MGI_EXIT_UNSUPPORTED;
		case 'h':
			run_usage(stdout);
			return MGI_EXIT_OK;
		default:
			return MGI_EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "memgrp run: no command given (memgrp run [OPTIONS] -- COMMAND)\n");
		return MGI_EXIT_USAGE;
	}
	if (sock_opt && *sock_opt)
		snprintf(sock, sizeof(sock), "%s", sock_opt);
	else
		mgi_socket_for_group(group, sock, sizeof(sock));
	if (find_agent(agent, sizeof(agent)) != 0) {
		fprintf(stderr, "memgrp run: cannot find libmemgrp-agent.so next to this program; "
				"set MEMGRP_AGENT to its path\n");
		return MGI_EXIT_FAILURE;
	}
	/* Fail here, with the reason, rather than in every child. */
	int probe = mgi_uffd_open(err, sizeof(err));
	if (probe < 0) {
		fprintf(stderr, "memgrp run: %s\n", err);
		return MGI_EXIT_FAILURE;
	}
	close(probe);

	if (mgi_manager_create(&m, group, &lim, (uint32_t)fault_around, sock, err, sizeof(err)) != 0) {
		fprintf(stderr, "memgrp run: %s\n", err);
		mgi_manager_destroy(&m);
		return MGI_EXIT_FAILURE;
	}
	/* Orphans of the group are reparented to us, so their exits are seen. */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, &oldmask);
	int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0 || mgi_manager_watch(&m, sfd, TAG_SIGNALS) != 0) {
		fprintf(stderr, "memgrp run: signalfd: %s\n", strerror(errno));
		mgi_manager_destroy(&m);
		return MGI_EXIT_FAILURE;
	}
	child = spawn(argv + optind, agent, sock, &oldmask);
	if (child < 0) {
		fprintf(stderr, "memgrp run: fork: %s\n", strerror(errno));
		mgi_manager_destroy(&m);
		return MGI_EXIT_FAILURE;
	}

	while (!child_done) {
		if (mgi_manager_poll(&m, -1) != TAG_SIGNALS)
			continue;
		struct signalfd_siginfo si;
		while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
			if (si.ssi_signo != SIGCHLD) {
				kill(child, (int)si.ssi_signo); /* pass it on */
				continue;
			}
			int st;
			pid_t p;
			while ((p = waitpid(-1, &st, WNOHANG)) > 0)
				if (p == child) {
					status = st;
					child_done = true;
				}
		}
	}
	/* Let the closing connections of the processes that just ended be
	 * seen, so that their pages leave the group before the stats. */
	for (int i = 0; i < 20 && mgi_manager_poll(&m, 10) >= 0; i++)
		;
	if (stats_json) {
		mgi_stats_t st;
		mgi_manager_stats(m.seg, &st);
		if (mgi_stats_write_json(&st, stats_json) != 0)
			fprintf(stderr, "memgrp run: cannot write %s: %s\n", stats_json,
				strerror(errno));
	}
	mgi_manager_destroy(&m);
	code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	return code;
}

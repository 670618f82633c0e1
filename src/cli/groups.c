/* groups.c - `memgrp create`, `set`, `rm` and `ls`: the group tree from the command line. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "size.h"

/* Options shared by create and set: limits (limits.c), --socket, --help.
 * Returns -1 to go on, or the exit code. */
static int parse_limits(const char *cmd, int argc, char **argv, mgi_msg_set_t *set,
			const char **sock, const char *help)
{
	static const struct option longopts[] = {
		MGI_LIMIT_LONGOPTS,
		MGI_THP_LONGOPTS,
		{"socket", required_argument, NULL, 's'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	char err[160];
	int opt, rc;

	mgi_limits_init(set);
	optind = 1;
	while ((opt = getopt_long(argc, argv, "m:s:h", longopts, NULL)) != -1) {
		if ((rc = mgi_limits_option(cmd, opt, optarg, set)) != 0) {
			if (rc < 0)
				return MGI_EXIT_USAGE;
			continue;
		}
		switch (opt) {
		case 's': *sock = optarg; break;
		case 'h':
			fputs(help, stdout);
			fputs(mgi_limits_help, stdout);
			fputs(mgi_thp_help, stdout);
			return MGI_EXIT_OK;
		default: return MGI_EXIT_USAGE;
		}
	}
	if (mgi_limits_check(cmd, set) != 0)
		return MGI_EXIT_USAGE;
	if (optind + 1 != argc) {
		fprintf(stderr, "memgrp %s: name one group (memgrp %s GROUP [LIMITS])\n", cmd, cmd);
		return MGI_EXIT_USAGE;
	}
	if (mgi_group_name_check(argv[optind], err, sizeof(err)) != 0) {
		fprintf(stderr, "memgrp %s: '%s': %s\n", cmd, argv[optind], err);
		return MGI_EXIT_USAGE;
	}
	snprintf(set->group, sizeof(set->group), "%s", argv[optind]);
	return -1;
}

/* For commands taking positional arguments only: an optional leading
 * "--socket PATH" (into *sock), then exactly `want` arguments, the first a
 * group name. Returns -1 to go on (argv/argc past the socket option), or
 * the exit code after saying what is wrong. */
static int positional(const char *cmd, const char *usage_args, int *argc, char ***argv,
		      int want, const char **sock)
{
	char err[160];

	if (*argc > 2 && !strcmp((*argv)[1], "--socket")) {
		*sock = (*argv)[2];
		*argv += 2;
		*argc -= 2;
	}
	if (*argc != want + 1) {
		fprintf(stderr, "memgrp %s: wrong arguments (memgrp %s %s)\n", cmd, cmd, usage_args);
		return MGI_EXIT_USAGE;
	}
	if (mgi_group_name_check((*argv)[1], err, sizeof(err)) != 0) {
		fprintf(stderr, "memgrp %s: '%s': %s\n", cmd, (*argv)[1], err);
		return MGI_EXIT_USAGE;
	}
	return -1;
}

/* Sends a request answered by REPLY to the group's manager; the exit code. */
static int ask(const char *cmd, const char *sock_opt, const mgi_msg_t *req, const char *group)
{
	char path[108], err[256];
	int rc;

	if (mgi_find_manager(sock_opt, group, path, sizeof(path), err, sizeof(err)) != 0) {
		fprintf(stderr, "memgrp %s: %s\n", cmd, err);
		return MGI_EXIT_USAGE;
	}
	rc = mgi_request_reply(path, req, err, sizeof(err));
	if (rc != 0) {
		fprintf(stderr, "memgrp %s: %s\n", cmd, err);
		return MGI_EXIT_FAILURE;
	}
	return MGI_EXIT_OK;
}

int mgi_cmd_set(int argc, char **argv)
{
	static mgi_msg_t req;
	const char *sock = NULL;
	int rc;

	mgi_msg_init(&req, MGI_MSG_SET);
	rc = parse_limits("set", argc, argv, &req.set, &sock,
			  "Usage: memgrp set [--socket PATH] GROUP LIMITS...\n"
			  "Changes a running group's limits. A hard limit below the group's usage\n"
			  "is refused (set --memory-high to it first to have the group evicted\n"
			  "down to there); a swap limit below the swap usage stops new evictions.\n"
			  "\nLimits:\n");
	if (rc >= 0)
		return rc;
	if (!mgi_limits_given(&req.set) && req.set.backend == MGI_SET_KEEP) {
		fprintf(stderr, "memgrp set: nothing to set (see memgrp set --help)\n");
		return MGI_EXIT_USAGE;
	}
	return ask("set", sock, &req, req.set.group);
}

int mgi_cmd_create(int argc, char **argv)
{
	static mgi_msg_t req;
	const char *sock = NULL;
	int rc;

	mgi_msg_init(&req, MGI_MSG_CREATE);
	rc = parse_limits("create", argc, argv, &req.set, &sock,
			  "Usage: memgrp create [--socket PATH] GROUP [LIMITS...]\n"
			  "Creates a group in memgrpd (or under the group of a running\n"
			  "`memgrp run -g TOP`, for TOP/...). Its parent must exist. A group's\n"
			  "limits hold for its whole subtree: a charge counts in every ancestor.\n"
			  "Run commands in it with `memgrp run -g GROUP -- CMD`.\n"
			  "\nLimits:\n");
	if (rc >= 0)
		return rc;
	return ask("create", sock, &req, req.set.group);
}

int mgi_cmd_rm(int argc, char **argv)
{
	static mgi_msg_t req;
	const char *sock = NULL;

	if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		printf("Usage: memgrp rm [--socket PATH] GROUP\n"
		       "Removes a group that has no processes and no child groups.\n");
		return MGI_EXIT_OK;
	}
	int rc = positional("rm", "[--socket PATH] GROUP", &argc, &argv, 1, &sock);
	if (rc >= 0)
		return rc;
	mgi_msg_init(&req, MGI_MSG_RM);
	snprintf(req.group.group, sizeof(req.group.group), "%s", argv[1]);
	return ask("rm", sock, &req, argv[1]);
}

/* Lists the groups of the manager at sock; returns how many it printed. */
static int list_manager(const char *sock, bool json, int n)
{
	static mgi_msg_t req, list, st;
	char err[256], a[16], b[16], c[16];

	mgi_msg_init(&req, MGI_MSG_LIST_REQ);
	if (mgi_request(sock, &req, MGI_MSG_LIST, &list, err, sizeof(err)) != 0)
		return n; /* a stale socket: nobody serves it */
	for (uint32_t i = 0; i < list.list.count; i++) {
		mgi_msg_init(&req, MGI_MSG_STAT_REQ);
		memcpy(req.group.group, list.list.names[i], MGI_GROUP_NAME_MAX);
		if (mgi_request(sock, &req, MGI_MSG_STAT, &st, err, sizeof(err)) != 0)
			continue; /* removed meanwhile */
		const mgi_stats_t *f = &st.stat.figures;
		if (json) {
			printf("%s{\"group\": ", n ? ", " : "");
			mgi_json_str(stdout, st.stat.group);
			printf(", ");
			mgi_stats_print_json_fields(stdout, f);
			printf("}");
		} else {
			/* the backend only where it is not the default: the
			 * columns of agent groups stay as they were */
			printf("%-24s %10s %10s %10s %6llu%s\n", st.stat.group,
			       mgi_size_format(f->usage, a, sizeof(a)),
			       mgi_size_format(f->max_usage, b, sizeof(b)),
			       f->limit >= (uint64_t)MGI_PAGES_UNLIMITED * MGI_PAGE_SIZE
				       ? "max"
				       : mgi_size_format(f->limit, c, sizeof(c)),
			       (unsigned long long)f->nr_processes,
			       f->backend == MGI_BACKEND_KERNEL ? " kernel" : "");
		}
		n++;
	}
	if (list.list.truncated)
		fprintf(stderr, "memgrp ls: %s lists only its first %d groups\n", sock, MGI_LIST_MAX);
	return n;
}

/* memgrpd's groups (or those of the manager at --socket), then every
 * /run/memgrp/NAME.sock with an embedded manager behind it. */
int mgi_cmd_ls(int argc, char **argv)
{
	const char *sock = mgi_cli_socket;
	bool json = false;
	char path[300];
	struct dirent *d;
	DIR *dir;
	int n = 0;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json")) {
			json = true;
		} else if (!strcmp(argv[i], "--socket") && i + 1 < argc) {
			sock = argv[++i];
		} else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			printf("Usage: memgrp ls [--json] [--socket PATH]\n"
			       "Lists the groups: memgrpd's and those of running `memgrp run`s\n"
			       "(in /run/memgrp), or only those of the manager at --socket.\n"
			       "Usage counts the whole subtree, like memcg's. A group served by\n"
			       "the kernel backend (--backend kernel) says \"kernel\" after PROCS.\n");
			return MGI_EXIT_OK;
		} else {
			fprintf(stderr, "memgrp ls: unexpected argument '%s'\n", argv[i]);
			return MGI_EXIT_USAGE;
		}
	}
	if (json)
		printf("[");
	else
		printf("%-24s %10s %10s %10s %6s\n", "GROUP", "USAGE", "MAX_USAGE", "LIMIT", "PROCS");
	if (sock) {
		n = list_manager(sock, json, n);
	} else {
		n = list_manager(MGI_MEMGRPD_SOCKET, json, n);
		dir = opendir("/run/memgrp");
		while (dir && (d = readdir(dir))) {
			size_t len = strlen(d->d_name);
			if (len < 6 || strcmp(d->d_name + len - 5, ".sock") != 0 ||
			    !strcmp(d->d_name, "memgrpd.sock"))
				continue;
			snprintf(path, sizeof(path), "/run/memgrp/%s", d->d_name);
			n = list_manager(path, json, n);
		}
		if (dir)
			closedir(dir);
	}
	if (json)
		printf("]\n");
	return MGI_EXIT_OK;
}

int mgi_cmd_attach(int argc, char **argv)
{
	static mgi_msg_t req;
	const char *sock = NULL;
	char *end;
	long pid;

	if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		printf("Usage: memgrp attach [--socket PATH] GROUP PID\n"
		       "Moves process PID, with the pages charged to it, into GROUP. PID must\n"
		       "run with the agent and be served by the same manager, e.g. started\n"
		       "with `memgrp run`, or with LD_PRELOAD=libmemgrp-agent.so and\n"
		       "MEMGRP_SOCKET set to memgrpd's socket (it then starts in the root\n"
		       "group). Refused if GROUP (or an ancestor it does not share) cannot\n"
		       "take the pages. Its children started later follow it; those already\n"
		       "running stay where they are.\n");
		return MGI_EXIT_OK;
	}
	int rc = positional("attach", "[--socket PATH] GROUP PID", &argc, &argv, 2, &sock);
	if (rc >= 0)
		return rc;
	errno = 0;
	pid = strtol(argv[2], &end, 10);
	if (errno || *end || !*argv[2] || pid <= 0 || pid > INT32_MAX) {
		fprintf(stderr, "memgrp attach: '%s' is not a pid\n", argv[2]);
		return MGI_EXIT_USAGE;
	}
	mgi_msg_init(&req, MGI_MSG_ATTACH);
	snprintf(req.attach.group, sizeof(req.attach.group), "%s", argv[1]);
	req.attach.pid = (int32_t)pid;
	return ask("attach", sock, &req, argv[1]);
}

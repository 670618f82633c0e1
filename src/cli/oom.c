/* oom.c - `memgrp oom GROUP --kill PID|--resume`: a hand on a group paused at OOM (--oom-kill-disable). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "group.h"
#include "proto.h"

static const char oom_usage[] =
	"Usage: memgrp oom [--socket PATH] GROUP --kill PID | --resume\n"
	"Acts on a group paused at OOM (created or set with --oom-kill-disable; its\n"
	"`memgrp stat` says under_oom 1): its faulting threads wait until memory is\n"
	"freed, its limit is raised (memgrp set), or:\n"
	"  --kill PID   kill process PID (SIGKILL; its memory is released at once):\n"
	"               it must be a process of GROUP or of a group below it\n"
	"  --resume     the OOM action the pause held back: the group's --oom-policy\n"
	"               kills one process (or its --oom-kill group), once; the setting\n"
	"               stays, so the next OOM pauses again\n"
	"Root or the manager's user only. Exit codes: 0 done, 1 refused (the group is\n"
	"not paused, PID is not in it, or nothing could be killed), 2 bad command line.\n";

int mgi_cmd_oom(int argc, char **argv)
{
	static const struct option opts[] = {
		{"socket", required_argument, NULL, 's'},
		{"kill", required_argument, NULL, 'k'},
		{"resume", no_argument, NULL, 'r'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	static mgi_msg_t req;
	const char *sock = NULL;
	char path[108], err[256];
	long pid = 0;
	int opt, action = 0;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 's':
			sock = optarg;
			break;
		case 'k': {
			char *end;
			errno = 0;
			pid = strtol(optarg, &end, 10);
			if (errno || *end || !*optarg || pid <= 0 || pid >= MGI_PID_MAX) {
				fprintf(stderr, "memgrp oom: --kill: a process id, not '%s'\n", optarg);
				return MGI_EXIT_USAGE;
			}
			action = action ? -1 : MGI_OOM_ACT_KILL;
			break;
		}
		case 'r':
			action = action ? -1 : MGI_OOM_ACT_RESUME;
			break;
		case 'h':
			fputs(oom_usage, stdout);
			return MGI_EXIT_OK;
		default:
			fputs(oom_usage, stderr);
			return MGI_EXIT_USAGE;
		}
	}
	if (action <= 0 || optind != argc - 1) {
		fprintf(stderr, "memgrp oom: %s (memgrp oom GROUP --kill PID | --resume)\n",
			action < 0 ? "--kill and --resume exclude each other"
			: action == 0 ? "say --kill PID or --resume" : "name one group");
		return MGI_EXIT_USAGE;
	}
	const char *group = argv[optind];
	if (mgi_group_name_check(group, err, sizeof(err)) != 0) {
		fprintf(stderr, "memgrp oom: '%s': %s\n", group, err);
		return MGI_EXIT_USAGE;
	}
	mgi_msg_init(&req, MGI_MSG_OOM_ACT);
	snprintf(req.oom_act.group, sizeof(req.oom_act.group), "%s", group);
	req.oom_act.pid = action == MGI_OOM_ACT_KILL ? (int32_t)pid : 0;
	req.oom_act.action = (uint32_t)action;
	if (mgi_find_manager(sock, group, path, sizeof(path), err, sizeof(err)) != 0) {
		fprintf(stderr, "memgrp oom: %s\n", err);
		return MGI_EXIT_USAGE;
	}
	if (mgi_request_reply(path, &req, err, sizeof(err)) != 0) {
		fprintf(stderr, "memgrp oom: %s\n", err);
		return MGI_EXIT_FAILURE;
	}
	printf("%s\n", err);
	return MGI_EXIT_OK;
}

/* groups.c - `memgrp set` and `memgrp ls`: change and list running groups. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "size.h"

int mgi_cmd_set(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"memory-max", required_argument, NULL, 'm'},
		{"socket", required_argument, NULL, 's'},
		{"help", no_argument, NULL, 'h'},
		{"memory-high", required_argument, NULL, 'U'},
		{"memory-low", required_argument, NULL, 'U'},
		{"memory-soft", required_argument, NULL, 'U'},
		{"swap-max", required_argument, NULL, 'U'},
		{NULL, 0, NULL, 0},
	};
	const char *sock_opt = NULL;
	char path[108], err[256];
	static mgi_msg_t req, reply;
	uint64_t bytes;
	int opt, li = 0;

	mgi_msg_init(&req, MGI_MSG_SET);
	req.set.memory_max = MGI_SET_KEEP;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "m:s:h", longopts, &li)) != -1) {
		switch (opt) {
		case 'm':
			if (mgi_size_parse(optarg, &bytes, err, sizeof(err)) != 0) {
				fprintf(stderr, "memgrp set: --memory-max: %s\n", err);
				return MGI_EXIT_USAGE;
			}
			if (bytes < 4096) {
				fprintf(stderr, "memgrp set: --memory-max: at least one page (4K)\n");
				return MGI_EXIT_USAGE;
			}
			req.set.memory_max = bytes == MGI_SIZE_MAX ? MGI_SET_UNLIMITED : bytes;
			break;
		case 's': sock_opt = optarg; break;
		case 'U':
			fprintf(stderr, "memgrp set: --%s is not implemented yet\n", longopts[li].name);
			return MGI_EXIT_UNSUPPORTED;
		case 'h':
			printf("Usage: memgrp set [--socket PATH] GROUP --memory-max SIZE\n"
			       "Changes a running group's hard limit. Lowering it below the group's\n"
			       "usage is refused (memgrp cannot reclaim yet).\n");
			return MGI_EXIT_OK;
		default: return MGI_EXIT_USAGE;
		}
	}
	if (optind + 1 != argc) {
		fprintf(stderr, "memgrp set: name one group (memgrp set GROUP --memory-max SIZE)\n");
		return MGI_EXIT_USAGE;
	}
	if (req.set.memory_max == MGI_SET_KEEP) {
		fprintf(stderr, "memgrp set: nothing to set (--memory-max SIZE)\n");
		return MGI_EXIT_USAGE;
	}
	if (mgi_group_socket(sock_opt, argv[optind], path, sizeof(path)) != 0) {
		fprintf(stderr, "memgrp set: '%s' is not a group name\n", argv[optind]);
		return MGI_EXIT_USAGE;
	}
	if (mgi_request(path, &req, MGI_MSG_REPLY, &reply, err, sizeof(err)) != 0) {
		fprintf(stderr, "memgrp set: %s\n", err);
		return MGI_EXIT_FAILURE;
	}
	if (reply.reply.status != 0) {
		fprintf(stderr, "memgrp set: %s: %s\n", argv[optind], reply.reply.message);
		return MGI_EXIT_FAILURE;
	}
	return MGI_EXIT_OK;
}

/* Every /run/memgrp/NAME.sock with a manager behind it is a group. */
int mgi_cmd_ls(int argc, char **argv)
{
	static mgi_msg_t req, reply;
	bool json = argc > 1 && !strcmp(argv[1], "--json");
	char path[300], err[256], a[16], b[16];
	struct dirent *d;
	DIR *dir;
	int n = 0;

	if (argc > 1 && !json) {
		if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
			printf("Usage: memgrp ls [--json]\nLists the running groups "
			       "(those whose manager answers in /run/memgrp).\n");
			return MGI_EXIT_OK;
		}
		fprintf(stderr, "memgrp ls: unexpected argument '%s'\n", argv[1]);
		return MGI_EXIT_USAGE;
	}
	mgi_msg_init(&req, MGI_MSG_STAT_REQ);
	dir = opendir("/run/memgrp");
	if (json)
		printf("[");
	else
		printf("%-24s %10s %10s %10s %6s\n", "GROUP", "USAGE", "MAX_USAGE", "LIMIT", "PROCS");
	while (dir && (d = readdir(dir))) {
		size_t len = strlen(d->d_name);
		if (len < 6 || strcmp(d->d_name + len - 5, ".sock") != 0)
			continue;
		snprintf(path, sizeof(path), "/run/memgrp/%s", d->d_name);
		if (mgi_request(path, &req, MGI_MSG_STAT, &reply, err, sizeof(err)) != 0)
			continue; /* a stale socket: nobody serves that group */
		const mgi_stats_t *f = &reply.stat.figures;
		if (json) {
			printf("%s{\"group\": ", n ? ", " : "");
			mgi_json_str(stdout, reply.stat.group);
			printf(", ");
			mgi_stats_print_json_fields(stdout, f);
			printf("}");
		} else {
			printf("%-24s %10s %10s %10s %6llu\n", reply.stat.group,
			       mgi_size_format(f->usage, a, sizeof(a)),
			       mgi_size_format(f->max_usage, b, sizeof(b)),
			       f->limit >= (uint64_t)MGI_PAGES_UNLIMITED * 4096
				       ? "max"
				       : mgi_size_format(f->limit, err, 16),
			       (unsigned long long)f->nr_processes);
		}
		n++;
	}
	if (dir)
		closedir(dir);
	if (json)
		printf("]\n");
	return MGI_EXIT_OK;
}

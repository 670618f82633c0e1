/* main.c - the memgrp command: subcommand dispatch, --help, --version. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "memgrp.h" /* MG_VERSION */

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: memgrp [--socket PATH] COMMAND [OPTIONS]\n"
		"\n"
		"memgrp manages the memory of groups of processes from user space.\n"
		"\n"
		"Commands:\n"
		"  run        run a command in a group whose memory is accounted and limited\n"
		"             (memgrp run --help)\n"
		"  stat       print a running group's figures (memgrp stat --help)\n"
		"  set        change a group's limit (memgrp set --help)\n"
		"  create     create a group (in memgrpd, or under a running group)\n"
		"  rm         remove a group with no processes and no children\n"
		"  attach     move a process running with the agent into a group\n"
		"  events     print a group's threshold, pressure and OOM events\n"
		"  ls         list the groups\n"
		"  top        a live view of the groups (memgrp top --help)\n"
		"  oom        act on a group paused at OOM: --kill PID or --resume\n"
		"  demo       drive the accounting core through a scripted scenario:\n"
		"             hierarchical limits, threshold crossings, the estimate model\n"
		"\n"
		"Options:\n"
		"  --socket PATH  the manager to talk to (default: $MEMGRP_SOCKET, else\n"
		"                 memgrpd at " MGI_MEMGRPD_SOCKET " if it runs, else\n"
		"                 the embedded manager of `memgrp run -g GROUP`,\n"
		"                 /run/memgrp/GROUP.sock)\n"
		"  -h, --help     show this help (also: memgrp COMMAND --help)\n"
		"  -V, --version  show the version\n"
		"\n"
		"Sizes accept a number of bytes with an optional K, M, G, T, P or E\n"
		"suffix (powers of 1024; '1.5G' allowed) or 'max'.\n"
		"\n"
		"Exit codes:\n"
		"  0  success\n"
		"  1  the operation failed\n"
		"  2  bad command line (unknown command or option, bad value)\n"
		"  3  command or option not implemented yet\n");
}

int main(int argc, char **argv)
{
	/* The global option comes before the command. */
	while (argc > 1 && !strncmp(argv[1], "--socket", 8)) {
		if (argv[1][8] == '=') {
			mgi_cli_socket = argv[1] + 9;
		} else if (argv[1][8] == '\0' && argc > 2) {
			mgi_cli_socket = argv[2];
			argv++;
			argc--;
		} else {
			fprintf(stderr, "memgrp: --socket needs a path\n");
			return MGI_EXIT_USAGE;
		}
		argv++;
		argc--;
	}
	const char *cmd = argc > 1 ? argv[1] : NULL;

	if (!cmd) {
		usage(stderr);
		return MGI_EXIT_USAGE;
	}
	if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
		usage(stdout);
		return MGI_EXIT_OK;
	}
	if (!strcmp(cmd, "-V") || !strcmp(cmd, "--version")) {
		unsigned v = MG_VERSION;
		printf("memgrp %u.%u.%u\n", v >> 16, (v >> 8) & 0xff, v & 0xff);
		return MGI_EXIT_OK;
	}
	if (!strcmp(cmd, "demo"))
		return mgi_cmd_demo(argc - 1, argv + 1);
	if (!strcmp(cmd, "run"))
		return mgi_cmd_run(argc - 1, argv + 1);
	if (!strcmp(cmd, "stat"))
		return mgi_cmd_stat(argc - 1, argv + 1);
	if (!strcmp(cmd, "set"))
		return mgi_cmd_set(argc - 1, argv + 1);
	if (!strcmp(cmd, "create"))
		return mgi_cmd_create(argc - 1, argv + 1);
	if (!strcmp(cmd, "events"))
		return mgi_cmd_events(argc - 1, argv + 1);
	if (!strcmp(cmd, "attach"))
		return mgi_cmd_attach(argc - 1, argv + 1);
	if (!strcmp(cmd, "rm"))
		return mgi_cmd_rm(argc - 1, argv + 1);
	if (!strcmp(cmd, "ls"))
		return mgi_cmd_ls(argc - 1, argv + 1);
	if (!strcmp(cmd, "top"))
		return mgi_cmd_top(argc - 1, argv + 1);
	if (!strcmp(cmd, "oom"))
		return mgi_cmd_oom(argc - 1, argv + 1);
	fprintf(stderr, "memgrp: unknown command '%s' (see memgrp --help)\n", cmd);
	return MGI_EXIT_USAGE;
}

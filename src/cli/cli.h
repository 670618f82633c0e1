/* cli.h - what the memgrp command's files share: exit codes and subcommands. */
#ifndef MGI_CLI_H
#define MGI_CLI_H

/* Exit codes, documented in `memgrp --help`. */
enum {
	MGI_EXIT_OK = 0,
	MGI_EXIT_FAILURE = 1,     /* the operation failed at run time */
	MGI_EXIT_USAGE = 2,       /* bad command line: unknown command or option, bad value */
	MGI_EXIT_UNSUPPORTED = 3, /* a command or option memgrp does not implement yet */
};

int mgi_cmd_demo(int argc, char **argv);
int mgi_cmd_run(int argc, char **argv);

#endif

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
int mgi_cmd_stat(int argc, char **argv);

#include <stddef.h>
/* The embedded manager's socket for a group: /run/memgrp/GROUP.sock.
 * Returns 0, or -1 for a name that cannot be a file name. */
int mgi_socket_for_group(const char *group, char *out, size_t len);

#endif

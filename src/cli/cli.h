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
int mgi_cmd_set(int argc, char **argv);
int mgi_cmd_ls(int argc, char **argv);

#include <stddef.h>
/* The embedded manager's socket for a group: /run/memgrp/GROUP.sock.
 * Returns 0, or -1 for a name that cannot be a file name. */
int mgi_socket_for_group(const char *group, char *out, size_t len);

#include "../daemon/manager.h"
#include "proto.h"

/* Sends req to the manager at sock and parses its answer, which must be of
 * type `want`, into reply. Returns 0, or a negative errno with err set. */
int mgi_request(const char *sock, const mgi_msg_t *req, int want, mgi_msg_t *reply, char *err,
		size_t errlen);

/* Writes s as a JSON string, escaped. */
#include <stdio.h>
void mgi_json_str(FILE *f, const char *s);

/* The socket to use: sock_opt if given, else the group's. 0 or -1. */
int mgi_group_socket(const char *sock_opt, const char *group, char *out, size_t len);

#endif

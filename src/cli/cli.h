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
int mgi_cmd_create(int argc, char **argv);
int mgi_cmd_rm(int argc, char **argv);
int mgi_cmd_attach(int argc, char **argv);
int mgi_cmd_events(int argc, char **argv);
int mgi_cmd_top(int argc, char **argv);
int mgi_cmd_oom(int argc, char **argv);

#include <signal.h>
#include <sys/types.h>

/* spawn.c, for `memgrp run`: libmemgrp-agent.so's path (MEMGRP_AGENT, else
 * next to this binary), 0 or -ENOENT; and the command forked, placed in
 * the group's kernel cgroup and exec'ed with the agent preloaded (agent
 * NULL: the kernel backend, no agent), its pid or -1. */
int mgi_run_find_agent(char *out, size_t len);
pid_t mgi_run_spawn(char **argv, const char *agent, const char *sock, const char *group,
		    const char *codec, const sigset_t *oldmask);

#include <stddef.h>
/* The embedded manager's socket for a group: /run/memgrp/GROUP.sock.
 * Returns 0, or -1 for a name that cannot be a file name. */
int mgi_socket_for_group(const char *group, char *out, size_t len);

#include "proto.h"

/* Sends req to the manager at sock and parses its answer, which must be of
 * type `want`, into reply. Returns 0, or a negative errno with err set. */
int mgi_request(const char *sock, const mgi_msg_t *req, int want, mgi_msg_t *reply, char *err,
		size_t errlen);

/* Writes s as a JSON string, escaped. */
#include <stdio.h>
void mgi_json_str(FILE *f, const char *s);

/* stat.c: prints the stats' "key": value pairs (mgi_stats_json_fields),
 * comma-separated, no braces. */
void mgi_stats_print_json_fields(FILE *f, const mgi_stats_t *s);

/* Writes stats as one JSON object to path. Returns 0 or -errno (errno
 * set too). */
int mgi_stats_write_json(const mgi_stats_t *s, const char *path);

/* memgrpd's socket when nothing else is said. */
#define MGI_MEMGRPD_SOCKET "/run/memgrp/memgrpd.sock"

/* The global --socket (memgrp --socket PATH COMMAND ...), or NULL. */
extern const char *mgi_cli_socket;

#include <stdbool.h>
/* Whether a manager accepts connections at sock. */
bool mgi_manager_answers(const char *sock);

/*
 * The socket of the manager to ask about `group` (NULL or "": none named):
 *  1. sock_opt (a command's --socket), else the global --socket, else
 *     $MEMGRP_SOCKET;
 *  2. memgrpd at MGI_MEMGRPD_SOCKET, if it answers;
 *  3. the embedded manager of the group's top-level name, /run/memgrp/TOP.sock
 *     (memgrp run -g TOP serves TOP and the groups created under it).
 * Returns 0, or -1 with err set (a bad name, or nothing to ask).
 */
int mgi_find_manager(const char *sock_opt, const char *group, char *out, size_t len, char *err,
		     size_t errlen);

/* Asks the manager at sock for one request that is answered by REPLY.
 * Returns the reply's status (0 or -errno), with its message or the
 * transport error in err. */
int mgi_request_reply(const char *sock, const mgi_msg_t *req, char *err, size_t errlen);

/* limits.c: --memory-max/high/low/soft, --swap-max and --swappiness, for
 * run, create and set (getopt values: 'm' and these). */
enum { MGI_OPT_HIGH = 300, MGI_OPT_LOW, MGI_OPT_SOFT, MGI_OPT_SWAP_MAX, MGI_OPT_SWAPPINESS, MGI_OPT_MODE,
       MGI_OPT_BACKEND, MGI_OPT_OOM_POLICY, MGI_OPT_OOM_KILL, MGI_OPT_OOM_SIGNAL, MGI_OPT_OOM_GRACE,
       MGI_OPT_OOM_PREFER, MGI_OPT_OOM_AVOID, MGI_OPT_OOM_KILL_DISABLE,
       MGI_OPT_OOM_PREKILL, MGI_OPT_OOM_PREKILL_TIMEOUT, MGI_OPT_OOM_HANDLER_TIMEOUT,
       MGI_OPT_OOM_RESERVE, MGI_OPT_THP, MGI_OPT_THP_THRESHOLD, MGI_OPT_THP_RATE,
       MGI_OPT_THP_WEIGHT };
#define MGI_LIMIT_LONGOPTS                                                      \
	{"memory-max", required_argument, NULL, 'm'},                           \
	{"memory-high", required_argument, NULL, MGI_OPT_HIGH},                 \
	{"memory-low", required_argument, NULL, MGI_OPT_LOW},                   \
	{"memory-soft", required_argument, NULL, MGI_OPT_SOFT},                 \
	{"swap-max", required_argument, NULL, MGI_OPT_SWAP_MAX},                \
	{"swappiness", required_argument, NULL, MGI_OPT_SWAPPINESS},            \
	{"mode", required_argument, NULL, MGI_OPT_MODE},                        \
	{"backend", required_argument, NULL, MGI_OPT_BACKEND},                  \
	{"oom-policy", required_argument, NULL, MGI_OPT_OOM_POLICY},            \
	{"oom-kill", required_argument, NULL, MGI_OPT_OOM_KILL},                \
	{"oom-signal", required_argument, NULL, MGI_OPT_OOM_SIGNAL},            \
	{"oom-grace", required_argument, NULL, MGI_OPT_OOM_GRACE},              \
	{"oom-prefer", required_argument, NULL, MGI_OPT_OOM_PREFER},            \
	{"oom-avoid", required_argument, NULL, MGI_OPT_OOM_AVOID},              \
	{"oom-kill-disable", optional_argument, NULL, MGI_OPT_OOM_KILL_DISABLE}, \
	{"oom-prekill", required_argument, NULL, MGI_OPT_OOM_PREKILL},          \
	{"oom-prekill-timeout", required_argument, NULL, MGI_OPT_OOM_PREKILL_TIMEOUT}, \
	{"oom-handler-timeout", required_argument, NULL, MGI_OPT_OOM_HANDLER_TIMEOUT}, \
	{"oom-reserve", required_argument, NULL, MGI_OPT_OOM_RESERVE}
/* create and set only (memgrp run has its own --thp, per process, read
 * from the environment by each agent) */
#define MGI_THP_LONGOPTS                                                       \
	{"thp", required_argument, NULL, MGI_OPT_THP},                          \
	{"thp-threshold", required_argument, NULL, MGI_OPT_THP_THRESHOLD},      \
	{"thp-rate", required_argument, NULL, MGI_OPT_THP_RATE},                \
	{"thp-weight", required_argument, NULL, MGI_OPT_THP_WEIGHT}
extern const char mgi_limits_help[];
extern const char mgi_thp_help[];
/* Every limit left at MGI_SET_KEEP. */
void mgi_limits_init(mgi_msg_set_t *set);
/* Whether any limit was given. */
bool mgi_limits_given(const mgi_msg_set_t *set);
/* Parses option opt's argument into set: returns 1 if it was a limit
 * option, 0 if not, -1 after printing why the value is bad. */
int mgi_limits_option(const char *cmd, int opt, const char *arg, mgi_msg_set_t *set);
/* After the options: --memory-high or --memory-low above --memory-max
 * given together is refused (it would never apply; memcg v2 accepts and
 * ignores it), and --oom-grace without --oom-signal TERM; TERM without a
 * grace gets 1 s. Returns 0, or -1 after saying why. */
int mgi_limits_check(const char *cmd, mgi_msg_set_t *set);

#endif

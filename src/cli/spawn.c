/* spawn.c - `memgrp run`'s command started: the agent found and preloaded, the process placed in its group, exec. */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "oslayer.h"

/* libmemgrp-agent.so next to this binary: in the build tree
 * (src/cli/memgrp -> src/agent/) or installed (bin/ -> lib/memgrp/). */
int mgi_run_find_agent(char *out, size_t len)
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

/* In the child, before exec: asks the manager to put this process in the
 * group's kernel cgroup (PLACE; the manager checks the asker by
 * SO_PEERCRED), so that the command is bounded from its first
 * instruction, whether the agent loads or not. A manager without the
 * backstop says so and the command runs as before, unless the group is
 * the kernel backend's (required: nothing else would account it). */
static void place(const char *sock, const char *group, bool required)
{
	static mgi_msg_t req;
	char err[400];
	int rc;

	mgi_msg_init(&req, MGI_MSG_PLACE);
	snprintf(req.group.group, sizeof(req.group.group), "%s", group);
	rc = mgi_request_reply(sock, &req, err, sizeof(err));
	if (rc == 0 || (rc == -EOPNOTSUPP && !required))
		return;
	fprintf(stderr, "memgrp run: cannot place the command in group '%s': %s\n", group, err);
	_exit(126);
}

/* A static binary (every Go program, busybox-static) has no dynamic linker
 * to load the agent: said at start, with the way out, rather than only by
 * the backstop's scan once it runs. */
static void say_if_static(const char *cmd)
{
	char path[PATH_MAX];
	const char *dirs = getenv("PATH");

	if (strchr(cmd, '/')) {
		snprintf(path, sizeof(path), "%s", cmd);
	} else {
		path[0] = 0;
		for (const char *d = dirs ? dirs : "/usr/bin:/bin"; d && *d;) {
			const char *end = strchr(d, ':');
			int n = end ? (int)(end - d) : (int)strlen(d);
			snprintf(path, sizeof(path), "%.*s/%s", n, n ? d : ".", cmd);
			if (access(path, X_OK) == 0)
				break;
			path[0] = 0;
			d = end ? end + 1 : NULL;
		}
	}
	if (path[0] && mgi_os_elf_static(path) == 1)
		fprintf(stderr, "memgrp run: %s is linked statically: no dynamic linker loads the agent "
				"into it, so memgrp sees none of its memory and only its kernel cgroup "
				"bounds it; run it with --backend kernel for memgrp's limits, thresholds "
				"and OOM handling through the kernel\n", path);
}

pid_t mgi_run_spawn(char **argv, const char *agent, const char *sock, const char *group,
		     const char *codec, const sigset_t *oldmask)
{
	pid_t pid = fork();

	if (pid != 0)
		return pid;
	place(sock, group, agent == NULL);
	if (!agent) {
		/* The kernel backend: the command runs as it is, no agent; a
		 * libmemgrp client in it still finds its group's manager. */
		setenv("MEMGRP_SOCKET", sock, 1);
		setenv("MEMGRP_GROUP", group, 1);
		sigprocmask(SIG_SETMASK, oldmask, NULL);
		execvp(argv[0], argv);
		fprintf(stderr, "memgrp run: cannot run '%s': %s\n", argv[0], strerror(errno));
		_exit(errno == ENOENT ? 127 : 126);
	}
	const char *prev = getenv("LD_PRELOAD");
	char preload[PATH_MAX * 2];
	/* After what is already preloaded: the user's own preloads (an
	 * allocator, a sanitizer runtime, which must come first) keep
	 * precedence; the agent still comes before libc. */
	snprintf(preload, sizeof(preload), "%s%s%s", prev ? prev : "", prev && *prev ? " " : "",
		 agent);
	setenv("LD_PRELOAD", preload, 1);
	setenv("MEMGRP_SOCKET", sock, 1);
	setenv("MEMGRP_GROUP", group, 1);
	if (codec)
		setenv("MEMGRP_CODEC", codec, 1);
	say_if_static(argv[0]);
	sigprocmask(SIG_SETMASK, oldmask, NULL);
	execvp(argv[0], argv);
	fprintf(stderr, "memgrp run: cannot run '%s': %s\n", argv[0], strerror(errno));
	_exit(errno == ENOENT ? 127 : 126);
}

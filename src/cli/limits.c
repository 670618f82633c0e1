/* limits.c - the limit options that run, create and set share. */
#include <errno.h>
#include <regex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"
#include "hostmem.h"
#include "size.h"
#include "victim.h"

/* --oom-grace was given (its value may be 0); --oom-prekill-timeout too */
static bool grace_given, prekill_timeout_given;

const char mgi_limits_help[] =
	"  -m, --memory-max SIZE    hard limit (default: max). At it, the group's\n"
	"                           coldest pages are evicted into compressed swap if\n"
	"                           it may swap; else its largest process is killed\n"
	"      --memory-high SIZE   above it, pages are evicted in the background\n"
	"                           until usage is under it again (needs swap)\n"
	"      --memory-low SIZE    under it, the group is evicted from last when an\n"
	"                           ancestor's limit needs room\n"
	"      --memory-soft SIZE   while the host's MemAvailable is under the\n"
	"                           manager's floor, groups above their soft limit\n"
	"                           are evicted toward it, the furthest first\n"
	"      --swap-max SIZE      what the group may keep in its compressed stores\n"
	"                           (default for a top-level group: 0, no swap; for a\n"
	"                           nested one: max, bounded by its ancestors')\n"
	"      --swappiness N       0 to 100 (default 60): 0 never evicts; otherwise a\n"
	"                           weight when groups compete for the host's memory\n"
	"      --mode exact|estimate  exact (default): every fault is accounted;\n"
	"                           estimate: regions are charged at their size and\n"
	"                           their faults not seen, until the limit needs\n"
	"                           them counted exactly (applies to processes\n"
	"                           started afterwards)\n"
	"      --backend agent|kernel  who accounts, fixed at the group's creation:\n"
	"                           agent (default), page by page in every process;\n"
	"                           kernel: the group's kernel memory cgroup alone,\n"
	"                           with no agent (static binaries, runtimes that\n"
	"                           own their signals and memory). Limits, soft\n"
	"                           (v1), high/low (v2), thresholds, pressure, OOM\n"
	"                           and stats as with the agent; no estimate mode,\n"
	"                           no compressed store, thresholds checked on the\n"
	"                           kernel's event batch, not at every page\n"
	"OOM (each inherited by the groups below unless they set it):\n"
	"      --oom-policy POLICY  who dies when nothing can be reclaimed: largest\n"
	"                           (default: charged memory less what --memory-low\n"
	"                           protects), newest, oldest, priority (the highest\n"
	"                           --oom-priority / mg_oom_priority_set), growth\n"
	"                           (gained the most over the last 2 s). An\n"
	"                           ancestor's OOM picks the child group that pays by\n"
	"                           the same policy. oom_score_adj -1000: never\n"
	"      --oom-kill process|group  one process (default), or every process of\n"
	"                           the chosen group as one unit\n"
	"      --oom-signal KILL|TERM  TERM: SIGTERM first, SIGKILL when the grace\n"
	"                           ends (the faulting threads wait meanwhile)\n"
	"      --oom-grace DURATION  with --oom-signal TERM: 100ms, 2s... up to 5s\n"
	"                           (default 1s)\n"
	"      --oom-prefer REGEX   a process whose command line matches (POSIX\n"
	"                           extended) is chosen before all others\n"
	"      --oom-avoid REGEX    ... after all others ('' clears an inherited one)\n"
	"      --oom-kill-disable[=0|1]  pause instead of killing (memcg v1's\n"
	"                           oom_kill_disable): at OOM the faulting threads\n"
	"                           wait (under_oom 1) until memory is freed, the\n"
	"                           limit is raised or `memgrp oom GROUP --kill PID`\n"
	"                           or `--resume` acts; =0 kills again\n"
	"      --oom-prekill CMD    run CMD before each kill (its words split at\n"
	"                           spaces, no shell: write a script for one), with\n"
	"                           MEMGRP_OOM_GROUP, MEMGRP_OOM_VICTIM_PID, _COMM,\n"
	"                           _CMDLINE, _CHARGED, MEMGRP_OOM_USAGE, _LIMIT...\n"
	"                           in its environment; the kill waits for it ('' clears)\n"
	"      --oom-prekill-timeout DURATION  at most this (default 1s, up to 4s),\n"
	"                           then CMD is killed and the kill goes on\n"
	"      --oom-handler-timeout DURATION  how long the group's user-space OOM\n"
	"                           handler (mg_oom_handler_register) may take to\n"
	"                           decide (default 1s, up to 4s); then the policy.\n"
	"                           Asked at the group's limit, its kernel limit, or\n"
	"                           (none of its own) a handler's above it; never by\n"
	"                           the kernel's own OOM killer (see memgrpd --help)\n"
	"      --oom-reserve SIZE   the handler's process, if in the group, may\n"
	"                           charge up to SIZE beyond the limit while it\n"
	"                           decides (default 0)\n";

/* A duration: N, Ns or Nms (N a whole number; bare: seconds), into ms:
 * the core's one duration parser (core/hostmem.c, fuzzed), up to 1000000 s
 * here (each option checks its own range). Returns 0, or -1. */
static int parse_duration_ms(const char *arg, uint64_t *ms)
{
	return mgi_host_duration_ms(arg, strlen(arg), 1000000ULL * 1000, ms) == 0 ? 0 : -1;
}

/* The OOM options; 1 if opt was one, 0 if not, -1 after saying why the
 * value is bad. Over 100 lines on purpose: one plain case per option, each
 * its own check and message, as the usage text lists them. */
static int oom_option(const char *cmd, int opt, const char *arg, mgi_msg_set_t *set)
{
	switch (opt) {
	case MGI_OPT_OOM_POLICY: {
		int p = mgi_oom_policy_parse(arg);
		if (p < 0) {
			fprintf(stderr, "memgrp %s: --oom-policy: largest, newest, oldest, priority or "
					"growth, not '%s'\n", cmd, arg);
			return -1;
		}
		set->oom_policy = (uint32_t)p;
		set->oom_set |= MGI_OOM_SET_POLICY;
		return 1;
	}
	case MGI_OPT_OOM_KILL:
		if (strcmp(arg, "process") && strcmp(arg, "group")) {
			fprintf(stderr, "memgrp %s: --oom-kill: process or group, not '%s'\n", cmd, arg);
			return -1;
		}
		set->oom_scope = strcmp(arg, "group") ? MGI_OOM_SCOPE_PROCESS : MGI_OOM_SCOPE_GROUP;
		set->oom_set |= MGI_OOM_SET_SCOPE;
		return 1;
	case MGI_OPT_OOM_SIGNAL:
		if (!strcasecmp(arg, "TERM") || !strcasecmp(arg, "SIGTERM"))
			set->oom_signal = SIGTERM;
		else if (!strcasecmp(arg, "KILL") || !strcasecmp(arg, "SIGKILL"))
			set->oom_signal = SIGKILL;
		else {
			fprintf(stderr, "memgrp %s: --oom-signal: KILL or TERM, not '%s'\n", cmd, arg);
			return -1;
		}
		set->oom_set |= MGI_OOM_SET_SIGNAL;
		return 1;
	case MGI_OPT_OOM_GRACE: {
		uint64_t ms;
		if (parse_duration_ms(arg, &ms) != 0 || ms > MGI_OOM_GRACE_MAX_MS) {
			fprintf(stderr, "memgrp %s: --oom-grace: a duration up to %ds (e.g. 500ms, 2s), "
					"not '%s'\n", cmd, MGI_OOM_GRACE_MAX_MS / 1000, arg);
			return -1;
		}
		set->oom_grace_ms = (uint32_t)ms;
		grace_given = true;
		return 1;
	}
	case MGI_OPT_OOM_PREFER:
	case MGI_OPT_OOM_AVOID: {
		const char *name = opt == MGI_OPT_OOM_PREFER ? "prefer" : "avoid";
		char *dst = opt == MGI_OPT_OOM_PREFER ? set->oom_prefer : set->oom_avoid;
		regex_t rx;
		char msg[128];
		int rc;
		if (strlen(arg) >= MGI_OOM_REGEX_MAX) {
			fprintf(stderr, "memgrp %s: --oom-%s: at most %d characters\n", cmd, name,
				MGI_OOM_REGEX_MAX - 1);
			return -1;
		}
		if (*arg && (rc = regcomp(&rx, arg, REG_EXTENDED | REG_NOSUB)) != 0) {
			regerror(rc, &rx, msg, sizeof(msg));
			fprintf(stderr, "memgrp %s: --oom-%s '%s': not a regular expression: %s\n", cmd,
				name, arg, msg);
			return -1;
		}
		if (*arg)
			regfree(&rx);
		snprintf(dst, MGI_OOM_REGEX_MAX, "%s", arg);
		set->oom_set |= opt == MGI_OPT_OOM_PREFER ? MGI_OOM_SET_PREFER : MGI_OOM_SET_AVOID;
		return 1;
	}
	case MGI_OPT_OOM_PREKILL:
		if (strlen(arg) >= MGI_OOM_PREKILL_MAX) {
			fprintf(stderr, "memgrp %s: --oom-prekill: at most %d characters\n", cmd,
				MGI_OOM_PREKILL_MAX - 1);
			return -1;
		}
		for (const char *p = arg; *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f) {
				fprintf(stderr, "memgrp %s: --oom-prekill: a control character in the "
						"command\n", cmd);
				return -1;
			}
		if (*arg && *arg == ' ') {
			fprintf(stderr, "memgrp %s: --oom-prekill: the command starts with its program, "
					"not a space\n", cmd);
			return -1;
		}
		snprintf(set->oom_prekill, sizeof(set->oom_prekill), "%s", arg);
		set->oom_set |= MGI_OOM_SET_PREKILL;
		return 1;
	case MGI_OPT_OOM_PREKILL_TIMEOUT: {
		uint64_t ms;
		if (parse_duration_ms(arg, &ms) != 0 || ms < 1 || ms > MGI_OOM_PREKILL_TIMEOUT_MAX_MS) {
			fprintf(stderr, "memgrp %s: --oom-prekill-timeout: a duration from 1ms to %ds "
					"(e.g. 500ms, 2s), not '%s'\n", cmd,
				MGI_OOM_PREKILL_TIMEOUT_MAX_MS / 1000, arg);
			return -1;
		}
		set->oom_prekill_timeout_ms = (uint32_t)ms;
		prekill_timeout_given = true;
		return 1;
	}
	case MGI_OPT_OOM_HANDLER_TIMEOUT: {
		uint64_t ms;
		if (parse_duration_ms(arg, &ms) != 0 || ms < 1 || ms > MGI_OOM_HANDLER_TIMEOUT_MAX_MS) {
			fprintf(stderr, "memgrp %s: --oom-handler-timeout: a duration from 1ms to %ds "
					"(e.g. 500ms, 2s), not '%s'\n", cmd,
				MGI_OOM_HANDLER_TIMEOUT_MAX_MS / 1000, arg);
			return -1;
		}
		set->oom_handler_timeout_ms = (uint32_t)ms;
		set->oom_set |= MGI_OOM_SET_HANDLER;
		return 1;
	}
	case MGI_OPT_OOM_RESERVE: {
		char err[96];
		uint64_t bytes;
		if (mgi_size_parse(arg, &bytes, err, sizeof(err)) != 0 ||
		    bytes > MGI_PAGES_UNLIMITED * MGI_PAGE_SIZE) {
			fprintf(stderr, "memgrp %s: --oom-reserve '%s': a size (e.g. 16M)%s%s\n", cmd, arg,
				*err ? ": " : "", err);
			return -1;
		}
		set->oom_reserve = bytes;
		set->oom_set |= MGI_OOM_SET_RESERVE;
		return 1;
	}
	case MGI_OPT_OOM_KILL_DISABLE:
		if (arg && strcmp(arg, "0") && strcmp(arg, "1")) {
			fprintf(stderr, "memgrp %s: --oom-kill-disable: 1 (or nothing) pauses, 0 kills, "
					"not '%s'\n", cmd, arg);
			return -1;
		}
		set->oom_kill_disable = !arg || !strcmp(arg, "1");
		set->oom_set |= MGI_OOM_SET_DISABLE;
		return 1;
	default:
		return 0;
	}
}

void mgi_limits_init(mgi_msg_set_t *set)
{
	set->memory_max = set->memory_high = set->memory_low = set->memory_soft = MGI_SET_KEEP;
	set->swap_max = set->swappiness = set->mode = set->backend = MGI_SET_KEEP;
	set->oom_set = set->oom_policy = set->oom_scope = set->oom_signal = set->oom_grace_ms = 0;
	set->oom_kill_disable = 0;
	set->oom_prekill_timeout_ms = set->oom_prekill_reserved = 0;
	set->oom_prekill[0] = '\0';
	set->oom_handler_timeout_ms = set->oom_handler_reserved = 0;
	set->oom_reserve = 0;
	prekill_timeout_given = false;
	set->oom_prefer[0] = set->oom_avoid[0] = '\0';
	grace_given = false;
}

bool mgi_limits_given(const mgi_msg_set_t *set)
{
	return set->memory_max != MGI_SET_KEEP || set->memory_high != MGI_SET_KEEP ||
	       set->memory_low != MGI_SET_KEEP || set->memory_soft != MGI_SET_KEEP ||
	       set->swap_max != MGI_SET_KEEP || set->swappiness != MGI_SET_KEEP ||
	       set->mode != MGI_SET_KEEP || set->oom_set;
}

int mgi_limits_check(const char *cmd, mgi_msg_set_t *set)
{
	const char *over = NULL;
	char max[16];

	if (grace_given && set->oom_signal != SIGTERM) {
		fprintf(stderr, "memgrp %s: --oom-grace goes with --oom-signal TERM (SIGKILL has no "
				"grace)\n", cmd);
		return -1;
	}
	if (set->oom_signal == SIGTERM && !grace_given)
		set->oom_grace_ms = 1000;
	if (prekill_timeout_given && !(set->oom_set & MGI_OOM_SET_PREKILL)) {
		fprintf(stderr, "memgrp %s: --oom-prekill-timeout goes with --oom-prekill\n", cmd);
		return -1;
	}
	if ((set->oom_set & MGI_OOM_SET_PREKILL) && !set->oom_prekill[0])
		set->oom_prekill_timeout_ms = 0; /* '' clears: no timeout */
	else if ((set->oom_set & MGI_OOM_SET_PREKILL) && !prekill_timeout_given)
		set->oom_prekill_timeout_ms = 1000;

	if (set->memory_max == MGI_SET_KEEP || set->memory_max == MGI_SET_UNLIMITED)
		return 0;
	if (set->memory_high != MGI_SET_KEEP && set->memory_high != MGI_SET_UNLIMITED &&
	    set->memory_high > set->memory_max)
		over = "--memory-high";
	else if (set->memory_low != MGI_SET_KEEP && set->memory_low != MGI_SET_UNLIMITED &&
		 set->memory_low > set->memory_max)
		over = "--memory-low";
	if (!over)
		return 0;
	fprintf(stderr, "memgrp %s: %s above --memory-max (%s) would never apply: give at most "
			"the hard limit\n",
		cmd, over, mgi_size_format(set->memory_max, max, sizeof(max)));
	return -1;
}

int mgi_limits_option(const char *cmd, int opt, const char *arg, mgi_msg_set_t *set)
{
	static const struct {
		int opt;
		const char *name;
		size_t offset;
	} sizes[] = {
		{'m', "memory-max", offsetof(mgi_msg_set_t, memory_max)},
		{MGI_OPT_HIGH, "memory-high", offsetof(mgi_msg_set_t, memory_high)},
		{MGI_OPT_LOW, "memory-low", offsetof(mgi_msg_set_t, memory_low)},
		{MGI_OPT_SOFT, "memory-soft", offsetof(mgi_msg_set_t, memory_soft)},
		{MGI_OPT_SWAP_MAX, "swap-max", offsetof(mgi_msg_set_t, swap_max)},
	};
	char err[160];
	uint64_t v;
	int rc;

	if ((rc = oom_option(cmd, opt, arg, set)) != 0)
		return rc;
	if (opt == MGI_OPT_MODE) {
		if (strcmp(arg, "exact") == 0) {
			set->mode = MGI_MODE_EXACT;
		} else if (strcmp(arg, "estimate") == 0) {
			set->mode = MGI_MODE_ESTIMATE;
		} else {
			fprintf(stderr, "memgrp %s: --mode: exact or estimate, not '%s'\n", cmd, arg);
			return -1;
		}
		return 1;
	}
	if (opt == MGI_OPT_BACKEND) {
		if (strcmp(arg, "agent") == 0) {
			set->backend = MGI_BACKEND_AGENT;
		} else if (strcmp(arg, "kernel") == 0) {
			set->backend = MGI_BACKEND_KERNEL;
		} else {
			fprintf(stderr, "memgrp %s: --backend: agent or kernel, not '%s'\n", cmd, arg);
			return -1;
		}
		return 1;
	}
	if (opt == MGI_OPT_SWAPPINESS) {
		char *end;
		unsigned long n;
		errno = 0;
		n = strtoul(arg, &end, 10);
		if (errno || *end || !*arg || n > 100) {
			fprintf(stderr, "memgrp %s: --swappiness: a number from 0 to 100\n", cmd);
			return -1;
		}
		set->swappiness = n;
		return 1;
	}
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		if (sizes[i].opt != opt)
			continue;
		if (mgi_size_parse_limit(arg, &v, err, sizeof(err)) != 0) {
			fprintf(stderr, "memgrp %s: --%s: %s\n", cmd, sizes[i].name, err);
			return -1;
		}
		if (opt == 'm' && v < MGI_PAGE_SIZE) {
			fprintf(stderr, "memgrp %s: --memory-max: at least one page (4K)\n", cmd);
			return -1;
		}
		*(uint64_t *)((char *)set + sizes[i].offset) = v == MGI_SIZE_MAX ? MGI_SET_UNLIMITED : v;
		return 1;
	}
	return 0;
}

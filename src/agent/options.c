/* options.c - the agent's environment options (MEMGRP_*), read from one table. */
#include "options.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"

enum kind { STR, UINT, CHOICE };

static const struct {
	const char *name;
	enum kind kind;
	uint64_t def, max;        /* UINT */
	const char *choices[6];   /* CHOICE: [0] is the default */
} mgi_env_table[MGI_ENV_COUNT] = {
	[MGI_ENV_SOCKET] = {"MEMGRP_SOCKET", STR, 0, 0, {NULL}},
	[MGI_ENV_GROUP] = {"MEMGRP_GROUP", STR, 0, 0, {NULL}},
	/* 50 us: see the handler's poll in docs/design.md; up to 1 ms. */
	[MGI_ENV_POLL_US] = {"MEMGRP_POLL_US", UINT, 50, 1000, {NULL}},
	[MGI_ENV_CODEC] = {"MEMGRP_CODEC", CHOICE, 0, 0, {"lz4", "zstd", NULL}},
	[MGI_ENV_SWAP_FILE] = {"MEMGRP_SWAP_FILE", STR, 0, 0, {NULL}},
	[MGI_ENV_SWAP_FILE_AFTER] = {"MEMGRP_SWAP_FILE_AFTER", UINT, 0, UINT64_MAX, {NULL}},
	[MGI_ENV_ESTIMATE_VICTIM] = {"MEMGRP_ESTIMATE_VICTIM", CHOICE, 0, 0,
				     {"largest", "least-recent", NULL}},
	[MGI_ENV_TRACE] = {"MEMGRP_TRACE", STR, 0, 0, {NULL}},
	[MGI_ENV_INJECT] = {"MEMGRP_INJECT", CHOICE, 0, 0, {"none", "drop-fault", "move-misreport",
								 "stall-handler"}},
	/* How the fault handler thread is put ahead of ordinary work: see
	 * handler_priority in handler.c. */
	[MGI_ENV_HANDLER_SCHED] = {"MEMGRP_HANDLER_SCHED", CHOICE, 0, 0,
				   {"auto", "rt", "nice", "slice", "off"}},
	/* signed: read as a string, checked where it is sent (join.c) */
	[MGI_ENV_OOM_PRIORITY] = {"MEMGRP_OOM_PRIORITY", STR, 0, 0, {NULL}},
	/* a size (K/M/G): read with mgi_size_parse where it is used (start.c) */
	[MGI_ENV_START_ALLOWANCE] = {"MEMGRP_START_ALLOWANCE", STR, 0, 0, {NULL}},
	/* Huge pages (thp.c): 90 % is Ingens' 460 of 512 pages; 50 a second
	 * is 100 MiB/s, about what one collapse at a time keeps up with
	 * (11-16 ms a block, bench/thpprobe). */
	[MGI_ENV_THP] = {"MEMGRP_THP", CHOICE, 0, 0, {"never", "ingens", "always", NULL}},
	[MGI_ENV_THP_THRESHOLD] = {"MEMGRP_THP_THRESHOLD", UINT, 90, 100, {NULL}},
	[MGI_ENV_THP_RATE] = {"MEMGRP_THP_RATE", UINT, 50, 1000000, {NULL}},
};

/* Read at each call, not cached: a value the program sets before the
 * agent asks (a rejoin's group) is the one that counts, as with getenv. */
const char *mgi_env_str(mgi_env_t id)
{
	const char *v = getenv(mgi_env_table[id].name);
	return v && *v ? v : NULL;
}

uint64_t mgi_env_uint(mgi_env_t id)
{
	const char *v = mgi_env_str(id);
	uint64_t def = mgi_env_table[id].def, max = mgi_env_table[id].max;
	unsigned long long n;
	char *end;

	if (!v)
		return def;
	errno = 0;
	n = strtoull(v, &end, 10);
	if (*v < '0' || *v > '9' || *end || errno || n > max) {
		mgi_agent_log("%s=%s: not a number from 0 to %llu; using %llu", mgi_env_table[id].name,
			      v, (unsigned long long)max, (unsigned long long)def);
		return def;
	}
	return n;
}

unsigned mgi_env_choice(mgi_env_t id)
{
	const char *v = mgi_env_str(id);

	if (!v)
		return 0;
	for (unsigned i = 0; i < sizeof(mgi_env_table[id].choices) / sizeof(mgi_env_table[id].choices[0]) &&
			    mgi_env_table[id].choices[i]; i++)
		if (strcmp(v, mgi_env_table[id].choices[i]) == 0)
			return i;
	mgi_agent_log("%s=%s: unknown; using %s", mgi_env_table[id].name, v,
		      mgi_env_table[id].choices[0]);
	return 0;
}

/* options.h - the agent's environment options (MEMGRP_*), read from one table. */
#ifndef MGI_AGENT_OPTIONS_H
#define MGI_AGENT_OPTIONS_H

#include <stdint.h>

/* Every variable the agent reads; mgi_env_table in options.c says what
 * each means, its kind and its default. `memgrp run` sets most of them. */
typedef enum {
	MGI_ENV_SOCKET,           /* the manager's socket: unset, unmanaged */
	MGI_ENV_GROUP,            /* the group to join: unset, the manager's default */
	MGI_ENV_POLL_US,          /* handler's poll window, microseconds */
	MGI_ENV_CODEC,            /* lz4 | zstd: the store's compression */
	MGI_ENV_SWAP_FILE,        /* a directory: compressed pages written back there */
	MGI_ENV_SWAP_FILE_AFTER,  /* bytes of compressed pages kept before writing back */
	MGI_ENV_ESTIMATE_VICTIM,  /* largest | least-recent: estimate mode's victim */
	MGI_ENV_TRACE,            /* a directory: the fault trace goes there */
	MGI_ENV_INJECT,           /* tests only: drop-fault | move-misreport | stall-handler */
	MGI_ENV_HANDLER_SCHED,    /* auto | rt | nice | slice | off: the handler's priority */
	MGI_ENV_OOM_PRIORITY,     /* -1000..1000: told to the manager once joined (memgrp run --oom-priority) */
	MGI_ENV_START_ALLOWANCE,  /* a size: charged at size before the handler starts (0: never) */
	MGI_ENV_THP,              /* never | ingens | always: huge pages (thp.c) */
	MGI_ENV_THP_THRESHOLD,    /* percent of a 2 MiB block in use that promotes it */
	MGI_ENV_THP_RATE,         /* promotions a second at most (0: no bound) */
	MGI_ENV_COUNT
} mgi_env_t;

/* The variable's value, or NULL when unset or empty. */
const char *mgi_env_str(mgi_env_t id);

/* A number option: its value, or its default when unset; a value that is
 * not a decimal number within the option's range is logged (naming the
 * variable and the range) and the default kept. */
uint64_t mgi_env_uint(mgi_env_t id);

/* A choice option: the index of its value among the option's choices, or
 * 0 (the default) when unset; an unknown value is logged and 0 kept. For
 * MGI_ENV_INJECT, 0 is "none". */
unsigned mgi_env_choice(mgi_env_t id);

#endif

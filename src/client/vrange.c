/* vrange.c - libmemgrp's volatile ranges: mg_vrange, mg_vrange_purged and mg_vrange_unpin, answered by the agent in this process. */
#include "memgrp.h"

#include <dlfcn.h>
#include <errno.h>

/* The agent (libmemgrp-agent.so, preloaded by memgrp run) exports this;
 * without it the process is not managed and there is nothing to purge. */
typedef int (*agent_vrange_fn)(int op, void *addr, size_t len, int mode, int *purged,
			       uint8_t *bitmap);

static agent_vrange_fn agent(void)
{
	static agent_vrange_fn fn;

	/* (a race between two first calls stores the same pointer twice) */
	if (!fn)
		fn = (agent_vrange_fn)dlsym(RTLD_DEFAULT, "memgrp_agent_vrange");
	return fn;
}

int mg_vrange(void *addr, size_t len, int mode, int *purged)
{
	agent_vrange_fn fn = agent();

	if (!fn)
		return -ENOTSUP;
	if (mode == MG_VRANGE_NONVOLATILE)
		return fn(2, addr, len, 0, purged, NULL);
	if ((mode & ~MG_VRANGE_SIGBUS) != MG_VRANGE_VOLATILE)
		return -EINVAL;
	return fn(1, addr, len, (mode & MG_VRANGE_SIGBUS) ? 1 : 0, NULL, NULL);
}

int mg_vrange_purged(void *addr, size_t len, uint8_t *bitmap)
{
	agent_vrange_fn fn = agent();

	if (!fn)
		return -ENOTSUP;
	if (!bitmap)
		return -EINVAL;
	return fn(3, addr, len, 0, NULL, bitmap);
}

int mg_vrange_unpin(void *addr, size_t len, uint8_t *bitmap)
{
	agent_vrange_fn fn = agent();

	if (!fn)
		return -ENOTSUP;
	if (!bitmap)
		return -EINVAL;
	return fn(4, addr, len, 0, NULL, bitmap);
}

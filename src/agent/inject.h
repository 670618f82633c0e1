/* inject.h - fault injection for the tests (MEMGRP_INJECT): which one this process does. */
#ifndef MGI_AGENT_INJECT_H
#define MGI_AGENT_INJECT_H

#include <stdbool.h>

/* Each is taken (cleared) by the module that does it: the fault loop
 * (drop_fault), the handler (stall_handler), eviction (misreport_moves,
 * every fourth run while set). Read on the handler thread only; a plain
 * struct, so that the fault loop's test costs one load. */
struct mgi_inject {
	bool drop_fault;      /* MEMGRP_INJECT=drop-fault: one fault lost */
	bool stall_handler;   /* MEMGRP_INJECT=stall-handler: one stall */
	bool misreport_moves; /* MEMGRP_INJECT=move-misreport */
};
extern struct mgi_inject mgi_inject;

/* Reads MEMGRP_INJECT (at every full start, a forked child's included). */
void mgi_inject_init(void);

#endif

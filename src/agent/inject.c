/* inject.c - fault injection for the tests (MEMGRP_INJECT): read once at each full start. */
#include "inject.h"
#include "options.h"

struct mgi_inject mgi_inject;

void mgi_inject_init(void)
{
	unsigned inject = mgi_env_choice(MGI_ENV_INJECT);

	mgi_inject = (struct mgi_inject){
		.drop_fault = inject == 1,      /* drop-fault */
		.stall_handler = inject == 3,   /* stall-handler */
		.misreport_moves = inject == 2, /* move-misreport */
	};
}

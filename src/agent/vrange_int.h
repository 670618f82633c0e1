/* vrange_int.h - what vrange.c shares with vrange_fork.c: the table of volatile ranges. */
#ifndef MGI_AGENT_VRANGE_INT_H
#define MGI_AGENT_VRANGE_INT_H

#include <stdbool.h>

#include "vrange.h"

/* The table (vrange.c): the handler's and the calls', under vrange.c's
 * tab_lock; made by mgi_vr_ensure_tab in the agent's arena. */
extern mgi_vrtab_t mgi_vr_tab;
extern bool mgi_vr_tab_ready;
bool mgi_vr_ensure_tab(void);
/* A forked child's fork handler: vrange.c's locks made anew (a parent's
 * thread may have held them) and its known regions forgotten. */
void mgi_vr_child_reset(void);

#endif

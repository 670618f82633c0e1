/* oomreserve.h - the OOM handler's reserve: a charge past a group's limit, only for its handler's process and only while it decides. */
#ifndef MGI_AGENT_OOMRESERVE_H
#define MGI_AGENT_OOMRESERVE_H

#include <stdint.h>

/* Of a charge of pages refused by the group `level` steps up: how many the
 * group's OOM handler reserve (--oom-reserve) lets this process take
 * beyond the limit: all, what fits, or 0 (not the handler, or the group
 * is not asking it now). The caller charges them anyway. */
uint64_t mgi_oomreserve_room(unsigned level, uint64_t pages);

#endif

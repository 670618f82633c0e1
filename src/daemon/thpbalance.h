/* thpbalance.h - huge pages shared fairly among groups, the manager's side (src/daemon/thpbalance.c). */
#ifndef MGI_DAEMON_THPBALANCE_H
#define MGI_DAEMON_THPBALANCE_H

#include <stdbool.h>
#include <stdint.h>

#include "manager.h"

/*
 * At most once a second, while a group has huge pages on: reads the free
 * order-9 blocks (/proc/buddyinfo, or the file MEMGRP_BUDDYINFO names),
 * computes each group's share (core/thpshare.h: --thp-weight, the idle
 * penalty from the agents' thp_idle, down the tree) of the huge pages held
 * plus those free, and writes it (thp_share, thp_own) with the flags its
 * agents read: MGI_THP_STOP while free blocks are scarce (fewer than 64)
 * and its processes hold their part, MGI_THP_DEMOTE when over it while
 * another group waits. Cheap to call often (the manager's poll loop).
 */
void mgi_thp_tick(mgi_manager_t *m);

/* With memgrpd --thp-compact-rate, when free blocks are scarce and a
 * group's promotions wait (stopped by its share or not: more free blocks
 * make the shares larger), the tick also asks the kernel to compact
 * (per node), at most at that rate; the root's stats say how often and the
 * CPU it took: mgi_thp_stats (g 0 only). */
void mgi_thp_stats(const mgi_manager_t *m, int g, mgi_stats_t *out);

/* The tick's timer: true if tag is its. */
bool mgi_thp_event(mgi_manager_t *m, uint64_t tag);

#endif

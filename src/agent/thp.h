/* thp.h - huge pages as Ingens manages them, in the agent: utilization per 2 MiB block, fill and collapse off the fault path. */
#ifndef MGI_AGENT_THP_H
#define MGI_AGENT_THP_H

#include <stdbool.h>
#include <stdint.h>

/*
 * MEMGRP_THP=never|ingens|always (memgrp run --thp). With `never` (the
 * default) nothing here runs and registered ranges are marked
 * MADV_NOHUGEPAGE as before. With `ingens` the handler promotes a block
 * whose pages in use reach MEMGRP_THP_THRESHOLD percent (default 90:
 * 460 of 512) by filling its missing pages (charged, within the limit)
 * and asking a worker thread to MADV_COLLAPSE it, at most MEMGRP_THP_RATE
 * blocks a second; `always` promotes at the first fault of a block, as
 * Linux THP would. docs/design.md, "Huge pages", says why.
 *
 * Each setting not in the environment is the group's (memgrp create/set
 * --thp..., in its control part, read at the start). The figures go to
 * the group's accounting part (thp_promotions, thp_demotions,
 * thp_fill_pages) and the process's slot (thp_huge_pages).
 *
 * Everything but the worker runs on the handler thread; the state is this
 * module's own and mgi_thp_init starts it afresh (a forked child too).
 */

/* Reads the options, takes its table and the worker's stack from the
 * agent's arena and starts the worker (before the handler's scan, as the
 * other agent threads). 0, or -ENOMEM (then huge pages stay off). */
int mgi_thp_init(void);

/* Whether promotion is on in this process: registered ranges must then
 * not be marked MADV_NOHUGEPAGE (MADV_COLLAPSE refuses such a VMA). */
bool mgi_thp_on(void);

/* Hooks of the fault path and the events (handler thread): pages
 * [start, end) were put in (a fault, a restore, the scan), are gone
 * (given back, unmapped, evicted), or moved by mremap. */
void mgi_thp_filled(uintptr_t start, uintptr_t end);
void mgi_thp_gone(uintptr_t start, uintptr_t end);
void mgi_thp_moved(uintptr_t from, uintptr_t to, uintptr_t len);

/* The handler's poll timeout with this module's needs: timeout_ms (-1:
 * none) or less while a block waits for promotion or a collapse runs. */
int mgi_thp_timeout(int timeout_ms);

/* The handler's turn: takes the worker's result, then, within the rate,
 * picks a block, fills it and hands it to the worker. */
void mgi_thp_tick(void);

/* Figures for tests and the trace (totals since start). */
typedef struct {
	uint64_t promotions, failures, fill_pages, refused;
	uint32_t huge_blocks, tracked_blocks;
} mgi_thp_stats_t;
void mgi_thp_stats(mgi_thp_stats_t *out);

#endif

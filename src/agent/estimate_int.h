/* estimate_int.h - what estimate.c (the table, switches, tick) and estimate_admit.c (admission) share. */
#ifndef MGI_ESTIMATE_INT_H
#define MGI_ESTIMATE_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "estimate.h"
#include "page.h"

#define PAGE MGI_PAGE_SIZE
#define EST_CAPACITY 4096

/* The table (NULL in exact mode); the handler thread's, like the registry. */
extern mgi_estimate_t *mgi_est;
/* The table's charges (the agent's accounting entry point) and switches. */
extern const mgi_estimate_acct_t mgi_est_acct;
extern const mgi_estimate_ops_t mgi_est_ops;

static inline uintptr_t mgi_est_rend(const mgi_region_t *r)
{
	return (uintptr_t)r->key + r->pages * PAGE;
}

/* After a change of the table: thresholds checked, figures published. */
void mgi_est_settle(void);
/* Registers [start, end) and learns it (charged if charge); its present
 * pages, or -1 if it could not be registered. */
long mgi_est_register_slow(uintptr_t start, uintptr_t end, bool charge);

#endif

/* ranges.h - address ranges [start, end) and the walk past exclusions the agent's scan makes (pure). */
#ifndef MGI_RANGES_H
#define MGI_RANGES_H

#include <stdint.h>

typedef struct mgi_range {
	uintptr_t start, end;
} mgi_range_t;

/*
 * One step of a walk over [cur, *stop) that must skip excluded ranges
 * (src/agent/exclude.c, mgi_exclude_next: the loaded objects, the arena,
 * the agent's own ranges). Each of the n ranges of x is met in turn:
 *  - one that covers cur pushes *skip_to to its end (if that is further)
 *    and sets *covered_by to tag, the last covering one met saying whose;
 *  - one that starts inside (cur, *stop) clips *stop to its start;
 *  - the others change nothing.
 * Called once per list of exclusions with the same cur; the caller starts
 * with *skip_to 0 (nothing covers cur) and *stop its walk's end.
 */
void mgi_ranges_meet(const mgi_range_t *x, unsigned n, int tag, uintptr_t cur, uintptr_t *stop,
		     uintptr_t *skip_to, int *covered_by);

#endif

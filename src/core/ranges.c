/* ranges.c - the walk past exclusions the agent's scan makes: clip before the next, skip what covers. */
#include "ranges.h"

void mgi_ranges_meet(const mgi_range_t *x, unsigned n, int tag, uintptr_t cur, uintptr_t *stop,
		     uintptr_t *skip_to, int *covered_by)
{
	for (unsigned i = 0; i < n; i++) {
		if (x[i].end <= cur || x[i].start >= *stop)
			continue;
		if (x[i].start <= cur) {
			if (x[i].end > *skip_to)
				*skip_to = x[i].end;
			*covered_by = tag;
		} else {
			*stop = x[i].start;
		}
	}
}

/* recent.h - rings of address ranges noted recently, for the fault handler's event-order guards (pure: time is passed in). */
#ifndef MGI_RECENT_H
#define MGI_RECENT_H

#include <stdbool.h>
#include <stdint.h>

/*
 * The kernel's userfaultfd events and the handler's own actions race in
 * two known ways (src/agent/guards.c says which); each guard remembers
 * ranges for a while in a small ring:
 *  - "removed": ranges the application gave back (MADV_DONTNEED). For a
 *    moment after the event is read the old pages may still be there;
 *    overlaps(...) answers whether a range met one noted within ttl;
 *  - "vacated": ranges an mremap moved away from, whose UNMAP is still to
 *    come; claim(...) takes an entry that matches exactly, once.
 * An entry older than ttl is dead; a full ring overwrites its oldest
 * entry. `now` and `ttl` are in any one unit (the handler uses ns); `now`
 * must not be 0 (0 marks an unused entry) and must not go backwards.
 */
#define MGI_RECENT_MAX 64

typedef struct {
	struct mgi_recent_range {
		uintptr_t start, end;
		uint64_t at; /* 0: unused or claimed */
	} r[MGI_RECENT_MAX];
	unsigned size; /* entries in use: 1..MGI_RECENT_MAX */
	unsigned next;
	uint64_t last; /* when the last entry was noted; 0: never */
} mgi_recent_t;

/* An empty ring of `size` entries (clamped to 1..MGI_RECENT_MAX); also
 * what a forked child starts from. */
void mgi_recent_init(mgi_recent_t *rr, unsigned size);
void mgi_recent_note(mgi_recent_t *rr, uintptr_t start, uintptr_t end, uint64_t now);
/* Whether [start, end) overlaps a range noted less than ttl ago. O(1)
 * when nothing was noted within ttl (the common case). */
bool mgi_recent_overlaps(const mgi_recent_t *rr, uintptr_t start, uintptr_t end, uint64_t now,
			 uint64_t ttl);
/* Whether [start, end) is exactly a range noted less than ttl ago and not
 * yet claimed: claims it. */
bool mgi_recent_claim(mgi_recent_t *rr, uintptr_t start, uintptr_t end, uint64_t now, uint64_t ttl);

#endif

/* recent.c - rings of address ranges noted recently, for the fault handler's event-order guards. */
#include "recent.h"

void mgi_recent_init(mgi_recent_t *rr, unsigned size)
{
	*rr = (mgi_recent_t){0};
	rr->size = size < 1 ? 1 : size > MGI_RECENT_MAX ? MGI_RECENT_MAX : size;
}

void mgi_recent_note(mgi_recent_t *rr, uintptr_t start, uintptr_t end, uint64_t now)
{
	if (!rr->size) /* a zeroed ring never initialised: the largest */
		rr->size = MGI_RECENT_MAX;
	rr->r[rr->next % rr->size] = (struct mgi_recent_range){start, end, now};
	rr->next = (rr->next + 1) % rr->size;
	rr->last = now;
}

static bool alive(const struct mgi_recent_range *e, uint64_t now, uint64_t ttl)
{
	return e->at && now - e->at < ttl;
}

bool mgi_recent_overlaps(const mgi_recent_t *rr, uintptr_t start, uintptr_t end, uint64_t now,
			 uint64_t ttl)
{
	if (!rr->last || now - rr->last >= ttl)
		return false;
	for (unsigned i = 0; i < rr->size; i++)
		if (alive(&rr->r[i], now, ttl) && start < rr->r[i].end && end > rr->r[i].start)
			return true;
	return false;
}

bool mgi_recent_claim(mgi_recent_t *rr, uintptr_t start, uintptr_t end, uint64_t now, uint64_t ttl)
{
	for (unsigned i = 0; i < rr->size; i++)
		if (alive(&rr->r[i], now, ttl) && rr->r[i].start == start && rr->r[i].end == end) {
			rr->r[i].at = 0;
			return true;
		}
	return false;
}

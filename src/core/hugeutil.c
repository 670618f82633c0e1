/* hugeutil.c - utilization and access frequency per 2 MiB region, for huge-page promotion (pure). */
#include "hugeutil.h"

#include <errno.h>
#include <string.h>

static uint32_t slot_of(const mgi_hu_table_t *t, uintptr_t block)
{
	/* Fibonacci hashing of the block number: consecutive blocks (the
	 * common case, one large mapping) spread over the table. */
	uint64_t h = (uint64_t)(block / MGI_HU_BLOCK) * 0x9E3779B97F4A7C15ULL;
	return (uint32_t)(h >> 32) & (t->cap - 1);
}

int mgi_hu_init(mgi_hu_table_t *t, mgi_hu_entry_t *storage, uint32_t cap)
{
	if (!t || !storage || cap < 2 || (cap & (cap - 1)))
		return -EINVAL;
	memset(storage, 0, sizeof(*storage) * cap);
	t->e = storage;
	t->cap = cap;
	t->count = 0;
	t->dropped = 0;
	return 0;
}

static mgi_hu_entry_t *lookup(const mgi_hu_table_t *t, uintptr_t block)
{
	for (uint32_t i = slot_of(t, block), n = 0; n < t->cap; i = (i + 1) & (t->cap - 1), n++) {
		if (t->e[i].block == block)
			return &t->e[i];
		if (t->e[i].block == 0)
			return NULL;
	}
	return NULL;
}

/* The entry for block, created if absent; NULL when the table is full.
 * Kept under 7/8 full so that probes stay short and a miss ends. */
static mgi_hu_entry_t *lookup_or_add(mgi_hu_table_t *t, uintptr_t block)
{
	uint32_t i = slot_of(t, block);

	for (uint32_t n = 0; n < t->cap; i = (i + 1) & (t->cap - 1), n++) {
		if (t->e[i].block == block)
			return &t->e[i];
		if (t->e[i].block == 0)
			break;
	}
	if ((uint64_t)(t->count + 1) * 8 > (uint64_t)t->cap * 7 || t->e[i].block != 0)
		return NULL;
	memset(&t->e[i], 0, sizeof(t->e[i]));
	t->e[i].block = block;
	t->count++;
	return &t->e[i];
}

/* Removes entry e by shifting later members of its probe run back
 * (Knuth's algorithm R), so that lookups never need tombstones. */
static void remove_entry(mgi_hu_table_t *t, mgi_hu_entry_t *e)
{
	uint32_t hole = (uint32_t)(e - t->e), mask = t->cap - 1;

	for (uint32_t j = (hole + 1) & mask; t->e[j].block != 0; j = (j + 1) & mask) {
		uint32_t home = slot_of(t, t->e[j].block);
		/* j's entry may fill the hole if its home is not in (hole, j] */
		bool stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
		if (!stays) {
			t->e[hole] = t->e[j];
			hole = j;
		}
	}
	memset(&t->e[hole], 0, sizeof(t->e[hole]));
	t->count--;
}

/* Sets or clears bits [from, to) of e; returns how many changed. */
static unsigned flip(mgi_hu_entry_t *e, unsigned from, unsigned to, bool set)
{
	unsigned changed = 0;

	for (unsigned i = from; i < to; i++) {
		uint64_t m = 1ULL << (i % 64);
		bool was = (e->bits[i / 64] & m) != 0;
		if (was == set)
			continue;
		if (set)
			e->bits[i / 64] |= m;
		else
			e->bits[i / 64] &= ~m;
		changed++;
	}
	return changed;
}

/* Marks the pages of [start, end) used (set) or unused in the blocks the
 * range crosses; returns how many changed. */
static size_t mark(mgi_hu_table_t *t, uintptr_t start, uintptr_t end, bool set)
{
	size_t total = 0;

	start &= ~(MGI_HU_PAGE - 1);
	for (uintptr_t b = start & ~(MGI_HU_BLOCK - 1); b < end && b >= (start & ~(MGI_HU_BLOCK - 1));
	     b += MGI_HU_BLOCK) {
		uintptr_t lo = start > b ? start : b, hi = end < b + MGI_HU_BLOCK ? end : b + MGI_HU_BLOCK;
		mgi_hu_entry_t *e = !set ? lookup(t, b) : b ? lookup_or_add(t, b) : NULL;
		if (!e && set) {
			/* the page at address 0 is never mapped; a full table
			 * loses the blocks it cannot hold (counted) */
			t->dropped += (hi - lo) / MGI_HU_PAGE;
		} else if (e) {
			unsigned n = flip(e, (unsigned)((lo - b) / MGI_HU_PAGE),
					  (unsigned)((hi - b + MGI_HU_PAGE - 1) / MGI_HU_PAGE), set);
			total += n;
			if (set) {
				e->used = (uint16_t)(e->used + n);
				e->freq = (uint16_t)(e->freq > UINT16_MAX - MGI_HU_FREQ_HIT
							     ? UINT16_MAX
							     : e->freq + MGI_HU_FREQ_HIT);
			} else {
				e->used = (uint16_t)(e->used - n);
				if (n && e->state == MGI_HU_HUGE)
					e->state = MGI_HU_BASE;
				if (e->used == 0)
					remove_entry(t, e);
			}
		}
		if (b + MGI_HU_BLOCK == 0)
			break; /* the top of the address space */
	}
	return total;
}

size_t mgi_hu_fill(mgi_hu_table_t *t, uintptr_t start, uintptr_t end)
{
	return mark(t, start, end, true);
}

size_t mgi_hu_clear(mgi_hu_table_t *t, uintptr_t start, uintptr_t end)
{
	return mark(t, start, end, false);
}

const mgi_hu_entry_t *mgi_hu_find(const mgi_hu_table_t *t, uintptr_t addr)
{
	uintptr_t b = addr & ~(MGI_HU_BLOCK - 1);
	return b ? lookup(t, b) : NULL;
}

void mgi_hu_decay(mgi_hu_table_t *t)
{
	for (uint32_t i = 0; i < t->cap; i++)
		t->e[i].freq = (uint16_t)(t->e[i].freq / 2);
}

bool mgi_hu_set_state(mgi_hu_table_t *t, uintptr_t addr, enum mgi_hu_state state)
{
	uintptr_t b = addr & ~(MGI_HU_BLOCK - 1);
	mgi_hu_entry_t *e = b ? lookup(t, b) : NULL;

	if (!e)
		return false;
	if (state == MGI_HU_BASE && e->state == MGI_HU_QUEUED && e->tries < UINT8_MAX)
		e->tries++;
	e->state = (uint8_t)state;
	return true;
}

uintptr_t mgi_hu_pick(const mgi_hu_table_t *t, unsigned threshold, unsigned max_tries,
		      bool (*eligible)(uintptr_t block, void *arg), void *arg)
{
	const mgi_hu_entry_t *best = NULL;

	if (threshold < 1 || threshold > MGI_HU_PAGES)
		return 0;
	for (uint32_t i = 0; i < t->cap; i++) {
		const mgi_hu_entry_t *e = &t->e[i];
		if (!e->block || e->state != MGI_HU_BASE || e->used < threshold || e->tries >= max_tries)
			continue;
		if (best && (e->freq < best->freq ||
			     (e->freq == best->freq &&
			      (e->used < best->used || (e->used == best->used && e->block > best->block)))))
			continue;
		if (eligible && !eligible(e->block, arg))
			continue;
		best = e;
	}
	return best ? best->block : 0;
}

uint32_t mgi_hu_huge_blocks(const mgi_hu_table_t *t)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < t->cap; i++)
		n += t->e[i].block && t->e[i].state == MGI_HU_HUGE;
	return n;
}

unsigned mgi_hu_threshold_pages(unsigned percent)
{
	if (percent > 100)
		return 0;
	unsigned n = percent * MGI_HU_PAGES / 100; /* Ingens' 90 % is 460 pages */
	return n ? n : 1;
}

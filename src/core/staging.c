/* staging.c - staging slots: a fill-ordered ring and a key-to-slot hash. */
#include "staging.h"

#include <errno.h>
#include <string.h>

static uint32_t buckets_for(uint32_t nslots)
{
	uint32_t b = 16;
	while (b < 2 * nslots) /* load factor at most 1/2 */
		b <<= 1;
	return b;
}

size_t mgi_staging_bytes(uint32_t nslots)
{
	return (size_t)nslots * sizeof(mgi_staging_slot_t) + (size_t)buckets_for(nslots) * 4;
}

void mgi_staging_init(mgi_staging_t *st, void *mem, uint32_t nslots)
{
	uint32_t b = buckets_for(nslots);

	memset(st, 0, sizeof(*st));
	st->nslots = nslots;
	st->hmask = b - 1;
	st->slot = mem;
	st->hash = (uint32_t *)(st->slot + nslots);
	memset(mem, 0, mgi_staging_bytes(nslots));
}

static uint32_t home(const mgi_staging_t *st, uint64_t key)
{
	return (uint32_t)((key * 0x9E3779B97F4A7C15ULL) >> 32) & st->hmask;
}

/* The bucket holding key, or the empty bucket where it would go. */
static uint32_t bucket(const mgi_staging_t *st, uint64_t key)
{
	uint32_t i = home(st, key);

	while (st->hash[i] && st->slot[st->hash[i] - 1].key != key)
		i = (i + 1) & st->hmask;
	return i;
}

/* Empties bucket b, shifting back the entries that probed past it. */
static void unhash(mgi_staging_t *st, uint32_t b)
{
	uint32_t hole = b, i = b;

	for (;;) {
		i = (i + 1) & st->hmask;
		if (!st->hash[i])
			break;
		uint32_t h = home(st, st->slot[st->hash[i] - 1].key);
		bool stays = hole <= i ? (h > hole && h <= i) : (h > hole || h <= i);
		if (!stays) {
			st->hash[hole] = st->hash[i];
			hole = i;
		}
	}
	st->hash[hole] = 0;
}

uint32_t mgi_staging_room(const mgi_staging_t *st, uint32_t n, uint32_t *first)
{
	uint32_t k = 0;

	*first = st->head;
	while (k < n && st->head + k < st->nslots && !st->slot[st->head + k].key)
		k++;
	return k;
}

void mgi_staging_fill(mgi_staging_t *st, uint32_t first, uint32_t n, uint64_t key0, uint64_t when)
{
	/* If the tail was among the free slots just filled, everything from
	 * the old head to the new one was free: the oldest is past it. */
	uint32_t d = (st->tail + st->nslots - first) % st->nslots;

	for (uint32_t k = 0; k < n; k++) {
		st->slot[first + k] = (mgi_staging_slot_t){key0 + k, when};
		st->hash[bucket(st, key0 + k)] = first + k + 1;
	}
	st->used += n;
	st->head = (first + n) % st->nslots;
	if (d < n)
		st->tail = st->head;
}

static bool in_use(const mgi_staging_slot_t *s)
{
	return s->key != 0 && s->key != MGI_STAGING_RETIRED;
}

int32_t mgi_staging_oldest(mgi_staging_t *st)
{
	if (!st->used)
		return -1;
	while (!in_use(&st->slot[st->tail]))
		st->tail = (st->tail + 1) % st->nslots;
	return (int32_t)st->tail;
}

int32_t mgi_staging_find(const mgi_staging_t *st, uint64_t key)
{
	uint32_t b;

	if (!key || key == MGI_STAGING_RETIRED)
		return -1;
	b = bucket(st, key);
	return st->hash[b] ? (int32_t)st->hash[b] - 1 : -1;
}

void mgi_staging_release(mgi_staging_t *st, uint32_t slot)
{
	uint64_t key = st->slot[slot].key;

	if (!in_use(&st->slot[slot]))
		return;
	unhash(st, bucket(st, key));
	st->slot[slot].key = 0;
	st->used--;
}

void mgi_staging_retire(mgi_staging_t *st, uint32_t slot)
{
	if (!in_use(&st->slot[slot]))
		return;
	mgi_staging_release(st, slot);
	st->slot[slot].key = MGI_STAGING_RETIRED;
	st->retired++;
}

void mgi_staging_block(mgi_staging_t *st, uint32_t slot)
{
	if (st->slot[slot].key != 0)
		return;
	st->slot[slot].key = MGI_STAGING_RETIRED;
	st->retired++;
}

void mgi_staging_freed(mgi_staging_t *st, uint32_t first, uint32_t n)
{
	for (uint32_t k = 0; k < n && first + k < st->nslots; k++) {
		if (st->slot[first + k].key != MGI_STAGING_RETIRED)
			continue;
		st->slot[first + k].key = 0;
		st->retired--;
	}
}

int mgi_staging_rekey(mgi_staging_t *st, uint64_t from, uint64_t to)
{
	int32_t s = mgi_staging_find(st, from);

	if (s < 0)
		return -ENOENT;
	if (!to || to == MGI_STAGING_RETIRED || mgi_staging_find(st, to) >= 0)
		return -EEXIST;
	unhash(st, bucket(st, from));
	st->slot[s].key = to;
	st->hash[bucket(st, to)] = (uint32_t)s + 1;
	return 0;
}

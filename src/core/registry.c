/* registry.c - sorted, non-overlapping managed regions with present-page bitmaps. */
#include "registry.h"

#include <errno.h>
#include <string.h>

static inline size_t pages_of(uintptr_t start, uintptr_t end)
{
	return (end - start) >> MGI_PAGE_SHIFT;
}

static inline size_t words_for(size_t pages)
{
	return (pages + 63) / 64;
}

static inline bool bit_get(const uint64_t *bits, size_t i)
{
	return bits[i / 64] >> (i % 64) & 1;
}

static inline void bit_set(uint64_t *bits, size_t i)
{
	bits[i / 64] |= 1ULL << (i % 64);
}

static inline void bit_clear(uint64_t *bits, size_t i)
{
	bits[i / 64] &= ~(1ULL << (i % 64));
}

static inline size_t page_index(const mgi_vregion_t *r, uintptr_t addr)
{
	return (addr - r->start) >> MGI_PAGE_SHIFT;
}

/* Bits set in [off, off + n). Word at a time where aligned. */
static uint64_t count_bits(const uint64_t *bits, size_t off, size_t n)
{
	uint64_t c = 0;
	size_t i = off, end = off + n;

	for (; i < end && i % 64; i++)
		c += bit_get(bits, i);
	for (; i + 64 <= end; i += 64)
		c += (uint64_t)__builtin_popcountll(bits[i / 64]);
	for (; i < end; i++)
		c += bit_get(bits, i);
	return c;
}

/* Sets in dst, from bit doff on, the n bits of src from soff on that are
 * set: 64 at a time (regions of hundreds of MiB are split, moved and grown
 * whole; one bit at a time that was most of stress-ng bigheap's time). */
static void copy_bits(uint64_t *dst, size_t doff, const uint64_t *src, size_t soff, size_t n)
{
	for (size_t i = 0; i < n; i += 64) {
		size_t m = n - i < 64 ? n - i : 64;
		size_t sq = (soff + i) / 64, sr = (soff + i) % 64;
		size_t dq = (doff + i) / 64, dr = (doff + i) % 64;
		uint64_t v = src[sq] >> sr;

		if (sr && sr + m > 64)
			v |= src[sq + 1] << (64 - sr);
		if (m < 64)
			v &= (UINT64_C(1) << m) - 1;
		dst[dq] |= v << dr;
		if (dr && dr + m > 64)
			dst[dq + 1] |= v >> (64 - dr);
	}
}

void mgi_registry_init(mgi_registry_t *reg, mgi_allocator_t a)
{
	memset(reg, 0, sizeof(*reg));
	reg->a = a;
}

/* The three bitmaps of a region are one allocation: bits, out, ref. */
static size_t bitmaps_bytes(size_t pages)
{
	return 3 * words_for(pages) * 8;
}

static void free_region(mgi_registry_t *reg, mgi_vregion_t *r)
{
	reg->a.free(reg->a.ctx, r->bits, bitmaps_bytes(r->cap_pages));
	r->bits = r->out = r->ref = NULL;
}

void mgi_registry_destroy(mgi_registry_t *reg)
{
	for (uint32_t i = 0; i < reg->n; i++)
		free_region(reg, &reg->v[i]);
	if (reg->v)
		reg->a.free(reg->a.ctx, reg->v, reg->cap * sizeof(mgi_vregion_t));
	reg->v = NULL;
	reg->n = reg->cap = 0;
	reg->bytes = reg->present = reg->nout = 0;
}

/* Room for `more` regions; false on allocation failure (nothing changed). */
static bool reserve(mgi_registry_t *reg, uint32_t more)
{
	uint32_t cap = reg->cap ? reg->cap : 16;
	mgi_vregion_t *v;

	if (reg->n + more <= reg->cap)
		return true;
	while (cap < reg->n + more)
		cap *= 2;
	v = reg->a.alloc(reg->a.ctx, cap * sizeof(*v));
	if (!v)
		return false;
	if (reg->v) {
		memcpy(v, reg->v, reg->n * sizeof(*v));
		reg->a.free(reg->a.ctx, reg->v, reg->cap * sizeof(*v));
	}
	reg->v = v;
	reg->cap = cap;
	return true;
}

/* A new region [start, end) with its bits copied from src's (at page
 * src_off) if src. */
static bool make_piece(mgi_registry_t *reg, mgi_vregion_t *piece, uintptr_t start, uintptr_t end,
		       const mgi_vregion_t *src, size_t src_off)
{
	size_t pages = pages_of(start, end), words = words_for(pages);

	piece->start = start;
	piece->end = end;
	memset(piece->run_start, 0, sizeof(piece->run_start));
	memset(piece->run_end, 0, sizeof(piece->run_end));
	piece->next_stream = 0;
	piece->faults = src ? src->faults : 0;
	piece->cap_pages = pages;
	piece->bits = reg->a.alloc(reg->a.ctx, bitmaps_bytes(pages));
	if (!piece->bits)
		return false;
	piece->out = piece->bits + words;
	piece->ref = piece->out + words;
	piece->present = piece->nout = 0;
	if (src) {
		copy_bits(piece->bits, 0, src->bits, src_off, pages);
		copy_bits(piece->out, 0, src->out, src_off, pages);
		copy_bits(piece->ref, 0, src->ref, src_off, pages);
		piece->present = count_bits(piece->bits, 0, pages);
		piece->nout = count_bits(piece->out, 0, pages);
	}
	return true;
}

/* Index of the first region whose end is above addr (n if none). */
static uint32_t lower_bound(const mgi_registry_t *reg, uintptr_t addr)
{
	uint32_t lo = 0, hi = reg->n;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (reg->v[mid].end <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Replaces v[i0, i1) with the k regions in pieces. Capacity must suffice. */
static void splice(mgi_registry_t *reg, uint32_t i0, uint32_t i1, const mgi_vregion_t *pieces,
		   uint32_t k)
{
	uint32_t tail = reg->n - i1;

	memmove(&reg->v[i0 + k], &reg->v[i1], tail * sizeof(mgi_vregion_t));
	memcpy(&reg->v[i0], pieces, k * sizeof(mgi_vregion_t));
	reg->n = i0 + k + tail;
	reg->last = 0;
}

#define MAX_GAPS 64 /* per call; adding a range over more holes repeats */

long mgi_registry_add(mgi_registry_t *reg, uintptr_t start, uintptr_t end)
{
	long added = 0;

	if (start >= end || (start | end) & (MGI_PAGE_SIZE - 1))
		return -EINVAL;
	while (start < end) {
		mgi_vregion_t gaps[MAX_GAPS];
		uint32_t ng = 0, i = lower_bound(reg, start);
		uintptr_t cur = start;

		/* The uncovered parts of [start, end), up to MAX_GAPS. */
		for (; i < reg->n && reg->v[i].start < end && ng < MAX_GAPS; i++) {
			if (cur < reg->v[i].start) {
				gaps[ng].start = cur;
				gaps[ng++].end = reg->v[i].start;
			}
			cur = reg->v[i].end;
		}
		if (ng < MAX_GAPS && cur < end) {
			gaps[ng].start = cur;
			gaps[ng++].end = end;
			cur = end;
		}
		if (!reserve(reg, ng))
			return added ? added : -ENOMEM;
		for (uint32_t g = 0; g < ng; g++) {
			mgi_vregion_t piece;
			if (!make_piece(reg, &piece, gaps[g].start, gaps[g].end, NULL, 0))
				return added ? added : -ENOMEM;
			splice(reg, lower_bound(reg, piece.start), lower_bound(reg, piece.start),
			       &piece, 1);
			reg->bytes += piece.end - piece.start;
			added += (long)pages_of(piece.start, piece.end);
		}
		start = cur > start ? cur : end;
	}
	return added;
}

long mgi_registry_extend(mgi_registry_t *reg, mgi_vregion_t *r, uintptr_t new_end)
{
	uint32_t i = (uint32_t)(r - reg->v);

	if (!reg->v || r < reg->v || i >= reg->n || new_end <= r->end || new_end & (MGI_PAGE_SIZE - 1))
		return -EINVAL;
	if (i + 1 < reg->n && reg->v[i + 1].start < new_end)
		return -EINVAL;
	size_t old_pages = pages_of(r->start, r->end), pages = pages_of(r->start, new_end);
	if (pages > r->cap_pages) {
		/* Room for as much again: a block grown a step at a time is
		 * copied a logarithmic number of times, not at every step. */
		size_t cap = pages > 2 * old_pages ? pages : 2 * old_pages;
		size_t words = words_for(cap);
		uint64_t *b = reg->a.alloc(reg->a.ctx, bitmaps_bytes(cap));
		if (!b)
			return -ENOMEM;
		copy_bits(b, 0, r->bits, 0, old_pages);
		copy_bits(b + words, 0, r->out, 0, old_pages);
		copy_bits(b + 2 * words, 0, r->ref, 0, old_pages);
		free_region(reg, r);
		r->bits = b;
		r->out = b + words;
		r->ref = b + 2 * words;
		r->cap_pages = cap;
	}
	/* (bits past a region's end are never set: nothing to clear) */
	reg->bytes += new_end - r->end;
	r->end = new_end;
	return (long)(pages - old_pages);
}

mgi_vregion_t *mgi_registry_find(mgi_registry_t *reg, uintptr_t addr)
{
	uint32_t i;

	if (reg->last < reg->n && reg->v[reg->last].start <= addr && addr < reg->v[reg->last].end)
		return &reg->v[reg->last];
	i = lower_bound(reg, addr);
	if (i < reg->n && reg->v[i].start <= addr) {
		reg->last = i;
		return &reg->v[i];
	}
	return NULL;
}

mgi_vregion_t *mgi_registry_next(mgi_registry_t *reg, uintptr_t addr)
{
	uint32_t i = lower_bound(reg, addr);
	return i < reg->n ? &reg->v[i] : NULL;
}

bool mgi_registry_test(const mgi_vregion_t *r, uintptr_t addr)
{
	return bit_get(r->bits, page_index(r, addr));
}

bool mgi_registry_is_out(const mgi_vregion_t *r, uintptr_t addr)
{
	return bit_get(r->out, page_index(r, addr));
}

size_t mgi_registry_absent_run(const mgi_vregion_t *r, uintptr_t addr, size_t max)
{
	size_t i = page_index(r, addr), n = 0;
	size_t limit = pages_of(r->start, r->end);

	while (n < max && i + n < limit && !bit_get(r->bits, i + n) && !bit_get(r->out, i + n))
		n++;
	return n;
}

size_t mgi_registry_out_run(const mgi_vregion_t *r, uintptr_t addr, size_t max)
{
	size_t i = page_index(r, addr), n = 0;
	size_t limit = pages_of(r->start, r->end);

	while (n < max && i + n < limit && bit_get(r->out, i + n))
		n++;
	return n;
}

size_t mgi_registry_mark(mgi_registry_t *reg, mgi_vregion_t *r, uintptr_t addr, size_t n)
{
	size_t i = (addr - r->start) >> MGI_PAGE_SHIFT, newly = 0;

	for (size_t k = 0; k < n; k++) {
		if (!bit_get(r->bits, i + k)) {
			bit_set(r->bits, i + k);
			newly++;
		}
	}
	r->present += newly;
	reg->present += newly;
	return newly;
}

void mgi_registry_evict(mgi_registry_t *reg, mgi_vregion_t *r, uintptr_t addr, size_t n)
{
	size_t i = page_index(r, addr);

	for (size_t k = 0; k < n; k++) {
		bit_clear(r->bits, i + k);
		bit_clear(r->ref, i + k);
		bit_set(r->out, i + k);
	}
	r->present -= n;
	reg->present -= n;
	r->nout += n;
	reg->nout += n;
}

void mgi_registry_restore(mgi_registry_t *reg, mgi_vregion_t *r, uintptr_t addr, size_t n,
			  bool referenced)
{
	size_t i = page_index(r, addr);

	for (size_t k = 0; k < n; k++) {
		bit_clear(r->out, i + k);
		bit_set(r->bits, i + k);
		if (referenced)
			bit_set(r->ref, i + k);
	}
	r->nout -= n;
	reg->nout -= n;
	r->present += n;
	reg->present += n;
}

void mgi_registry_set_ref(mgi_vregion_t *r, uintptr_t addr)
{
	bit_set(r->ref, page_index(r, addr));
}

uint64_t mgi_registry_each_out(mgi_registry_t *reg, uintptr_t start, uintptr_t end, bool take,
			       void (*fn)(void *ctx, uintptr_t addr), void *ctx)
{
	uint64_t n = 0;

	for (uint32_t i = lower_bound(reg, start); i < reg->n && reg->v[i].start < end; i++) {
		mgi_vregion_t *r = &reg->v[i];
		uintptr_t s = start > r->start ? start : r->start;
		uintptr_t e = end < r->end ? end : r->end;
		uint64_t c = 0;

		if (!r->nout)
			continue;
		for (size_t b = page_index(r, s); b < page_index(r, e); b++) {
			if (!r->out[b / 64]) { /* a word of nothing: skip it */
				b |= 63;
				continue;
			}
			if (!bit_get(r->out, b))
				continue;
			c++;
			if (take)
				bit_clear(r->out, b);
			if (fn)
				fn(ctx, r->start + (b << MGI_PAGE_SHIFT));
		}
		if (take) {
			r->nout -= c;
			reg->nout -= c;
		}
		n += c;
	}
	return n;
}

size_t mgi_registry_clock(mgi_registry_t *reg, size_t max_scan, size_t max_run, uintptr_t *run)
{
	size_t scanned = 0;

	if (!reg->n || !max_run)
		return 0;
	while (scanned < max_scan) {
		uint32_t i = lower_bound(reg, reg->hand);
		if (i == reg->n) { /* past the last region: wrap */
			i = 0;
			reg->hand = reg->v[0].start;
		}
		mgi_vregion_t *r = &reg->v[i];
		size_t b = reg->hand > r->start ? page_index(r, reg->hand) : 0;
		size_t limit = pages_of(r->start, r->end), n = 0;

		for (; b < limit && scanned < max_scan; b++, scanned++) {
			if (!r->present) {
				scanned += limit - b;
				b = limit;
				break;
			}
			if (!n && b % 64 == 0 && !r->bits[b / 64] && b + 64 <= limit) {
				/* a word with no present page: 64 at once */
				b += 63;
				scanned += 63;
				continue;
			}
			if (!bit_get(r->bits, b)) {
				if (n)
					break;
				continue;
			}
			if (bit_get(r->ref, b)) { /* second chance */
				if (n)
					break; /* ends the run; looked at again next time */
				bit_clear(r->ref, b);
				continue;
			}
			if (!n)
				*run = r->start + (b << MGI_PAGE_SHIFT);
			if (++n == max_run) {
				b++;
				break;
			}
		}
		reg->hand = b < limit ? r->start + (b << MGI_PAGE_SHIFT) : r->end;
		if (n)
			return n;
	}
	return 0;
}

uint64_t mgi_registry_count(mgi_registry_t *reg, uintptr_t start, uintptr_t end, uint64_t *out,
			    uint64_t *faults, bool reset_faults)
{
	uint64_t present = 0, nout = 0, f = 0;

	for (uint32_t i = lower_bound(reg, start); i < reg->n && reg->v[i].start < end; i++) {
		mgi_vregion_t *r = &reg->v[i];
		uintptr_t s = start > r->start ? start : r->start;
		uintptr_t e = end < r->end ? end : r->end;
		size_t off = (s - r->start) >> MGI_PAGE_SHIFT;

		if (s >= e)
			continue;
		present += count_bits(r->bits, off, pages_of(s, e));
		nout += count_bits(r->out, off, pages_of(s, e));
		f += r->faults;
		if (reset_faults)
			r->faults = 0;
	}
	if (out)
		*out = nout;
	if (faults)
		*faults = f;
	return present;
}

uint64_t mgi_registry_clear(mgi_registry_t *reg, uintptr_t start, uintptr_t end)
{
	uint64_t cleared = 0;

	for (uint32_t i = lower_bound(reg, start); i < reg->n && reg->v[i].start < end; i++) {
		mgi_vregion_t *r = &reg->v[i];
		uintptr_t s = start > r->start ? start : r->start;
		uintptr_t e = end < r->end ? end : r->end;
		size_t off = (s - r->start) >> MGI_PAGE_SHIFT;
		uint64_t c = 0;

		for (size_t k = 0; k < pages_of(s, e); k++) {
			size_t b = off + k;
			bit_clear(r->ref, b);
			if (bit_get(r->bits, b)) {
				bit_clear(r->bits, b);
				c++;
			}
		}
		r->present -= c;
		cleared += c;
	}
	reg->present -= cleared;
	return cleared;
}

long mgi_registry_remove(mgi_registry_t *reg, uintptr_t start, uintptr_t end)
{
	uint32_t i0 = lower_bound(reg, start), i1 = i0;
	mgi_vregion_t pieces[2] = {{0}, {0}};
	uint32_t k = 0;
	uint64_t dropped = 0, kept = 0, bytes = 0, out_dropped = 0, out_kept = 0;

	if (start >= end)
		return 0;
	while (i1 < reg->n && reg->v[i1].start < end)
		i1++;
	if (i0 == i1)
		return 0;
	/* The parts of the first and last regions outside [start, end). */
	if (reg->v[i0].start < start) {
		mgi_vregion_t *r = &reg->v[i0];
		if (!make_piece(reg, &pieces[k], r->start, start, r, 0))
			return -ENOMEM;
		out_kept += pieces[k].nout;
		kept += pieces[k++].present;
	}
	if (reg->v[i1 - 1].end > end) {
		mgi_vregion_t *r = &reg->v[i1 - 1];
		if (!make_piece(reg, &pieces[k], end, r->end, r, page_index(r, end)) ||
		    !reserve(reg, 1)) {
			if (pieces[k].bits)
				free_region(reg, &pieces[k]);
			if (k)
				free_region(reg, &pieces[0]);
			return -ENOMEM;
		}
		out_kept += pieces[k].nout;
		kept += pieces[k++].present;
	}
	for (uint32_t i = i0; i < i1; i++) {
		dropped += reg->v[i].present;
		out_dropped += reg->v[i].nout;
		bytes += reg->v[i].end - reg->v[i].start;
		free_region(reg, &reg->v[i]);
	}
	for (uint32_t j = 0; j < k; j++)
		bytes -= pieces[j].end - pieces[j].start;
	splice(reg, i0, i1, pieces, k);
	reg->bytes -= bytes;
	reg->present -= dropped - kept;
	reg->nout -= out_dropped - out_kept;
	return (long)(dropped - kept);
}

int mgi_registry_move(mgi_registry_t *reg, uintptr_t from, uintptr_t to, size_t len,
		      uint64_t *dropped)
{
	mgi_vregion_t *moved = NULL;
	uint32_t nm = 0, want = 0;
	long rc;

	*dropped = 0;
	/* Whatever the destination held was unmapped by the kernel first and
	 * reported as such; drop any coverage left there (learned by a fault
	 * that came before this event) so the pieces fit. Stale either way,
	 * so done first and kept even if what follows fails. */
	rc = mgi_registry_remove(reg, to, to + len);
	if (rc < 0)
		return -ENOMEM;
	*dropped = (uint64_t)rc;
	/* Copies of the covered parts of the source, placed at the destination. */
	for (uint32_t i = lower_bound(reg, from); i < reg->n && reg->v[i].start < from + len; i++)
		want++;
	if (!want)
		return 0;
	moved = reg->a.alloc(reg->a.ctx, want * sizeof(*moved));
	if (!moved || !reserve(reg, want + 2))
		goto nomem;
	for (uint32_t i = lower_bound(reg, from); i < reg->n && reg->v[i].start < from + len; i++) {
		mgi_vregion_t *r = &reg->v[i];
		uintptr_t s = from > r->start ? from : r->start;
		uintptr_t e = from + len < r->end ? from + len : r->end;
		if (!make_piece(reg, &moved[nm], s - from + to, e - from + to, r, page_index(r, s)))
			goto nomem;
		nm++;
	}
	if (mgi_registry_remove(reg, from, from + len) < 0)
		goto nomem;
	for (uint32_t j = 0; j < nm; j++) {
		uint32_t at = lower_bound(reg, moved[j].start);
		splice(reg, at, at, &moved[j], 1);
		reg->bytes += moved[j].end - moved[j].start;
		reg->present += moved[j].present;
		reg->nout += moved[j].nout;
	}
	reg->a.free(reg->a.ctx, moved, want * sizeof(*moved));
	return 0;
nomem:
	while (nm > 0)
		free_region(reg, &moved[--nm]);
	if (moved)
		reg->a.free(reg->a.ctx, moved, want * sizeof(*moved));
	return -ENOMEM;
}

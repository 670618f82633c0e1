/* vrange.c - volatile ranges' bookkeeping: ranges, modes, purged bitmaps (pure). */
#include "vrange.h"

#include <errno.h>
#include <string.h>

#define PG MGI_PAGE_SIZE

static size_t pages_of(uintptr_t start, uintptr_t end)
{
	return (size_t)((end - start) / PG);
}

static bool bit(const uint64_t *b, size_t i)
{
	return (b[i / 64] >> (i % 64)) & 1;
}

/* The set bits among bits [from, from + n) of b: whole words at a time (a
 * range of a cache's idle entries may hold tens of thousands of pages, and
 * a pin in its middle counts and copies them). */
static uint64_t count_bits(const uint64_t *b, size_t from, size_t n)
{
	uint64_t c = 0;

	while (n) {
		size_t w = from / 64, o = from % 64, take = 64 - o < n ? 64 - o : n;
		uint64_t word = b[w] >> o;
		if (take < 64)
			word &= (1ull << take) - 1;
		c += (uint64_t)__builtin_popcountll(word);
		from += take;
		n -= take;
	}
	return c;
}

/* dst's bits [0, n) = src's bits [from, from + n); dst holds (n + 63) / 64
 * words, its bits past n cleared. */
static void copy_bits(uint64_t *dst, const uint64_t *src, size_t from, size_t n)
{
	size_t words = (n + 63) / 64, o = from % 64;

	for (size_t w = 0; w < words; w++) {
		size_t s = from / 64 + w;
		uint64_t word = src[s] >> o;
		/* unaligned: the next source word's low bits, if it holds any
		 * of the range (never read past the range's last word) */
		if (o && (s + 1) * 64 < from + n)
			word |= src[s + 1] << (64 - o);
		dst[w] = word;
	}
	if (n % 64)
		dst[words - 1] &= (1ull << (n % 64)) - 1;
}

void mgi_vrtab_init(mgi_vrtab_t *t, mgi_allocator_t a)
{
	memset(t, 0, sizeof(*t));
	t->a = a;
}

static void free_range(mgi_vrtab_t *t, mgi_vrange_t *r)
{
	if (r->bits)
		t->a.free(t->a.ctx, r->bits, r->nwords * sizeof(uint64_t));
	r->bits = NULL;
}

void mgi_vrtab_destroy(mgi_vrtab_t *t)
{
	for (uint32_t i = 0; i < t->n; i++)
		free_range(t, &t->v[i]);
	if (t->v)
		t->a.free(t->a.ctx, t->v, t->cap * sizeof(*t->v));
	t->v = NULL;
	t->n = t->cap = 0;
	t->pages = 0;
}

/* Room for `more` entries. Returns 0 or -ENOMEM. */
static int reserve(mgi_vrtab_t *t, uint32_t more)
{
	uint32_t cap;
	mgi_vrange_t *v;

	if (t->n + more <= t->cap)
		return 0;
	cap = t->cap ? t->cap * 2 : 8;
	while (cap < t->n + more)
		cap *= 2;
	v = t->a.alloc(t->a.ctx, cap * sizeof(*v));
	if (!v)
		return -ENOMEM;
	if (t->n)
		memcpy(v, t->v, t->n * sizeof(*v));
	if (t->v)
		t->a.free(t->a.ctx, t->v, t->cap * sizeof(*t->v));
	t->v = v;
	t->cap = cap;
	return 0;
}

/* Index of the first range ending above addr (t->n if none). */
static uint32_t lower(const mgi_vrtab_t *t, uintptr_t addr)
{
	uint32_t lo = 0, hi = t->n;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (t->v[mid].end <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int mgi_vrtab_add(mgi_vrtab_t *t, uintptr_t start, uintptr_t end, uint32_t mode)
{
	uint32_t i;
	size_t words;
	uint64_t *bits;

	if (start >= end || start % PG || end % PG || mode > MGI_VR_SIGBUS)
		return -EINVAL;
	i = lower(t, start);
	if (i < t->n && t->v[i].start < end)
		return -EEXIST;
	if (reserve(t, 1) != 0)
		return -ENOMEM;
	words = (pages_of(start, end) + 63) / 64;
	bits = t->a.alloc(t->a.ctx, words * sizeof(uint64_t));
	if (!bits)
		return -ENOMEM;
	memmove(&t->v[i + 1], &t->v[i], (t->n - i) * sizeof(t->v[0]));
	t->v[i] = (mgi_vrange_t){.start = start, .end = end, .mode = mode, .bits = bits,
				 .nwords = words, .seq = ++t->seq};
	t->n++;
	t->pages += pages_of(start, end);
	return 0;
}

mgi_vrange_t *mgi_vrtab_next(mgi_vrtab_t *t, uintptr_t addr)
{
	uint32_t i = lower(t, addr);

	return i < t->n ? &t->v[i] : NULL;
}

mgi_vrange_t *mgi_vrtab_find(mgi_vrtab_t *t, uintptr_t addr)
{
	mgi_vrange_t *r = mgi_vrtab_next(t, addr);

	return r && r->start <= addr ? r : NULL;
}

mgi_vrange_t *mgi_vrtab_within(mgi_vrtab_t *t, uintptr_t start, uintptr_t end)
{
	mgi_vrange_t *r = start < end ? mgi_vrtab_find(t, start) : NULL;

	return r && end <= r->end ? r : NULL;
}

bool mgi_vrange_purged(const mgi_vrange_t *r, uintptr_t addr)
{
	return bit(r->bits, r->off + pages_of(r->start, addr));
}

bool mgi_vrange_mark(mgi_vrange_t *r, uintptr_t addr)
{
	size_t i = r->off + pages_of(r->start, addr);

	if (bit(r->bits, i))
		return false;
	r->bits[i / 64] |= 1ull << (i % 64);
	r->npurged++;
	return true;
}

bool mgi_vrtab_mark(mgi_vrtab_t *t, mgi_vrange_t *r, uintptr_t addr)
{
	if (!mgi_vrange_mark(r, addr))
		return false;
	t->purged++;
	return true;
}

uint64_t mgi_vrange_count(const mgi_vrange_t *r, uintptr_t start, uintptr_t end)
{
	uint64_t n = 0;

	if (start < r->start)
		start = r->start;
	if (end > r->end)
		end = r->end;
	if (start < end)
		n = count_bits(r->bits, r->off + pages_of(r->start, start), pages_of(start, end));
	return n;
}

void mgi_vrange_report(const mgi_vrange_t *r, uintptr_t start, uintptr_t end, uint8_t *out)
{
	size_t n = pages_of(start, end);

	memset(out, 0, (n + 7) / 8);
	for (size_t k = 0; k < n; k++)
		if (mgi_vrange_purged(r, start + k * PG))
			out[k / 8] |= (uint8_t)(1u << (k % 8));
}

long mgi_vrtab_cut(mgi_vrtab_t *t, uintptr_t start, uintptr_t end)
{
	uint32_t i = lower(t, start);
	long cut = 0;

	if (start >= end)
		return 0;
	/* The one range that may go on either side needs a second entry
	 * and bitmap: got before anything changes. */
	if (i < t->n && t->v[i].start < start && t->v[i].end > end) {
		mgi_vrange_t *r = &t->v[i], right;
		size_t words = (pages_of(end, r->end) + 63) / 64;
		uint64_t *bits;

		if (reserve(t, 1) != 0)
			return -ENOMEM;
		r = &t->v[i];
		bits = t->a.alloc(t->a.ctx, words * sizeof(uint64_t));
		if (!bits)
			return -ENOMEM;
		right = (mgi_vrange_t){.start = end, .end = r->end, .mode = r->mode, .bits = bits,
				       .nwords = words, .seq = r->seq};
		copy_bits(bits, r->bits, r->off + pages_of(r->start, end), pages_of(end, r->end));
		right.npurged = count_bits(bits, 0, pages_of(end, r->end));
		t->purged -= mgi_vrange_count(r, start, end);
		r->npurged -= mgi_vrange_count(r, start, r->end);
		r->end = start;
		memmove(&t->v[i + 2], &t->v[i + 1], (t->n - i - 1) * sizeof(t->v[0]));
		t->v[i + 1] = right;
		t->n++;
		cut = (long)pages_of(start, end);
		t->pages -= (uint64_t)cut;
		return cut;
	}
	while (i < t->n && t->v[i].start < end) {
		mgi_vrange_t *r = &t->v[i];
		uintptr_t s = r->start > start ? r->start : start;
		uintptr_t e = r->end < end ? r->end : end;

		cut += (long)pages_of(s, e);
		uint64_t gone = mgi_vrange_count(r, s, e);
		r->npurged -= gone;
		t->purged -= gone;
		if (s == r->start && e == r->end) {
			free_range(t, r);
			memmove(r, r + 1, (t->n - i - 1) * sizeof(*r));
			t->n--;
			continue;
		}
		if (s == r->start) {
			r->off += pages_of(r->start, e);
			r->start = e;
		} else {
			r->end = s;
		}
		i++;
	}
	t->pages -= (uint64_t)cut;
	return cut;
}

int mgi_vrtab_copy(mgi_vrtab_t *dst, const mgi_vrtab_t *src)
{
	mgi_vrtab_init(dst, dst->a);
	if (reserve(dst, src->n) != 0)
		return -ENOMEM;
	for (uint32_t i = 0; i < src->n; i++) {
		const mgi_vrange_t *s = &src->v[i];
		mgi_vrange_t *d = &dst->v[i];

		*d = *s;
		d->bits = dst->a.alloc(dst->a.ctx, s->nwords * sizeof(uint64_t));
		if (!d->bits) {
			dst->n = i;
			mgi_vrtab_destroy(dst);
			return -ENOMEM;
		}
		memcpy(d->bits, s->bits, s->nwords * sizeof(uint64_t));
		dst->n = i + 1;
	}
	dst->pages = src->pages;
	dst->purged = src->purged;
	dst->seq = src->seq;
	return 0;
}

static bool before(uint64_t seq_a, uintptr_t a, uint64_t seq_b, uintptr_t b)
{
	return seq_a < seq_b || (seq_a == seq_b && a < b);
}

uint32_t mgi_vrtab_coldest(const mgi_vrtab_t *t, const mgi_vrcur_t *after, uint32_t *out,
			   uint32_t k)
{
	uint32_t n = 0;

	/* out is kept sorted: an insertion among at most k (small) */
	for (uint32_t i = 0; i < t->n && k; i++) {
		const mgi_vrange_t *r = &t->v[i];
		uint32_t j;

		if (r->npurged == pages_of(r->start, r->end) ||
		    !before(after->seq, after->start, r->seq, r->start))
			continue;
		if (n == k && !before(r->seq, r->start, t->v[out[n - 1]].seq, t->v[out[n - 1]].start))
			continue;
		j = n < k ? n++ : n - 1;
		while (j > 0 && before(r->seq, r->start, t->v[out[j - 1]].seq, t->v[out[j - 1]].start)) {
			out[j] = out[j - 1];
			j--;
		}
		out[j] = i;
	}
	return n;
}

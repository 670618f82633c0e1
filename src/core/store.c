/* store.c - the compressed page store: growable hash table, 64-byte-unit allocator, codecs. */
#include "store.h"

#include <errno.h>
#include <string.h>

#include <lz4.h>
#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_initStaticCCtx: no malloc */
#include <zstd.h>

#define UNIT 64
#define CLASSES (MGI_STORE_PAGE / UNIT) /* a block is 1..64 units */
#define STORE_MAGIC 0x65726f7473676d6dULL /* "mmgstore" */
#define ZSTD_LEVEL 1
#define TABLE_MIN 1024 /* slots of a new table (24 KiB) */

/* FILE_PACKED, FILE_RAW: written back; blk.unit is in the file's units. */
enum kind { EMPTY = 0, PACKED = 1, RAW = 2, FILLED = 3, FILE_PACKED = 4, FILE_RAW = 5 };

static bool on_file(uint8_t kind)
{
	return kind == FILE_PACKED || kind == FILE_RAW;
}

typedef struct entry {
	uint64_t key;
	union {
		uint64_t fill; /* FILLED: the repeated word */
		struct {
			uint32_t unit;  /* first unit of the block in the data area */
			uint16_t len;   /* bytes of data */
			uint8_t units;  /* block size in units */
			uint8_t reserved;
		} blk;          /* PACKED, RAW */
	} u;
	uint32_t stamp;
	uint8_t kind;
	uint8_t reserved[3];
} entry_t;

/*
 * The data area is made of pages, each holding blocks of one size only (a
 * slab per size, as zsmalloc does): 64 one-unit blocks, 32 two-unit ones,
 * ... one 64-unit block (a raw page). A page whose blocks are all free goes
 * back to a stack any size can take, so space freed by one size serves
 * another: the waste is bounded by one partly used page per size. The
 * write-back file is carved the same way (a slab of its own, whose pages
 * are 4 KiB stretches of the file); the free blocks of a page are a bitmap
 * in its meta, so neither needs to touch the data to allocate.
 */
typedef struct page_meta {
	uint8_t units;     /* block size of this page; 0: free */
	uint8_t used;      /* blocks handed out */
	uint8_t carved;    /* blocks ever handed out (the rest never touched) */
	uint8_t reserved;
	uint32_t prev, next; /* the partial list of its size (page + 1, 0: end) */
	uint64_t freed;    /* bit i: block i was handed out and is free again */
} page_meta_t;

typedef struct slab {
	page_meta_t *meta;          /* in the region (memory) or the caller's (file) */
	uint32_t pages, fresh;      /* pages it has; pages never used yet */
	uint32_t free_pages;        /* stack of emptied pages: page + 1, 0: none */
	uint32_t partial[CLASSES + 1]; /* per block size: a page with room, + 1 */
} slab_t;

struct mgi_store {
	uint64_t magic;
	uint32_t codec;
	uint32_t shift;        /* 64 - log2(capacity) */
	uint64_t capacity;     /* table slots now, a power of two */
	uint64_t max_capacity; /* of a table area */
	uint64_t max_pages;
	size_t table_off;      /* the table in use: one of the two areas */
	size_t spare_off;      /* the other area, empty */
	size_t scratch_off, data_off;
	mgi_store_ops_t ops;
	slab_t mem;            /* the data area */
	slab_t file;           /* the write-back file (pages 0: none) */
	uint64_t wb_cursor;    /* where the write-back scan goes on */
	ZSTD_CCtx *cctx;       /* in the region (fork-safe: same address in a child) */
	ZSTD_DCtx *dctx;
	mgi_store_stats_t st;
};

static size_t align64(size_t n)
{
	return (n + 63) & ~(size_t)63;
}

static size_t align_page(size_t n)
{
	return (n + MGI_STORE_PAGE - 1) & ~(size_t)(MGI_STORE_PAGE - 1);
}

static uint64_t table_capacity(uint64_t max_pages)
{
	uint64_t cap = 16;
	while (cap < max_pages * 2) /* load factor at most 1/2 */
		cap <<= 1;
	return cap;
}

static size_t work_bytes(mgi_codec_t codec)
{
	if (codec != MGI_CODEC_ZSTD)
		return 0;
	return align64(ZSTD_estimateCCtxSize(ZSTD_LEVEL)) + align64(ZSTD_estimateDCtxSize());
}

/* Header, scratch page and codec memory: the part before the table areas. */
static size_t head_bytes(mgi_codec_t codec)
{
	return align_page(align64(sizeof(mgi_store_t)) + MGI_STORE_PAGE + work_bytes(codec));
}

size_t mgi_store_region_bytes(uint64_t max_pages, mgi_codec_t codec)
{
	/* every page raw, plus one partly used page per block size */
	uint64_t data_pages = max_pages + CLASSES;
	return head_bytes(codec) + 2 * align_page(table_capacity(max_pages) * sizeof(entry_t)) +
	       align_page(data_pages * sizeof(page_meta_t)) + data_pages * MGI_STORE_PAGE;
}

static void set_capacity(mgi_store_t *s, uint64_t cap)
{
	s->capacity = cap;
	s->shift = 64;
	for (uint64_t c = cap; c > 1; c >>= 1)
		s->shift--;
}

mgi_store_t *mgi_store_init(void *region, size_t region_bytes, uint64_t max_pages,
			    mgi_codec_t codec, mgi_store_ops_t ops)
{
	mgi_store_t *s = region;
	uint64_t maxcap = table_capacity(max_pages);
	size_t area = align_page(maxcap * sizeof(entry_t));
	size_t off = head_bytes(codec);

	if (!region || ((uintptr_t)region & (MGI_STORE_PAGE - 1)) || max_pages == 0 ||
	    max_pages > UINT32_MAX || (codec != MGI_CODEC_LZ4 && codec != MGI_CODEC_ZSTD))
		return NULL;
	if (region_bytes < off + 2 * area + MGI_STORE_PAGE + MGI_STORE_PAGE)
		return NULL;
	memset(s, 0, sizeof(*s));
	s->magic = STORE_MAGIC;
	s->codec = codec;
	s->ops = ops;
	s->max_pages = max_pages;
	s->max_capacity = maxcap;
	set_capacity(s, maxcap < TABLE_MIN ? maxcap : TABLE_MIN);
	s->scratch_off = align64(sizeof(*s));
	if (codec == MGI_CODEC_ZSTD) {
		size_t cb = align64(ZSTD_estimateCCtxSize(ZSTD_LEVEL));
		size_t db = align64(ZSTD_estimateDCtxSize());
		char *work = (char *)region + s->scratch_off + MGI_STORE_PAGE;
		s->cctx = ZSTD_initStaticCCtx(work, cb);
		s->dctx = ZSTD_initStaticDCtx(work + cb, db);
		if (!s->cctx || !s->dctx)
			return NULL;
	}
	s->table_off = off;
	s->spare_off = off + area;
	memset((char *)region + s->table_off, 0, s->capacity * sizeof(entry_t));
	off += 2 * area;
	/* what is left: n pages of data and their n page_meta (page rounded) */
	uint64_t n = (region_bytes - off - MGI_STORE_PAGE) / (MGI_STORE_PAGE + sizeof(page_meta_t));
	if (n > UINT32_MAX / CLASSES - 1)
		n = UINT32_MAX / CLASSES - 1;
	s->mem.meta = (page_meta_t *)((char *)region + off);
	s->data_off = off + align_page(n * sizeof(page_meta_t));
	s->mem.pages = (uint32_t)n;
	return s;
}

int mgi_store_attach_file(mgi_store_t *s, void *meta, size_t meta_bytes)
{
	uint64_t n = meta_bytes / sizeof(page_meta_t);

	if (!meta || n == 0 || !s->ops.file_write || !s->ops.file_read || s->file.pages)
		return -EINVAL;
	if (n > UINT32_MAX / CLASSES - 1)
		n = UINT32_MAX / CLASSES - 1;
	s->file = (slab_t){.meta = meta, .pages = (uint32_t)n};
	return 0;
}

static entry_t *table(const mgi_store_t *s)
{
	return (entry_t *)((char *)s + s->table_off);
}

static char *unit_ptr(mgi_store_t *s, uint32_t unit)
{
	return (char *)s + s->data_off + (size_t)unit * UNIT;
}

static uint64_t slot_of(const mgi_store_t *s, uint64_t key)
{
	return (key * 0x9E3779B97F4A7C15ULL) >> s->shift;
}

/* The slot holding key, or the empty slot where it would go. */
static entry_t *find(const mgi_store_t *s, uint64_t key)
{
	entry_t *t = table(s);
	uint64_t mask = s->capacity - 1, i = slot_of(s, key);

	while (t[i].kind != EMPTY && t[i].key != key)
		i = (i + 1) & mask;
	return &t[i];
}

static void discard(mgi_store_t *s, size_t off, size_t len)
{
	if (s->ops.discard && len)
		s->ops.discard(s->ops.ctx, (char *)s + off, len);
}

/* Moves every entry into the spare area at capacity cap, which becomes the
 * table; the old area is discarded. */
static void rehash(mgi_store_t *s, uint64_t cap)
{
	entry_t *old = table(s);
	uint64_t oldcap = s->capacity;
	size_t old_off = s->table_off;

	memset((char *)s + s->spare_off, 0, cap * sizeof(entry_t));
	s->table_off = s->spare_off;
	s->spare_off = old_off;
	set_capacity(s, cap);
	for (uint64_t i = 0; i < oldcap; i++)
		if (old[i].kind != EMPTY)
			*find(s, old[i].key) = old[i];
	discard(s, old_off, align_page(oldcap * sizeof(entry_t)));
}

static void partial_push(slab_t *sl, uint32_t page)
{
	page_meta_t *m = &sl->meta[page];
	uint32_t head = sl->partial[m->units];

	m->prev = 0;
	m->next = head;
	if (head)
		sl->meta[head - 1].prev = page + 1;
	sl->partial[m->units] = page + 1;
}

static void partial_remove(slab_t *sl, uint32_t page)
{
	page_meta_t *m = &sl->meta[page];

	if (m->prev)
		sl->meta[m->prev - 1].next = m->next;
	else
		sl->partial[m->units] = m->next;
	if (m->next)
		sl->meta[m->next - 1].prev = m->prev;
	m->prev = m->next = 0;
}

/* A block of `units` (1..CLASSES): from a page of that size with room, else
 * from an empty page. Returns its first unit in the slab, or UINT32_MAX if
 * no page is left. */
static uint32_t alloc_units(slab_t *sl, unsigned units)
{
	unsigned per_page = CLASSES / units;
	uint32_t page, slot;
	page_meta_t *m;

	if (sl->partial[units]) {
		page = sl->partial[units] - 1;
	} else if (sl->free_pages) {
		page = sl->free_pages - 1;
		sl->free_pages = sl->meta[page].next;
		sl->meta[page] = (page_meta_t){.units = (uint8_t)units};
		partial_push(sl, page);
	} else if (sl->fresh < sl->pages) {
		page = sl->fresh++;
		sl->meta[page] = (page_meta_t){.units = (uint8_t)units};
		partial_push(sl, page);
	} else {
		return UINT32_MAX;
	}
	m = &sl->meta[page];
	if (m->freed) {
		slot = (uint32_t)__builtin_ctzll(m->freed);
		m->freed &= m->freed - 1;
	} else {
		slot = m->carved++;
	}
	if (++m->used == per_page)
		partial_remove(sl, page);
	return page * CLASSES + slot * units;
}

/* Frees a block; returns true if its page became empty (the caller gives
 * the page's memory, or file space, back). */
static bool free_units(slab_t *sl, uint32_t unit, unsigned units)
{
	uint32_t page = unit / CLASSES, slot = (unit % CLASSES) / units;
	page_meta_t *m = &sl->meta[page];
	bool was_full = m->used == CLASSES / units;

	m->freed |= 1ULL << slot;
	m->used--;
	if (was_full)
		partial_push(sl, page);
	if (m->used)
		return false;
	/* empty: any size may have it */
	partial_remove(sl, page);
	sl->meta[page] = (page_meta_t){.next = sl->free_pages};
	sl->free_pages = page + 1;
	return true;
}

/* Frees an entry's block, in memory or on file, giving back an emptied
 * page. */
static void free_block(mgi_store_t *s, const entry_t *e)
{
	uint32_t unit = e->u.blk.unit, page = unit / CLASSES;

	if (on_file(e->kind)) {
		if (free_units(&s->file, unit, e->u.blk.units) && s->ops.file_discard)
			s->ops.file_discard(s->ops.ctx, (uint64_t)page * MGI_STORE_PAGE,
					    MGI_STORE_PAGE);
	} else if (free_units(&s->mem, unit, e->u.blk.units)) {
		discard(s, s->data_off + (size_t)page * MGI_STORE_PAGE, MGI_STORE_PAGE);
	}
}

/* The repeated word if all 512 words of the page are equal. */
static bool same_filled(const void *page, uint64_t *word)
{
	const unsigned char *p = page;
	uint64_t first, w;

	memcpy(&first, p, 8);
	for (size_t i = 8; i < MGI_STORE_PAGE; i += 8) {
		memcpy(&w, p + i, 8);
		if (w != first)
			return false;
	}
	*word = first;
	return true;
}

/* Compresses page into the scratch page; returns the length, or 0 if the
 * result would not save a unit. */
static size_t compress(mgi_store_t *s, const void *page)
{
	char *out = (char *)s + s->scratch_off;
	size_t cap = MGI_STORE_PAGE - UNIT;

	if (s->codec == MGI_CODEC_ZSTD) {
		size_t n = ZSTD_compressCCtx(s->cctx, out, cap, page, MGI_STORE_PAGE, ZSTD_LEVEL);
		return ZSTD_isError(n) ? 0 : n;
	}
	int n = LZ4_compress_default(page, out, MGI_STORE_PAGE, (int)cap);
	return n > 0 ? (size_t)n : 0;
}

int mgi_store_put(mgi_store_t *s, uint64_t key, const void *page, uint32_t stamp)
{
	entry_t *e;
	uint64_t word;
	size_t len;

	if (key == 0)
		return -EINVAL;
	if (mgi_store_contains(s, key))
		return -EEXIST;
	if (s->st.pages >= s->max_pages)
		return -ENOSPC;
	/* Load factor at most 1/2: grow before the insert that would pass it. */
	if ((s->st.pages + 1) * 2 > s->capacity)
		rehash(s, s->capacity * 2);
	e = find(s, key);
	if (same_filled(page, &word)) {
		*e = (entry_t){.key = key, .u.fill = word, .stamp = stamp, .kind = FILLED};
		s->st.pages++;
		s->st.same_filled++;
		return 0;
	}
	len = compress(s, page);
	const void *src = len ? (const void *)((char *)s + s->scratch_off) : page;
	uint8_t kind = len ? PACKED : RAW;
	if (!len)
		len = MGI_STORE_PAGE;
	unsigned units = (unsigned)((len + UNIT - 1) / UNIT);
	uint32_t u = alloc_units(&s->mem, units);
	if (u == UINT32_MAX)
		return -ENOSPC;
	memcpy(unit_ptr(s, u), src, len);
	*e = (entry_t){.key = key, .u.blk = {.unit = u, .len = (uint16_t)len, .units = (uint8_t)units},
		       .stamp = stamp, .kind = kind};
	s->st.pages++;
	s->st.compressed_bytes += len;
	s->st.data_bytes += (uint64_t)units * UNIT;
	return 0;
}

int mgi_store_get(mgi_store_t *s, uint64_t key, void *page, uint32_t *stamp)
{
	entry_t *e = find(s, key);
	const char *data = NULL;
	int rc;

	if (on_file(e->kind)) {
		/* Read into the scratch page (a raw page straight to page). */
		char *buf = e->kind == FILE_RAW ? page : (char *)s + s->scratch_off;
		rc = s->ops.file_read(s->ops.ctx, (uint64_t)e->u.blk.unit * UNIT, buf, e->u.blk.len);
		if (rc != 0)
			return -EIO;
		if (e->kind == FILE_RAW) {
			if (stamp)
				*stamp = e->stamp;
			return 0;
		}
		data = buf;
	} else if (e->kind == PACKED) {
		data = unit_ptr(s, e->u.blk.unit);
	}
	switch (on_file(e->kind) ? PACKED : e->kind) {
	case FILLED:
		for (size_t i = 0; i < MGI_STORE_PAGE; i += 8)
			memcpy((char *)page + i, &e->u.fill, 8);
		rc = 0;
		break;
	case RAW:
		memcpy(page, unit_ptr(s, e->u.blk.unit), MGI_STORE_PAGE);
		rc = 0;
		break;
	case PACKED:
		if (s->codec == MGI_CODEC_ZSTD) {
			size_t n = ZSTD_decompressDCtx(s->dctx, page, MGI_STORE_PAGE, data,
						       e->u.blk.len);
			rc = !ZSTD_isError(n) && n == MGI_STORE_PAGE ? 0 : -EIO;
		} else {
			rc = LZ4_decompress_safe(data, page, e->u.blk.len,
						 MGI_STORE_PAGE) == MGI_STORE_PAGE
				     ? 0
				     : -EIO;
		}
		break;
	default:
		return -ENOENT;
	}
	if (rc == 0 && stamp)
		*stamp = e->stamp;
	return rc;
}

/* Empties slot e and shifts back the entries after it that probed past it,
 * so that lookups never need tombstones. */
static void remove_slot(mgi_store_t *s, entry_t *e)
{
	entry_t *t = table(s);
	uint64_t mask = s->capacity - 1, hole = (uint64_t)(e - t), i = hole;

	for (;;) {
		i = (i + 1) & mask;
		if (t[i].kind == EMPTY)
			break;
		uint64_t home = slot_of(s, t[i].key);
		/* t[i] may move to the hole if its home is not in (hole, i] */
		bool stays = hole <= i ? (home > hole && home <= i) : (home > hole || home <= i);
		if (!stays) {
			t[hole] = t[i];
			hole = i;
		}
	}
	t[hole] = (entry_t){.kind = EMPTY};
}

bool mgi_store_drop(mgi_store_t *s, uint64_t key)
{
	entry_t *e = find(s, key);

	if (e->kind == EMPTY)
		return false;
	if (e->kind == FILLED) {
		s->st.same_filled--;
	} else if (on_file(e->kind)) {
		free_block(s, e);
		s->st.file_pages--;
		s->st.file_bytes -= e->u.blk.len;
	} else {
		free_block(s, e);
		s->st.compressed_bytes -= e->u.blk.len;
		s->st.data_bytes -= (uint64_t)e->u.blk.units * UNIT;
	}
	s->st.pages--;
	remove_slot(s, e);
	/* Shrink at 1/8 full (grown at 1/2): no flapping around one size. */
	if (s->capacity > TABLE_MIN && s->st.pages * 8 < s->capacity)
		rehash(s, s->capacity / 2);
	return true;
}

int mgi_store_rekey(mgi_store_t *s, uint64_t from, uint64_t to)
{
	entry_t *e = find(s, from), moved;

	if (e->kind == EMPTY)
		return -ENOENT;
	if (to == 0 || find(s, to)->kind != EMPTY)
		return -EEXIST;
	moved = *e;
	remove_slot(s, e);
	moved.key = to;
	*find(s, to) = moved;
	return 0;
}

bool mgi_store_contains(const mgi_store_t *s, uint64_t key)
{
	return find(s, key)->kind != EMPTY;
}

bool mgi_store_next(const mgi_store_t *s, uint64_t *cursor, uint64_t *key)
{
	const entry_t *t = table(s);

	for (uint64_t i = *cursor; i < s->capacity; i++) {
		if (t[i].kind != EMPTY) {
			*key = t[i].key;
			*cursor = i + 1;
			return true;
		}
	}
	*cursor = s->capacity;
	return false;
}

/* Whether stamp a is older than b on a 32-bit clock that wraps. */
static bool older(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b) < 0;
}

uint64_t mgi_store_writeback(mgi_store_t *s, uint64_t bytes, uint32_t older_than)
{
	uint64_t freed = 0, seen = 0;
	entry_t *t = table(s);

	if (!s->file.pages)
		return 0;
	/* One lap at most, from where the last call stopped: the table's
	 * order is the keys' hash, so a lap meets old pages everywhere. */
	for (; seen < s->capacity && freed < bytes; seen++, s->wb_cursor++) {
		entry_t *e = &t[s->wb_cursor & (s->capacity - 1)];
		if ((e->kind != PACKED && e->kind != RAW) || !older(e->stamp, older_than))
			continue;
		uint32_t u = alloc_units(&s->file, e->u.blk.units);
		if (u == UINT32_MAX)
			break; /* the file is full */
		if (s->ops.file_write(s->ops.ctx, (uint64_t)u * UNIT, unit_ptr(s, e->u.blk.unit),
				      e->u.blk.len) != 0) {
			/* Nothing changes: the page stays in memory. */
			entry_t gone = {.kind = FILE_RAW, .u.blk = {.unit = u, .units = e->u.blk.units}};
			free_block(s, &gone);
			break;
		}
		free_block(s, e);
		s->st.compressed_bytes -= e->u.blk.len;
		s->st.data_bytes -= (uint64_t)e->u.blk.units * UNIT;
		s->st.file_pages++;
		s->st.file_bytes += e->u.blk.len;
		s->st.written_back++;
		freed += (uint64_t)e->u.blk.units * UNIT;
		e->kind = e->kind == PACKED ? FILE_PACKED : FILE_RAW;
		e->u.blk.unit = u;
	}
	return freed;
}

void mgi_store_stats(const mgi_store_t *s, mgi_store_stats_t *out)
{
	*out = s->st;
	out->table_bytes = s->capacity * sizeof(entry_t);
}

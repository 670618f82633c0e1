/* store.h - the compressed page store: where evicted pages wait, byte-identical. */
#ifndef MGI_CORE_STORE_H
#define MGI_CORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "page.h"

/*
 * A process's evicted pages, as zswap keeps them: each page compressed (lz4
 * by default, zstd selectable), stored raw when it does not compress, or,
 * when every 8-byte word of it is the same (all zeros, a repeated byte), as
 * that word alone with no data. Pages are found by a key (the page's
 * address >> 12, never 0) and carry a 32-bit stamp the caller chooses (the
 * agent's eviction clock, for refault distances).
 *
 * Everything lives in one region the caller gives (an address-space
 * reservation whose pages are committed as they are first written): a
 * header, two areas for an open-addressing hash table (the table grows and
 * shrinks with the number of pages by rehashing from one area into the
 * other, so a store sized for millions of pages costs memory for what it
 * holds), the codec's working memory (nothing here calls malloc: the fault
 * handler uses the store), and the data area, carved in 64-byte units with
 * a slab of one block size per page. Pages of the region that stop being
 * used (an emptied data page, the table area left by a rehash) are handed
 * to the caller's discard callback, which gives them back to the system.
 * Offsets only, no pointers: a copy of the region is a valid store.
 *
 * Not thread-safe: one thread (the agent's handler) uses a store.
 */

#define MGI_STORE_PAGE MGI_PAGE_SIZE

typedef enum mgi_codec { MGI_CODEC_LZ4 = 0, MGI_CODEC_ZSTD = 1 } mgi_codec_t;

typedef struct mgi_store_stats {
	uint64_t pages;            /* stored, of every kind */
	uint64_t same_filled;      /* of which markers with no data */
	uint64_t compressed_bytes; /* data held for the others (before rounding) */
	uint64_t data_bytes;       /* data area in use, with rounding */
	uint64_t table_bytes;      /* the hash table now */
	uint64_t file_pages;       /* of `pages`: written back to the file */
	uint64_t file_bytes;       /* their data there */
	uint64_t written_back;     /* pages ever written back */
} mgi_store_stats_t;

/* What the store may ask of its owner. */
typedef struct mgi_store_ops {
	/* [addr, addr + len) (page aligned, inside the region) is unused: the
	 * owner may give it back to the system, after which it must read as
	 * zeros (MADV_DONTNEED on private anonymous memory). May be NULL. */
	void (*discard)(void *ctx, void *addr, size_t len);
	void *ctx;
	/* The write-back file (mgi_store_attach_file): write or read len bytes
	 * at off; 0 or a negative errno. A failed write leaves the page in
	 * memory; a failed read fails mgi_store_get with -EIO. */
	int (*file_write)(void *ctx, uint64_t off, const void *buf, size_t len);
	int (*file_read)(void *ctx, uint64_t off, void *buf, size_t len);
	/* [off, off + 4096) of the file is unused (punch it out). May be NULL. */
	void (*file_discard)(void *ctx, uint64_t off, size_t len);
} mgi_store_ops_t;

typedef struct mgi_store mgi_store_t; /* at the start of the caller's region */

/* Bytes of region a store for max_pages needs at most (every page stored
 * raw), with the codec's working memory and both table areas. */
size_t mgi_store_region_bytes(uint64_t max_pages, mgi_codec_t codec);

/*
 * Makes a store at region (region_bytes long, 64-byte aligned; any content).
 * Returns the store, or NULL if the region is too small for max_pages' table
 * areas and the codec's working memory, or the codec cannot be set up.
 */
mgi_store_t *mgi_store_init(void *region, size_t region_bytes, uint64_t max_pages,
			    mgi_codec_t codec, mgi_store_ops_t ops);

/*
 * Gives the store a write-back file (zswap's writeback): meta is the
 * caller's memory for its bookkeeping, 24 bytes per 4 KiB of file (any
 * content; committed as used), and its size bounds the file. I/O goes
 * through ops.file_write/file_read. Returns 0 or -EINVAL (no file ops, no
 * room, or a file already).
 */
int mgi_store_attach_file(mgi_store_t *s, void *meta, size_t meta_bytes);

/* Bytes of file meta for a file of file_bytes. */
static inline size_t mgi_store_file_meta_bytes(uint64_t file_bytes)
{
	return (size_t)(file_bytes / MGI_STORE_PAGE) * 24;
}

/*
 * Writes back compressed (or raw) pages whose stamp is older than
 * older_than (a wrapping 32-bit clock), until `bytes` of the data area are
 * freed, the file is full, a write fails, or the whole table was looked at
 * once. Resumes where the last call stopped. Same-filled markers stay.
 * Returns the bytes of data area freed.
 */
uint64_t mgi_store_writeback(mgi_store_t *s, uint64_t bytes, uint32_t older_than);

/*
 * Stores a page under key with stamp. Returns 0, -EEXIST (key present: the
 * store is unaltered), -ENOSPC (max_pages reached, or the data area full)
 * or -EINVAL (key 0).
 */
int mgi_store_put(mgi_store_t *s, uint64_t key, const void *page, uint32_t stamp);

/* Copies the page stored under key to page (4096 bytes) and, if stamp is
 * not NULL, its stamp there. Returns 0, -ENOENT, or -EIO if its data does
 * not decompress to a whole page. The entry stays. */
int mgi_store_get(mgi_store_t *s, uint64_t key, void *page, uint32_t *stamp);

/* Forgets key (its data is freed). Returns whether it was there. */
bool mgi_store_drop(mgi_store_t *s, uint64_t key);

/* Moves the entry of `from` to `to` (mremap). Returns 0, -ENOENT (no
 * from) or -EEXIST (to is taken). */
int mgi_store_rekey(mgi_store_t *s, uint64_t from, uint64_t to);

bool mgi_store_contains(const mgi_store_t *s, uint64_t key);

/*
 * Iterates over the keys: start with *cursor = 0; each call stores the next
 * key in *key and returns true, or returns false at the end. Any put, drop
 * or rekey invalidates the cursor.
 */
bool mgi_store_next(const mgi_store_t *s, uint64_t *cursor, uint64_t *key);

void mgi_store_stats(const mgi_store_t *s, mgi_store_stats_t *out);

#endif

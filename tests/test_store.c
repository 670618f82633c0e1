/* test_store.c - the compressed page store: every page back byte-identical. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "store.h"

#define PAGE MGI_STORE_PAGE

/* Pages of every kind the store treats differently. */
static void make_page(unsigned char *p, unsigned kind, uint64_t *rng)
{
	switch (kind % 6) {
	case 0: /* zeros: same-filled */
		memset(p, 0, PAGE);
		break;
	case 1: /* one byte repeated: same-filled */
		memset(p, (int)mgt_below(rng, 256), PAGE);
		break;
	case 2: { /* a repeated 8-byte word: same-filled */
		uint64_t w = mgt_rand(rng);
		for (size_t i = 0; i < PAGE; i += 8)
			memcpy(p + i, &w, 8);
		break;
	}
	case 3: /* random: does not compress, stored raw */
		for (size_t i = 0; i < PAGE; i += 8) {
			uint64_t w = mgt_rand(rng);
			memcpy(p + i, &w, 8);
		}
		break;
	case 4: { /* text-like: compresses well */
		size_t shift = mgt_below(rng, 20);
		for (size_t i = 0; i < PAGE; i++)
			p[i] = (unsigned char)("the quick brown fox "[(i + shift) % 20]);
		break;
	}
	default: /* mostly zeros with a few words: compresses, not same-filled */
		memset(p, 0, PAGE);
		for (int k = 0; k < 8; k++) {
			uint64_t w = mgt_rand(rng);
			memcpy(p + mgt_below(rng, PAGE / 8) * 8, &w, 8);
		}
		break;
	}
}

static void *region(size_t bytes)
{
	void *r = aligned_alloc(PAGE, (bytes + PAGE - 1) & ~(size_t)(PAGE - 1));
	if (r)
		memset(r, 0xa5, bytes); /* no help from zeroed memory */
	return r;
}

/* What the agent's discard does (MADV_DONTNEED): the pages read as zeros.
 * Filled with a pattern instead, so that a store still using a discarded
 * page would read garbage and fail the comparisons. */
static uint64_t discarded_bytes;
static void discard_pattern(void *ctx, void *addr, size_t len)
{
	(void)ctx;
	CHECK(((uintptr_t)addr & (PAGE - 1)) == 0 && len % PAGE == 0);
	memset(addr, 0x3c, len);
	discarded_bytes += len;
}

static const mgi_store_ops_t ops = {.discard = discard_pattern};

static void kinds_round_trip(mgi_codec_t codec)
{
	size_t bytes = mgi_store_region_bytes(64, codec);
	void *mem = region(bytes);
	mgi_store_t *s = mgi_store_init(mem, bytes, 64, codec, ops);
	unsigned char in[PAGE], out[PAGE];
	uint64_t rng = 42;
	mgi_store_stats_t st;

	CHECK(s != NULL);
	for (unsigned k = 0; k < 6; k++) {
		make_page(in, k, &rng);
		CHECK_INT_EQ(mgi_store_put(s, 100 + k, in, 7000 + k), 0);
		memset(out, 0x5a, PAGE);
		uint32_t stamp = 0;
		CHECK_INT_EQ(mgi_store_get(s, 100 + k, out, &stamp), 0);
		CHECK(memcmp(in, out, PAGE) == 0);
		CHECK_EQ(stamp, 7000 + k);
	}
	mgi_store_stats(s, &st);
	CHECK_EQ(st.pages, 6);
	CHECK_EQ(st.same_filled, 3);
	/* random page raw (4096) + two that compress to far less */
	CHECK_GE(st.compressed_bytes, PAGE);
	CHECK_LT(st.compressed_bytes, PAGE + PAGE / 2);
	CHECK_INT_EQ(mgi_store_put(s, 100, in, 0), -EEXIST);
	CHECK_INT_EQ(mgi_store_put(s, 0, in, 0), -EINVAL);
	CHECK_INT_EQ(mgi_store_get(s, 99, out, NULL), -ENOENT);
	CHECK_INT_EQ(mgi_store_rekey(s, 104, 200), 0);
	CHECK(!mgi_store_contains(s, 104));
	uint32_t stamp = 0;
	CHECK_INT_EQ(mgi_store_get(s, 200, out, &stamp), 0);
	CHECK_EQ(stamp, 7004); /* the stamp moves with the entry */
	CHECK_INT_EQ(mgi_store_rekey(s, 200, 101), -EEXIST);
	CHECK_INT_EQ(mgi_store_rekey(s, 999, 1000), -ENOENT);
	for (unsigned k = 0; k < 6; k++)
		mgi_store_drop(s, 100 + k);
	CHECK(mgi_store_drop(s, 200));
	CHECK(!mgi_store_drop(s, 200));
	mgi_store_stats(s, &st);
	CHECK_EQ(st.pages, 0);
	CHECK_EQ(st.compressed_bytes, 0);
	CHECK_EQ(st.data_bytes, 0);
	free(mem);
}

static void lz4_kinds_round_trip(void)
{
	kinds_round_trip(MGI_CODEC_LZ4);
}

static void zstd_kinds_round_trip(void)
{
	kinds_round_trip(MGI_CODEC_ZSTD);
}

static void full_and_freed(void)
{
	/* Room in the table for 32 pages, but data for only a few raw ones
	 * (the full size has 32 + 64 data pages). */
	size_t bytes = mgi_store_region_bytes(32, MGI_CODEC_LZ4) - 90 * PAGE;
	void *mem = region(bytes);
	mgi_store_t *s = mgi_store_init(mem, bytes, 32, MGI_CODEC_LZ4, ops);
	unsigned char in[PAGE], out[PAGE];
	uint64_t rng = 7, key = 1;
	int rc;

	CHECK(s != NULL);
	make_page(in, 3, &rng);
	while ((rc = mgi_store_put(s, key, in, 0)) == 0)
		key++;
	CHECK_INT_EQ(rc, -ENOSPC);
	CHECK_GE(key - 1, 3);
	/* Same-filled pages need no data: still room in the table. */
	memset(in, 0, PAGE);
	CHECK_INT_EQ(mgi_store_put(s, 1000, in, 0), 0);
	/* Dropping one raw page makes room for another. */
	make_page(in, 3, &rng);
	CHECK(mgi_store_drop(s, 1));
	CHECK_INT_EQ(mgi_store_put(s, 2000, in, 0), 0);
	CHECK_INT_EQ(mgi_store_get(s, 2000, out, NULL), 0);
	CHECK(memcmp(in, out, PAGE) == 0);
	/* The table refuses beyond max_pages, whatever the data. */
	memset(in, 0, PAGE);
	for (uint64_t k = 3000; k < 3100; k++)
		if (mgi_store_put(s, k, in, 0) != 0)
			break;
	mgi_store_stats_t st;
	mgi_store_stats(s, &st);
	CHECK_EQ(st.pages, 32); /* exactly max_pages */
	CHECK(mgi_store_init(mem, 1024, 32, MGI_CODEC_LZ4, ops) == NULL); /* too small */
	free(mem);
}

/* 120 000 random puts, gets, drops and rekeys over 3 000 keys (collisions
 * and backward shifts galore) against a plain array of copies, checked
 * after every step; then every page is read back. */
static void randomized_against_reference(void)
{
	enum { KEYS = 3000, MAXP = 1500 };
	for (int codec = 0; codec < 2; codec++) {
		size_t bytes = mgi_store_region_bytes(MAXP, (mgi_codec_t)codec);
		void *mem = region(bytes);
		mgi_store_t *s = mgi_store_init(mem, bytes, MAXP, (mgi_codec_t)codec, ops);
		unsigned char (*ref)[PAGE] = calloc(KEYS + 1, PAGE);
		uint32_t *stamps = calloc(KEYS + 1, sizeof(uint32_t));
		bool *has = calloc(KEYS + 1, sizeof(bool));
		uint64_t rng = mgt_seed() + (uint64_t)codec, count = 0;
		unsigned char in[PAGE], out[PAGE];
		bool ok = s && ref && has && stamps;
		uint64_t grown = 0;

		CHECK(ok);
		for (int step = 0; ok && step < 60000; step++) {
			uint64_t key = 1 + mgt_below(&rng, KEYS), op = mgt_below(&rng, 10);
			if (op < 4) {
				make_page(in, (unsigned)mgt_below(&rng, 6), &rng);
				uint32_t stamp = (uint32_t)mgt_rand(&rng);
				int rc = mgi_store_put(s, key, in, stamp);
				/* sized for MAXP: full only past that */
				if (has[key])
					ok = rc == -EEXIST;
				else if (rc == -ENOSPC)
					ok = count >= MAXP;
				else if ((ok = rc == 0)) {
					memcpy(ref[key], in, PAGE);
					stamps[key] = stamp;
					has[key] = true;
					count++;
				}
			} else if (op < 7) {
				uint32_t stamp = 0;
				int rc = mgi_store_get(s, key, out, &stamp);
				ok = has[key] ? rc == 0 && memcmp(out, ref[key], PAGE) == 0 &&
							stamp == stamps[key]
					      : rc == -ENOENT;
			} else if (op < 9) {
				ok = mgi_store_drop(s, key) == has[key];
				count -= has[key];
				has[key] = false;
			} else {
				uint64_t to = 1 + mgt_below(&rng, KEYS);
				int rc = mgi_store_rekey(s, key, to);
				if (!has[key])
					ok = rc == -ENOENT;
				else if (has[to])
					ok = rc == -EEXIST;
				else if ((ok = rc == 0)) {
					memcpy(ref[to], ref[key], PAGE);
					stamps[to] = stamps[key];
					has[to] = true;
					has[key] = false;
				}
			}
			mgi_store_stats_t st;
			mgi_store_stats(s, &st);
			ok = ok && st.pages == count;
			if (st.table_bytes > grown)
				grown = st.table_bytes;
			CHECK_MSG(ok, "codec %d step %d key %llu op %llu", codec, step,
				  (unsigned long long)key, (unsigned long long)op);
		}
		for (uint64_t k = 1; ok && k <= KEYS; k++) {
			if (!has[k])
				continue;
			ok = mgi_store_get(s, k, out, NULL) == 0 && memcmp(out, ref[k], PAGE) == 0;
			CHECK_MSG(ok, "codec %d: key %llu not read back", codec, (unsigned long long)k);
		}
		/* The table grew past its first size (1024 slots) on the way. */
		CHECK_GE(grown, 2048 * 24);
		/* Iteration sees every key once. */
		uint64_t cursor = 0, k, seen = 0;
		while (mgi_store_next(s, &cursor, &k)) {
			CHECK(k >= 1 && k <= KEYS && has[k]);
			has[k] = false;
			seen++;
		}
		CHECK_EQ(seen, count);
		free(stamps);
		free(has);
		free(ref);
		free(mem);
	}
}

/* Filling then emptying gives memory back: the data pages and the grown
 * table areas are discarded, and a refilled store still reads right. */
static void memory_comes_back(void)
{
	enum { N = 20000 };
	size_t bytes = mgi_store_region_bytes(N, MGI_CODEC_LZ4);
	void *mem = region(bytes);
	mgi_store_t *s = mgi_store_init(mem, bytes, N, MGI_CODEC_LZ4, ops);
	unsigned char in[PAGE], out[PAGE];
	uint64_t rng = 11;
	mgi_store_stats_t st;

	CHECK(s != NULL);
	for (int round = 0; round < 2; round++) {
		discarded_bytes = 0;
		for (uint64_t k = 1; k <= N; k++) {
			make_page(in, 3 + (unsigned)(k % 3), &rng); /* raw, text, sparse */
			CHECK_INT_EQ(mgi_store_put(s, k * 3, in, (uint32_t)k), 0);
		}
		mgi_store_stats(s, &st);
		CHECK_EQ(st.pages, N);
		CHECK_GE(st.table_bytes, 2 * N * 24);
		uint64_t data = st.data_bytes;
		for (uint64_t k = 1; k <= N; k++) {
			uint32_t stamp;
			CHECK_INT_EQ(mgi_store_get(s, k * 3, out, &stamp), 0);
			CHECK_EQ(stamp, k);
			CHECK(mgi_store_drop(s, k * 3));
		}
		mgi_store_stats(s, &st);
		CHECK_EQ(st.pages, 0);
		CHECK_EQ(st.data_bytes, 0);
		CHECK_EQ(st.table_bytes, 1024 * 24); /* shrunk back */
		/* every data page came back, and the old table areas */
		CHECK_GE(discarded_bytes, data);
	}
	free(mem);
}

/* ---- write-back: a file made of memory, with faults on demand ---- */

/* For helpers that return a value (CHECK returns from a void test). */
#define REQUIRE(cond)                                                           \
	do {                                                                    \
		if (!(cond)) {                                                  \
			fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #cond); \
			abort();                                                \
		}                                                               \
	} while (0)

struct mockfile {
	unsigned char *data;
	size_t size;
	uint64_t writes, reads, discards;
	long fail_write_after; /* -1: never */
	bool fail_read;
};

static int mock_write(void *ctx, uint64_t off, const void *buf, size_t len)
{
	struct mockfile *f = ctx;
	REQUIRE(off + len <= f->size);
	if (f->fail_write_after >= 0 && f->writes >= (uint64_t)f->fail_write_after)
		return -EIO;
	memcpy(f->data + off, buf, len);
	f->writes++;
	return 0;
}

static int mock_read(void *ctx, uint64_t off, void *buf, size_t len)
{
	struct mockfile *f = ctx;
	REQUIRE(off + len <= f->size);
	if (f->fail_read)
		return -EIO;
	memcpy(buf, f->data + off, len);
	f->reads++;
	return 0;
}

/* A punched hole reads as zeros; a pattern here, so that a store still
 * using punched space would read garbage. */
static void mock_discard(void *ctx, uint64_t off, size_t len)
{
	struct mockfile *f = ctx;
	REQUIRE(off % PAGE == 0 && len == PAGE && off + len <= f->size);
	memset(f->data + off, 0x5a, len);
	f->discards++;
}

/* A store of n pages of every kind (stamps 1..n) with a file of file_pages
 * attached. */
static mgi_store_t *store_with_file(struct mockfile *f, uint64_t file_pages, unsigned n,
				    void **mem, void **meta, unsigned char *pages)
{
	mgi_store_ops_t o = {.discard = discard_pattern, .ctx = f, .file_write = mock_write,
			     .file_read = mock_read, .file_discard = mock_discard};
	size_t bytes = mgi_store_region_bytes(n, MGI_CODEC_LZ4);
	size_t mb = mgi_store_file_meta_bytes(file_pages * PAGE);
	uint64_t rng = 7;

	f->size = file_pages * PAGE;
	f->data = malloc(f->size);
	memset(f->data, 0xee, f->size);
	*mem = region(bytes);
	*meta = region(mb);
	mgi_store_t *s = mgi_store_init(*mem, bytes, n, MGI_CODEC_LZ4, o);
	REQUIRE(s != NULL);
	REQUIRE(mgi_store_attach_file(s, *meta, mb) == 0);
	REQUIRE(mgi_store_attach_file(s, *meta, mb) == -EINVAL); /* one file */
	for (unsigned k = 1; k <= n; k++) {
		make_page(pages + (size_t)(k - 1) * PAGE, k, &rng);
		REQUIRE(mgi_store_put(s, k, pages + (size_t)(k - 1) * PAGE, k) == 0);
	}
	return s;
}

static void check_all(mgi_store_t *s, unsigned n, const unsigned char *pages)
{
	unsigned char out[PAGE];
	for (unsigned k = 1; k <= n; k++) {
		uint32_t stamp = 0;
		CHECK_INT_EQ(mgi_store_get(s, k, out, &stamp), 0);
		CHECK_EQ(stamp, k);
		CHECK(memcmp(out, pages + (size_t)(k - 1) * PAGE, PAGE) == 0);
	}
}

static void writeback_round_trip(void)
{
	enum { N = 600 };
	struct mockfile f = {.fail_write_after = -1};
	unsigned char *pages = malloc((size_t)N * PAGE);
	void *mem, *meta;
	mgi_store_stats_t before, st;
	mgi_store_t *s = store_with_file(&f, 1024, N, &mem, &meta, pages);

	mgi_store_stats(s, &before);
	/* the older half: stamps 1..300 */
	uint64_t freed = mgi_store_writeback(s, UINT64_MAX, 301);
	mgi_store_stats(s, &st);
	CHECK_LT(0, freed);
	CHECK_EQ(st.data_bytes, before.data_bytes - freed);
	CHECK_EQ(st.pages, N);
	CHECK_EQ(st.same_filled, before.same_filled); /* markers stay */
	/* every page of 1..300 that had data went; none of 301..600 */
	CHECK_EQ(st.file_pages, 300 - 150);           /* kinds 0-2 of 6 are same-filled */
	CHECK_EQ(st.written_back, st.file_pages);
	CHECK_EQ(f.writes, st.file_pages);
	CHECK_EQ(st.file_bytes + st.compressed_bytes, before.compressed_bytes);
	check_all(s, N, pages);
	CHECK_GE(f.reads, st.file_pages);
	/* again, nothing older is left in memory */
	CHECK_EQ(mgi_store_writeback(s, UINT64_MAX, 301), 0);
	/* dropped pages give their file space back, to be used again */
	for (unsigned k = 1; k <= 300; k += 2)
		CHECK(mgi_store_drop(s, k));
	mgi_store_stats(s, &st);
	CHECK_EQ(st.file_pages, 50); /* the even keys of kind 4 (k % 6) */
	CHECK_LT(0, mgi_store_writeback(s, UINT64_MAX, N + 1));
	for (unsigned k = 2; k <= 300; k += 2)
		CHECK(mgi_store_drop(s, k));
	for (unsigned k = 301; k <= N; k++) {
		unsigned char out[PAGE];
		CHECK_INT_EQ(mgi_store_get(s, k, out, NULL), 0);
		CHECK(memcmp(out, pages + (size_t)(k - 1) * PAGE, PAGE) == 0);
		CHECK(mgi_store_drop(s, k));
	}
	mgi_store_stats(s, &st);
	CHECK_EQ(st.pages, 0);
	CHECK_EQ(st.file_pages, 0);
	CHECK_EQ(st.file_bytes, 0);
	CHECK_LT(0, f.discards); /* emptied file pages were punched out */
	free(mem);
	free(meta);
	free(f.data);
	free(pages);
}

static void writeback_failures_lose_nothing(void)
{
	enum { N = 300 };
	unsigned char *pages = malloc((size_t)N * PAGE);
	unsigned char out[PAGE];
	void *mem, *meta;
	mgi_store_stats_t st;

	/* A write that fails leaves its page in memory. */
	struct mockfile f = {.fail_write_after = 20};
	mgi_store_t *s = store_with_file(&f, 1024, N, &mem, &meta, pages);
	CHECK_LT(0, mgi_store_writeback(s, UINT64_MAX, N + 1));
	mgi_store_stats(s, &st);
	CHECK_EQ(st.file_pages, 20);
	check_all(s, N, pages);
	free(mem);
	free(meta);
	free(f.data);

	/* A file that fills up: the rest stays in memory. */
	struct mockfile g = {.fail_write_after = -1};
	s = store_with_file(&g, 3, N, &mem, &meta, pages);
	mgi_store_writeback(s, UINT64_MAX, N + 1);
	mgi_store_stats(s, &st);
	CHECK_LT(0, st.file_pages);
	CHECK_LT(st.file_pages, N / 2);
	check_all(s, N, pages);
	/* A read that fails is an error, not a page of garbage. */
	g.fail_read = true;
	int errors = 0;
	for (unsigned k = 1; k <= N; k++)
		errors += mgi_store_get(s, k, out, NULL) == -EIO;
	CHECK_EQ(errors, st.file_pages);
	g.fail_read = false;
	check_all(s, N, pages);
	free(mem);
	free(meta);
	free(g.data);
	free(pages);
}

int main(int argc, char **argv)
{
	MGT_INIT(argc, argv);
	MGT_RUN(lz4_kinds_round_trip);
	MGT_RUN(zstd_kinds_round_trip);
	MGT_RUN(full_and_freed);
	MGT_RUN(randomized_against_reference);
	MGT_RUN(memory_comes_back);
	MGT_RUN(writeback_round_trip);
	MGT_RUN(writeback_failures_lose_nothing);
	MGT_DONE();
}

/* vrange_cache.c - a cache that lends its idle entries back to memgrp (volatile ranges) and rebuilds exactly the entries that were purged. */
/*
 *   memgrp run -m 64M -- vrange_cache [ENTRIES] [MORE_MB]
 *
 * ENTRIES entries of 64 KiB live in one mapping. While idle they are
 * volatile (mg_vrange): under pressure memgrp takes their pages first, at no
 * cost (nothing compressed or written back, nobody asked or killed). The
 * program then needs MORE_MB of other memory for a while, and pins its
 * entries again: mg_vrange_unpin says which pages went up to the moment
 * they were pinned (one step: none purged meanwhile goes unreported), so
 * only the entries that lost a page are rebuilt; every entry is then
 * checked. Exit status 0 when every entry is right.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "memgrp.h"

#define ENTRY (64u << 10)
#define PAGE 4096u

static void build(unsigned char *e, uint32_t i)
{
	for (size_t k = 0; k < ENTRY; k += 4)
		memcpy(e + k, &i, 4);
}

static int right(const unsigned char *e, uint32_t i)
{
	for (size_t k = 0; k < ENTRY; k += 4)
		if (memcmp(e + k, &i, 4))
			return 0;
	return 1;
}

int main(int argc, char **argv)
{
	size_t entries = argc > 1 ? strtoul(argv[1], NULL, 10) : 512;
	size_t more = (argc > 2 ? strtoul(argv[2], NULL, 10) : 0) << 20;
	size_t len = entries * ENTRY, pages = len / PAGE, npurged = 0, rebuilt = 0, wrong = 0;
	unsigned char *cache = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint8_t *bits = calloc(pages / 8 + 1, 1);
	int rc;

	if (!entries || cache == MAP_FAILED || !bits) {
		fprintf(stderr, "vrange_cache: no memory for %zu entries\n", entries);
		return 2;
	}
	for (size_t i = 0; i < entries; i++)
		build(cache + i * ENTRY, (uint32_t)i);
	if ((rc = mg_vrange(cache, len, MG_VRANGE_VOLATILE, NULL)) != 0) {
		fprintf(stderr, "vrange_cache: mg_vrange: %s%s\n", strerror(-rc),
			rc == -ENOTSUP ? " (run it under memgrp run)" : "");
		return 2;
	}
	if (more) { /* the pressure, for a while */
		unsigned char *other = mmap(NULL, more, PROT_READ | PROT_WRITE,
					    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (other == MAP_FAILED)
			return 2;
		memset(other, 1, more);
		munmap(other, more);
	}
	if ((rc = mg_vrange_unpin(cache, len, bits)) != 0) {
		fprintf(stderr, "vrange_cache: %s\n", strerror(-rc));
		return 2;
	}
	for (size_t i = 0; i < entries; i++) {
		int lost = 0;
		for (size_t p = i * ENTRY / PAGE; p < (i + 1) * ENTRY / PAGE; p++)
			if (bits[p / 8] >> (p % 8) & 1)
				lost = 1, npurged++;
		if (lost) {
			build(cache + i * ENTRY, (uint32_t)i);
			rebuilt++;
		}
		wrong += !right(cache + i * ENTRY, (uint32_t)i);
	}
	printf("entries %zu, pages purged %zu, entries rebuilt %zu, wrong %zu\n", entries, npurged,
	       rebuilt, wrong);
	return wrong != 0;
}

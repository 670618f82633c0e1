/* fuzz_buddyinfo.c - libFuzzer target for the /proc/buddyinfo parser, and the share computation fed with what it read. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "thpshare.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	/* Exactly len bytes, no NUL after them: a read past the end is
	 * caught by ASan. */
	char *buf = malloc(len ? len : 1);
	mgi_buddy_t b;
	uint64_t sum = 0;

	if (!buf)
		return 0;
	memcpy(buf, data, len);
	memset(&b, 0xab, sizeof(b));
	int rc = mgi_buddyinfo_parse(buf, len, &b);
	if (rc != 0 && rc != -EINVAL)
		abort();
	if (rc != 0 && (b.huge_free || b.nodes))
		abort(); /* zeroed on failure */
	if (b.nodes > MGI_BUDDY_NODES_MAX)
		abort();
	for (unsigned i = 0; i < MGI_BUDDY_NODES_MAX; i++) {
		if (i >= b.nodes && b.node_huge_free[i])
			abort();
		sum += b.node_huge_free[i];
	}
	if (sum != b.huge_free)
		abort();
	/* The bytes as groups (parent, weight, held, idle, wants): shares
	 * never exceed the total, whatever the tree. */
	mgi_thp_group_in_t in[16];
	mgi_thp_group_out_t out[16];
	unsigned n = 0;
	for (size_t at = 0; at + 4 <= len && n < 16; at += 4, n++)
		in[n] = (mgi_thp_group_in_t){(int8_t)data[at] % 17, data[at + 1], data[at + 2],
					     data[at + 3], data[at] & 1};
	uint64_t total = b.huge_free % 100000;
	if (mgi_thp_shares(in, n, total, len & 1, len % 100, out) != 0)
		abort();
	uint64_t top = 0;
	for (unsigned i = 0; i < n; i++) {
		if (out[i].share > total || out[i].own > out[i].share)
			abort();
		if (in[i].parent < 0 || in[i].parent >= (int)n)
			top += out[i].share;
	}
	if (top > total)
		abort();
	free(buf);
	return 0;
}

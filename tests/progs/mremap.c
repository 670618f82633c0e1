/* mremap.c - a buffer grown by mremap (moving it) keeps its contents. */
#include <string.h>
#include <sys/mman.h>

#include "common.h"

int main(int argc, char **argv)
{
	size_t len = 1 << 20, max = (size_t)(argc > 1 ? atol(argv[1]) : 256) << 20;
	unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	long bad;
	int moves = 0;

	if (p == MAP_FAILED)
		DIE("mmap failed");
	fill(p, len, 7);
	while (len < max) {
		/* Reserve the page after the buffer so that growth must move. */
		void *block = mmap(p + len, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
		unsigned char *q = mremap(p, len, len * 2, MREMAP_MAYMOVE);
		if (q == MAP_FAILED)
			DIE("mremap failed");
		moves += q != p;
		if (block != MAP_FAILED)
			munmap(block, 4096);
		if ((bad = verify(q, len, 7)) >= 0)
			DIE("after growing to %zu: byte %ld differs", len * 2, bad);
		for (size_t i = len; i < len * 2; i += 4096)
			if (q[i])
				DIE("new part reads non-zero");
		p = q;
		len *= 2;
		fill(p, len, 7);
	}
	/* Shrink back, then release. */
	p = mremap(p, len, len / 4, 0);
	if (p == MAP_FAILED || verify(p, len / 4, 7) >= 0)
		DIE("shrink lost data");
	munmap(p, len / 4);
	printf("mremap ok: grew to %zu MB, %d moves, contents kept\n", len >> 20, moves);
	return 0;
}

/* heaptrim.c - the heap grown where the agent sees it and trimmed where it does not, over and over. */
/*
 * Each round grows the heap with sbrk (interposed: the new part is
 * registered and the handler told through its learn pipe), trims its last
 * page at once with the raw brk syscall (as glibc's malloc trims, unseen
 * by the interposer), then writes the rest sequentially, so that the
 * fault-around windows reach the heap's end, and checks every byte. A
 * handler that learned the range as the request said, after the trim,
 * holds a page past the heap's end and loops on it for ever (the
 * parallel-build livelock). Usage: prog_heaptrim ROUNDS PAGES
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common.h"

#define PAGE 4096UL

int main(int argc, char **argv)
{
	long rounds = argc > 1 ? atol(argv[1]) : 2000;
	size_t pages = argc > 2 ? (size_t)atol(argv[2]) : 48;
	unsigned char *base = sbrk(0);

	/* page-align the break so that each round's pages are its own */
	if ((uintptr_t)base % PAGE) {
		if (sbrk((intptr_t)(PAGE - (uintptr_t)base % PAGE)) == (void *)-1)
			DIE("sbrk: cannot align the break");
		base = sbrk(0);
	}
	for (long i = 0; i < rounds; i++) {
		size_t len = (pages - 1) * PAGE;
		if (sbrk((intptr_t)(pages * PAGE)) != base)
			DIE("round %ld: sbrk did not grow from %p", i, (void *)base);
		if (syscall(SYS_brk, base + len) != (long)(base + len))
			DIE("round %ld: brk could not trim", i);
		fill(base, len, (uint64_t)i);
		long bad = verify(base, len, (uint64_t)i);
		if (bad >= 0)
			DIE("round %ld: byte %ld wrong", i, bad);
		/* glibc's brk, so that sbrk's idea of the break follows */
		if (brk(base) != 0)
			DIE("round %ld: brk could not shrink", i);
	}
	printf("heaptrim: %ld rounds of %zu pages right\n", rounds, pages);
	return 0;
}

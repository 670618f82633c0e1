/* hold.c - touches MB of memory, verifies it, then holds it for a while. */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"

int main(int argc, char **argv)
{
	/* hold MB [SECONDS [MORE FILE]]; also reachable as argv[1] == "hold"
	 * from spawn. With MORE and FILE: once FILE exists (looked for by
	 * stat alone, so that waiting changes no usage), MORE MB are touched
	 * as well, and all of it is held for SECONDS more. */
	int a = argc > 1 && !strcmp(argv[1], "hold") ? 2 : 1;
	size_t len = (size_t)(argc > a ? atol(argv[a]) : 16) << 20;
	double secs = argc > a + 1 ? atof(argv[a + 1]) : 1.0;
	/* mmap, not malloc: under ASan malloc serves from the sanitizer's own
	 * reservation, which memgrp does not count, and the tests that use this
	 * program need its memory charged in every build. */
	unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		DIE("mmap failed");
	fill(p, len, 9);
	printf("holding %zu MB\n", len >> 20);
	fflush(stdout);
	if (argc > a + 3) {
		size_t more = (size_t)atol(argv[a + 2]) << 20;
		struct stat st;
		while (stat(argv[a + 3], &st) != 0)
			usleep(20000);
		unsigned char *q = mmap(NULL, more, PROT_READ | PROT_WRITE,
					MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (q == MAP_FAILED)
			DIE("mmap failed");
		fill(q, more, 10);
		printf("holding %zu MB more\n", more >> 20);
		fflush(stdout);
		usleep((useconds_t)(secs * 1e6));
		if (verify(q, more, 10) >= 0)
			DIE("held memory changed");
	} else {
		usleep((useconds_t)(secs * 1e6));
	}
	if (verify(p, len, 9) >= 0)
		DIE("held memory changed");
	return 0;
}

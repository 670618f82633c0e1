/* common.h - helpers for the integration test programs: patterns and checksums. */
#ifndef MGT_PROGS_COMMON_H
#define MGT_PROGS_COMMON_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* A byte pattern that differs per page and per seed, so that a page read
 * back as zeros, or from the wrong place, is caught. */
static inline void fill(unsigned char *p, size_t len, uint64_t seed)
{
	for (size_t i = 0; i < len; i += 8) {
		uint64_t v = (i / 8 + 1) * 0x9E3779B97F4A7C15ULL ^ seed;
		for (size_t k = 0; k < 8 && i + k < len; k++)
			p[i + k] = (unsigned char)(v >> (8 * k));
	}
}

/* Index of the first byte that differs from the pattern, or -1. */
static inline long verify(const unsigned char *p, size_t len, uint64_t seed)
{
	for (size_t i = 0; i < len; i += 8) {
		uint64_t v = (i / 8 + 1) * 0x9E3779B97F4A7C15ULL ^ seed;
		for (size_t k = 0; k < 8 && i + k < len; k++)
			if (p[i + k] != (unsigned char)(v >> (8 * k)))
				return (long)(i + k);
	}
	return -1;
}

#define DIE(...)                                      \
	do {                                          \
		fprintf(stderr, __VA_ARGS__);         \
		fputc('\n', stderr);                  \
		exit(1);                              \
	} while (0)

/* Rewrites [p, p + len) with a new pattern each pass and checks it, until
 * *stop: a thread that keeps its group at the limit, so that the agent
 * evicts all the while. Counts the passes in *passes if not NULL. */
static inline void rewrite_until(unsigned char *p, size_t len, _Atomic bool *stop,
				 _Atomic unsigned long *passes, const char *what)
{
	for (uint64_t seed = 1; !*stop; seed++) {
		fill(p, len, seed);
		long bad = verify(p, len, seed);
		if (bad >= 0)
			DIE("%s, pass %llu: byte %ld wrong", what, (unsigned long long)seed, bad);
		if (passes)
			(*passes)++;
	}
}

#endif

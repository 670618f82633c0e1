/* harness.h - a minimal test harness: cases, assertions that print both sides, skips. */
#ifndef MGT_HARNESS_H
#define MGT_HARNESS_H

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * A test executable lists its cases in main() with MGT_RUN and ends with
 * MGT_DONE. An assertion that fails prints where and both values, marks the
 * case failed and returns from it. Exit status: 0 all passed, 1 any failed,
 * 77 (meson's "skipped") when every case skipped.
 * Run one case alone with: ./test_x CASE_NAME.
 */

struct mgt_state {
	int failed_cases, passed_cases, skipped_cases;
	bool case_failed, case_skipped;
	const char *only;
};
static struct mgt_state mgt;

#define MGT_FAIL_AT(...)                                                      \
	do {                                                                  \
		fprintf(stderr, "  %s:%d: ", __FILE__, __LINE__);             \
		fprintf(stderr, __VA_ARGS__);                                 \
		fputc('\n', stderr);                                          \
		mgt.case_failed = true;                                       \
	} while (0)

#define CHECK(cond)                                                           \
	do {                                                                  \
		if (!(cond)) {                                                \
			MGT_FAIL_AT("CHECK(%s) failed", #cond);               \
			return;                                               \
		}                                                             \
	} while (0)

#define CHECK_MSG(cond, ...)                                                  \
	do {                                                                  \
		if (!(cond)) {                                                \
			MGT_FAIL_AT("CHECK(%s) failed", #cond);               \
			fprintf(stderr, "    ");                              \
			fprintf(stderr, __VA_ARGS__);                         \
			fputc('\n', stderr);                                  \
			return;                                               \
		}                                                             \
	} while (0)

#define CHECK_OP_U(a, op, b)                                                  \
	do {                                                                  \
		uint64_t mgt_a = (uint64_t)(a), mgt_b = (uint64_t)(b);        \
		if (!(mgt_a op mgt_b)) {                                      \
			MGT_FAIL_AT("CHECK(%s %s %s) failed: %" PRIu64        \
				    " vs %" PRIu64,                           \
				    #a, #op, #b, mgt_a, mgt_b);               \
			return;                                               \
		}                                                             \
	} while (0)

#define CHECK_EQ(a, b) CHECK_OP_U(a, ==, b)
#define CHECK_NE(a, b) CHECK_OP_U(a, !=, b)
#define CHECK_LE(a, b) CHECK_OP_U(a, <=, b)
#define CHECK_LT(a, b) CHECK_OP_U(a, <, b)
#define CHECK_GE(a, b) CHECK_OP_U(a, >=, b)

#define CHECK_INT_EQ(a, b)                                                    \
	do {                                                                  \
		long long mgt_a = (long long)(a), mgt_b = (long long)(b);     \
		if (mgt_a != mgt_b) {                                         \
			MGT_FAIL_AT("CHECK(%s == %s) failed: %lld vs %lld",   \
				    #a, #b, mgt_a, mgt_b);                    \
			return;                                               \
		}                                                             \
	} while (0)

#define CHECK_STR_EQ(a, b)                                                    \
	do {                                                                  \
		const char *mgt_a = (a), *mgt_b = (b);                        \
		if (strcmp(mgt_a, mgt_b) != 0) {                              \
			MGT_FAIL_AT("CHECK(%s == %s) failed: \"%s\" vs \"%s\"", \
				    #a, #b, mgt_a, mgt_b);                    \
			return;                                               \
		}                                                             \
	} while (0)

/* Marks the case skipped, with the reason, and returns from it. */
#define SKIP(...)                                                             \
	do {                                                                  \
		fprintf(stderr, "  skipped: ");                               \
		fprintf(stderr, __VA_ARGS__);                                 \
		fputc('\n', stderr);                                          \
		mgt.case_skipped = true;                                      \
		return;                                                       \
	} while (0)

static inline void mgt_init(int argc, char **argv)
{
	mgt.only = argc > 1 ? argv[1] : NULL;
	setvbuf(stdout, NULL, _IOLBF, 0);
}

#define MGT_INIT(argc, argv) mgt_init(argc, argv)

#define MGT_RUN(fn)                                                           \
	do {                                                                  \
		if (mgt.only && strcmp(mgt.only, #fn) != 0)                   \
			break;                                                \
		mgt.case_failed = mgt.case_skipped = false;                   \
		fn();                                                         \
		if (mgt.case_failed)                                          \
			mgt.failed_cases++;                                   \
		else if (mgt.case_skipped)                                    \
			mgt.skipped_cases++;                                  \
		else                                                          \
			mgt.passed_cases++;                                   \
		printf("%-4s %s\n",                                           \
		       mgt.case_failed ? "FAIL" : mgt.case_skipped ? "SKIP" : "ok", \
		       #fn);                                                  \
	} while (0)

#define MGT_DONE()                                                            \
	do {                                                                  \
		printf("%d passed, %d failed, %d skipped\n", mgt.passed_cases, \
		       mgt.failed_cases, mgt.skipped_cases);                  \
		if (mgt.failed_cases)                                         \
			return 1;                                             \
		if (mgt.passed_cases == 0)                                    \
			return mgt.skipped_cases ? 77 : 1; /* ran nothing */  \
		return 0;                                                     \
	} while (0)

/* A small, fast, seedable generator for randomized tests (xorshift64*). */
static inline uint64_t mgt_rand(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1DULL;
}

/* Uniform in [0, n). */
static inline uint64_t mgt_below(uint64_t *s, uint64_t n)
{
	return n ? mgt_rand(s) % n : 0;
}

/* The seed for randomized tests: MGT_SEED from the environment, or fixed,
 * printed so a failure can be replayed. */
static inline uint64_t mgt_seed(void)
{
	const char *env = getenv("MGT_SEED");
	uint64_t seed = env ? strtoull(env, NULL, 0) : 0x6d656d677270ULL;
	if (seed == 0)
		seed = 1;
	printf("     seed %" PRIu64 " (set MGT_SEED to replay)\n", seed);
	return seed;
}

#endif

/* notify.c - run under `memgrp run -m 64M`: registers thresholds, a pressure
 * level and OOM on its own group through libmemgrp, moves its usage across
 * them, and checks that every crossing is delivered, exactly. */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "memgrp.h"
#include "common.h"

#define MB (1UL << 20)

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Sums what efd delivers until it reaches want (or 3 s pass), then waits
 * 200 ms more for anything extra. Returns the total seen. */
static uint64_t collect(int efd, uint64_t want)
{
	uint64_t total = 0;
	double end = now() + 3.0;
	bool settled = false;

	for (;;) {
		double left = (total >= want ? (settled ? 0 : 0.2) : end - now());
		if (left <= 0)
			break;
		struct pollfd p = {.fd = efd, .events = POLLIN};
		if (poll(&p, 1, (int)(left * 1000) + 1) == 1) {
			int64_t n = mg_event_read(efd);
			if (n > 0)
				total += (uint64_t)n;
		} else if (total >= want) {
			settled = true;
		}
	}
	return total;
}

static unsigned char *touch(size_t len, uint64_t seed)
{
	unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		DIE("mmap failed");
	fill(p, len, seed);
	return p;
}

static int failures;
static void expect(const char *what, uint64_t got, uint64_t want)
{
	printf("%s %s: %llu (want %llu)\n", got == want ? "ok  " : "FAIL", what,
	       (unsigned long long)got, (unsigned long long)want);
	failures += got != want;
}

int main(void)
{
	int err = 0;
	mg_client_t *c = mg_connect(NULL, &err);
	if (!c)
		DIE("mg_connect: %s", strerror(-err));
	int t16 = mg_threshold_add(c, NULL, MG_COUNTER_MEMORY, 16 * MB);
	int t32 = mg_threshold_add(c, NULL, MG_COUNTER_MEMORY, 32 * MB);
	int tsw = mg_threshold_add(c, NULL, MG_COUNTER_MEMSW, 24 * MB);
	int plow = mg_pressure_add(c, NULL, MG_PRESSURE_LOW, MG_PRESSURE_LOCAL);
	int oom = mg_oom_add(c, NULL);
	if (t16 < 0 || t32 < 0 || tsw < 0 || plow < 0 || oom < 0)
		DIE("register: %s", mg_last_error(c));
	/* Bad input: a clear error, nothing registered. */
	int bad = mg_threshold_add(c, "no/such/group", MG_COUNTER_MEMORY, MB);
	printf("%s bad group: %d (%s)\n", bad == -ENOENT ? "ok  " : "FAIL", bad, mg_last_error(c));
	failures += bad != -ENOENT;

	mg_stats_t st;
	if (mg_stats(c, NULL, &st) != 0)
		DIE("mg_stats: %s", mg_last_error(c));
	printf("group usage %llu, limit %llu\n", (unsigned long long)st.usage,
	       (unsigned long long)st.limit);

	/* Up through 16M and 32M (and memsw's 24M), then down again. */
	unsigned char *a = touch(40 * MB, 1);
	expect("up: 16M", collect(t16, 1), 1);
	expect("up: 32M", collect(t32, 1), 1);
	expect("up: memsw 24M", collect(tsw, 1), 1);
	if (verify(a, 40 * MB, 1) >= 0)
		DIE("data changed");
	munmap(a, 40 * MB);
	expect("down: 16M", collect(t16, 1), 1);
	expect("down: 32M", collect(t32, 1), 1);
	expect("down: memsw 24M", collect(tsw, 1), 1);

	/* No rate limiting: 20 quick round trips over 32M, 40 crossings. */
	for (int i = 0; i < 20; i++) {
		unsigned char *b = touch(36 * MB, (uint64_t)i);
		munmap(b, 36 * MB);
	}
	expect("20 round trips over 32M", collect(t32, 40), 40);
	expect("20 round trips over 16M", collect(t16, 40), 40);

	/* Pressure low at 75 % of 64M = 48M: only upward entries count. */
	for (int i = 0; i < 3; i++) {
		unsigned char *b = touch(52 * MB, 7);
		munmap(b, 52 * MB);
	}
	expect("pressure low entered 3 times", collect(plow, 3), 3);

	/* Unregistering stops the events. */
	if (mg_remove(c, t32) != 0)
		DIE("mg_remove: %s", mg_last_error(c));
	unsigned char *d = touch(36 * MB, 9);
	munmap(d, 36 * MB);
	/* 16M saw the 3 pressure round trips (6) and this one (2). */
	expect("16M still counted after removing 32M", collect(t16, 8), 8);
	struct pollfd p32 = {.fd = t32, .events = POLLIN};
	expect("removed 32M's eventfd is closed", (uint64_t)(poll(&p32, 1, 0) == 1 && (p32.revents & POLLNVAL)), 1);
	struct pollfd po = {.fd = oom, .events = POLLIN};
	expect("OOM events (none happened)", (uint64_t)poll(&po, 1, 0), 0);
	mg_close(c);
	printf("%s\n", failures ? "notify FAILED" : "notify ok");
	return failures ? 1 : 0;
}

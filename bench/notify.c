/* notify.c - the cost and speed of usage-threshold notifications, measured
 * the same way under the kernel's memcg v1 (cgroup.event_control on
 * memory.usage_in_bytes) and under memgrp (libmemgrp's mg_threshold_add).
 *
 *   bench_notify latency  SYS [ROUNDS [steady|stop]]
 *                                        wake-up latency of a crossing
 *   bench_notify overhead SYS K          first-touch cost and read
 *                                        bandwidth with K thresholds set
 * SYS: "memgrp" (run under `memgrp run`), "kernel:CGDIR" (the process moves
 * itself into that memcg v1 group) or, for overhead only, "native" (no
 * group of ours, no thresholds).
 *
 * Latency. One thread writes one byte into each page of a fresh region in
 * turn, stamping the time before each write; another thread waits in
 * read() on the threshold's eventfd and stamps its wake-up. The threshold
 * sits 256 pages above the usage read before the round, so the page whose
 * write brings the group's memory to the threshold is known (page k), and
 * the latency is wake-up minus the stamp of page k: from the moment the
 * application's memory reached the threshold to the moment it heard of
 * it. "steady": the writer keeps writing until it has been woken (a
 * notifier that only looks every so many charges is charged for the pages
 * that takes, which is what an allocating application sees). "stop": the
 * writer stops at page k and sleeps up to 100 ms for the wake-up; a round
 * without one is "missed". Then the region is dropped (MADV_DONTNEED: a
 * downward crossing, drained) and the next round runs; 20 rounds of
 * warm-up are not counted. A wake-up before page k is written counts as
 * negative latency ("early"): it happens when a counter charges ahead of
 * use (the kernel's per-CPU charge batches; memgrp's fault-around).
 * Prints "ROUNDS p50_us p99_us max_us min_us early missed pages_past_p50
 * pages_past_max" (pages written after page k before the writer saw the
 * wake-up).
 *
 * Overhead (seed 000 §4.3): K thresholds spread evenly over the 64 MiB the
 * test maps, so each pass crosses every one of them upward (at first
 * touch) and downward (at munmap). Prints "K first_touch_ns_per_page
 * read_mb_per_s", each the median of 9 passes: first touch = write one
 * byte per page of a fresh 64 MiB mapping; read bandwidth = sum every
 * 8-byte word of a 64 MiB mapping already written, 4 sweeps.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "memgrp.h"

#define PAGE 4096UL
#define LAT_PAGES 2048UL     /* the latency region: 8 MiB */
#define LAT_OFFSET 256UL     /* threshold distance above the round's usage, pages */
#define OVH_BYTES (64UL << 20)
#define OVH_PASSES 9

static void die(const char *what)
{
	fprintf(stderr, "bench_notify: %s: %s\n", what, strerror(errno));
	exit(1);
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The system under test: where usage is read and thresholds registered. */
struct sys {
	enum { SYS_NATIVE, SYS_KERNEL, SYS_MEMGRP } kind;
	int usage_fd;    /* kernel: memory.usage_in_bytes */
	int control_fd;  /* kernel: cgroup.event_control */
	mg_client_t *mg; /* memgrp */
};

static void sys_open(struct sys *s, const char *spec)
{
	memset(s, 0, sizeof(*s));
	s->usage_fd = s->control_fd = -1;
	if (!strcmp(spec, "native")) {
		s->kind = SYS_NATIVE;
	} else if (!strcmp(spec, "memgrp")) {
		int err = 0;
		s->kind = SYS_MEMGRP;
		s->mg = mg_connect(NULL, &err);
		if (!s->mg) {
			errno = -err;
			die("mg_connect (run under `memgrp run`)");
		}
	} else if (!strncmp(spec, "kernel:", 7)) {
		char path[4096];
		const char *dir = spec + 7;
		s->kind = SYS_KERNEL;
		snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
		int fd = open(path, O_WRONLY);
		if (fd < 0 || dprintf(fd, "%d\n", getpid()) < 0)
			die(path);
		close(fd);
		snprintf(path, sizeof(path), "%s/memory.usage_in_bytes", dir);
		if ((s->usage_fd = open(path, O_RDONLY)) < 0)
			die(path);
		snprintf(path, sizeof(path), "%s/cgroup.event_control", dir);
		if ((s->control_fd = open(path, O_WRONLY)) < 0)
			die(path);
	} else {
		fprintf(stderr, "bench_notify: unknown system '%s' (memgrp, kernel:DIR, native)\n", spec);
		exit(1);
	}
}

static uint64_t sys_usage(struct sys *s)
{
	if (s->kind == SYS_MEMGRP) {
		mg_stats_t st;
		int r = mg_stats(s->mg, NULL, &st);
		if (r < 0) {
			errno = -r;
			die("mg_stats");
		}
		return st.usage;
	}
	char buf[64];
	ssize_t n = pread(s->usage_fd, buf, sizeof(buf) - 1, 0);
	if (n <= 0)
		die("read memory.usage_in_bytes");
	buf[n] = 0;
	return strtoull(buf, NULL, 10);
}

/* An eventfd that counts crossings of `bytes` in either direction. */
static int sys_threshold(struct sys *s, uint64_t bytes)
{
	if (s->kind == SYS_MEMGRP) {
		int efd = mg_threshold_add(s->mg, NULL, MG_COUNTER_MEMORY, bytes);
		if (efd < 0) {
			fprintf(stderr, "bench_notify: mg_threshold_add: %s\n", mg_last_error(s->mg));
			exit(1);
		}
		return efd;
	}
	if (s->kind != SYS_KERNEL) {
		fprintf(stderr, "bench_notify: no thresholds without a group\n");
		exit(1);
	}
	int efd = eventfd(0, EFD_CLOEXEC);
	if (efd < 0)
		die("eventfd");
	if (dprintf(s->control_fd, "%d %d %llu", efd, s->usage_fd, (unsigned long long)bytes) < 0)
		die("write cgroup.event_control");
	return efd;
}

/* Reads whatever the eventfd holds without waiting. */
static void drain(int efd, int wait_ms)
{
	struct pollfd p = {.fd = efd, .events = POLLIN};
	uint64_t v;
	while (poll(&p, 1, wait_ms) == 1) {
		if (read(efd, &v, sizeof(v)) != sizeof(v))
			die("read eventfd");
		wait_ms = 0;
	}
}

/* ---- latency ---- */

static struct {
	int efd;
	sem_t arm;
	sem_t done; /* posted after each wake-up (stop mode waits on it) */
	atomic_int waiting, woke, quit;
	uint64_t t_wake;
} w;

static void *waiter_main(void *arg)
{
	(void)arg;
	for (;;) {
		uint64_t v;
		while (sem_wait(&w.arm) != 0)
			;
		if (atomic_load(&w.quit))
			return NULL;
		atomic_store(&w.waiting, 1);
		if (read(w.efd, &v, sizeof(v)) != sizeof(v))
			die("read eventfd");
		w.t_wake = now_ns();
		atomic_store_explicit(&w.woke, 1, memory_order_release);
		sem_post(&w.done);
	}
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

static int latency(struct sys *s, long rounds, bool stop)
{
	const long warmup = 20;
	char *region = mmap(NULL, LAT_PAGES * PAGE, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t *stamp = calloc(LAT_PAGES, sizeof(*stamp));
	int64_t *lat = calloc((size_t)rounds, sizeof(*lat));
	int64_t *past = calloc((size_t)rounds, sizeof(*past));
	pthread_t t;
	if (region == MAP_FAILED || !stamp || !lat || !past)
		die("allocate");
	memset(stamp, 0, LAT_PAGES * sizeof(*stamp));
	memset(lat, 0, (size_t)rounds * sizeof(*lat));
	memset(past, 0, (size_t)rounds * sizeof(*past));
	if (sem_init(&w.arm, 0, 0) != 0 || sem_init(&w.done, 0, 0) != 0 || pthread_create(&t, NULL, waiter_main, NULL) != 0)
		die("start the waiting thread");
	usleep(10000);

	uint64_t threshold = sys_usage(s) + LAT_OFFSET * PAGE;
	w.efd = sys_threshold(s, threshold);
	long done = 0, early = 0, missed = 0;
	for (long r = 0; done < rounds; r++) {
		drain(w.efd, 0);
		uint64_t u0 = sys_usage(s);
		if (u0 + PAGE > threshold || threshold - u0 > (LAT_PAGES / 2) * PAGE) {
			/* Usage moved away (another charge in the group): re-place it. */
			fprintf(stderr, "bench_notify: usage %llu moved from the threshold %llu\n",
				(unsigned long long)u0, (unsigned long long)threshold);
			return 1;
		}
		unsigned long k = (unsigned long)((threshold - u0 + PAGE - 1) / PAGE) - 1;

		while (sem_trywait(&w.done) == 0)
			;
		atomic_store(&w.woke, 0);
		atomic_store(&w.waiting, 0);
		sem_post(&w.arm);
		while (!atomic_load(&w.waiting))
			;
		usleep(200); /* into read() */

		unsigned long p;
		for (p = 0; p < LAT_PAGES; p++) {
			stamp[p] = now_ns();
			region[p * PAGE] = 1;
			if (p >= k && (stop || atomic_load_explicit(&w.woke, memory_order_acquire)))
				break;
		}
		bool woke = true;
		if (stop) {
			/* Wait, asleep, for at most 100 ms. */
			struct timespec until;
			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_nsec += 100 * 1000000L;
			if (until.tv_nsec >= 1000000000L) {
				until.tv_sec++;
				until.tv_nsec -= 1000000000L;
			}
			while (sem_timedwait(&w.done, &until) != 0 && errno == EINTR)
				;
			woke = atomic_load(&w.woke);
		} else if (p == LAT_PAGES) {
			/* Not woken while writing 2048 pages: give it 100 ms. */
			for (int i = 0; i < 1000 && !atomic_load(&w.woke); i++)
				usleep(100);
			woke = atomic_load(&w.woke);
		}
		if (madvise(region, LAT_PAGES * PAGE, MADV_DONTNEED) != 0)
			die("madvise");
		if (!woke) {
			/* The downward crossing wakes the waiter at the latest. */
			for (int i = 0; i < 1000 && !atomic_load(&w.woke); i++)
				usleep(100);
			if (!atomic_load(&w.woke)) {
				/* Not even then (a notifier that checks every N
				 * charges may not have seen N): release the waiter. */
				uint64_t one = 1;
				if (write(w.efd, &one, sizeof(one)) != sizeof(one))
					die("write eventfd");
				while (sem_wait(&w.done) != 0)
					;
			}
		}
		usleep(1000);
		drain(w.efd, 20); /* the downward crossing */
		if (r < warmup)
			continue;
		if (!woke) {
			if (++missed >= rounds)
				break; /* e.g. stop mode under a notifier that checks every N charges */
			continue;
		}
		/* Pages written after page k before the writer saw the wake-up. */
		past[done] = (int64_t)p - (int64_t)k;
		lat[done] = (int64_t)w.t_wake - (int64_t)stamp[k];
		if (lat[done] < 0)
			early++;
		done++;
	}
	atomic_store(&w.quit, 1);
	sem_post(&w.arm);
	pthread_join(t, NULL);
	if (done == 0) {
		printf("0 - - - - 0 %ld - -\n", missed);
		return 0;
	}
	qsort(lat, (size_t)done, sizeof(*lat), cmp_i64);
	qsort(past, (size_t)done, sizeof(*past), cmp_i64);
	printf("%ld %.1f %.1f %.1f %.1f %ld %ld %lld %lld\n", done, lat[done / 2] / 1e3,
	       lat[done * 99 / 100] / 1e3, lat[done - 1] / 1e3, lat[0] / 1e3, early, missed,
	       (long long)past[done / 2], (long long)past[done - 1]);
	return 0;
}

/* ---- overhead ---- */

static volatile uint64_t sink;

static double median(uint64_t *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_u64);
	return (double)v[n / 2];
}

static int overhead(struct sys *s, int k)
{
	const unsigned long pages = OVH_BYTES / PAGE;
	uint64_t touch[OVH_PASSES], readt[OVH_PASSES];
	int efd[64];
	if (k < 0 || k > 64) {
		fprintf(stderr, "bench_notify: K is 0..64\n");
		return 1;
	}
	if (k > 0) {
		uint64_t base = sys_usage(s);
		for (int i = 0; i < k; i++)
			efd[i] = sys_threshold(s, base + OVH_BYTES / (uint64_t)(k + 1) * (uint64_t)(i + 1));
	}
	for (int pass = 0; pass < OVH_PASSES; pass++) {
		char *m = mmap(NULL, OVH_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (m == MAP_FAILED)
			die("mmap");
		uint64_t t0 = now_ns();
		for (unsigned long p = 0; p < pages; p++)
			m[p * PAGE] = (char)p;
		uint64_t t1 = now_ns();
		uint64_t sum = 0;
		for (int sweep = 0; sweep < 4; sweep++)
			for (const uint64_t *q = (const uint64_t *)m; q < (const uint64_t *)(m + OVH_BYTES); q++)
				sum += *q;
		uint64_t t2 = now_ns();
		sink += sum;
		if (munmap(m, OVH_BYTES) != 0)
			die("munmap");
		touch[pass] = t1 - t0;
		readt[pass] = t2 - t1;
		for (int i = 0; i < k; i++)
			drain(efd[i], 0);
	}
	double ns_page = median(touch, OVH_PASSES) / (double)pages;
	double mbs = 4.0 * (double)(OVH_BYTES >> 20) / (median(readt, OVH_PASSES) / 1e9);
	printf("%d %.0f %.0f\n", k, ns_page, mbs);
	return 0;
}

int main(int argc, char **argv)
{
	struct sys s;
	if (argc < 3) {
		fprintf(stderr, "usage: bench_notify latency SYS [ROUNDS [steady|stop]] | overhead SYS K\n"
				"       SYS: memgrp | kernel:CGROUP_DIR | native (overhead only)\n");
		return 1;
	}
	sys_open(&s, argv[2]);
	if (!strcmp(argv[1], "latency")) {
		long rounds = argc > 3 ? atol(argv[3]) : 1000;
		bool stop = argc > 4 && !strcmp(argv[4], "stop");
		if (rounds < 1 || s.kind == SYS_NATIVE || (argc > 4 && !stop && strcmp(argv[4], "steady"))) {
			fprintf(stderr, "bench_notify: latency needs ROUNDS >= 1, a group, steady|stop\n");
			return 1;
		}
		return latency(&s, rounds, stop);
	}
	if (!strcmp(argv[1], "overhead"))
		return overhead(&s, argc > 3 ? atoi(argv[3]) : 0);
	fprintf(stderr, "bench_notify: unknown test '%s'\n", argv[1]);
	return 1;
}

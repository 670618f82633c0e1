/* coop.c - a cache bigger than its group's limit: the application frees
 * entries when memgrp asks (coop), memgrp evicts its pages (evict), idle
 * entries lent back as volatile ranges (vrange), or MADV_FREE (mfree). */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "memgrp.h"

/* Usage: bench_coop coop|evict|vrange|mfree [KEYS] [OPS]
 *
 * A look-aside cache of KEYS values of 16 KiB, keys drawn from Zipf(0.99).
 * A hit reads the whole value and checks it; a miss "fetches it from the
 * backend": it spins MISS_US microseconds (environment, default 50: the
 * simulated cost of a database round trip) and writes the value into the
 * cache. The cache never evicts on its own, so with KEYS * 16 KiB above the
 * group's limit either
 *   coop:  the application registers as a cooperating client and a thread
 *          of its own drops entries (CLOCK, second chance) when the manager
 *          asks, so the memory stays under the limit and later gets of the
 *          dropped keys are misses; or
 *   evict: the application does nothing, and memgrp evicts its pages into
 *          the compressed store: every value stays a hit, but a hit on an
 *          evicted value faults and is decompressed.
 *   vrange: every UNPIN_EVERY gets, entries not got in the last
 *          COOP_UNPIN_AGE passes (1) are unpinned (mg_vrange volatile); memgrp purges them first
 *          under pressure; a get of an unpinned entry pins it again
 *          (NONVOLATILE), and if it was purged that is a miss (rebuilt),
 *          else a hit with no copy; or
 *   mfree: the same with MADV_FREE (the kernel's memcg frees those pages
 *          under its limit: run it in a memory cgroup): pinning writes each
 *          page's first word back (so the kernel keeps it) and checks the
 *          value: a page the kernel freed reads as zeros, so the check
 *          fails and the value is rebuilt.
 * OPS/4 gets warm the cache up untimed, then OPS gets are timed one by one.
 * Prints one line of key=value results (latencies of the timed gets; the
 * cooperator's figures count those gets only). A value that reads back
 * wrong is data loss: what each of its pages holds goes to stderr, exit
 * status 2. COOP_LOG=1: a line on stderr per request from the manager.
 * COOP_TRACE=1: a data loss also prints the key's last events. */

#define VALUE_BYTES (16 * 1024L)
#define PAGE_BYTES 4096L
#define VALUE_PAGES (VALUE_BYTES / PAGE_BYTES)
#define VALUE_WORDS (VALUE_BYTES / 8)
#define PAGE_WORDS (PAGE_BYTES / 8)
#define ZIPF_S 0.99

/* A slot's state. The worker never holds a lock while it touches the
 * arena: a fault at the group's limit waits for the manager, which may be
 * waiting for the cooperator thread, so a mutex shared by the two could
 * deadlock. Instead whoever works on a slot first moves it to BUSY with a
 * compare-and-swap, and the other side skips (cooperator) or waits for
 * (worker) a BUSY slot; the cooperator never waits at all. */
enum {
	ABSENT = 0,
	PRESENT = 1,
	REFERENCED = 2, /* only with PRESENT: got since the clock hand passed */
	BUSY = 4,
	UNPINNED = 8, /* only with PRESENT: volatile (vrange) or MADV_FREE'd (mfree) */
};

enum { M_COOP, M_EVICT, M_VRANGE, M_MFREE };
static int mode;
#define UNPIN_EVERY 1024
/* vrange and mfree: entries unpinned, pinned again with their data, and
 * rebuilt because pages were gone. */
static long unpinned, repinned, rebuilt;
/* The calls that pin (one per entry) and unpin (one per run of adjacent
 * idle entries), and the time spent in them. */
static long pin_calls, unpin_calls;
static uint64_t pin_ns, unpin_ns;

static long keys;
static unsigned char *arena;     /* slot of key k at k * VALUE_BYTES */
static _Atomic unsigned char *state;
/* vrange and mfree: passes of unpin_idle an entry has stayed idle (not
 * got), and how many make it unpinned (COOP_UNPIN_AGE, default 1: every
 * entry not got since the last pass, the policy of the earlier tables).
 * Measured at 64M, MISS_US=0 (docs/benchmarks.md, "third pass"): 8 cut
 * vrange's pin and unpin calls from 88 000 to 52 000 and the run's CPU
 * time by 19 % at the same hit rate, but raised mfree's hit rate past
 * vrange's; 16 left too much pinned for the limit (memgrp then evicted
 * pinned values). */
static unsigned char *idle_passes;
static int unpin_age = 1;
static uint64_t *sums;           /* each key's expected checksum */

/* What the cooperator did; read by the main thread at the end. */
static atomic_long coop_requests, coop_pages_asked, entries_dropped, coop_max_us;

static uint64_t now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ULL + (uint64_t)t.tv_nsec;
}

/* COOP_TRACE=1: the last events of each key, printed with a data loss (the
 * times are CLOCK_MONOTONIC, as in the agent's MEMGRP_TRACE records). */
enum { EV_DROP = 1, EV_DROPPED, EV_FILL, EV_FILLED, EV_HIT };
#define HIST 8
struct hist {
	uint64_t ns[HIST];
	unsigned char ev[HIST];
	unsigned next;
};
static struct hist *hist;

static void note(long k, int ev)
{
	if (!hist)
		return;
	struct hist *h = &hist[k];
	h->ns[h->next % HIST] = now_ns();
	h->ev[h->next % HIST] = (unsigned char)ev;
	h->next++;
}

static void print_history(long k)
{
	static const char *names[] = {"", "drop (madvise)", "dropped (madvise returned)", "fill",
				      "filled", "hit, checked"};

	if (!hist)
		return;
	for (unsigned i = hist[k].next > HIST ? hist[k].next - HIST : 0; i < hist[k].next; i++)
		fprintf(stderr, "    %.6f %s\n", hist[k].ns[i % HIST] / 1e9, names[hist[k].ev[i % HIST]]);
}

/* ---- deterministic values ---- */

static uint64_t mix64(uint64_t x)
{
	/* a 64-bit finalizer (Stafford's variant 13): every input bit
	 * reaches every output bit, so neighbouring keys get unrelated
	 * words */
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* Word w of key k's value. In each page the first half is pseudo-random
 * and the second half a constant, so a value compresses about 2:1, in the
 * range of real heap data: an all-random value would make eviction look
 * worse than it is, a constant one would hit the store's same-filled
 * shortcut. The random half depends on the key, so a value restored to
 * the wrong slot or the wrong page fails its check. */
static inline uint64_t value_word(long k, long w)
{
	if ((w % PAGE_WORDS) < PAGE_WORDS / 2)
		return mix64((uint64_t)k * VALUE_WORDS + (uint64_t)w + 1);
	return 0x2e2e2e2e2e2e2e2eULL;
}

/* A position-dependent checksum over 16 KiB. Four independent lanes so
 * that the multiply chain does not dominate a hit. */
#define SUM_STEP(h, x) ((h) = ((h) ^ (x)) * 0x100000001b3ULL)

static uint64_t sum_fold(const uint64_t h[4])
{
	return mix64(h[0] ^ mix64(h[1] ^ mix64(h[2] ^ mix64(h[3]))));
}

static uint64_t sum_memory(const uint64_t *v)
{
	uint64_t h[4] = {1, 2, 3, 4};

	for (long w = 0; w < VALUE_WORDS; w += 4) {
		SUM_STEP(h[0], v[w]);
		SUM_STEP(h[1], v[w + 1]);
		SUM_STEP(h[2], v[w + 2]);
		SUM_STEP(h[3], v[w + 3]);
	}
	return sum_fold(h);
}

/* The same checksum from the generator, without memory: the table of
 * expected sums costs 8 bytes a key instead of a second copy of the data. */
static uint64_t sum_expected(long k)
{
	uint64_t h[4] = {1, 2, 3, 4};

	for (long w = 0; w < VALUE_WORDS; w++)
		SUM_STEP(h[w & 3], value_word(k, w));
	return sum_fold(h);
}

static void fill_value(long k)
{
	uint64_t *v = (uint64_t *)(arena + k * VALUE_BYTES);

	for (long w = 0; w < VALUE_WORDS; w++)
		v[w] = value_word(k, w);
}

static void check_value(long k, const char *when)
{
	const uint64_t *v = (const uint64_t *)(arena + k * VALUE_BYTES);

	if (sum_memory(v) == sums[k])
		return;
	/* Say what each page holds: the evidence for a bug report. */
	fprintf(stderr, "bench_coop: DATA LOSS: key %ld (slot at %p) read back wrong, %s:\n", k,
		(const void *)v, when);
	for (long p = 0; p < VALUE_PAGES; p++) {
		const uint64_t *pg = v + p * PAGE_WORDS;
		long bad = 0, zero = 0, first = -1;

		for (long w = 0; w < PAGE_WORDS; w++) {
			zero += pg[w] == 0;
			if (pg[w] != value_word(k, p * PAGE_WORDS + w) && bad++ == 0)
				first = w;
		}
		if (!bad)
			fprintf(stderr, "    page %ld: right\n", p);
		else
			fprintf(stderr, "    page %ld: %ld of %ld words wrong (%ld zero), first word %ld: %#llx, want %#llx\n",
				p, bad, PAGE_WORDS, zero, first, (unsigned long long)pg[first],
				(unsigned long long)value_word(k, p * PAGE_WORDS + first));
	}
	print_history(k);
	exit(2);
}

/* ---- randomness and the Zipf distribution ---- */

/* xorshift64*, fixed seed: both modes see the same key sequence. */
static uint64_t rng_state = 0x853c49e6748fea9bULL;

static uint64_t rng(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dULL;
}

/* ln and exp without libm (the bench links libmemgrp and threads only).
 * ln: x = m * 2^e with m in [1, 2), ln m = 2 atanh((m - 1) / (m + 1)),
 * whose series in t <= 1/3 is below 1e-15 after 16 terms. */
static double ln(double x)
{
	int e = 0;
	double t, t2, term, sum = 0;

	while (x >= 2) {
		x /= 2;
		e++;
	}
	while (x < 1) {
		x *= 2;
		e--;
	}
	t = (x - 1) / (x + 1);
	t2 = t * t;
	term = t;
	for (int k = 1; k < 34; k += 2) {
		sum += term / k;
		term *= t2;
	}
	return e * 0.69314718055994530942 + 2 * sum;
}

/* exp: halve x until it is small, sum the series, square back. */
static double expo(double x)
{
	int halvings = 0;
	double sum = 1, term = 1;

	while (x > 0.5 || x < -0.5) {
		x /= 2;
		halvings++;
	}
	for (int k = 1; k < 20; k++) {
		term *= x / k;
		sum += term;
	}
	while (halvings--)
		sum *= sum;
	return sum;
}

static double *zipf_cdf(long n)
{
	double *cdf = malloc(n * sizeof(*cdf)), total = 0;

	if (!cdf) {
		perror("malloc");
		exit(1);
	}
	for (long j = 1; j <= n; j++) {
		total += expo(-ZIPF_S * ln((double)j));
		cdf[j - 1] = total;
	}
	for (long j = 0; j < n; j++)
		cdf[j] /= total;
	return cdf;
}

/* The rank drawn: the first whose CDF exceeds a uniform [0, 1) draw. */
static long zipf_rank(const double *cdf, long n)
{
	double u = (double)(rng() >> 11) * 0x1p-53;
	long lo = 0, hi = n - 1;

	while (lo < hi) {
		long mid = (lo + hi) / 2;

		if (cdf[mid] > u)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

/* The highest usage of the memory cgroup (v1) this process runs in, or
 * -1: under memgrp run, the group's kernel cgroup (the backstop's), which
 * the kernel charges for everything: the values, memgrp's compressed
 * store and the agent's own memory. What the mode cost the host. */
static long long kernel_max_usage(void)
{
	char line[512], path[700];
	long long v = -1;
	FILE *f = fopen("/proc/self/cgroup", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		char *p = strstr(line, ":memory:");
		if (!p)
			continue;
		p[strcspn(p, "\n")] = '\0';
		snprintf(path, sizeof(path), "/sys/fs/cgroup/memory%s/memory.max_usage_in_bytes",
			 p + 8);
		FILE *u = fopen(path, "r");
		if (u) {
			if (fscanf(u, "%lld", &v) != 1)
				v = -1;
			fclose(u);
		}
	}
	fclose(f);
	return v;
}

/* ---- the cache ---- */

static long miss_us = 50;

/* The backend fetch: spinning rather than sleeping, so its cost is exact
 * and the same in both modes (measured on the 2-core test machine: a
 * nanosleep of 50 us took 107 us on average, 1.4 ms at worst). */
static void backend_fetch(void)
{
	uint64_t until = now_ns() + (uint64_t)miss_us * 1000;

	while (now_ns() < until)
		;
}

/* An unpinned entry is pinned again: 1 if its data is all there. */
static int pin(long k)
{
	unsigned char *v = arena + k * VALUE_BYTES;

	if (mode == M_VRANGE) {
		uint64_t t0 = now_ns();
		int purged = 1, rc = mg_vrange(v, VALUE_BYTES, MG_VRANGE_NONVOLATILE, &purged);
		pin_ns += now_ns() - t0;
		pin_calls++;
		if (rc) {
			fprintf(stderr, "bench_coop: mg_vrange nonvolatile: %s\n", strerror(-rc));
			exit(1);
		}
		return !purged;
	}
	/* MADV_FREE: a write keeps a page the kernel has not freed yet; one
	 * it freed reads (and is written back) as zeros, which the check
	 * finds. */
	for (long p = 0; p < VALUE_PAGES; p++) {
		volatile uint64_t *w = (volatile uint64_t *)(v + p * PAGE_BYTES);
		*w = *w;
	}
	return sum_memory((const uint64_t *)v) == sums[k];
}

/* Unpins the n adjacent entries from k in one call (a pin later takes
 * one entry out of the range: mg_vrange cuts it). */
static void unpin(long k, long n)
{
	unsigned char *v = arena + k * VALUE_BYTES;
	uint64_t t0 = now_ns();
	int rc = mode == M_VRANGE ? mg_vrange(v, (size_t)n * VALUE_BYTES, MG_VRANGE_VOLATILE, NULL)
				  : madvise(v, (size_t)n * VALUE_BYTES, MADV_FREE) ? -errno : 0;

	unpin_ns += now_ns() - t0;
	unpin_calls++;
	if (rc) {
		fprintf(stderr, "bench_coop: unpin: %s\n", strerror(-rc));
		exit(1);
	}
	for (long i = k; i < k + n; i++)
		atomic_store(&state[i], PRESENT | UNPINNED);
	unpinned += n;
}

/* Every UNPIN_EVERY gets: the entries not got since the last pass are
 * unpinned (CLOCK: a got entry loses its bit and stays pinned), a run of
 * adjacent ones in one call. */
static void unpin_idle(void)
{
	long run = -1;

	for (long k = 0; k < keys; k++) {
		unsigned char s = atomic_load(&state[k]);
		if (s == (PRESENT | REFERENCED)) {
			atomic_store(&state[k], PRESENT);
			idle_passes[k] = 0;
		} else if (s == PRESENT && idle_passes[k] < 255) {
			idle_passes[k]++;
		}
		if (s == PRESENT && idle_passes[k] >= unpin_age) {
			if (run < 0)
				run = k;
			continue;
		}
		if (run >= 0)
			unpin(run, k - run);
		run = -1;
	}
	if (run >= 0)
		unpin(run, keys - run);
}

/* One get. Returns 1 for a hit, 0 for a miss. */
static int get(long k)
{
	unsigned char s;

	for (;;) {
		s = atomic_load(&state[k]);
		if (s == BUSY) {
			/* the cooperator is dropping it: a few microseconds */
			sched_yield();
			continue;
		}
		if (atomic_compare_exchange_weak(&state[k], &s, BUSY))
			break;
	}
	idle_passes[k] = 0; /* (this thread's, as unpin_idle) */
	if ((s & UNPINNED) && pin(k))
		repinned++;
	else if (s & UNPINNED) {
		rebuilt++;
		s = ABSENT; /* pages were purged: rebuilt as a miss */
	}
	if (s & PRESENT) {
		check_value(k, "on a get");
		note(k, EV_HIT);
		atomic_store(&state[k], PRESENT | REFERENCED);
		return 1;
	}
	backend_fetch();
	note(k, EV_FILL);
	fill_value(k);
	note(k, EV_FILLED);
	/* Inserted unreferenced: a value fetched once and never asked for
	 * again is the first the clock hand drops (the kernel, likewise,
	 * puts new pages on its inactive list). */
	atomic_store(&state[k], PRESENT);
	return 0;
}

/* ---- the cooperator ---- */

struct coop {
	mg_client_t *c;
	int efd;
};

/* Drops entries until `pages` pages are freed: CLOCK with second chance.
 * A referenced entry loses its bit and is passed; an unreferenced one is
 * taken (PRESENT -> BUSY, which fails if the worker got it first), its
 * frames are given back with MADV_DONTNEED (the agent sees the REMOVE event
 * and uncharges them), and it is ABSENT. Three turns of the hand at most:
 * the first may only clear bits, the second finds them clear unless the
 * worker keeps getting them. Returns the entries dropped. The slot is
 * marked ABSENT only once madvise has returned: the worker may refill it
 * then, and its writes must land after the frames are gone. */
static long scanned_last; /* slots the last call looked at (COOP_LOG) */

static long clock_drop(uint64_t pages)
{
	static long hand;
	long dropped = 0, scanned;
	uint64_t freed = 0;

	for (scanned = 0; freed < pages && scanned < 3 * keys; scanned++) {
		long k = hand;
		unsigned char s = atomic_load(&state[k]);

		hand = (hand + 1) % keys;
		if (s == (PRESENT | REFERENCED)) {
			atomic_compare_exchange_strong(&state[k], &s, PRESENT);
			continue;
		}
		if (s != PRESENT || !atomic_compare_exchange_strong(&state[k], &s, BUSY))
			continue;
		note(k, EV_DROP);
		if (madvise(arena + k * VALUE_BYTES, VALUE_BYTES, MADV_DONTNEED) != 0) {
			perror("bench_coop: madvise");
			exit(1);
		}
		note(k, EV_DROPPED);
		atomic_store(&state[k], ABSENT);
		freed += VALUE_PAGES;
		dropped++;
	}
	scanned_last = scanned;
	return dropped;
}

/* Answers the manager's requests. This thread allocates nothing and
 * touches only the state array (hot) and its own stack, so it can run
 * while the worker is blocked in a fault at the limit. */
static int coop_log; /* COOP_LOG=1: a line on stderr per request */

static void *cooperator(void *arg)
{
	struct coop *co = arg;

	for (;;) {
		int64_t pages = mg_event_read(co->efd);

		if (pages <= 0)
			return NULL; /* the manager went away */
		uint64_t t0 = now_ns();
		long dropped = clock_drop((uint64_t)pages);
		mg_cooperate_done(co->c, co->efd);
		long us = (long)((now_ns() - t0) / 1000);

		atomic_fetch_add(&coop_requests, 1);
		atomic_fetch_add(&coop_pages_asked, pages);
		atomic_fetch_add(&entries_dropped, dropped);
		if (us > atomic_load(&coop_max_us))
			atomic_store(&coop_max_us, us);
		if (coop_log) {
			struct timespec ts;

			long n[8] = {0};
			for (long k = 0; k < keys; k++)
				n[atomic_load(&state[k]) & 7]++;
			fprintf(stderr, "bench_coop: states: absent %ld present %ld referenced %ld busy %ld\n",
				n[ABSENT], n[PRESENT], n[PRESENT | REFERENCED], n[BUSY]);
			clock_gettime(CLOCK_REALTIME, &ts);
			fprintf(stderr, "bench_coop: %02ld:%02ld.%03ld asked %lld pages: dropped %ld entries "
				"(%ld scanned) in %ld us\n", (long)(ts.tv_sec / 60 % 60), (long)(ts.tv_sec % 60),
				ts.tv_nsec / 1000000, (long long)pages, dropped, scanned_last, us);
		}
	}
}

static int cmp_float(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;

	return (x > y) - (x < y);
}

static void usage(void)
{
	fprintf(stderr, "usage: bench_coop coop|evict|vrange|mfree [KEYS] [OPS]   (env MISS_US, default 50)\n");
	exit(2);
}

int main(int argc, char **argv)
{
	long ops = 400000, warm, hits = 0, verified = 0;
	int cooperate;
	const char *env = getenv("MISS_US");
	double *cdf;
	uint32_t *perm;
	float *lat;
	uint64_t t0, t1;

	if (argc < 2 || argc > 4)
		usage();
	if (!strcmp(argv[1], "coop"))
		mode = M_COOP;
	else if (!strcmp(argv[1], "evict"))
		mode = M_EVICT;
	else if (!strcmp(argv[1], "vrange"))
		mode = M_VRANGE;
	else if (!strcmp(argv[1], "mfree"))
		mode = M_MFREE;
	else
		usage();
	cooperate = mode == M_COOP;
	keys = argc > 2 ? atol(argv[2]) : 16384;
	ops = argc > 3 ? atol(argv[3]) : ops;
	if (env)
		miss_us = atol(env);
	coop_log = getenv("COOP_LOG") && atoi(getenv("COOP_LOG"));
	if (keys < 16 || keys > (1L << 24) || ops < 100 || miss_us < 0)
		usage();
	warm = ops / 4;

	arena = mmap(NULL, keys * VALUE_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		     -1, 0);
	if (arena == MAP_FAILED) {
		perror("bench_coop: mmap");
		return 1;
	}
	/* 4 KiB pages: memgrp resolves and evicts 4 KiB pages only, and a
	 * huge page would make one MADV_DONTNEED of 16 KiB split it. */
	madvise(arena, keys * VALUE_BYTES, MADV_NOHUGEPAGE);
	state = calloc(keys, sizeof(*state));
	idle_passes = calloc(keys, 1);
	if (getenv("COOP_UNPIN_AGE") && atoi(getenv("COOP_UNPIN_AGE")) > 0)
		unpin_age = atoi(getenv("COOP_UNPIN_AGE"));
	if (getenv("COOP_TRACE") && atoi(getenv("COOP_TRACE")))
		hist = calloc(keys, sizeof(*hist));
	sums = malloc(keys * sizeof(*sums));
	perm = malloc(keys * sizeof(*perm));
	lat = malloc(ops * sizeof(*lat));
	if (!state || !sums || !perm || !lat) {
		perror("bench_coop: malloc");
		return 1;
	}
	/* Written now so that the timed loop does not fault on them. */
	memset(lat, 0, ops * sizeof(*lat));
	for (long k = 0; k < keys; k++)
		sums[k] = sum_expected(k);
	cdf = zipf_cdf(keys);
	/* Ranks to keys in a random order (Fisher-Yates): the hot values are
	 * scattered over the arena, not one run that readahead would serve. */
	for (long k = 0; k < keys; k++)
		perm[k] = (uint32_t)k;
	for (long k = keys - 1; k > 0; k--) {
		long j = (long)(rng() % (uint64_t)(k + 1));
		uint32_t t = perm[k];

		perm[k] = perm[j];
		perm[j] = t;
	}

	if (cooperate) {
		static struct coop co;
		pthread_t th;
		int err = 0;

		co.c = mg_connect(NULL, &err);
		if (!co.c) {
			fprintf(stderr, "bench_coop: coop mode needs a manager (run under memgrp run): %s\n",
				strerror(-err));
			return 1;
		}
		co.efd = mg_cooperate_add(co.c, NULL, 100);
		if (co.efd < 0) {
			fprintf(stderr, "bench_coop: mg_cooperate_add: %s (%s)\n", strerror(-co.efd),
				mg_last_error(co.c));
			return 1;
		}
		err = pthread_create(&th, NULL, cooperator, &co);
		if (err) {
			fprintf(stderr, "bench_coop: pthread_create: %s\n", strerror(err));
			return 1;
		}
		pthread_detach(th);
	}

	if (mode == M_VRANGE) {
		int rc = mg_vrange(arena, PAGE_BYTES, MG_VRANGE_VOLATILE, NULL);
		if (rc == 0)
			rc = mg_vrange(arena, PAGE_BYTES, MG_VRANGE_NONVOLATILE, NULL);
		if (rc) {
			fprintf(stderr, "bench_coop: vrange mode needs the memgrp agent (run under memgrp "
				"run): %s\n", strerror(-rc));
			return 1;
		}
	}
	int unpinning = mode == M_VRANGE || mode == M_MFREE;
	for (long i = 0; i < warm; i++) {
		get(perm[zipf_rank(cdf, keys)]);
		if (unpinning && i % UNPIN_EVERY == UNPIN_EVERY - 1)
			unpin_idle();
	}
	long unpinned0 = unpinned, repinned0 = repinned, rebuilt0 = rebuilt;
	long pin_calls0 = pin_calls, unpin_calls0 = unpin_calls;
	uint64_t pin_ns0 = pin_ns, unpin_ns0 = unpin_ns;
	/* The cooperator's figures count the timed gets only. */
	long req0 = atomic_load(&coop_requests), asked0 = atomic_load(&coop_pages_asked);
	long drop0 = atomic_load(&entries_dropped);

	t0 = now_ns();
	for (long i = 0; i < ops; i++) {
		long k = perm[zipf_rank(cdf, keys)];
		uint64_t a = now_ns();

		hits += get(k);
		lat[i] = (float)((now_ns() - a) / 1e3);
		/* (the pass is not a get: its time is in ops/s, not in the
		 * latencies) */
		if (unpinning && i % UNPIN_EVERY == UNPIN_EVERY - 1)
			unpin_idle();
	}
	t1 = now_ns();
	long req = atomic_load(&coop_requests) - req0, asked = atomic_load(&coop_pages_asked) - asked0;
	long drop = atomic_load(&entries_dropped) - drop0;

	/* Every value still cached must read back right (in evict mode this
	 * restores everything memgrp holds). Not timed. */
	for (long k = 0; k < keys; k++) {
		unsigned char s = atomic_load(&state[k]);

		/* (mfree: read, not pinned: a write would give each freed
		 * page a new frame, past the limit) */
		int gone = (s & UNPINNED) &&
			   (mode == M_MFREE ? sum_memory((const uint64_t *)(arena + k * VALUE_BYTES)) != sums[k]
					    : !pin(k));
		if (gone) {
			atomic_store(&state[k], ABSENT); /* purged: nothing to check */
			continue;
		}
		s &= (unsigned char)~UNPINNED;
		while (s != ABSENT) {
			if (s != BUSY && atomic_compare_exchange_weak(&state[k], &s, BUSY)) {
				check_value(k, "in the final check");
				atomic_store(&state[k], s);
				verified++;
				break;
			}
			sched_yield();
			s = atomic_load(&state[k]);
		}
	}

	qsort(lat, ops, sizeof(*lat), cmp_float);
	double secs = (t1 - t0) / 1e9, sum = 0;
	for (long i = 0; i < ops; i++)
		sum += lat[i];
	printf("ops_per_s=%.0f p50_us=%.2f p99_us=%.2f p999_us=%.2f max_us=%.0f mean_us=%.2f hit_ratio=%.4f "
	       "coop_requests=%ld coop_pages_asked=%ld entries_dropped=%ld coop_max_ms=%.1f "
	       "verified=%ld unpinned=%ld repinned=%ld rebuilt=%ld secs=%.2f "
	       "pin_calls=%ld pin_us=%.0f unpin_calls=%ld unpin_us=%.0f kmax=%lld\n",
	       ops / secs, lat[ops / 2], lat[ops * 99 / 100], lat[ops * 999 / 1000], lat[ops - 1], sum / ops,
	       (double)hits / ops, req, asked, drop, atomic_load(&coop_max_us) / 1e3, verified,
	       unpinned - unpinned0, repinned - repinned0, rebuilt - rebuilt0, secs,
	       pin_calls - pin_calls0, (double)(pin_ns - pin_ns0) / 1e3, unpin_calls - unpin_calls0,
	       (double)(unpin_ns - unpin_ns0) / 1e3, kernel_max_usage());
	fflush(stdout);
	return 0;
}

/* vrange.c - volatile ranges under memgrp: purge under pressure, the per-page report, both modes, fork, unmap and remap, misuse. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "memgrp.h"

#define PAGE 4096UL
#define MB (1UL << 20)

static sigjmp_buf jb;
static volatile sig_atomic_t got_sigbus;

static void on_sigbus(int sig)
{
	(void)sig;
	got_sigbus = 1;
	siglongjmp(jb, 1);
}

static unsigned char *map(size_t len)
{
	unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		DIE("mmap failed");
	return p;
}

static bool bit(const uint8_t *b, size_t k)
{
	return b[k / 8] >> (k % 8) & 1;
}

static bool all_zero(const unsigned char *p)
{
	for (size_t i = 0; i < PAGE; i++)
		if (p[i])
			return false;
	return true;
}

/* Whether reading the page raises SIGBUS. */
static bool raises_sigbus(const unsigned char *p)
{
	got_sigbus = 0;
	if (!sigsetjmp(jb, 1))
		(void)*(volatile const unsigned char *)p;
	return got_sigbus;
}

/*
 * purge VOL_MB MORE_MB zero|sigbus: VOL_MB made volatile (each page its
 * own pattern), then MORE_MB touched (never volatile) past the group's
 * limit, so that the agent must make room: with no swap, only by purging.
 * Checks: the report is exact (a purged page is absent: mincore, a page not
 * purged is there with its data); purged pages read as zeros or raise
 * SIGBUS, per the mode; the never-volatile data is intact; NONVOLATILE says
 * purged; afterwards every page not purged keeps its data, purged ones read
 * zeros.
 */
static int purge(size_t vol, size_t more, bool sigbus)
{
	size_t pages = vol / PAGE, npurged = 0;
	unsigned char *v = map(vol), *m, *inc = malloc(pages);
	uint8_t *rep = malloc(pages / 8 + 1), *rep2 = malloc(pages / 8 + 1);
	int purged = -1, rc;

	if (!inc || !rep || !rep2)
		DIE("malloc failed");
	fill(v, vol, 21);
	rc = mg_vrange(v, vol, MG_VRANGE_VOLATILE | (sigbus ? MG_VRANGE_SIGBUS : 0), NULL);
	if (rc)
		DIE("mg_vrange volatile: %s", strerror(-rc));
	m = map(more);
	fill(m, more, 22);
	/* The pressure goes before the checks: at the limit any page the
	 * checks take (a sanitizer's own memory) would purge another volatile
	 * page after the report was read, and reading it (zero mode) would
	 * look like a page not purged whose data changed (seen under ASan). */
	if (verify(m, more, 22) >= 0)
		DIE("never-volatile data changed");
	munmap(m, more);
	if ((rc = mg_vrange_purged(v, vol, rep)))
		DIE("mg_vrange_purged: %s", strerror(-rc));
	if (mincore(v, vol, inc))
		DIE("mincore failed");
	for (size_t k = 0; k < pages; k++) {
		bool p = bit(rep, k);
		npurged += p;
		if (p == (inc[k] & 1))
			DIE("report not exact: page %zu %s but %s", k, p ? "purged" : "not purged",
			    inc[k] & 1 ? "present" : "absent");
	}
	/* Data of the pages not purged, against the pattern (one fill of the
	 * whole range: recompute it page by page). */
	unsigned char *ref = map(PAGE);
	for (size_t k = 0; k < pages; k++) {
		if (bit(rep, k))
			continue;
		/* fill() keys the pattern on the offset in the range */
		for (size_t i = 0; i < PAGE; i += 8) {
			uint64_t w = ((k * PAGE + i) / 8 + 1) * 0x9E3779B97F4A7C15ULL ^ 21;
			memcpy(ref + i, &w, 8);
		}
		if (memcmp(ref, v + k * PAGE, PAGE))
			DIE("page %zu not purged but its data changed", k);
	}
	printf("purged %zu of %zu pages\n", npurged, pages);
	fflush(stdout);
	if (!npurged)
		DIE("nothing purged under pressure");
	if ((rc = mg_vrange_purged(v, vol, rep2)) || memcmp(rep, rep2, pages / 8))
		DIE("second report differs (%d)", rc);
	/* A touch of a purged page while still volatile. */
	size_t first = 0;
	while (!bit(rep, first))
		first++;
	if (sigbus) {
		signal(SIGBUS, on_sigbus);
		for (size_t k = 0, n = 0; k < pages && n < 64; k++)
			if (bit(rep, k) && ++n && !raises_sigbus(v + k * PAGE))
				DIE("purged page %zu read without SIGBUS", k);
		printf("purged pages raise SIGBUS\n");
	} else {
		if (!all_zero(v + first * PAGE))
			DIE("purged page %zu does not read as zeros", first);
		printf("a purged page reads as zeros\n");
	}
	rc = mg_vrange(v, vol, MG_VRANGE_NONVOLATILE, &purged);
	if (rc || purged != 1)
		DIE("nonvolatile: rc %d purged %d", rc, purged);
	for (size_t k = 0; k < pages; k++) {
		if (bit(rep, k)) {
			if (sigbus && raises_sigbus(v + k * PAGE))
				DIE("purged page %zu still raises SIGBUS after nonvolatile", k);
			if (!all_zero(v + k * PAGE))
				DIE("purged page %zu not zeros after nonvolatile", k);
			continue;
		}
		for (size_t i = 0; i < PAGE; i += 8) {
			uint64_t w = ((k * PAGE + i) / 8 + 1) * 0x9E3779B97F4A7C15ULL ^ 21;
			if (memcmp(v + k * PAGE + i, &w, 8))
				DIE("page %zu changed after nonvolatile", k);
		}
	}
	rc = mg_vrange(v, vol, MG_VRANGE_NONVOLATILE, &purged);
	if (rc != -ENOENT)
		DIE("nonvolatile twice: %d, not -ENOENT", rc);
	printf("vrange purge ok\n");
	return 0;
}

/* fork: the child inherits the marks (its report answers, all clear), and
 * both keep their data. */
static int forked(void)
{
	size_t len = 8 * MB, pages = len / PAGE;
	unsigned char *v = map(len);
	uint8_t *rep = malloc(pages / 8);
	int rc, purged = -1, st;
	pid_t pid;

	fill(v, len, 31);
	if ((rc = mg_vrange(v, len, MG_VRANGE_VOLATILE, NULL)))
		DIE("volatile: %s", strerror(-rc));
	pid = fork();
	if (pid < 0)
		DIE("fork failed");
	if (pid == 0) {
		memset(rep, 0xff, pages / 8);
		if ((rc = mg_vrange_purged(v, len, rep)))
			DIE("child: report: %s (marks not inherited)", strerror(-rc));
		for (size_t k = 0; k < pages; k++)
			if (bit(rep, k))
				DIE("child: page %zu purged", k);
		if ((rc = mg_vrange(v, len, MG_VRANGE_NONVOLATILE, &purged)) || purged)
			DIE("child: nonvolatile %d purged %d", rc, purged);
		if (verify(v, len, 31) >= 0)
			DIE("child: data changed");
		_exit(0);
	}
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st))
		DIE("child failed (%#x)", st);
	if ((rc = mg_vrange(v, len, MG_VRANGE_NONVOLATILE, &purged)) || purged)
		DIE("parent: nonvolatile %d purged %d", rc, purged);
	if (verify(v, len, 31) >= 0)
		DIE("parent: data changed");
	printf("vrange fork ok\n");
	return 0;
}

/* The table follows the unmap event, which the handler reads after
 * munmap returns: look a few times. */
static int report_until(void *p, size_t len, int want)
{
	uint8_t rep[512];
	int rc = 0;

	for (int i = 0; i < 200; i++) {
		rc = mg_vrange_purged(p, len, rep);
		if (rc == want)
			break;
		usleep(10000);
	}
	return rc;
}

/* unmap and remap: a range unmapped or moved while volatile is no longer
 * volatile; moved data is intact; the rest stays volatile. */
static int unmapped(void)
{
	size_t len = 8 * MB;
	unsigned char *v = map(len), *to;
	int rc;

	fill(v, len, 41);
	if ((rc = mg_vrange(v, len, MG_VRANGE_VOLATILE, NULL)))
		DIE("volatile: %s", strerror(-rc));
	munmap(v, 2 * MB);
	if ((rc = report_until(v, 2 * MB, -ENOENT)) != -ENOENT)
		DIE("unmapped part still volatile (%d)", rc);
	if ((rc = report_until(v + 2 * MB, 6 * MB, 0)) != 0)
		DIE("the rest not volatile (%d)", rc);
	to = mremap(v + 2 * MB, 6 * MB, 12 * MB, MREMAP_MAYMOVE);
	if (to == MAP_FAILED)
		DIE("mremap failed");
	if (to == v + 2 * MB)
		DIE("mremap did not move");
	if ((rc = report_until(to, 6 * MB, -ENOENT)) != -ENOENT)
		DIE("moved range volatile (%d)", rc);
	if ((rc = report_until(v + 2 * MB, 6 * MB, -ENOENT)) != -ENOENT)
		DIE("vacated range volatile (%d)", rc);
	for (size_t k = 0; k < 6 * MB; k += 8) {
		uint64_t w = ((2 * MB + k) / 8 + 1) * 0x9E3779B97F4A7C15ULL ^ 41;
		if (memcmp(to + k, &w, 8))
			DIE("moved data changed at %zu", k);
	}
	printf("vrange unmap ok\n");
	return 0;
}

static unsigned char *shared_range;
static _Atomic int thread_errors;

static void *flip(void *arg)
{
	(void)arg;
	for (int i = 0; i < 2000; i++) {
		int rc = mg_vrange(shared_range, 64 * PAGE, MG_VRANGE_VOLATILE, NULL), purged;
		if (rc && rc != -EEXIST)
			thread_errors++;
		rc = mg_vrange(shared_range, 64 * PAGE, MG_VRANGE_NONVOLATILE, &purged);
		if (rc && rc != -ENOENT)
			thread_errors++;
	}
	return NULL;
}

/* Misuse: an error code each time, never a crash. */
static int misuse(void)
{
	unsigned char *v = map(16 * PAGE);
	uint8_t rep[8];
	int purged, rc;
	pthread_t t[2];

	memset(v, 1, 16 * PAGE);
#define EXPECT(call, want)                                                          \
	do {                                                                       \
		if ((rc = (call)) != (want))                                       \
			DIE("%s: %d, not %d", #call, rc, want);                    \
	} while (0)
	EXPECT(mg_vrange(v + 1, PAGE, MG_VRANGE_VOLATILE, NULL), -EINVAL);
	EXPECT(mg_vrange(v, 0, MG_VRANGE_VOLATILE, NULL), -EINVAL);
	EXPECT(mg_vrange(v, PAGE, 77, NULL), -EINVAL);
	EXPECT(mg_vrange(v, SIZE_MAX, MG_VRANGE_VOLATILE, NULL), -EINVAL);
	EXPECT(mg_vrange(v, 8UL << 30, MG_VRANGE_VOLATILE, NULL), -E2BIG);
	EXPECT(mg_vrange(v, PAGE, MG_VRANGE_NONVOLATILE, &purged), -ENOENT);
	EXPECT(mg_vrange_purged(v, PAGE, NULL), -EINVAL);
	EXPECT(mg_vrange_purged(v, PAGE, rep), -ENOENT);
	EXPECT(mg_vrange(v, 8 * PAGE, MG_VRANGE_VOLATILE, NULL), 0);
	EXPECT(mg_vrange(v + 4 * PAGE, 8 * PAGE, MG_VRANGE_VOLATILE, NULL), -EEXIST);
	EXPECT(mg_vrange_purged(v + 4 * PAGE, 8 * PAGE, rep), -ENOENT); /* across its end */
	EXPECT(mg_vrange(v + 2 * PAGE, 2 * PAGE, MG_VRANGE_NONVOLATILE, &purged), 0); /* a cut */
	EXPECT(mg_vrange_purged(v, 2 * PAGE, rep), 0);
	EXPECT(mg_vrange_purged(v + 4 * PAGE, 4 * PAGE, rep), 0);
	EXPECT(mg_vrange_purged(v + 2 * PAGE, PAGE, rep), -ENOENT);
	EXPECT(mg_vrange_unpin(v + 4 * PAGE, 4 * PAGE, NULL), -EINVAL);
	EXPECT(mg_vrange_unpin(v + 2 * PAGE, PAGE, rep), -ENOENT);
	memset(rep, 0xff, sizeof(rep));
	EXPECT(mg_vrange_unpin(v + 4 * PAGE, 4 * PAGE, rep), 0); /* nothing purged: zeros */
	if (rep[0])
		DIE("unpin of a range not purged reported %#x", rep[0]);
	EXPECT(mg_vrange_purged(v + 4 * PAGE, 4 * PAGE, rep), -ENOENT); /* not volatile now */
	/* not memory memgrp manages: the agent's own .text, a shared mapping */
	unsigned char *shm = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
				  -1, 0);
	EXPECT(mg_vrange(shm, 4 * PAGE, MG_VRANGE_VOLATILE, NULL), -EFAULT);
	EXPECT(mg_vrange((void *)((uintptr_t)&misuse & ~(PAGE - 1)), PAGE, MG_VRANGE_VOLATILE, NULL),
	       -EFAULT);
	/* two threads on one range */
	shared_range = v + 8 * PAGE;
	EXPECT(mg_vrange(shared_range, 8 * PAGE, MG_VRANGE_NONVOLATILE, NULL), -ENOENT);
	shared_range = map(64 * PAGE);
	memset(shared_range, 2, 64 * PAGE);
	pthread_create(&t[0], NULL, flip, NULL);
	pthread_create(&t[1], NULL, flip, NULL);
	pthread_join(t[0], NULL);
	pthread_join(t[1], NULL);
	if (thread_errors)
		DIE("two threads: %d unexpected errors", (int)thread_errors);
	for (size_t i = 0; i < 64 * PAGE; i++)
		if (shared_range[i] != 2)
			DIE("two threads: data changed");
	printf("vrange misuse ok\n");
	return 0;
}

/*
 * hold VOL_MB READY GO: VOL_MB made volatile, READY created, then waits
 * for GO (another process of the group meanwhile needs the room: the
 * manager has this one purge). Then: how many pages were purged, the
 * report exact (mincore), every page not purged intact.
 */
/*
 * hold VOL_MB READY GO [swap]: VOL_MB volatile, READY created, waits for GO,
 * then checks the report: a page reported purged is absent (mincore) and
 * reads zeros, one not purged holds its data. Without swap the report is
 * exact against mincore both ways; with `swap` a page not purged may be
 * absent too (staged or stored by the group's eviction: touching it brings
 * it back, which the data check does).
 */
static int hold(size_t vol, const char *ready, const char *go, bool swap)
{
	size_t pages = vol / PAGE, npurged = 0;
	unsigned char *v = map(vol), *inc = malloc(pages);
	uint8_t *rep = malloc(pages / 8 + 1);
	int rc;
	FILE *f;

	fill(v, vol, 61);
	if ((rc = mg_vrange(v, vol, MG_VRANGE_VOLATILE, NULL)))
		DIE("volatile: %s", strerror(-rc));
	if (!(f = fopen(ready, "w")))
		DIE("cannot create %s", ready);
	fclose(f);
	while (access(go, F_OK) != 0)
		usleep(20000);
	if ((rc = mg_vrange_purged(v, vol, rep)) || mincore(v, vol, inc))
		DIE("report: %d", rc);
	for (size_t k = 0; k < pages; k++) {
		bool p = bit(rep, k);
		if (p && (inc[k] & 1))
			DIE("page %zu reported purged is present", k);
		if (!p && !(inc[k] & 1) && !swap)
			DIE("page %zu absent but not reported purged", k);
		/* With swap the group may still be reclaiming (memory.high):
		 * a page can go after the report was taken. Each page is made
		 * non-volatile on its own (the range's first page: no split),
		 * which says whether it went, before its data is looked at. */
		if (swap) {
			int gone = 0;
			if ((rc = mg_vrange(v + k * PAGE, PAGE, MG_VRANGE_NONVOLATILE, &gone)))
				DIE("nonvolatile page %zu: %d", k, rc);
			if (p && !gone)
				DIE("page %zu reported purged, its nonvolatile says not", k);
			p = gone;
		}
		npurged += p;
		if (p) {
			if (!all_zero(v + k * PAGE))
				DIE("page %zu purged does not read zeros", k);
			continue;
		}
		for (size_t i = 0; i < PAGE; i += 8) {
			uint64_t w = ((k * PAGE + i) / 8 + 1) * 0x9E3779B97F4A7C15ULL ^ 61;
			if (memcmp(v + k * PAGE + i, &w, 8))
				DIE("page %zu not purged but changed", k);
		}
	}
	printf("holder: purged %zu of %zu pages\n", npurged, pages);
	return 0;
}

/* ---- unpinrace: mg_vrange_unpin while purges run ---- */

#define RACE_CHUNK MB
#define RACE_CHUNKS 32
#define RACE_OTHER (48 * MB)

static atomic_int race_stop;

/* The word at byte i of page k of a chunk, in its generation (never 0). */
static uint64_t race_word(size_t k, size_t i, uint64_t gen)
{
	return 1ULL << 63 | gen << 32 | k << 12 | i / 8;
}

static void race_fill(unsigned char *c, uint64_t gen)
{
	for (size_t k = 0; k < RACE_CHUNK / PAGE; k++)
		for (size_t i = 0; i < PAGE; i += 8) {
			uint64_t w = race_word(k, i, gen);
			memcpy(c + k * PAGE + i, &w, 8);
		}
}

/* Other memory touched over and over (never volatile): the group stays at
 * its limit, so the agent purges volatile pages all the time. */
static void *race_pressure(void *arg)
{
	unsigned char *m = map(RACE_OTHER);

	(void)arg;
	while (!atomic_load(&race_stop)) {
		for (size_t o = 0; o < RACE_OTHER; o += PAGE)
			m[o] = 1;
		madvise(m, RACE_OTHER, MADV_DONTNEED);
	}
	munmap(m, RACE_OTHER);
	return NULL;
}

/*
 * unpinrace SECS zero|sigbus: RACE_CHUNKS chunks volatile, the pressure
 * thread above running; the main thread unpins chunk after chunk with
 * mg_vrange_unpin while purges go on, and checks each page: reported
 * purged and reading zeros, or not reported and keeping its data. A page
 * purged while the unpin ran and left out of the report reads zeros where
 * data was expected: the test fails. Then the chunk is refilled (a new
 * generation) and made volatile again.
 */
static int unpinrace(int secs, bool sigbus)
{
	unsigned char *v = map(RACE_CHUNK * RACE_CHUNKS);
	uint64_t gen[RACE_CHUNKS];
	uint8_t rep[RACE_CHUNK / PAGE / 8];
	size_t unpins = 0, npurged = 0, mixed = 0;
	int mode = MG_VRANGE_VOLATILE | (sigbus ? MG_VRANGE_SIGBUS : 0), rc;
	pthread_t th;
	time_t until = time(NULL) + secs;

	for (size_t c = 0; c < RACE_CHUNKS; c++) {
		gen[c] = 1;
		race_fill(v + c * RACE_CHUNK, gen[c]);
		if ((rc = mg_vrange(v + c * RACE_CHUNK, RACE_CHUNK, mode, NULL)))
			DIE("volatile: %s", strerror(-rc));
	}
	if (pthread_create(&th, NULL, race_pressure, NULL))
		DIE("pthread_create failed");
	for (size_t c = 0; time(NULL) < until; c = (c + 1) % RACE_CHUNKS) {
		unsigned char *ch = v + c * RACE_CHUNK;
		size_t here = 0;

		if ((rc = mg_vrange_unpin(ch, RACE_CHUNK, rep)))
			DIE("unpin: %s", strerror(-rc));
		unpins++;
		for (size_t k = 0; k < RACE_CHUNK / PAGE; k++) {
			unsigned char *p = ch + k * PAGE;
			if (bit(rep, k)) {
				if (!all_zero(p))
					DIE("chunk %zu page %zu reported purged but holds data", c, k);
				here++;
				continue;
			}
			for (size_t i = 0; i < PAGE; i += 8) {
				uint64_t w = race_word(k, i, gen[c]);
				if (memcmp(p + i, &w, 8))
					DIE("chunk %zu page %zu not reported purged but %s (unpin %zu)",
					    c, k, all_zero(p) ? "reads zeros: purged, unreported" : "changed",
					    unpins);
			}
		}
		npurged += here;
		mixed += here && here < RACE_CHUNK / PAGE;
		race_fill(ch, ++gen[c]);
		if ((rc = mg_vrange(ch, RACE_CHUNK, mode, NULL)))
			DIE("volatile again: %s", strerror(-rc));
	}
	atomic_store(&race_stop, 1);
	pthread_join(th, NULL);
	printf("unpinrace: %zu unpins, %zu pages reported purged, %zu unpins partly purged\n", unpins,
	       npurged, mixed);
	if (!npurged)
		DIE("nothing purged: no race tested");
	printf("vrange unpinrace ok\n");
	return 0;
}

/* Without the agent (not run under memgrp). */
static int noagent(void)
{
	unsigned char *v = map(PAGE);
	int rc = mg_vrange(v, PAGE, MG_VRANGE_VOLATILE, NULL);

	if (rc != -ENOTSUP)
		DIE("without the agent: %d, not -ENOTSUP", rc);
	printf("vrange noagent ok\n");
	return 0;
}

/* Whether the VMA holding addr is registered with userfaultfd for missing
 * pages (smaps VmFlags "um"): an estimate-mode region is slow. */
static bool uffd_registered(const void *addr)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	bool in = false, um = false;

	if (!f)
		DIE("cannot open smaps");
	while (fgets(line, sizeof(line), f)) {
		unsigned long s, e;
		if (sscanf(line, "%lx-%lx ", &s, &e) == 2 && strchr(line, '-') < strchr(line, ' '))
			in = s <= (uintptr_t)addr && (uintptr_t)addr < e;
		else if (in && !strncmp(line, "VmFlags:", 8)) {
			um = strstr(line, " um") != NULL;
			break;
		}
	}
	fclose(f);
	return um;
}

static double us_since(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) * 1e6 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e3;
}

/*
 * estimate: in estimate mode a fresh 16 MiB region is fast (not
 * registered). Making it volatile turns it slow (the call's cost, timed:
 * its present pages found and registered); nothing purged without
 * pressure, so the unpin reports nothing and every byte is there; the
 * range made volatile again (now a slow region: a call on this thread,
 * timed). Then `purge` (40 MiB volatile in a fresh fast region, 40 MiB
 * more under the limit) runs its checks in the same process.
 */
static int estimate(bool then_purge)
{
	size_t len = 16 * MB, pages = len / PAGE;
	unsigned char *v = map(len);
	uint8_t *rep = calloc(pages / 8, 1);
	struct timespec t0;
	double first, again;
	int rc;

	fill(v, len, 51);
	if (uffd_registered(v))
		DIE("estimate: a fresh region is registered (not fast)");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	rc = mg_vrange(v, len, MG_VRANGE_VOLATILE, NULL);
	first = us_since(&t0);
	printf("estimate: volatile %d\n", rc);
	if (rc)
		DIE("estimate: volatile %s", strerror(-rc));
	if (!uffd_registered(v))
		DIE("estimate: volatile but not registered");
	if ((rc = mg_vrange_unpin(v, len, rep)) != 0)
		DIE("estimate: unpin %d", rc);
	for (size_t k = 0; k < pages / 8; k++)
		if (rep[k])
			DIE("estimate: purged without pressure (byte %zu)", k);
	if (verify(v, len, 51) >= 0)
		DIE("estimate: data changed");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	rc = mg_vrange(v, len, MG_VRANGE_VOLATILE, NULL);
	again = us_since(&t0);
	if (rc || (rc = mg_vrange(v, len, MG_VRANGE_NONVOLATILE, NULL)))
		DIE("estimate: volatile again %d", rc);
	printf("estimate: 16 MiB fast region made volatile in %.0f us (turned slow), "
	       "again in %.0f us\n", first, again);
	fflush(stdout);
	munmap(v, len);
	/* A volatile region that faults often, the group well under its limit:
	 * the tick would turn a slow region like it fast again (hysteresis:
	 * core/estimate.h), but not while a volatile range lies in it. */
	/* (4 MiB: far under the limit, so that nothing of it is purged and
	 * the counter the test compares with purge's report stays put) */
	len = 4 * MB;
	pages = len / PAGE;
	v = map(len);
	if ((rc = mg_vrange(v, len, MG_VRANGE_VOLATILE, NULL)))
		DIE("estimate: volatile (fresh) %d", rc);
	for (int round = 0; round < 30; round++) {
		memset(v, round + 1, len);
		madvise(v, len, MADV_DONTNEED);
		usleep(100000);
	}
	if (!uffd_registered(v))
		DIE("estimate: a volatile region was turned fast again");
	printf("estimate: a volatile region faulting %zu pages every 0.1 s for 3 s stays slow\n", pages);
	if ((rc = mg_vrange(v, len, MG_VRANGE_NONVOLATILE, NULL)))
		DIE("estimate: nonvolatile (fresh) %d", rc);
	munmap(v, len);
	return then_purge ? purge(40 * MB, 40 * MB, false) : 0;
}

int main(int argc, char **argv)
{
	const char *what = argc > 1 ? argv[1] : "";

	if (!strcmp(what, "purge") && argc > 4)
		return purge((size_t)atol(argv[2]) * MB, (size_t)atol(argv[3]) * MB,
			     !strcmp(argv[4], "sigbus"));
	if (!strcmp(what, "fork"))
		return forked();
	if (!strcmp(what, "unmap"))
		return unmapped();
	if (!strcmp(what, "misuse"))
		return misuse();
	if (!strcmp(what, "hold") && argc > 4)
		return hold((size_t)atol(argv[2]) * MB, argv[3], argv[4],
			    argc > 5 && !strcmp(argv[5], "swap"));
	if (!strcmp(what, "noagent"))
		return noagent();
	if (!strcmp(what, "estimate"))
		return estimate(argc > 2 && !strcmp(argv[2], "purge"));
	if (!strcmp(what, "unpinrace") && argc > 3)
		return unpinrace(atoi(argv[2]), !strcmp(argv[3], "sigbus"));
	DIE("usage: prog_vrange purge VOL_MB MORE_MB zero|sigbus | fork | unmap | misuse | noagent | estimate [purge] | unpinrace SECS zero|sigbus");
}

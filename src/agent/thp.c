/* thp.c - huge pages as Ingens manages them, in the agent: utilization per 2 MiB block, fill and collapse off the fault path. */
#include "thp.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "account.h"
#include "agent.h"
#include "hugeutil.h"
#include "options.h"
#include "os.h"
#include "trace.h"

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25 /* Linux 6.1; Debian 12's headers predate it */
#endif

#define PAGE MGI_PAGE_SIZE
#define BLOCK MGI_HU_BLOCK
/* 16384 entries (1.4 MiB of arena) follow 28 GiB of blocks in use; a
 * block past that is not tracked (counted in the table's `dropped`). */
#define TABLE_ENTRIES 16384u
#define WORKER_STACK (64UL << 10)
/* A block whose collapse failed this often is left alone (it keeps
 * failing for a reason of its own: pinned pages, uffd-wp, no memory). */
#define MAX_TRIES 3
/* While a block waits or a collapse runs, the handler looks this often. */
#define TICK_MS 10
#define DECAY_NS (1000ULL * 1000 * 1000) /* the frequency's period */

enum { MODE_NEVER, MODE_INGENS, MODE_ALWAYS };

static struct {
	unsigned mode;
	unsigned threshold; /* pages of 512 */
	uint64_t gap_ns;    /* between promotions: 1 s / MEMGRP_THP_RATE */
	mgi_hu_table_t t;
	bool waiting;       /* some block reached the threshold */
	uint64_t last_ns, decay_ns;
	/* The worker: one block at a time. The handler posts `go` with
	 * `block` set; the worker sets `rc` and then `done`. */
	void *stack;
	pthread_t worker;
	sem_t go;
	uintptr_t block;      /* in flight; 0: none (handler's) */
	_Atomic uintptr_t posted;
	_Atomic bool done;
	_Atomic int rc;
	mgi_thp_stats_t st;
	uint64_t demoted_told; /* of t.demoted: added to the group's figure */
	uint32_t huge;         /* huge blocks at the last count */
	bool stopped;          /* the manager said stop: counted once */
	bool ksm;              /* KSM runs: promoted blocks are made unmergeable */
} thp;

bool mgi_thp_on(void)
{
	return thp.mode != MODE_NEVER;
}

/* MADV_COLLAPSE off the handler: it takes the mmap write lock and may
 * compact for milliseconds (11-16 ms a block measured, bench/thpprobe),
 * which a fault must never wait for in the handler's own turn. */
static void *worker_main(void *arg)
{
	(void)arg;
	for (;;) {
		while (sem_wait(&thp.go) != 0)
			;
		uintptr_t b = atomic_load_explicit(&thp.posted, memory_order_acquire);
		int rc = mgi_raw_madvise((void *)b, BLOCK, MADV_COLLAPSE) == 0 ? 0 : -errno;
		/* Where KSM runs, a hot huge page is not merged (a merge would
		 * split it): the promoted block leaves KSM's scan. Its failure
		 * (a VMA that never was mergeable: nothing to do) is ignored. */
		if (rc == 0 && thp.ksm)
			mgi_raw_madvise((void *)b, BLOCK, MADV_UNMERGEABLE);
		atomic_store_explicit(&thp.rc, rc, memory_order_relaxed);
		atomic_store_explicit(&thp.done, true, memory_order_release);
	}
	return NULL;
}

/* A setting: the environment's (memgrp run --thp...) if given, else the
 * group's (memgrp create/set --thp..., in its control part). */
static uint64_t setting(mgi_env_t id, _Atomic uint32_t *group)
{
	if (mgi_env_str(id) || !mgi_join.seg)
		return id == MGI_ENV_THP ? mgi_env_choice(id) : mgi_env_uint(id);
	return atomic_load_explicit(group, memory_order_relaxed);
}

int mgi_thp_init(void)
{
	memset(&thp, 0, sizeof(thp));
	mgi_segment_ctl_t *c = mgi_join.seg ? &mgi_join.seg->ctl : NULL;
	thp.mode = (unsigned)setting(MGI_ENV_THP, c ? &c->thp_mode : NULL);
	if (thp.mode > MODE_ALWAYS)
		thp.mode = MODE_NEVER;
	if (thp.mode == MODE_NEVER)
		return 0;
	char run = '0';
	int fd = open("/sys/kernel/mm/ksm/run", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (read(fd, &run, 1) != 1)
			run = '0';
		close(fd);
	}
	thp.ksm = run == '1';
	uint64_t pct = setting(MGI_ENV_THP_THRESHOLD, c ? &c->thp_threshold : NULL);
	uint64_t rate = setting(MGI_ENV_THP_RATE, c ? &c->thp_rate : NULL);
	if (pct < 1 || pct > 100)
		pct = MGI_THP_THRESHOLD_DEFAULT;
	thp.threshold = thp.mode == MODE_ALWAYS ? 1 : mgi_hu_threshold_pages((unsigned)pct);
	thp.gap_ns = rate ? 1000000000ULL / rate : 0;
	mgi_hu_entry_t *e = mgi_arena_alloc(&mgi_arena, sizeof(*e) * TABLE_ENTRIES);
	thp.stack = mgi_arena_alloc(&mgi_arena, WORKER_STACK);
	if (!e || !thp.stack || mgi_hu_init(&thp.t, e, TABLE_ENTRIES) != 0 || sem_init(&thp.go, 0, 0) != 0)
		goto off;
	if (mgi_start_thread(&thp.worker, thp.stack, WORKER_STACK, worker_main, NULL) != 0)
		goto off;
	return 0;
off:
	mgi_agent_log("huge pages: cannot start (out of agent memory): they stay off");
	thp.mode = MODE_NEVER;
	return -ENOMEM;
}

static void note_candidate(uintptr_t start, uintptr_t end)
{
	for (uintptr_t b = start & ~(BLOCK - 1); b < end; b += BLOCK) {
		const mgi_hu_entry_t *e = mgi_hu_find(&thp.t, b);
		if (e && e->state == MGI_HU_BASE && e->used >= thp.threshold && e->tries < MAX_TRIES)
			thp.waiting = true;
	}
}

void mgi_thp_filled(uintptr_t start, uintptr_t end)
{
	if (thp.mode == MODE_NEVER)
		return;
	mgi_hu_fill(&thp.t, start, end);
	note_candidate(start, end);
}

/* The group's figures (its accounting part) and this process's slot. */
static void publish(uint64_t promoted, uint64_t filled)
{
	mgi_segment_t *seg = mgi_join.seg;

	if (!seg)
		return;
	if (promoted)
		atomic_fetch_add_explicit(&seg->acct.thp_promotions, promoted, memory_order_relaxed);
	if (filled)
		atomic_fetch_add_explicit(&seg->acct.thp_fill_pages, filled, memory_order_relaxed);
	if (thp.t.demoted != thp.demoted_told) {
		atomic_fetch_add_explicit(&seg->acct.thp_demotions, thp.t.demoted - thp.demoted_told,
					  memory_order_relaxed);
		thp.demoted_told = thp.t.demoted;
	}
}

/* This process's huge pages now, in its slot: a walk of the table, so
 * once a period (and +1 at each promotion in between). */
static void publish_huge(void)
{
	uint32_t huge = 0, idle = 0;

	for (uint32_t i = 0; i < thp.t.cap; i++) {
		const mgi_hu_entry_t *e = &thp.t.e[i];
		if (e->block && e->state == MGI_HU_HUGE) {
			huge++;
			idle += e->freq == 0; /* no fault for some 5 periods (decayed) */
		}
	}
	thp.huge = huge;
	if (!mgi_join.me)
		return;
	atomic_store_explicit(&mgi_join.me->thp_huge_pages, huge, memory_order_relaxed);
	atomic_store_explicit(&mgi_join.me->thp_idle, idle, memory_order_relaxed);
	atomic_store_explicit(&mgi_join.me->thp_waiting, thp.waiting, memory_order_relaxed);
}

/* The manager's word on the group's share (daemon/thpbalance.c): stop
 * promoting while huge pages are scarce and the group holds its part. */
static bool stopped(void)
{
	return mgi_join.seg &&
	       (atomic_load_explicit(&mgi_join.seg->ctl.thp_flags, memory_order_relaxed) & MGI_THP_STOP);
}

void mgi_thp_gone(uintptr_t start, uintptr_t end)
{
	if (thp.mode == MODE_NEVER)
		return;
	mgi_hu_clear(&thp.t, start, end);
	if (thp.t.demoted != thp.demoted_told)
		publish(0, 0);
}

void mgi_thp_moved(uintptr_t from, uintptr_t to, uintptr_t len)
{
	if (thp.mode == MODE_NEVER)
		return;
	mgi_hu_clear(&thp.t, from, from + len);
	/* The destination holds what the registry says it holds now (it
	 * followed the move first): runs of present pages. */
	mgi_vregion_t *r = mgi_registry_find(&mgi_reg, to);
	for (uintptr_t a = to, run = 0; a <= to + len; a += PAGE) {
		bool in = a < to + len && r && a < r->end && mgi_registry_test(r, a);
		if (in && !run)
			run = a;
		if (!in && run) {
			mgi_hu_fill(&thp.t, run, a);
			run = 0;
		}
		if (r && a + PAGE >= r->end)
			r = mgi_registry_find(&mgi_reg, a + PAGE);
	}
	note_candidate(to, to + len);
}

int mgi_thp_timeout(int timeout_ms)
{
	if (thp.mode == MODE_NEVER)
		return timeout_ms;
	/* Once a second at least while huge pages are held: their idleness
	 * (the decay) and the counts the manager's shares read. */
	if (!thp.waiting && !thp.block)
		return thp.huge && (timeout_ms < 0 || timeout_ms > 1000) ? 1000 : timeout_ms;
	return timeout_ms >= 0 && timeout_ms < TICK_MS ? timeout_ms : TICK_MS;
}

/* A block may be promoted when it lies in one registered region, none of
 * its pages is evicted (a restore is a fault's business), and the
 * registry, which is exact, agrees that enough of it is in use. */
static bool eligible(uintptr_t b, void *arg)
{
	mgi_vregion_t *r = mgi_registry_find(&mgi_reg, b);
	uint64_t out = 0;

	(void)arg;
	if (!r || r->start > b || r->end < b + BLOCK)
		return false;
	uint64_t present = mgi_registry_count(&mgi_reg, b, b + BLOCK, &out, NULL, false);
	return out == 0 && present >= thp.threshold;
}

/* Fills every absent page of block b (in region r) with zeros, charged
 * first: all or nothing. Returns 0, -ENOMEM (the limit refused it: no
 * bloat past the limit), or the copy's error (the caller gives up on the
 * block this time; EAGAIN: events are pending, the main loop reads them). */
static int fill(uintptr_t b)
{
	mgi_vregion_t *r = mgi_registry_find(&mgi_reg, b);
	uint64_t present = mgi_registry_count(&mgi_reg, b, b + BLOCK, NULL, NULL, false);
	uint64_t absent = MGI_HU_PAGES - present, used = 0;

	if (absent == 0)
		return 0;
	/* A block of room is left beyond the fill: promotion must not take
	 * the last of the limit from the application's next faults (memory
	 * it asked for, where the fill is memgrp's choice). Looked at, not
	 * charged and given back: that would cross the group's thresholds
	 * up and down for nothing, and ask a nested group's grant for more. */
	if (mgi_counter_path_margin(mgi_account_path()) < absent + MGI_HU_PAGES ||
	    !mgi_charge(absent, NULL)) {
		/* A nested group's room is its grant, given in batches as
		 * its faults ask: the fill asks for its own (the manager
		 * charges the ancestors, within their limits); the block
		 * waits for the answer. */
		mgi_account_grant_ask(absent + MGI_HU_PAGES);
		thp.st.refused++;
		return -ENOMEM;
	}
	for (uintptr_t a = b; a < b + BLOCK;) {
		size_t n = mgi_registry_absent_run(r, a, (b + BLOCK - a) / PAGE);
		if (n == 0) {
			a += PAGE;
			continue;
		}
		if (n > MGI_FAULT_AROUND_MAX)
			n = MGI_FAULT_AROUND_MAX;
		size_t copied = 0;
		int rc = mgi_uffd_copy(mgi_handler.uffd, a, mgi_handler.zeros, n * PAGE, &copied);
		size_t k = copied / PAGE;
		mgi_trace(MGI_TR_ZFILL, a, k, (uint32_t)n, rc);
		if (k) {
			mgi_registry_mark(&mgi_reg, r, a, k);
			mgi_hu_fill(&thp.t, a, a + k * PAGE);
			used += k;
		}
		if (rc != 0) {
			mgi_uncharge(absent - used);
			thp.st.fill_pages += used;
			publish(0, used);
			return rc;
		}
		a += k * PAGE;
	}
	thp.st.fill_pages += used;
	publish(0, used);
	return 0;
}

void mgi_thp_tick(void)
{
	if (thp.mode == MODE_NEVER)
		return;
	uint64_t now = mgi_now_ns();
	if (now - thp.decay_ns >= DECAY_NS) {
		thp.decay_ns = now;
		mgi_hu_decay(&thp.t);
		publish_huge();
	}
	if (thp.block) {
		if (!atomic_load_explicit(&thp.done, memory_order_acquire))
			return;
		int rc = atomic_load_explicit(&thp.rc, memory_order_relaxed);
		/* A block whose pages went meanwhile (its entry gone or
		 * base again) keeps what the events said. */
		const mgi_hu_entry_t *e = mgi_hu_find(&thp.t, thp.block);
		if (e && e->state == MGI_HU_QUEUED)
			mgi_hu_set_state(&thp.t, thp.block, rc == 0 ? MGI_HU_HUGE : MGI_HU_BASE);
		if (rc == 0) {
			thp.st.promotions++;
			publish(1, 0);
			thp.huge++;
			if (mgi_join.me)
				atomic_fetch_add_explicit(&mgi_join.me->thp_huge_pages, 1,
							  memory_order_relaxed);
		} else
			thp.st.failures++;
		thp.block = 0;
	}
	if (!thp.waiting || now - thp.last_ns < thp.gap_ns)
		return;
	if (stopped()) {
		thp.st.refused += !thp.stopped;
		thp.stopped = true;
		return; /* the block waits: the group holds its share */
	}
	thp.stopped = false;
	uintptr_t b = mgi_hu_pick(&thp.t, thp.threshold, MAX_TRIES, eligible, NULL);
	if (!b) {
		thp.waiting = false;
		return;
	}
	thp.last_ns = now;
	int rc = fill(b);
	if (rc == -ENOMEM)
		return; /* the limit: the block waits, no try of its own lost */
	mgi_hu_set_state(&thp.t, b, MGI_HU_QUEUED);
	if (rc != 0) {
		mgi_hu_set_state(&thp.t, b, MGI_HU_BASE); /* counts a try */
		thp.st.failures++;
		return;
	}
	thp.block = b;
	atomic_store_explicit(&thp.done, false, memory_order_relaxed);
	atomic_store_explicit(&thp.posted, b, memory_order_release);
	sem_post(&thp.go);
}

void mgi_thp_stats(mgi_thp_stats_t *out)
{
	*out = thp.st;
	out->huge_blocks = thp.mode == MODE_NEVER ? 0 : mgi_hu_huge_blocks(&thp.t);
	out->tracked_blocks = thp.t.count;
}

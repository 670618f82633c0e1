/* estimate.c - seed 001's estimate accounting in the agent: fast regions are not registered. */
#include <errno.h>
#include <stdlib.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "account.h"
#include "agent.h"
#include "options.h"
#include "estimate.h"
#include "estimate_int.h"
#include "os.h"
#include "thp.h"

/*
 * In estimate mode (`--mode estimate`) a region of new anonymous memory is
 * *fast*: it is not registered with userfaultfd, so its faults never leave
 * the kernel, and it is charged at its size M_i. When a charge would pass
 * the limit, fast regions are turned *slow* (Algorithm 2 at map time, the
 * amended Algorithm 3 at a refused fault): registered, their resident pages
 * R_i found with mincore and counted exactly from then on by the fault
 * path, and M_i - R_i given back. The model is src/core/estimate.c with
 * external slow accounting: a slow region's pages are the registry's, like
 * any registered range in exact mode (fault-around, eviction, restore).
 *
 * Who does what. The table belongs to the handler thread, like the
 * registry. An application thread that maps memory charges M_i itself
 * when it fits (one try_charge: no round trip) and tells the handler; when
 * it does not fit it asks the handler to run Algorithm 2 and waits for the
 * answer (a futex word in the agent's arena), so that a region that must
 * start slow is registered before the application touches it. Regions
 * found after the fact (memory glibc's malloc mapped or grew internally)
 * are admitted without waiting: the pages touched meanwhile are counted
 * by mincore if the region turns out slow.
 *
 * A fast region's unmapping is seen by the interposed munmap and mremap
 * (told before the call, so that a range reused by another thread's mmap
 * is never taken for the old one), and otherwise (glibc's own munmap of a
 * large block) once a second by checking the fast regions against the
 * address space. The same tick measures R_i of the fast regions (mincore),
 * uses its growth as the region's fault rate (faults in a fast region are
 * not seen), and turns slow regions that fault often fast again when the
 * group is well under its limit (hysteresis: src/core/estimate.h).
 *
 * The main thread's [stack] grows down without any call, so it is always
 * slow; so is any region the table has no room for.
 */

/* Turned fast again only when faulting at least this often (pages a tick). */
#define EST_FAST_MIN_FAULTS 64

mgi_estimate_t *mgi_est;
static uint64_t switches_told; /* mgi_est->mode_switches added to the segment's */
static uint64_t switch_ns;     /* time spent switching, not yet added there */
static unsigned char *vec;        /* mincore vector */
#define VEC_PAGES 16384

bool mgi_est_on(void)
{
	return mgi_est != NULL;
}

int mgi_est_init(void)
{
	mgi_est = NULL;
	switches_told = switch_ns = 0;
	if (atomic_load_explicit(&mgi_join.seg->ctl.mode, memory_order_relaxed) != MGI_MODE_ESTIMATE)
		return 0;
	mgi_estimate_t *t = mgi_arena_alloc(&mgi_arena, mgi_estimate_bytes(EST_CAPACITY));
	vec = mgi_arena_alloc(&mgi_arena, VEC_PAGES);
	if (!t || !vec)
		return -ENOMEM;
	mgi_estimate_init(t, EST_CAPACITY);
	t->external = true;
	/* Which fast region turns slow first (seed 001's open question):
	 * the largest (default: gives back the most estimate per switch), or
	 * the one whose resident set grew least recently (fewest faults). */
	t->policy = mgi_env_choice(MGI_ENV_ESTIMATE_VICTIM) == 1 ? MGI_VICTIM_LEAST_RECENT
								  : MGI_VICTIM_LARGEST;
	t->fast_min_faults = EST_FAST_MIN_FAULTS;
	mgi_est = t;
	return 0;
}

/* The table's charges go through the agent's accounting entry point
 * (counter path, slot and thresholds together), never to a counter alone. */
static bool acct_charge(void *ctx, uint64_t pages)
{
	(void)ctx;
	return mgi_charge(pages, NULL);
}

static void acct_uncharge(void *ctx, uint64_t pages)
{
	(void)ctx;
	mgi_uncharge(pages);
}

static uint64_t acct_usage(void *ctx)
{
	(void)ctx;
	return mgi_counter_read(mgi_account_path()->level[0]);
}

static uint64_t acct_max(void *ctx)
{
	(void)ctx;
	return mgi_counter_read_max(mgi_account_path()->limit[0]);
}

/* (The path has its own group's level from the join on: estimate mode is
 * set up after WELCOME.) */
const mgi_estimate_acct_t mgi_est_acct = {.charge = acct_charge,
					  .uncharge = acct_uncharge,
					  .group_usage = acct_usage,
					  .group_max = acct_max};

/* After a change of the table: the figures published (its charges were
 * made, and the thresholds checked, as it went). */
void mgi_est_settle(void)
{
	mgi_check_thresholds(); /* (cheap: one load a level when none is set) */
	mgi_est_publish(); /* a few stores: the figures stay current */
}

/* ---- the switches (ops of the model) ---- */

static uint64_t mincore_count(uintptr_t start, uintptr_t end)
{
	return mgi_mincore_count(start, end, vec, VEC_PAGES);
}

/* Registers [start, end) with the uffd and learns it: its present pages
 * counted, and charged if charge (else their charge is already held).
 * Returns them, or -1 if it could not be registered. */
long mgi_est_register_slow(uintptr_t start, uintptr_t end, bool charge)
{
	if (!mgi_thp_on()) /* with huge pages on, MADV_COLLAPSE needs it unmarked */
		mgi_raw_madvise((void *)start, end - start, MADV_NOHUGEPAGE);
	if (mgi_uffd_register(mgi_handler.uffd, start, end - start) != 0)
		return -1;
	return (long)mgi_learn_range(start, end, charge);
}

/* Fast -> slow: register first (from then on every new page is a fault we
 * see), then take over what is already there: marked present in the
 * registry without charging it again (the table held M_i for it until
 * now, and gives back M_i - R_i once this returns). */
static uint64_t take_slow(void *ctx, const mgi_region_t *r)
{
	uintptr_t a = (uintptr_t)r->key, e = mgi_est_rend(r);
	uint64_t found = 0;
	mgi_vma_t v;

	uint64_t t0 = mgi_now_ns();

	(void)ctx;
	/* VMA by VMA: part of it may have been unmapped unseen (glibc's own
	 * munmap), and registration refuses a range with a hole. */
	while (a < e && mgi_vma_query(mgi_maps_fd, a, &v) == 0 && v.start < e) {
		uintptr_t s = v.start > a ? v.start : a, t = v.end < e ? v.end : e;
		if (mgi_vma_is_anon_private(&v)) {
			long n = mgi_est_register_slow(s, t, false);
			found += n > 0 ? (uint64_t)n : 0;
		}
		a = v.end;
	}
	if (found > r->pages)
		found = r->pages;
	switch_ns += mgi_now_ns() - t0;
	return found;
}

static uint64_t slow_resident(void *ctx, const mgi_region_t *r)
{
	uint64_t out;
	uint64_t present = mgi_registry_count(&mgi_reg, (uintptr_t)r->key, mgi_est_rend(r), &out,
					      NULL, false);
	(void)ctx;
	/* Evicted pages would read as zeros once the region is not ours. */
	return out ? UINT64_MAX : present;
}

/*
 * Stops the kernel telling us the faults of [start, end), VMA by VMA as
 * take_slow registers it: one call over a range that has since gained a
 * hole or a file mapping fails as a whole, and a range the kernel still
 * reports while the table holds it fast had its faults woken unresolved
 * for ever (redis under redis-benchmark in estimate mode: 4 of 6 runs
 * hung). A failure is said once; the fault path then unregisters what
 * it meets (mgi_est_fault_on_fast).
 */
void mgi_est_unregister(uintptr_t start, uintptr_t end)
{
	static bool said;
	uintptr_t a = start;
	mgi_vma_t v;

	while (a < end && mgi_vma_query(mgi_maps_fd, a, &v) == 0 && v.start < end) {
		uintptr_t s = v.start > a ? v.start : a, t = v.end < end ? v.end : end;
		int rc = mgi_vma_is_anon_private(&v) ? mgi_uffd_unregister(mgi_handler.uffd, s, t - s) : 0;
		if (rc != 0 && !said) {
			said = true;
			mgi_agent_log("estimate mode: could not stop watching %#lx-%#lx: %s",
				      (unsigned long)s, (unsigned long)t, strerror(-rc));
		}
		a = v.end;
	}
}

/* Slow -> fast: the table now charges M_i; the registry lets go of the
 * range without uncharging, and the kernel stops telling us its faults. */
static void mode_changed(void *ctx, const mgi_region_t *r)
{
	uintptr_t s = (uintptr_t)r->key, e = mgi_est_rend(r);
	long dropped;

	(void)ctx;
	if (r->slow)
		return; /* take_slow did the work */
	uint64_t t0 = mgi_now_ns();
	mgi_est_unregister(s, e);
	mgi_vrange_unmanaged(s, e);
	dropped = mgi_registry_remove(&mgi_reg, s, e);
	if (dropped < 0)
		dropped = (long)mgi_registry_clear(&mgi_reg, s, e);
	/* The table charged M_i - R_i (r->resident: what the registry
	 * counted); pages the registry let go of beyond that, or short of it,
	 * leave or join this process's figure alone. */
	if ((uint64_t)dropped > r->resident)
		mgi_account_disown((uint64_t)dropped - r->resident);
	else
		mgi_account_adopt(r->resident - (uint64_t)dropped);
	switch_ns += mgi_now_ns() - t0;
}

const mgi_estimate_ops_t mgi_est_ops = {
	.take_slow = take_slow,
	.slow_resident = slow_resident,
	.mode_changed = mode_changed,
};

/* ---- the table by address ---- */

static int find_at(uintptr_t addr)
{
	for (uint32_t i = 0; i < mgi_est->used_slots; i++) {
		const mgi_region_t *r = &mgi_est->regions[i];
		if (r->used && (uintptr_t)r->key <= addr && addr < mgi_est_rend(r))
			return (int)i;
	}
	return -1;
}

bool mgi_est_fast_at(uintptr_t addr)
{
	int i;

	if (!mgi_est || (i = find_at(addr)) < 0)
		return false;
	return !mgi_est->regions[i].slow;
}

void mgi_est_fault_on_fast(uintptr_t addr)
{
	int i;

	if (!mgi_est || (i = find_at(addr)) < 0 || mgi_est->regions[i].slow)
		return;
	mgi_est_unregister((uintptr_t)mgi_est->regions[i].key, mgi_est_rend(&mgi_est->regions[i]));
}

/* [start, end) is no longer what the records there describe: drops the
 * overlapping parts (a fast region's M gives back its share; a slow one's
 * pages are the registry's, dropped by the unmap event). */
void mgi_est_forget(uintptr_t start, uintptr_t end)
{
	if (!mgi_est)
		return;
	for (uint32_t i = 0; i < mgi_est->used_slots; i++) {
		mgi_region_t *r = &mgi_est->regions[i];
		uintptr_t s = (uintptr_t)r->key, e;
		uint32_t right;

		if (!r->used || s >= end || (e = mgi_est_rend(r)) <= start)
			continue;
		if (s < start && e > end) { /* a hole in the middle: keep both sides */
			if (mgi_estimate_split(mgi_est, i, (start - s) / PAGE, start, &right) != 0)
				continue; /* no slot for the right side: keep it all (overcharged) */
			mgi_estimate_trim(mgi_est, &mgi_est_acct, right, end, (e - end) / PAGE);
			continue;
		}
		if (s < start)
			mgi_estimate_trim(mgi_est, &mgi_est_acct, i, s, (start - s) / PAGE);
		else if (e > end)
			mgi_estimate_trim(mgi_est, &mgi_est_acct, i, end, (e - end) / PAGE);
		else
			mgi_estimate_unmap(mgi_est, &mgi_est_acct, i);
	}
	mgi_est_settle();
}

/* ---- the tick ---- */

/* Keeps only the parts of fast region i that are still mapped anonymous. */
static void check_mapped(uint32_t i)
{
	mgi_region_t *r = &mgi_est->regions[i];
	uintptr_t s = (uintptr_t)r->key, e = mgi_est_rend(r), a = s;
	mgi_vma_t v;

	while (a < e) {
		if (mgi_vma_query(mgi_maps_fd, a, &v) != 0 || v.start >= e) {
			mgi_est_forget(a, e);
			return;
		}
		if (v.start > a)
			mgi_est_forget(a, v.start);
		else if (!mgi_vma_is_anon_private(&v))
			mgi_est_forget(a, v.end < e ? v.end : e);
		a = v.end;
	}
}

void mgi_est_tick(void)
{
	uint64_t now = mgi_now_ns(), resident = 0;

	if (!mgi_est)
		return;
	for (uint32_t i = 0; i < mgi_est->used_slots; i++)
		if (mgi_est->regions[i].used && !mgi_est->regions[i].slow)
			check_mapped(i);
	mgi_rescan();
	for (uint32_t i = 0; i < mgi_est->used_slots; i++) {
		mgi_region_t *r = &mgi_est->regions[i];
		uint64_t rr, faults = 0;

		if (!r->used)
			continue;
		if (r->slow) {
			rr = mgi_registry_count(&mgi_reg, (uintptr_t)r->key, mgi_est_rend(r), NULL,
						&faults, true);
			r->faults = faults; /* this tick's */
		} else {
			/* Faults in a fast region are not seen: its growth is
			 * the best sign of them. */
			rr = mincore_count((uintptr_t)r->key, mgi_est_rend(r));
			r->faults = rr > r->resident ? rr - r->resident : 0;
			r->resident = rr;
		}
		if (r->faults)
			r->last_fault = now;
		resident += rr;
	}
	atomic_store_explicit(&mgi_join.me->est_resident, resident, memory_order_relaxed);
	mgi_estimate_make_fast(mgi_est, &mgi_est_acct, &mgi_est_ops, NULL);
	mgi_est_settle(); /* (publishes) */
}

void mgi_est_publish(void)
{
	mgi_proc_slot_t *me = mgi_join.me;

	if (!mgi_est) {
		/* Exact mode: every registered range is a slow region. */
		atomic_store_explicit(&me->est_mapped, mgi_reg.bytes / PAGE, memory_order_relaxed);
		atomic_store_explicit(&me->est_resident, mgi_reg.present, memory_order_relaxed);
		atomic_store_explicit(&me->est_slow, mgi_reg.n, memory_order_relaxed);
		return;
	}
	atomic_store_explicit(&me->est_mapped, mgi_est->mapped, memory_order_relaxed);
	atomic_store_explicit(&me->est_fast, mgi_est->nr_fast, memory_order_relaxed);
	atomic_store_explicit(&me->est_slow, mgi_est->nr_slow, memory_order_relaxed);
	if (mgi_est->mode_switches != switches_told) {
		atomic_fetch_add_explicit(&mgi_join.seg->acct.mode_switches,
					  mgi_est->mode_switches - switches_told, memory_order_relaxed);
		switches_told = mgi_est->mode_switches;
	}
	if (switch_ns) {
		atomic_fetch_add_explicit(&mgi_join.seg->acct.mode_switch_ns, switch_ns,
					  memory_order_relaxed);
		switch_ns = 0;
	}
}

uint64_t mgi_est_give(uint64_t pages)
{
	uint64_t before, now;

	if (!mgi_est)
		return 0;
	before = atomic_load(&mgi_join.me->charged);
	do {
		if (!mgi_est_demote())
			break;
		now = atomic_load(&mgi_join.me->charged);
	} while (now + pages > before);
	now = atomic_load(&mgi_join.me->charged);
	return before > now ? before - now : 0;
}

bool mgi_est_fast_elsewhere(unsigned level)
{
	const mgi_segment_t *seg;

	if (level >= mgi_join.nsegs)
		return false;
	seg = mgi_join.anc[level];
	for (int i = 0; i < MGI_PROCS_MAX; i++) {
		int32_t pid = atomic_load_explicit(&seg->ctl.procs[i].pid, memory_order_relaxed);
		if (pid > 0 && pid != mgi_join.pid &&
		    atomic_load_explicit(&seg->acct.procs[i].est_fast, memory_order_relaxed) > 0)
			return true;
	}
	return false;
}

/* Algorithm 3's amendment: a charge was refused; before any eviction or
 * kill, a fast region (holding estimate that may not be memory) turns
 * slow. Returns true if one did. */
bool mgi_est_demote(void)
{
	bool done;

	if (!mgi_est)
		return false;
	done = mgi_estimate_demote(mgi_est, &mgi_est_acct, &mgi_est_ops, NULL);
	if (done)
		mgi_est_settle();
	return done;
}

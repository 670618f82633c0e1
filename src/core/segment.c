/* segment.c - a group's shared segment: init, thresholds, process slots, the audit of a live one. */
#include "segment.h"
#include "victim.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

_Static_assert(offsetof(mgi_segment_t, acct) % MGI_SEGMENT_ALIGN == 0,
	       "the accounting part starts on a page of its own");
_Static_assert(sizeof(mgi_segment_t) % MGI_SEGMENT_ALIGN == 0, "whole pages");

void mgi_segment_init(mgi_segment_t *seg, const char *group, uint32_t fault_around)
{
	memset(seg, 0, sizeof(*seg));
	seg->ctl.magic = MGI_SEGMENT_MAGIC;
	seg->ctl.version = MGI_SEGMENT_VERSION;
	seg->ctl.bytes = sizeof(*seg);
	strncpy(seg->ctl.group, group, sizeof(seg->ctl.group) - 1);
	mgi_counter_limits_init(&seg->ctl.memory);
	mgi_counter_limits_init(&seg->ctl.swap);
	mgi_counter_init(&seg->acct.memory);
	mgi_counter_init(&seg->acct.swap);
	atomic_init(&seg->ctl.swappiness, MGI_SWAPPINESS_DEFAULT);
	if (fault_around < 1)
		fault_around = 1;
	if (fault_around > MGI_FAULT_AROUND_MAX)
		fault_around = MGI_FAULT_AROUND_MAX;
	atomic_init(&seg->ctl.fault_around, fault_around);
	for (int i = 0; i < 2; i++) {
		mgi_threshold_set_init(&seg->ctl.thresholds[i].set, MGI_THRESHOLDS_MAX);
		mgi_threshold_pos_init(&seg->acct.thresholds[i]);
	}
}

static void count_crossing(void *arg, const mgi_threshold_event_t *ev)
{
	mgi_segment_t *seg = arg;

	if (ev->listener >= MGI_LISTENERS_MAX)
		return;
	if (!ev->up && atomic_load_explicit(&seg->ctl.up_only[ev->listener], memory_order_relaxed))
		return;
	atomic_fetch_add(&seg->acct.pending[ev->listener], 1);
}

unsigned mgi_segment_check_thresholds(mgi_segment_t *seg)
{
	unsigned n = 0;

	for (int i = 0; i < 2; i++) {
		const mgi_threshold_set_t *set = &seg->ctl.thresholds[i].set;
		mgi_threshold_pos_t *pos = &seg->acct.thresholds[i];
		if (mgi_threshold_count(set) == 0)
			continue; /* the common case: one load */
		if (i == MGI_WATCH_MEMORY)
			n += mgi_threshold_check_live(set, pos, mgi_counter_read(&seg->acct.memory),
						      &seg->acct.memory.usage, count_crossing, seg);
		else /* memory + swap: no single word to re-read; the last checker
		      * of a change sees the sum it left */
			n += mgi_threshold_check(set, pos,
						 mgi_counter_read(&seg->acct.memory) +
							 mgi_counter_read(&seg->acct.swap),
						 count_crossing, seg);
	}
	return n;
}

void mgi_segment_forget_manager(mgi_segment_t *seg)
{
	uint64_t mem = mgi_counter_read(&seg->acct.memory);
	uint64_t usage[2] = {mem, mem + mgi_counter_read(&seg->acct.swap)};

	for (int i = 0; i < 2; i++) {
		mgi_threshold_set_t *set = &seg->ctl.thresholds[i].set;
		mgi_threshold_pos_t *pos = &seg->acct.thresholds[i];
		if (set->capacity != MGI_THRESHOLDS_MAX) {
			/* Never written after init: a damaged segment. */
			mgi_threshold_set_init(set, MGI_THRESHOLDS_MAX);
			mgi_threshold_pos_init(pos);
			continue;
		}
		mgi_threshold_repair(set, pos, usage[i]);
		/* Every entry goes, whatever listener it names (a damaged
		 * one may name none of ours): each pass removes at least the
		 * first entry's listener. */
		while (mgi_threshold_count(set) > 0) {
			uint64_t who = atomic_load(&set->entries[0].listener);
			if (mgi_threshold_unregister(set, pos, who, usage[i]) == 0)
				break; /* cannot happen after the repair */
		}
	}
	for (int l = 0; l < MGI_LISTENERS_MAX; l++) {
		atomic_store(&seg->acct.pending[l], 0);
		atomic_store(&seg->ctl.up_only[l], 0);
	}
	atomic_store(&seg->acct.crossed_ns, 0);
	/* A release the old manager did not finish: the slot is free (what
	 * it held was taken from its figures before the pid was marked). */
	for (int i = 0; i < MGI_PROCS_MAX; i++)
		if (atomic_load(&seg->ctl.procs[i].pid) == MGI_SLOT_RELEASING)
			atomic_store(&seg->ctl.procs[i].pid, 0);
	atomic_store(&seg->ctl.cooperators, 0);
	atomic_store(&seg->ctl.oom_victim, 0);
	/* a pause is the old manager's: the next refused charge pauses again */
	atomic_store(&seg->ctl.under_oom, 0);
	/* so is a handler: it registers again with the new one */
	atomic_store(&seg->ctl.oom_handler_pid, 0);
	atomic_store(&seg->ctl.oom_handling, 0);
	atomic_store(&seg->ctl.oom_reserve_now, 0);
}

int mgi_segment_claim(mgi_segment_t *seg, int32_t pid)
{
	for (int i = 0; i < MGI_PROCS_MAX; i++) {
		int32_t free_pid = 0;
		mgi_proc_id_t *id = &seg->ctl.procs[i];
		mgi_proc_slot_t *s = &seg->acct.procs[i];
		if (atomic_load_explicit(&id->pid, memory_order_relaxed) != 0)
			continue;
		if (atomic_compare_exchange_strong(&id->pid, &free_pid, pid)) {
			memset(id->comm, 0, sizeof(id->comm));
			id->oom_priority = 0;
			atomic_store(&s->charged, 0);
			atomic_store(&s->swapped, 0);
			atomic_store(&s->pgfault, 0);
			atomic_store(&s->tracked_bytes, 0);
			atomic_store(&s->untracked_bytes, 0);
			atomic_store(&s->staged, 0);
			atomic_store(&s->staged_since_ns, 0);
			atomic_store(&s->stored_bytes, 0);
			atomic_store(&s->file_bytes, 0);
			atomic_store(&s->same_filled, 0);
			atomic_store(&s->est_mapped, 0);
			atomic_store(&s->est_resident, 0);
			atomic_store(&s->est_fast, 0);
			atomic_store(&s->est_slow, 0);
			return i;
		}
	}
	return -ENOSPC;
}

static uint64_t clamp(uint64_t v, uint64_t most)
{
	return v < most ? v : most;
}

/* Takes a slot's figures (zeroing them) and uncharges them along path,
 * each clamped to what the group's own counter holds. */
static uint64_t take_figures(mgi_segment_t *seg, int idx, const mgi_counter_path_t *path)
{
	mgi_proc_slot_t *s = &seg->acct.procs[idx];
	uint64_t pages = clamp(atomic_exchange(&s->charged, 0), mgi_counter_read(&seg->acct.memory));
	uint64_t swapped = clamp(atomic_exchange(&s->swapped, 0), mgi_counter_read(&seg->acct.swap));

	mgi_counter_uncharge(path, pages);
	mgi_counter_path_t swap = mgi_segment_swap_path(path);
	mgi_counter_uncharge(&swap, swapped);
	atomic_store(&s->staged, 0);
	atomic_store(&s->staged_since_ns, 0);
	atomic_store(&s->stored_bytes, 0);
	atomic_store(&s->file_bytes, 0);
	atomic_store(&s->same_filled, 0);
	return pages;
}

long mgi_segment_release(mgi_segment_t *seg, int idx, int32_t pid, const mgi_counter_path_t *path)
{
	int32_t expected = pid;
	uint64_t pages;

	if (idx < 0 || idx >= MGI_PROCS_MAX || (pid <= 0 && pid != MGI_SLOT_SPARE))
		return -ESRCH;
	/* Claim the release first (pid -> RELEASING): a releasing slot
	 * cannot be claimed anew, so what it held is uncharged exactly once.
	 * The owner is dead (that is why we release); a hostile one's last
	 * writes are clamped by take_figures. */
	if (!atomic_compare_exchange_strong(&seg->ctl.procs[idx].pid, &expected, MGI_SLOT_RELEASING))
		return -ESRCH;
	pages = take_figures(seg, idx, path);
	atomic_store(&seg->ctl.procs[idx].pid, 0);
	expected = pid;
	atomic_compare_exchange_strong(&seg->ctl.oom_victim, &expected, 0);
	return (long)pages;
}

int mgi_segment_bind_spare(mgi_segment_t *seg, int idx, int32_t pid)
{
	int32_t expected = MGI_SLOT_SPARE;

	if (idx < 0 || idx >= MGI_PROCS_MAX || pid <= 1 || pid >= MGI_PID_MAX)
		return -ESRCH;
	return atomic_compare_exchange_strong(&seg->ctl.procs[idx].pid, &expected, pid) ? 0 : -ESRCH;
}

uint64_t mgi_segment_uncharge_slot(mgi_segment_t *seg, int idx, const mgi_counter_path_t *path)
{
	if (idx < 0 || idx >= MGI_PROCS_MAX)
		return 0;
	return take_figures(seg, idx, path);
}

uint64_t mgi_segment_slot_charged(const mgi_segment_t *seg, int idx)
{
	if (idx < 0 || idx >= MGI_PROCS_MAX)
		return 0;
	return clamp(atomic_load_explicit(&seg->acct.procs[idx].charged, memory_order_relaxed),
		     mgi_counter_read(&seg->acct.memory));
}

static bool in_use(const mgi_segment_t *seg, int i)
{
	return atomic_load_explicit(&seg->ctl.procs[i].pid, memory_order_relaxed) > 0;
}

int mgi_segment_largest(const mgi_segment_t *seg)
{
	int best = -1;
	uint64_t most = 0;

	for (int i = 0; i < MGI_PROCS_MAX; i++) {
		uint64_t c = mgi_segment_slot_charged(seg, i);
		if (in_use(seg, i) && c > most) {
			most = c;
			best = i;
		}
	}
	return best;
}

bool mgi_proc_colder(const mgi_proc_slot_t *a, const mgi_proc_slot_t *b)
{
	uint64_t ac = atomic_load_explicit(&a->charged, memory_order_relaxed);
	uint64_t bc = atomic_load_explicit(&b->charged, memory_order_relaxed);

	uint64_t as = atomic_load_explicit(&a->staged_since_ns, memory_order_relaxed);
	uint64_t bs = atomic_load_explicit(&b->staged_since_ns, memory_order_relaxed);

	if (ac == 0)
		return false;
	if (bc == 0)
		return true;
	if (as && bs)
		return as < bs;
	if (as || bs)
		return as != 0;
	return ac > bc;
}

int mgi_segment_coldest(const mgi_segment_t *seg)
{
	int best = -1;

	for (int i = 0; i < MGI_PROCS_MAX; i++) {
		if (!in_use(seg, i) ||
		    atomic_load_explicit(&seg->acct.procs[i].charged, memory_order_relaxed) == 0)
			continue;
		if (best < 0 || mgi_proc_colder(&seg->acct.procs[i], &seg->acct.procs[best]))
			best = i;
	}
	return best;
}

unsigned mgi_segment_us_bucket(uint64_t ns)
{
	uint64_t us = ns / 1000;
	unsigned b = 0;

	while (b + 1 < MGI_RECLAIM_BUCKETS && us >= (1ULL << b))
		b++;
	return b;
}

void mgi_segment_count_stall(mgi_segment_t *seg, uint64_t ns)
{
	atomic_fetch_add_explicit(&seg->acct.reclaim_hist[mgi_segment_us_bucket(ns)], 1,
				  memory_order_relaxed);
}

void mgi_segment_count_restore(mgi_segment_t *seg, uint64_t ns)
{
	atomic_fetch_add_explicit(&seg->acct.restore_hist[mgi_segment_us_bucket(ns)], 1,
				  memory_order_relaxed);
	atomic_fetch_add_explicit(&seg->acct.restore_ns, ns, memory_order_relaxed);
}

void mgi_segment_note_crossing(mgi_segment_t *seg, uint64_t now_ns)
{
	uint64_t none = 0;

	/* the earliest waiting one stays: a later crossing is signalled with it */
	atomic_compare_exchange_strong_explicit(&seg->acct.crossed_ns, &none, now_ns,
						memory_order_relaxed, memory_order_relaxed);
}

unsigned mgi_segment_nr_procs(const mgi_segment_t *seg)
{
	unsigned n = 0;
	for (int i = 0; i < MGI_PROCS_MAX; i++)
		n += in_use(seg, i);
	return n;
}

/* Records the first problem found; later ones only add their bit. */
static void found(unsigned *bits, unsigned bit, char *why, size_t whylen, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
static void found(unsigned *bits, unsigned bit, char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	if (*bits == 0 && why && whylen) {
		va_start(ap, fmt);
		vsnprintf(why, whylen, fmt, ap);
		va_end(ap);
	}
	*bits |= bit;
}

unsigned mgi_segment_audit(mgi_segment_t *seg, uint64_t slack, char *why, size_t whylen)
{
	unsigned bits = 0;
	uint64_t charged = 0;
	mgi_counter_t *counters[2] = {&seg->acct.memory, &seg->acct.swap};
	static const char *const names[2] = {"memory", "swap"};

	if (why && whylen)
		why[0] = '\0';
	for (int i = 0; i < MGI_PROCS_MAX; i++) {
		mgi_proc_slot_t *s = &seg->acct.procs[i];
		uint64_t c = atomic_load(&s->charged);
		/* (a spare: what the child that took it charged before the
		 * manager bound it) */
		if (in_use(seg, i) || atomic_load(&seg->ctl.procs[i].pid) == MGI_SLOT_SPARE) {
			charged += clamp(c, MGI_PAGES_UNLIMITED);
			continue;
		}
		/* Only the manager frees a slot, zeroing its figures first;
		 * pages written there since were put by a process. */
		if (atomic_load(&seg->ctl.procs[i].pid) == 0 && (c || atomic_load(&s->swapped))) {
			found(&bits, MGI_TAMPER_FREE_SLOT, why, whylen,
			      "free slot %d says it holds %llu pages", i, (unsigned long long)c);
			atomic_store(&s->charged, 0);
			atomic_store(&s->swapped, 0);
		}
	}
	for (int k = 0; k < 2; k++) {
		uint64_t u = mgi_counter_read(counters[k]);
		if (u > MGI_PAGES_UNLIMITED) {
			uint64_t to = k == 0 ? clamp(charged, MGI_PAGES_UNLIMITED) : 0;
			found(&bits, MGI_TAMPER_USAGE, why, whylen,
			      "%s usage %llu pages, beyond any limit (clamped to %llu)", names[k],
			      (unsigned long long)u, (unsigned long long)to);
			atomic_store(&counters[k]->usage, to);
		}
		if (atomic_load(&counters[k]->watermark) > MGI_PAGES_UNLIMITED)
			atomic_store(&counters[k]->watermark, mgi_counter_read(counters[k]));
	}
	uint64_t usage = mgi_counter_read(&seg->acct.memory);
	if (charged > usage + slack)
		found(&bits, MGI_TAMPER_SLOTS, why, whylen,
		      "its processes say they hold %llu pages, the group uses %llu",
		      (unsigned long long)charged, (unsigned long long)usage);
	for (int l = 0; l < MGI_LISTENERS_MAX; l++) {
		uint64_t p = atomic_load(&seg->acct.pending[l]);
		if (p > MGI_PENDING_MAX) {
			found(&bits, MGI_TAMPER_PENDING, why, whylen,
			      "listener %d has %llu crossings pending (cleared)", l,
			      (unsigned long long)p);
			atomic_store(&seg->acct.pending[l], 0);
		}
	}
	uint64_t now[2] = {usage, usage + mgi_counter_read(&seg->acct.swap)};
	for (int i = 0; i < 2; i++) {
		mgi_threshold_set_t *set = &seg->ctl.thresholds[i].set;
		mgi_threshold_pos_t *pos = &seg->acct.thresholds[i];
		uint64_t state = atomic_load(&pos->state);
		/* Checkers never leave an odd generation (only the manager
		 * writes) nor an index past the set. */
		if ((uint32_t)state > mgi_threshold_count(set) || ((state >> 32) & 1)) {
			found(&bits, MGI_TAMPER_POSITION, why, whylen,
			      "threshold position %#llx of set %d is no position (repaired)",
			      (unsigned long long)state, i);
			mgi_threshold_repair(set, pos, now[i]);
		}
	}
	return bits;
}

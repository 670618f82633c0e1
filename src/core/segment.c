/* segment.c - the shared accounting segment: init, validation, process slots. */
#include "segment.h"

#include <errno.h>
#include <string.h>

void mgi_segment_init(mgi_segment_t *seg, const char *group, uint32_t fault_around)
{
	memset(seg, 0, sizeof(*seg));
	seg->magic = MGI_SEGMENT_MAGIC;
	seg->version = MGI_SEGMENT_VERSION;
	seg->bytes = sizeof(*seg);
	strncpy(seg->group, group, sizeof(seg->group) - 1);
	mgi_counter_init(&seg->memory);
	mgi_counter_init(&seg->swap);
	atomic_init(&seg->swappiness, MGI_SWAPPINESS_DEFAULT);
	if (fault_around < 1)
		fault_around = 1;
	if (fault_around > MGI_FAULT_AROUND_MAX)
		fault_around = MGI_FAULT_AROUND_MAX;
	atomic_init(&seg->fault_around, fault_around);
	for (int i = 0; i < 2; i++)
		mgi_threshold_set_init(&seg->thresholds[i].set, MGI_THRESHOLDS_MAX);
}

static void count_crossing(void *arg, const mgi_threshold_event_t *ev)
{
	mgi_segment_t *seg = arg;

	if (ev->listener >= MGI_LISTENERS_MAX)
		return;
	mgi_listener_t *l = &seg->listeners[ev->listener];
	if (!ev->up && atomic_load_explicit(&l->up_only, memory_order_relaxed))
		return;
	atomic_fetch_add(&l->pending, 1);
}

unsigned mgi_segment_check_thresholds(mgi_segment_t *seg)
{
	unsigned n = 0;

	for (int i = 0; i < 2; i++) {
		mgi_threshold_set_t *set = &seg->thresholds[i].set;
		if (mgi_threshold_count(set) == 0)
			continue; /* the common case: one load */
		if (i == MGI_WATCH_MEMORY)
			n += mgi_threshold_check_live(set, mgi_counter_read(&seg->memory),
						      &seg->memory.usage, count_crossing, seg);
		else /* memory + swap: no single word to re-read; the last checker
		      * of a change sees the sum it left */
			n += mgi_threshold_check(set,
						 mgi_counter_read(&seg->memory) +
							 mgi_counter_read(&seg->swap),
						 count_crossing, seg);
	}
	return n;
}

void mgi_segment_forget_manager(mgi_segment_t *seg)
{
	uint64_t mem = mgi_counter_read(&seg->memory);
	uint64_t usage[2] = {mem, mem + mgi_counter_read(&seg->swap)};

	for (int i = 0; i < 2; i++) {
		mgi_threshold_set_t *set = &seg->thresholds[i].set;
		if (set->capacity != MGI_THRESHOLDS_MAX) {
			/* Never written after init: a damaged segment. */
			mgi_threshold_set_init(set, MGI_THRESHOLDS_MAX);
			continue;
		}
		mgi_threshold_repair(set, usage[i]);
		/* Every entry goes, whatever listener it names (a damaged
		 * one may name none of ours): each pass removes at least the
		 * first entry's listener. */
		while (mgi_threshold_count(set) > 0) {
			uint64_t who = atomic_load(&set->entries[0].listener);
			if (mgi_threshold_unregister(set, who, usage[i]) == 0)
				break; /* cannot happen after the repair */
		}
	}
	for (int l = 0; l < MGI_LISTENERS_MAX; l++) {
		atomic_store(&seg->listeners[l].pending, 0);
		atomic_store(&seg->listeners[l].up_only, 0);
	}
	atomic_store(&seg->cooperators, 0);
	atomic_store(&seg->oom_victim, 0);
}

bool mgi_segment_valid(const void *mem, size_t bytes)
{
	const mgi_segment_t *seg = mem;

	return mem && bytes >= sizeof(*seg) && seg->magic == MGI_SEGMENT_MAGIC &&
	       seg->version == MGI_SEGMENT_VERSION && seg->bytes == sizeof(*seg);
}

int mgi_segment_claim(mgi_segment_t *seg, int32_t pid)
{
	for (int i = 0; i < MGI_PROCS_MAX; i++) {
		int32_t free_pid = 0;
		mgi_proc_slot_t *s = &seg->procs[i];
		if (atomic_load_explicit(&s->pid, memory_order_relaxed) != 0)
			continue;
		if (atomic_compare_exchange_strong(&s->pid, &free_pid, pid)) {
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
			memset(s->comm, 0, sizeof(s->comm));
			return i;
		}
	}
	return -ENOSPC;
}

long mgi_segment_release(mgi_segment_t *seg, int idx, int32_t pid, const mgi_counter_path_t *path)
{
	mgi_proc_slot_t *s;
	int32_t expected = pid;
	uint64_t pages;

	if (idx < 0 || idx >= MGI_PROCS_MAX || pid <= 0)
		return -ESRCH;
	s = &seg->procs[idx];
	/* Claim the release first (pid -> RELEASING): of two releasers only
	 * one gets past here, and a releasing slot cannot be claimed anew, so
	 * what it held is uncharged exactly once. The owner is dead (that is
	 * why we release), so nobody adds to `charged` meanwhile. */
	if (!atomic_compare_exchange_strong(&s->pid, &expected, MGI_SLOT_RELEASING))
		return -ESRCH;
	pages = atomic_exchange(&s->charged, 0);
	mgi_counter_uncharge(path, pages);
	mgi_counter_path_t swap = mgi_segment_swap_path(path);
	mgi_counter_uncharge(&swap, atomic_exchange(&s->swapped, 0)); /* died with it */
	atomic_store(&s->staged, 0);
	atomic_store(&s->staged_since_ns, 0);
	atomic_store(&s->stored_bytes, 0);
	atomic_store(&s->file_bytes, 0);
	atomic_store(&s->same_filled, 0);
	atomic_store(&s->pid, 0);
	expected = pid;
	atomic_compare_exchange_strong(&seg->oom_victim, &expected, 0);
	return (long)pages;
}

int mgi_segment_largest(const mgi_segment_t *seg)
{
	int best = -1;
	uint64_t most = 0;

	for (int i = 0; i < MGI_PROCS_MAX; i++) {
		const mgi_proc_slot_t *s = &seg->procs[i];
		uint64_t c = atomic_load_explicit(&s->charged, memory_order_relaxed);
		if (atomic_load_explicit(&s->pid, memory_order_relaxed) > 0 && c > most) {
			most = c;
			best = i;
		}
	}
	return best;
}

static bool holds_memory(const mgi_proc_slot_t *s)
{
	return atomic_load_explicit(&s->pid, memory_order_relaxed) > 0 &&
	       atomic_load_explicit(&s->charged, memory_order_relaxed) > 0;
}

bool mgi_proc_colder(const mgi_proc_slot_t *a, const mgi_proc_slot_t *b)
{
	uint64_t ac = atomic_load_explicit(&a->charged, memory_order_relaxed);
	uint64_t bc = atomic_load_explicit(&b->charged, memory_order_relaxed);

	uint64_t as = atomic_load_explicit(&a->staged_since_ns, memory_order_relaxed);
	uint64_t bs = atomic_load_explicit(&b->staged_since_ns, memory_order_relaxed);

	if (!holds_memory(a))
		return false;
	if (!holds_memory(b))
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
		if (!holds_memory(&seg->procs[i]))
			continue;
		if (best < 0 || mgi_proc_colder(&seg->procs[i], &seg->procs[best]))
			best = i;
	}
	return best;
}

void mgi_segment_count_stall(mgi_segment_t *seg, uint64_t ns)
{
	uint64_t us = ns / 1000;
	unsigned b = 0;

	while (b + 1 < MGI_RECLAIM_BUCKETS && us >= (1ULL << b))
		b++;
	atomic_fetch_add_explicit(&seg->reclaim_hist[b], 1, memory_order_relaxed);
}

unsigned mgi_segment_nr_procs(const mgi_segment_t *seg)
{
	unsigned n = 0;
	for (int i = 0; i < MGI_PROCS_MAX; i++)
		n += atomic_load_explicit(&seg->procs[i].pid, memory_order_relaxed) > 0;
	return n;
}

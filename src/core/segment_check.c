/* segment_check.c - a segment from an untrusted file checked before use: layout, limits, counters, thresholds, OOM settings. */
#include "segment.h"
#include "victim.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

bool mgi_segment_valid(const void *mem, size_t bytes)
{
	const mgi_segment_t *seg = mem;

	return mem && bytes >= sizeof(*seg) && seg->ctl.magic == MGI_SEGMENT_MAGIC &&
	       seg->ctl.version == MGI_SEGMENT_VERSION && seg->ctl.bytes == sizeof(*seg);
}

static int bad(char *why, size_t whylen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int bad(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (why && whylen)
		vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static int check_limits(const mgi_limits_t *l, const char *what, char *why, size_t whylen)
{
	uint64_t v[4] = {atomic_load(&l->max), atomic_load(&l->high), atomic_load(&l->low),
			 atomic_load(&l->soft)};
	static const char *const name[4] = {"max", "high", "low", "soft"};

	for (int i = 0; i < 4; i++)
		if (v[i] > MGI_PAGES_UNLIMITED)
			return bad(why, whylen, "%s %s limit %llu pages is beyond any limit", what,
				   name[i], (unsigned long long)v[i]);
	return 0;
}

static int check_counter(const mgi_counter_t *c, const char *what, char *why, size_t whylen)
{
	uint64_t usage = atomic_load(&c->usage), wm = atomic_load(&c->watermark);

	if (usage > MGI_PAGES_UNLIMITED)
		return bad(why, whylen, "%s usage %llu pages is beyond any limit", what,
			   (unsigned long long)usage);
	if (wm > MGI_PAGES_UNLIMITED)
		return bad(why, whylen, "%s watermark %llu pages is beyond any limit", what,
			   (unsigned long long)wm);
	return 0;
}

static int check_thresholds(const mgi_segment_t *seg, int i, char *why, size_t whylen)
{
	const mgi_threshold_set_t *set = &seg->ctl.thresholds[i].set;
	uint32_t size = atomic_load(&set->size);
	uint64_t state = atomic_load(&seg->acct.thresholds[i].state);

	if (set->capacity != MGI_THRESHOLDS_MAX)
		return bad(why, whylen, "threshold set %d has capacity %u, not %u", i, set->capacity,
			   MGI_THRESHOLDS_MAX);
	if (size > set->capacity)
		return bad(why, whylen, "threshold set %d holds %u thresholds, more than its %u", i,
			   size, set->capacity);
	for (uint32_t k = 0; k < size; k++) {
		uint64_t th = atomic_load(&set->entries[k].threshold);
		uint64_t who = atomic_load(&set->entries[k].listener);
		if (who >= MGI_LISTENERS_MAX)
			return bad(why, whylen, "threshold %u of set %d names listener %llu (at most %u)",
				   k, i, (unsigned long long)who, MGI_LISTENERS_MAX - 1);
		if (k > 0 && atomic_load(&set->entries[k - 1].threshold) > th)
			return bad(why, whylen, "threshold set %d is not sorted at %u", i, k);
	}
	/* An odd generation is a writer that died mid-edit: the repair at
	 * adoption closes it. The index is the checkers' word. */
	if ((uint32_t)state > size)
		return bad(why, whylen, "threshold set %d's position %u is beyond its %u thresholds", i,
			   (uint32_t)state, size);
	return 0;
}

/* The OOM settings: known bits and values, regexes terminated (their
 * syntax is the manager's to check: it compiles them when it reads them,
 * and a bad one is reported and ignored there). */
static int check_oom(const mgi_segment_t *seg, char *why, size_t whylen)
{
	const mgi_segment_ctl_t *c = &seg->ctl;

	if (c->oom_set & ~MGI_OOM_SET_ALL)
		return bad(why, whylen, "OOM settings flags %#x (known: %#x)", c->oom_set,
			   MGI_OOM_SET_ALL);
	if (c->oom_policy > MGI_OOM_POLICY_MAX)
		return bad(why, whylen, "OOM policy %u is no policy", c->oom_policy);
	if (c->oom_scope > MGI_OOM_SCOPE_GROUP)
		return bad(why, whylen, "OOM kill scope %u is no scope", c->oom_scope);
	if (c->oom_signal != 0 && c->oom_signal != SIGKILL && c->oom_signal != SIGTERM)
		return bad(why, whylen, "OOM signal %u (KILL or TERM)", c->oom_signal);
	if (c->oom_grace_ms > MGI_OOM_GRACE_MAX_MS)
		return bad(why, whylen, "OOM grace %u ms (at most %u)", c->oom_grace_ms,
			   MGI_OOM_GRACE_MAX_MS);
	if (!memchr(c->oom_prefer, '\0', sizeof(c->oom_prefer)) ||
	    !memchr(c->oom_avoid, '\0', sizeof(c->oom_avoid)))
		return bad(why, whylen, "an OOM regex is not terminated");
	if (c->oom_kill_disable > 1)
		return bad(why, whylen, "OOM kill disable %u (0 or 1)", c->oom_kill_disable);
	if (atomic_load(&c->under_oom) > 1)
		return bad(why, whylen, "under_oom %u (0 or 1)", atomic_load(&c->under_oom));
	if (!memchr(c->oom_prekill, '\0', sizeof(c->oom_prekill)))
		return bad(why, whylen, "the OOM pre-kill command is not terminated");
	if (c->oom_prekill_timeout_ms > MGI_OOM_PREKILL_TIMEOUT_MAX_MS)
		return bad(why, whylen, "OOM pre-kill timeout %u ms (at most %u)",
			   c->oom_prekill_timeout_ms, MGI_OOM_PREKILL_TIMEOUT_MAX_MS);
	if (c->oom_handler_timeout_ms > MGI_OOM_HANDLER_TIMEOUT_MAX_MS)
		return bad(why, whylen, "OOM handler timeout %u ms (at most %u)",
			   c->oom_handler_timeout_ms, MGI_OOM_HANDLER_TIMEOUT_MAX_MS);
	if (c->oom_reserve_pages > MGI_PAGES_UNLIMITED || atomic_load(&c->oom_handling) > 1)
		return bad(why, whylen, "OOM reserve %llu pages or oom_handling %u out of range",
			   (unsigned long long)c->oom_reserve_pages, atomic_load(&c->oom_handling));
	return 0;
}

/* Over 100 lines on purpose: a list of independent checks, in the order a
 * reader of the layout meets the fields, each saying its own problem;
 * split, the order and the "first problem" rule would be harder to see. */
int mgi_segment_check(const void *mem, size_t bytes, char *why, size_t whylen)
{
	const mgi_segment_t *seg = mem;
	uint64_t charged = 0, swapped = 0;
	unsigned nprocs = 0;
	int rc;

	if (!mem || bytes != sizeof(*seg))
		return bad(why, whylen, "%zu bytes, not the %zu of a segment of this version", bytes,
			   sizeof(*seg));
	if (seg->ctl.magic != MGI_SEGMENT_MAGIC)
		return bad(why, whylen, "not a memgrp segment (magic %#llx)",
			   (unsigned long long)seg->ctl.magic);
	if (seg->ctl.version != MGI_SEGMENT_VERSION)
		return bad(why, whylen, "segment version %u, this memgrp reads %u", seg->ctl.version,
			   MGI_SEGMENT_VERSION);
	if (seg->ctl.bytes != sizeof(*seg))
		return bad(why, whylen, "the header says %u bytes, a segment has %zu", seg->ctl.bytes,
			   sizeof(*seg));
	if (memchr(seg->ctl.group, '\0', sizeof(seg->ctl.group)) == NULL)
		return bad(why, whylen, "the group name is not terminated");
	if (seg->ctl.group[0]) {
		char gwhy[128];
		if (mgi_group_name_check(seg->ctl.group, gwhy, sizeof(gwhy)) != 0)
			return bad(why, whylen, "bad group name: %s", gwhy);
	}
	if ((rc = check_limits(&seg->ctl.memory, "memory", why, whylen)) != 0 ||
	    (rc = check_limits(&seg->ctl.swap, "swap", why, whylen)) != 0)
		return rc;
	if (atomic_load(&seg->ctl.memory.max) == 0)
		return bad(why, whylen, "memory limit 0 (a group is given at least a page)");
	if (atomic_load(&seg->ctl.swappiness) > 100)
		return bad(why, whylen, "swappiness %u (at most 100)", atomic_load(&seg->ctl.swappiness));
	if (atomic_load(&seg->ctl.mode) > MGI_MODE_ESTIMATE)
		return bad(why, whylen, "mode %u is no mode", atomic_load(&seg->ctl.mode));
	if (atomic_load(&seg->ctl.backend) > MGI_BACKEND_KERNEL)
		return bad(why, whylen, "backend %u is no backend", atomic_load(&seg->ctl.backend));
	/* A grant is charged to the ancestors: a top-level group has none
	 * to charge (the root is never on a path). */
	uint64_t granted = atomic_load(&seg->ctl.granted);
	uint64_t swap_granted = atomic_load(&seg->ctl.swap_granted);
	if (granted > MGI_PAGES_UNLIMITED || swap_granted > MGI_PAGES_UNLIMITED)
		return bad(why, whylen, "grant of %llu pages and %llu of swap (beyond any limit)",
			   (unsigned long long)granted, (unsigned long long)swap_granted);
	if ((granted || swap_granted) && (!seg->ctl.group[0] || !strchr(seg->ctl.group, '/')))
		return bad(why, whylen, "a top-level group holds a grant of %llu pages and %llu of swap",
			   (unsigned long long)granted, (unsigned long long)swap_granted);
	if ((rc = check_oom(seg, why, whylen)) != 0)
		return rc;
	uint32_t fa = atomic_load(&seg->ctl.fault_around);
	if (fa < 1 || fa > MGI_FAULT_AROUND_MAX)
		return bad(why, whylen, "fault-around %u pages (1 to %u)", fa, MGI_FAULT_AROUND_MAX);
	for (int i = 0; i < 2; i++)
		if ((rc = check_thresholds(seg, i, why, whylen)) != 0)
			return rc;
	for (int l = 0; l < MGI_LISTENERS_MAX; l++) {
		if (atomic_load(&seg->ctl.up_only[l]) > 1)
			return bad(why, whylen, "listener %d's up-only flag is %u", l,
				   atomic_load(&seg->ctl.up_only[l]));
		if (atomic_load(&seg->acct.pending[l]) > MGI_PENDING_MAX)
			return bad(why, whylen, "listener %d has %llu crossings pending", l,
				   (unsigned long long)atomic_load(&seg->acct.pending[l]));
	}
	if ((rc = check_counter(&seg->acct.memory, "memory", why, whylen)) != 0 ||
	    (rc = check_counter(&seg->acct.swap, "swap", why, whylen)) != 0)
		return rc;
	uint64_t usage = atomic_load(&seg->acct.memory.usage);
	uint64_t swap = atomic_load(&seg->acct.swap.usage);
	for (int i = 0; i < MGI_PROCS_MAX; i++) {
		int32_t pid = atomic_load(&seg->ctl.procs[i].pid);
		const mgi_proc_slot_t *s = &seg->acct.procs[i];
		uint64_t c = atomic_load(&s->charged), w = atomic_load(&s->swapped);
		if (pid == MGI_SLOT_SPARE) {
			/* a forked child's first charges, not bound yet */
			charged += c;
			swapped += w;
			continue;
		}
		if (pid == 0 || pid == MGI_SLOT_RELEASING) {
			if (c || w)
				return bad(why, whylen, "free slot %d holds %llu pages and %llu swapped", i,
					   (unsigned long long)c, (unsigned long long)w);
			continue;
		}
		if (pid <= 1 || pid >= MGI_PID_MAX)
			return bad(why, whylen, "slot %d names pid %d, which no managed process has", i,
				   (int)pid);
		if (seg->ctl.procs[i].oom_priority < MGI_OOM_PRIORITY_MIN ||
		    seg->ctl.procs[i].oom_priority > MGI_OOM_PRIORITY_MAX)
			return bad(why, whylen, "slot %d (pid %d) has OOM priority %d (-1000 to 1000)", i,
				   (int)pid, (int)seg->ctl.procs[i].oom_priority);
		for (int j = 0; j < i; j++)
			if (atomic_load(&seg->ctl.procs[j].pid) == pid)
				return bad(why, whylen, "pid %d holds slots %d and %d", (int)pid, j, i);
		/* A slot's figure may run ahead of the counter by what its
		 * process is uncharging as the file is read. */
		if (c > usage + MGI_FAULT_AROUND_MAX)
			return bad(why, whylen, "slot %d (pid %d) holds %llu pages, the group uses %llu",
				   i, (int)pid, (unsigned long long)c, (unsigned long long)usage);
		if (w > swap + MGI_FAULT_AROUND_MAX)
			return bad(why, whylen, "slot %d (pid %d) has %llu pages swapped, the group %llu",
				   i, (int)pid, (unsigned long long)w, (unsigned long long)swap);
		charged += c;
		swapped += w;
		nprocs++;
	}
	/* Charges in flight when the file was read: each process holds at
	 * most a fault-around window between its counter and its slot. */
	uint64_t slack = (uint64_t)MGI_FAULT_AROUND_MAX * (nprocs + 1);
	if (charged > usage + slack)
		return bad(why, whylen, "its %u processes hold %llu pages, the group uses %llu", nprocs,
			   (unsigned long long)charged, (unsigned long long)usage);
	if (swapped > swap + slack)
		return bad(why, whylen, "its %u processes have %llu pages swapped, the group %llu",
			   nprocs, (unsigned long long)swapped, (unsigned long long)swap);
	return 0;
}

int mgi_segment_check_grant(const mgi_segment_t *parent, const mgi_segment_t *child, char *why,
			    size_t whylen)
{
	uint64_t g = atomic_load(&child->ctl.granted), sg = atomic_load(&child->ctl.swap_granted);
	uint64_t u = atomic_load(&parent->acct.memory.usage), su = atomic_load(&parent->acct.swap.usage);

	if (g > u)
		return bad(why, whylen, "granted %llu pages, more than its parent '%s' uses (%llu)",
			   (unsigned long long)g, parent->ctl.group, (unsigned long long)u);
	if (sg > su)
		return bad(why, whylen, "granted %llu pages of swap, more than its parent '%s' has (%llu)",
			   (unsigned long long)sg, parent->ctl.group, (unsigned long long)su);
	return 0;
}

/* handler.c - the fault handler thread: resolves faults, follows events, OOM. */
#include <errno.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "account.h"
#include "agent.h"
#include "os.h"
#include "proto.h"
#include "recent.h"
#include "size.h"
#include "thp.h"
#include "trace.h"

/*
 * Rules of this thread (pitfalls 1 and 4 of the design):
 *  - it never touches managed memory: everything it uses is on its own
 *    stack or in the agent's arena, and it never calls malloc;
 *  - it never blocks on anything but poll on its own descriptors: not on
 *    the manager, not on a lock an application thread could hold;
 *  - it reads events promptly, because munmap and MADV_DONTNEED of a
 *    registered range wait until it has read them, and UFFDIO_COPY returns
 *    EAGAIN meanwhile: such a fault is parked and retried after the events.
 */

#define PAGE MGI_PAGE_SIZE
#define PENDING_MAX 4096
#define MSGS_PER_READ 64
#define OOM_RETRY_MS 2
/* While the manager is gone: how often to look for a restarted one. */
#define REJOIN_MS 1000
#define EST_TICK_MS 1000 /* estimate mode's look at its fast regions */
#define OOM_ASK_NS (100ULL * 1000 * 1000) /* between requests to the manager */
#define OOM_EPISODE_GAP_NS (1000ULL * 1000 * 1000) /* quiet this long: a new episode */
#define OOM_GIVEUP_NS (10ULL * 1000 * 1000 * 1000) /* the manager did not resolve it */
#define MINCORE_CHUNK 16384                         /* pages per mincore call */
#define STALL_INJECT_S 6 /* MEMGRP_INJECT=stall-handler: 3 watchdog periods */

/* Pages evicted for a refused charge (128 KiB). The fault that meets the
 * limit pays for compressing them (~5 us a page here), so this is the size
 * of a stall: memcg reclaims 32 pages at a time too (SWAP_CLUSTER_MAX).
 * Measured with bench/reclaim's random faults on evicted pages: 128 gave
 * p99.9 890 us, 32 gives 215 us (p99 45 -> 180 us). */
#define RECLAIM_BATCH 32
/* Memory of the group held by no process (in flight between them) that
 * still lets a process make room for itself rather than ask the manager. */
#define RECLAIM_SLACK 128
#define RECLAIM_ASK_NS (20ULL * 1000 * 1000) /* between RECLAIM_REQs */
#define RECLAIM_GIVEUP_NS (3ULL * 1000 * 1000 * 1000) /* the manager made no room */
#define LOCAL_AFTER_NS (10ULL * 1000 * 1000) /* waited this long: evict our own */

/* A fault waiting for a retry (memory, or events first), and since when
 * its charge has been refused (0: it has not): the reclaim stall. */
struct parked {
	uintptr_t addr;
	uint64_t since;
};
static struct parked pending[PENDING_MAX];
static unsigned npending;
/* Pages the last resolved fault brought in (wait_for_work's evict-ahead
 * serves single-page faults only). */
static size_t last_fault_pages;
static unsigned char *mincore_vec;

uint64_t mgi_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}
#define now_ns mgi_now_ns

static void out_of_memory(unsigned level);
static bool ask_manager_reclaim(unsigned level, uint64_t since);

/*
 * Ranges the application just gave back (MADV_DONTNEED, MADV_REMOVE). The
 * kernel queues UFFD_EVENT_REMOVE, waits until we have read it, and only
 * then zaps the range: for a moment after we have followed the event the
 * old pages may still be there. A move out of the range then would keep
 * old contents as evicted data (to come back where the application must
 * read zeros), and a copy into it would meet an old page and count it as
 * present just before it goes. So for a while the handler leaves such a
 * range alone: no eviction there, no fault-around into it, and an old page
 * met there is not counted.
 */
#define REMOVED_RECENT 16
#define REMOVED_QUARANTINE_NS (50ULL * 1000 * 1000)
static mgi_recent_t removed;

static void note_removed(uintptr_t start, uintptr_t end)
{
	mgi_recent_note(&removed, start, end, now_ns());
}

bool mgi_recently_removed(uintptr_t start, uintptr_t end)
{
	return mgi_recent_overlaps(&removed, start, end, now_ns(), REMOVED_QUARANTINE_NS);
}

/*
 * Ranges an mremap moved a mapping away from, whose UNMAP is still to come.
 * The kernel unmaps the old range under the mmap lock; then, the lock
 * dropped, it queues REMAP, waits until we have read it, and only then
 * queues UNMAP for the old range. Meanwhile another thread's mremap can
 * move a mapping into the vacated range, and its REMAP comes first. Taken
 * at its word, the late UNMAP dropped the newcomer's evicted pages, which
 * the application then read as zeros (tests/progs/stress.c, traced on
 * 2026-11-24: "after mremap, byte 655360"). The REMAP has already taken
 * everything held for the old range to its new place, so that UNMAP has
 * nothing of the old mapping left to drop: it is skipped (the UNMAP
 * claims the vacated entry). An entry not claimed within VACATED_NS
 * (MREMAP_DONTUNMAP queues no UNMAP) lapses. Each moving thread has at
 * most one entry pending (it waits until its UNMAP is read): this many
 * threads moving at once are covered.
 */
#define VACATED_RECENT 64
/* 10 s, not 1: a CI run lost B's bytes in tests/progs/remaprace.c (round
 * 50 of 100, "moved into the range A vacated, byte 0 wrong") while other
 * tests ran beside it, and the 1 s this was then is the only way the
 * claim fails: A's thread, which queues the UNMAP after its REMAP was
 * read, can wait that long for a CPU on a loaded host (real-time fault
 * handlers of other processes run first). The cost of a longer life: a
 * range MREMAP_DONTUNMAP vacated and munmapped exactly within it keeps
 * its registry entries (and charges) until the process exits. */
#define VACATED_NS (10ULL * 1000 * 1000 * 1000)
static mgi_recent_t vacated;

/* Both guards start empty, in a forked child too (they are the parent's
 * handler's memory of its own events). */
void mgi_handler_guards_reset(void)
{
	mgi_recent_init(&removed, REMOVED_RECENT);
	mgi_recent_init(&vacated, VACATED_RECENT);
}

static void publish_sizes(void)
{
	mgi_est_publish();
	atomic_store_explicit(&mgi_agent.me->tracked_bytes, mgi_agent.reg.bytes,
			      memory_order_relaxed);
	atomic_store_explicit(&mgi_agent.me->untracked_bytes,
			      mgi_agent.untracked_bytes +
				      (mgi_agent.arena.committed - mgi_agent.arena.base),
			      memory_order_relaxed);
}

/* Adds an uncovered range to the registry and charges the pages already
 * present in it (memory touched before it was registered is real). The
 * charge cannot be refused: the pages exist; a later fault meets the
 * limit instead. Without charge, the caller holds their charge already
 * (estimate mode: a fast region turning slow). Returns the pages found. */
static uint64_t learn_gap(uintptr_t start, uintptr_t end, bool charge)
{
	mgi_vregion_t *r;
	uint64_t found = 0;

	if (mgi_registry_add(&mgi_agent.reg, start, end) <= 0)
		return 0;
	for (uintptr_t a = start; a < end;) {
		size_t pages = (end - a) / PAGE;
		if (pages > MINCORE_CHUNK)
			pages = MINCORE_CHUNK;
		if (mincore((void *)a, pages * PAGE, mincore_vec) == 0) {
			for (size_t i = 0; i < pages; i++) {
				if (!(mincore_vec[i] & 1))
					continue;
				r = mgi_registry_find(&mgi_agent.reg, a + i * PAGE);
				if (r)
					found += mgi_registry_mark(&mgi_agent.reg, r, a + i * PAGE, 1);
				if (r)
					mgi_thp_filled(a + i * PAGE, a + (i + 1) * PAGE);
			}
		}
		a += pages * PAGE;
	}
	if (found && charge) {
		mgi_charge_anyway(found);
		/* Pages that were there before we could see them (a forked
		 * child's, a thread's first touches) may have put the group over
		 * its limit: this process brought them, so it evicts the excess
		 * now if it may; else the OOM path, now, not at the next fault. */
		for (unsigned l = 0; l < mgi_agent.path.depth; l++) {
			const mgi_counter_t *c = mgi_agent.path.level[l];
			uint64_t usage = mgi_counter_read(c);
			uint64_t max = mgi_counter_read_max(mgi_agent.path.limit[l]);
			/* estimate mode: fast regions give back first */
			while (usage > max && mgi_est_demote())
				usage = mgi_counter_read(c);
			if (usage <= max)
				continue;
			if (mgi_reclaim_allowed(l)) {
				/* what this process cannot evict now (another
				 * holds the rest) waits for the next faults,
				 * which make room the usual way; so does all of
				 * it in a forked child that kept its parent's
				 * store: its pages are frames it shares with
				 * its parent, each unshared (copied) before it
				 * could go, and a child that execs or exits at
				 * once would pay that in its start */
				if (!mgi_reclaim_adopting())
					mgi_evict(usage - max + RECLAIM_BATCH);
				continue;
			}
			out_of_memory(l);
			break;
		}
	}
	return found;
}

/* Learns [start, end): only the parts not yet in the registry. */
uint64_t mgi_learn_range(uintptr_t start, uintptr_t end, bool charge)
{
	uintptr_t cur = start;
	uint64_t found = 0;

	while (cur < end) {
		mgi_vregion_t *r = mgi_registry_next(&mgi_agent.reg, cur);
		if (r && r->start <= cur) {
			cur = r->end;
			continue;
		}
		uintptr_t gap_end = r && r->start < end ? r->start : end;
		found += learn_gap(cur, gap_end, charge);
		cur = gap_end;
	}
	publish_sizes();
	return found;
}

/*
 * Learns what of [start, end) the kernel maps now. A learn request comes
 * through a pipe, apart from the uffd's events: an application thread
 * registers a range and sends the request, and its malloc may trim the
 * heap (an UNMAP event) before the handler reads that request. Taken at
 * its word, the request put pages past the heap's new end in the
 * registry; a fault-around window that reached them failed with ENOENT,
 * was woken and faulted again, for ever (the parallel-build livelock:
 * cc1 at 100 % CPU in _int_malloc, ~250 000 faults a second). What the
 * kernel maps when the handler looks is right whichever way the race
 * went: a trim before the look is seen in it, one after comes as an
 * UNMAP event that the handler reads later.
 */
static void learn(uintptr_t start, uintptr_t end)
{
	uintptr_t cur = start;
	mgi_vma_t v;

	if (mgi_handover_any())
		mgi_handover_gone(start, end, false);
	while (cur < end && mgi_vma_query(mgi_agent.mapsfd, cur, &v) == 0 && v.start < end) {
		uintptr_t s = v.start > cur ? v.start : cur, e = v.end < end ? v.end : end;
		if (mgi_vma_is_anon_private(&v))
			mgi_learn_range(s, e, true);
		cur = v.end;
	}
}

/*
 * A fill at page failed with ENOENT: the registry holds memory the kernel
 * does not map there as one registered range (a range learned before the
 * learn fix above could not be; a region may span two VMAs, which one
 * ioctl cannot cross). Drops from the region around page the stretches no
 * mapping covers and sets [*lo, *hi) to the mapping that holds page
 * within the region (empty if none). Returns false, changing nothing, if
 * events are waiting: an unmap or a move read after the look would make
 * it wrong (a moved range's evicted pages must follow its REMAP, not be
 * dropped), so the caller reads them first.
 */
static bool resync_at(uintptr_t page, uintptr_t *lo, uintptr_t *hi)
{
	mgi_vregion_t *r = mgi_registry_find(&mgi_agent.reg, page);
	struct { uintptr_t start, end; } gap[8];
	unsigned ngap = 0;
	struct pollfd p = {.fd = mgi_agent.uffd, .events = POLLIN};

	*lo = *hi = 0;
	if (!r)
		return true;
	uintptr_t cur = r->start, end = r->end;
	while (cur < end && ngap < 8) {
		mgi_vma_t v;
		uintptr_t stop = end;
		if (mgi_vma_query(mgi_agent.mapsfd, cur, &v) == 0 && v.start < end) {
			if (v.start <= cur) {
				if (v.start <= page && page < v.end) {
					*lo = cur;
					*hi = v.end < end ? v.end : end;
				}
				cur = v.end;
				continue;
			}
			stop = v.start;
		}
		gap[ngap].start = cur;
		gap[ngap++].end = stop;
		cur = stop;
	}
	if (poll(&p, 1, 0) != 0)
		return false;
	for (unsigned i = 0; i < ngap; i++) {
		long n;
		mgi_trace(MGI_TR_UNMAP, gap[i].start, gap[i].end, 2, 0);
		mgi_est_forget(gap[i].start, gap[i].end);
		mgi_reclaim_drop(gap[i].start, gap[i].end);
		n = mgi_registry_remove(&mgi_agent.reg, gap[i].start, gap[i].end);
		if (n < 0)
			n = (long)mgi_registry_clear(&mgi_agent.reg, gap[i].start, gap[i].end);
		mgi_uncharge((uint64_t)n);
	}
	if (ngap)
		publish_sizes();
	return true;
}

/* A fault in a range we have not heard of: the kernel says it is ours
 * (registered), e.g. grown in place by mremap or brk. Ask which VMA. */
static void learn_vma(uintptr_t addr)
{
	mgi_vma_t v;

	if (mgi_vma_query(mgi_agent.mapsfd, addr, &v) != 0 || v.start > addr ||
	    !mgi_vma_is_anon_private(&v) || v.end - v.start > MGI_REGION_MAX_BYTES)
		return;
	if (mgi_arena_contains(&mgi_agent.arena, v.start) ||
	    mgi_arena_contains(&mgi_agent.arena, v.end - 1))
		return; /* never the agent's own memory */
	if (mgi_est_fast_at(addr))
		return; /* a fast region's: unwatch() below */
	learn(v.start, v.end);
}

/*
 * The kernel reported a fault at page and the handler will not manage it
 * (a fast region's in estimate mode, memory it may not register, no room
 * in the registry). Waking the thread alone would bring the same fault
 * back for ever while the range stays registered (the "lost fault" lines
 * of redis in estimate mode): the range is unregistered, so the kernel
 * serves its faults. Estimate mode's fast region already charges its
 * size; anything else goes unmanaged, said once.
 */
static void unwatch(uintptr_t page)
{
	static bool said;
	mgi_vma_t v;

	if (mgi_est_fast_at(page)) {
		mgi_est_fault_on_fast(page);
		return;
	}
	if (mgi_vma_query(mgi_agent.mapsfd, page, &v) != 0 || v.start > page)
		return; /* unmapped since: the thread meets whatever is there */
	if (mgi_uffd_unregister(mgi_agent.uffd, v.start, v.end - v.start) == 0 && !said) {
		said = true;
		mgi_agent_log("%#lx-%#lx (%s) cannot be managed: left to the kernel",
			      (unsigned long)v.start, (unsigned long)v.end, v.name[0] ? v.name : "anonymous");
	}
}

static void format_pages(uint64_t pages, char *buf)
{
	mgi_size_format(pages * PAGE, buf, 16);
}

/*
 * Asks the manager to resolve an OOM episode of the group `level` steps up:
 * it alone chooses the victim (in any group under that one) and kills it.
 * Asks at most every OOM_ASK_NS while the episode lasts. Returns false
 * once the episode has lasted OOM_GIVEUP_NS without being resolved (the
 * manager is gone, or answered nothing), true while the fault should wait.
 */
static bool ask_manager(unsigned level)
{
	static uint64_t asked_ns, episode_ns, paused_ns;
	mgi_segment_t *anc = mgi_agent.anc[level];
	uint64_t now = now_ns();
	mgi_msg_t m;

	if (!asked_ns || now - asked_ns > OOM_EPISODE_GAP_NS)
		episode_ns = now; /* not asked lately: a new episode */
	/* A group paused at OOM (--oom-kill-disable) waits as long as its
	 * manager keeps it so; the give-up counts from the pause's end or
	 * the manager's loss (the flag is the manager's: read-only here). */
	if (atomic_load_explicit(&anc->ctl.under_oom, memory_order_relaxed) && !mgi_agent.manager_gone)
		paused_ns = now;
	if (now - (paused_ns > episode_ns ? paused_ns : episode_ns) > OOM_GIVEUP_NS)
		return false;
	if (asked_ns && now - asked_ns < OOM_ASK_NS)
		return true;
	if (episode_ns == now) {
		char usage[16], max[16];
		format_pages(mgi_counter_read(&anc->acct.memory), usage);
		format_pages(mgi_counter_read_max(&anc->ctl.memory), max);
		mgi_agent_log("group '%s' is out of memory (usage %s, max %s): %s", anc->ctl.group,
			      usage, max, atomic_load(&anc->ctl.cooperators)
				      ? "its cooperating applications are asked to free memory first"
				      : "the manager chooses a victim among its processes");
	}
	asked_ns = now;
	if (mgi_agent.manager_gone)
		return true; /* waits for a manager to rejoin, up to OOM_GIVEUP_NS */
	mgi_msg_init(&m, MGI_MSG_OOM_REQ);
	m.oom_req.pid = mgi_agent.pid;
	m.oom_req.level = level;
	send(mgi_agent.conn, &m, m.hdr.len, MSG_DONTWAIT | MSG_NOSIGNAL);
	return true;
}

/*
 * The group (level 0) or an ancestor (level > 0) cannot take another page
 * and nothing can be reclaimed here. The agent kills nobody: a victim
 * chosen by an agent would be chosen from figures any process of the group
 * can write (and an agent could be made to kill any pid it names). The
 * manager is asked (OOM_REQ) and the faulting thread waits for the room
 * its kill makes. When no manager resolves the episode within
 * OOM_GIVEUP_NS (none runs, or it does not answer), this process kills
 * itself: the charge refused is its own, and its own death is the only one
 * its agent may decide. A limit is never passed for want of a manager.
 */
static void out_of_memory(unsigned level)
{
	/* Estimate mode: another process's fast regions hold estimate that
	 * may not be memory; the manager has them give it back first (seed
	 * 001's guarantee across the group). Bounded: after
	 * RECLAIM_GIVEUP_NS of asking, the OOM request. */
	static uint64_t est_since, est_last;
	if (mgi_est_fast_elsewhere(level)) {
		uint64_t now = now_ns();
		if (!est_last || now - est_last > RECLAIM_GIVEUP_NS)
			est_since = now; /* not asked lately: a new episode */
		est_last = now;
		if (ask_manager_reclaim(level, est_since))
			return;
	}
	/* The manager decides every OOM kill, with the pidfds of the
	 * processes it saw join (an agent may lack the rights to kill another
	 * user's process in its group, and must not kill on a slot's word). */
	if (level >= mgi_agent.nsegs || ask_manager(level))
		return;
	char usage[16], max[16];
	mgi_segment_t *anc = mgi_agent.anc[level];
	format_pages(mgi_counter_read(&anc->acct.memory), usage);
	format_pages(mgi_counter_read_max(&anc->ctl.memory), max);
	mgi_agent_log("group '%s' is out of memory (usage %s, max %s) and no manager resolved it "
		      "in %llu s: pid %d, whose charge it refuses, ends itself",
		      anc->ctl.group, usage, max, (unsigned long long)(OOM_GIVEUP_NS / 1000000000ULL),
		      (int)mgi_agent.pid);
	kill(mgi_agent.pid, SIGKILL);
}

static void park(uintptr_t addr, uint64_t since)
{
	if (npending < PENDING_MAX) {
		pending[npending++] = (struct parked){addr, since};
		atomic_store_explicit(&mgi_agent.parked, npending, memory_order_relaxed);
	}
	/* Full cannot happen in practice: each thread has at most one fault
	 * outstanding, so this holds every fault of PENDING_MAX threads. */
}

/* Whether page is right after (or, for stacks, right before) one of the
 * region's recent runs: what a sequential scan faults on next. */
static bool continues_a_stream(const mgi_vregion_t *r, uintptr_t page)
{
	for (unsigned i = 0; i < MGI_STREAMS; i++)
		if (r->run_end[i] && (page == r->run_end[i] || page + PAGE == r->run_start[i]))
			return true;
	return false;
}

/* Records a resolved run: it extends the stream it continues, or replaces
 * the oldest. Counts the fault too (a slow region's rate, estimate mode). */
static void remember_run(mgi_vregion_t *r, uintptr_t start, uintptr_t end)
{
	r->faults++;
	for (unsigned i = 0; i < MGI_STREAMS; i++) {
		if (r->run_end[i] && (start == r->run_end[i] || end == r->run_start[i])) {
			r->run_start[i] = start;
			r->run_end[i] = end;
			return;
		}
	}
	r->run_start[r->next_stream] = start;
	r->run_end[r->next_stream] = end;
	r->next_stream = (r->next_stream + 1) % MGI_STREAMS;
}

/* Whether this process should make the room itself: the refusing group is
 * its own, no cooperating application is to be asked first, no process of
 * the group is colder, and no group below holds memory (only the manager
 * sees those). When the manager is gone, always. */
static bool reclaim_here(unsigned level)
{
	mgi_segment_t *seg = mgi_agent.anc[level];
	uint64_t held = 0;

	if (mgi_agent.manager_gone)
		return true;
	if (level != 0 || atomic_load_explicit(&seg->ctl.cooperators, memory_order_relaxed))
		return false;
	if (mgi_segment_coldest(seg) != mgi_agent.slot)
		return false;
	for (int i = 0; i < MGI_PROCS_MAX; i++)
		if (atomic_load_explicit(&seg->ctl.procs[i].pid, memory_order_relaxed) > 0)
			held += atomic_load_explicit(&seg->acct.procs[i].charged, memory_order_relaxed);
	return mgi_counter_read(&seg->acct.memory) <= held + RECLAIM_SLACK;
}

/* Asks the manager to have the group's coldest processes evict (cooperating
 * applications first), at most every RECLAIM_ASK_NS. Returns false if it
 * cannot be asked, or if this fault has waited RECLAIM_GIVEUP_NS since its
 * charge was first refused (the manager made no room for it): the caller
 * then does what it can alone. */
static bool ask_manager_reclaim(unsigned level, uint64_t since)
{
	uint64_t now = now_ns();
	mgi_msg_t m;

	if (mgi_agent.manager_gone || now - since > RECLAIM_GIVEUP_NS)
		return false;
	if (mgi_agent.reclaim_asked_ns && now - mgi_agent.reclaim_asked_ns < RECLAIM_ASK_NS)
		return true;
	mgi_agent.reclaim_asked_ns = now;
	mgi_msg_init(&m, MGI_MSG_RECLAIM_REQ);
	m.reclaim_req.pid = mgi_agent.pid;
	m.reclaim_req.level = level;
	m.reclaim_req.pages = RECLAIM_BATCH;
	return send(mgi_agent.conn, &m, m.hdr.len, MSG_DONTWAIT | MSG_NOSIGNAL) == (ssize_t)m.hdr.len;
}

/* Whether the group `level` steps up and its ancestors have swap room: a
 * process below it could evict (which one, only the manager sees). */
static bool swap_room_above(unsigned level)
{
	if (mgi_agent.manager_gone)
		return false;
	for (unsigned l = level; l < mgi_agent.nsegs; l++)
		if (mgi_counter_margin(&mgi_agent.anc[l]->acct.swap, &mgi_agent.anc[l]->ctl.swap) == 0)
			return false;
	return true;
}

/*
 * A charge was refused by the group `level` steps up (seed 002 section 2.1:
 * over the limit, reclaim; still over, OOM). When this process is the one
 * to evict from, it evicts now. Otherwise the manager is asked to have the
 * group's coldest processes evict, and the fault waits for that room, but
 * at most LOCAL_AFTER_NS: then this process evicts from its own pages, as
 * a task in the kernel reclaims for itself (room made elsewhere can be
 * taken by another's fault first; a process must not starve on it). When
 * nothing can be evicted, the OOM path. Returns true if room was made now
 * (retry at once), false if the fault must wait (parked).
 */
static bool make_room(unsigned level, uint64_t *since)
{
	uint64_t now = now_ns();
	bool local = mgi_reclaim_allowed(level);

	/* Refused by the group's grant (it has ancestors): the manager is
	 * asked for more, and the fault waits for the answer (not a reclaim
	 * stall: no limit refused); a refusal names the ancestor whose limit
	 * is reached, handled as any. */
	if (level == MGI_LEVEL_GRANT && (level = mgi_account_grant_short()) == MGI_LEVEL_GRANT)
		return false;
	if (!*since)
		*since = now;
	if (mgi_agent.evicting)
		return false; /* a fault followed from inside eviction: wait for it */
	/* Estimate mode (seed 001, Algorithm 3 amended): while a region is
	 * fast, its estimate goes before any page is evicted or anyone killed. */
	if (mgi_est_demote())
		return true;
	if (local && reclaim_here(level)) {
		if (mgi_evict(RECLAIM_BATCH) > 0)
			return true;
		local = false; /* nothing of ours to evict */
	}
	bool asked = (local || swap_room_above(level)) && ask_manager_reclaim(level, *since);
	if (asked && now - *since < LOCAL_AFTER_NS)
		return false;
	if (local && mgi_evict(RECLAIM_BATCH) > 0)
		return true;
	if (asked)
		return false; /* the manager decides: eviction elsewhere, or the OOM kill */
	out_of_memory(level);
	return false;
}

static void count_stall(uint64_t since)
{
	if (since)
		mgi_segment_count_stall(mgi_agent.seg, now_ns() - since);
}

static enum mgi_resolved resolve(uintptr_t addr, uint64_t *since)
{
	mgi_registry_t *reg = &mgi_agent.reg;
	uintptr_t page = addr & ~(PAGE - 1), s, ws;
	size_t window = atomic_load_explicit(&mgi_agent.seg->ctl.fault_around, memory_order_relaxed);
	size_t n, copied, k;
	mgi_vregion_t *r = mgi_registry_find(reg, page);
	unsigned level = 0;
	uintptr_t lo = 0, hi = 0; /* after an ENOENT: the mapping holding page */
	bool resynced = false;
	int rc;

	if (!r) {
		learn_vma(page);
		r = mgi_registry_find(reg, page);
		if (!r) {
			unwatch(page);
			mgi_uffd_wake(mgi_agent.uffd, page, PAGE);
			return MGI_DONE;
		}
	}
	if (mgi_registry_test(r, page)) {
		/* We thought it present; the kernel found it missing (an
		 * MADV_FREE page the kernel reclaimed sends no event). */
		mgi_trace(MGI_TR_MISSING, page, 0, 0, 0);
		mgi_uncharge(mgi_registry_clear(reg, page, page + PAGE));
	}
	if (window < 1)
		window = 1;
	if (window > MGI_FAULT_AROUND_MAX)
		window = MGI_FAULT_AROUND_MAX;
	/* Fault-around only for access that looks sequential (this fault is
	 * next to the last run resolved in the region, either side): a sparse
	 * pattern would otherwise get up to `window` times the memory the
	 * kernel would give it. Like readahead, the first fault of a run is
	 * served alone. */
	bool sequential = continues_a_stream(r, page);
	if (!sequential)
		window = 1;
	if (window > 1 && mgi_recently_removed(page - (window - 1) * PAGE, page + window * PAGE))
		window = 1; /* not into a range whose old pages may still be there */

	for (int attempt = 0; attempt < 8; attempt++) {
		if (attempt) {
			/* make_room may have followed events (an unmap, an
			 * mremap elsewhere): the registry may have moved. */
			r = mgi_registry_find(reg, page);
			if (!r) {
				mgi_uffd_wake(mgi_agent.uffd, page, PAGE);
				goto done;
			}
		}
		if (mgi_registry_is_out(r, page)) {
			/* Evicted: its data comes back from the staging area or
			 * the store. */
			enum mgi_resolved res = mgi_restore(r, page, sequential, &k, &level);
			if (res == MGI_NEED_ROOM) {
				if (make_room(level, since))
					continue;
				return MGI_RETRY;
			}
			if (res == MGI_RETRY)
				return MGI_RETRY;
			if (res == MGI_DONE) {
				if (k)
					remember_run(r, page, page + k * PAGE);
				mgi_thp_filled(page, page + k * PAGE);
				last_fault_pages = k;
				goto done;
			}
			/* MGI_ABSENT: held nowhere, a new page after all */
		}
		/* The aligned window around the fault, clipped to the region,
		 * and in it the run of absent pages containing the fault. */
		ws = r->start + ((page - r->start) / PAGE / window) * window * PAGE;
		if (hi && ws < lo)
			ws = lo; /* one ioctl cannot cross a VMA's edge */
		s = page;
		while (s > ws && !mgi_registry_test(r, s - PAGE) && !mgi_registry_is_out(r, s - PAGE))
			s -= PAGE;
		n = mgi_registry_absent_run(r, s, window - (s - ws) / PAGE);
		if (hi && s + n * PAGE > hi)
			n = (hi - s) / PAGE;

		if (!mgi_charge(n, NULL)) {
			/* Near the limit: the part of the run from the fault
			 * on that fits. Measured: falling back to one page made
			 * most faults of a sequential writer at its limit single
			 * pages, each a round trip (16 171 of them against 638
			 * full windows for 256 MiB under 64M). */
			size_t from_fault = n - (page - s) / PAGE;
			s = page;
			n = mgi_charge_upto(from_fault, &level);
			if (n == 0 && mgi_reclaim_unsharing(page)) {
				/* The helper's MADV_POPULATE_WRITE met a page
				 * removed since its range was queued. It cannot
				 * wait for room: the room would come from pages
				 * it is unsharing. One page over, then evicted. */
				n = 1;
				mgi_charge_anyway(1);
			} else if (n == 0) {
				if (make_room(level, since))
					continue;
				return MGI_RETRY;
			}
		}
		last_fault_pages = n;

		rc = mgi_uffd_copy(mgi_agent.uffd, s, mgi_agent.zeros, n * PAGE, &copied);
		k = copied / PAGE;
		mgi_trace(MGI_TR_ZFILL, s, k, (uint32_t)n, rc);
		if (k) {
			mgi_registry_mark(reg, r, s, k);
			remember_run(r, s, s + k * PAGE);
			mgi_thp_filled(s, s + k * PAGE);
		}
		mgi_uncharge(n - k);
		if (rc == 0 || page < s + copied)
			goto done;
		if (rc == -EEXIST && mgi_recently_removed(s + copied, s + copied + PAGE)) {
			/* An old page of a range just given back, about to be
			 * zapped: not counted. The faulting thread goes on
			 * (racing the madvise, it may see either). */
			mgi_trace(MGI_TR_EEXIST, s + copied, 0, 0, 1);
			mgi_uffd_wake(mgi_agent.uffd, page, PAGE);
			goto done;
		}
		if (rc == -EEXIST) {
			/* Present though we did not put it there (the kernel
			 * sent no event for it): it is real memory, so count
			 * it, and go round again without it. */
			uintptr_t there = s + copied;
			mgi_trace(MGI_TR_EEXIST, there, 0, 0, 0);
			mgi_charge_anyway(1);
			mgi_registry_mark(reg, r, there, 1);
			mgi_thp_filled(there, there + PAGE);
			if (there == page) {
				mgi_uffd_wake(mgi_agent.uffd, page, PAGE);
				goto done;
			}
			continue;
		}
		if (rc == -EAGAIN && k)
			continue; /* a partial copy stopped short of the fault */
		if (rc == -EAGAIN)
			return MGI_RETRY; /* the address space is changing: events first */
		if (rc == -ENOENT && !resynced) {
			/* No events are waiting (they would give EAGAIN), yet
			 * the kernel does not map [s, s + n) as one registered
			 * range: the registry is wrong, or the window crosses
			 * a VMA's edge. Waking the thread to fault again would
			 * meet the same window for ever. */
			resynced = true;
			if (!resync_at(page, &lo, &hi))
				return MGI_RETRY;
			if (!hi) {
				mgi_uffd_wake(mgi_agent.uffd, page, PAGE);
				goto done;
			}
			continue;
		}
		/* The range went away (ENOENT, EFAULT): let the thread fault
		 * again and meet whatever is there now. */
		mgi_uffd_wake(mgi_agent.uffd, page, PAGE);
		goto done;
	}
	return MGI_RETRY;
done:
	count_stall(*since);
	atomic_fetch_add_explicit(&mgi_agent.me->pgfault, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&mgi_agent.seg->acct.pgfault, 1, memory_order_relaxed);
	return MGI_DONE;
}

static void on_event(const struct uffd_msg *m)
{
	uint64_t dropped, since = 0;
	long n;

	switch (m->event) {
	case UFFD_EVENT_PAGEFAULT:
		mgi_trace(MGI_TR_FAULT, m->arg.pagefault.address, 0, 0, 0);
		if (mgi_agent.drop_one_fault) {
			/* Fault injection: lose this fault, as a handler bug
			 * would, for the watchdog to find. */
			mgi_agent.drop_one_fault = false;
			break;
		}
		if (resolve(m->arg.pagefault.address, &since) == MGI_RETRY)
			park(m->arg.pagefault.address, since);
		break;
	case UFFD_EVENT_REMOVE:
		/* (the releaser's own madvise of staging slots lands here too:
		 * the registry does not cover them, so nothing happens) */
		mgi_trace(MGI_TR_REMOVE, m->arg.remove.start, m->arg.remove.end, 0, 0);
		if (mgi_registry_find(&mgi_agent.reg, m->arg.remove.start) ||
		    mgi_registry_find(&mgi_agent.reg, m->arg.remove.end - PAGE))
			note_removed(m->arg.remove.start, m->arg.remove.end);
		mgi_reclaim_drop(m->arg.remove.start, m->arg.remove.end);
		mgi_uncharge(mgi_registry_clear(&mgi_agent.reg, m->arg.remove.start, m->arg.remove.end));
		mgi_thp_gone(m->arg.remove.start, m->arg.remove.end);
		break;
	case UFFD_EVENT_UNMAP:
		if (mgi_recent_claim(&vacated, m->arg.remove.start, m->arg.remove.end, now_ns(),
				     VACATED_NS)) {
			/* a move's old range: what is held there now is a
			 * newcomer's (n=1 in the trace) */
			mgi_trace(MGI_TR_UNMAP, m->arg.remove.start, m->arg.remove.end, 1, 0);
			mgi_est_forget(m->arg.remove.start, m->arg.remove.end);
			mgi_thp_gone(m->arg.remove.start, m->arg.remove.end);
			break;
		}
		mgi_trace(MGI_TR_UNMAP, m->arg.remove.start, m->arg.remove.end, 0, 0);
		mgi_est_forget(m->arg.remove.start, m->arg.remove.end);
		mgi_reclaim_drop(m->arg.remove.start, m->arg.remove.end);
		n = mgi_registry_remove(&mgi_agent.reg, m->arg.remove.start, m->arg.remove.end);
		if (n < 0) /* no memory to split: at least drop the charges */
			n = (long)mgi_registry_clear(&mgi_agent.reg, m->arg.remove.start,
						     m->arg.remove.end);
		mgi_uncharge((uint64_t)n);
		mgi_thp_gone(m->arg.remove.start, m->arg.remove.end);
		publish_sizes();
		break;
	case UFFD_EVENT_REMAP: {
		uintptr_t from = m->arg.remap.from, to = m->arg.remap.to;
		size_t len = m->arg.remap.len;
		mgi_trace(MGI_TR_REMAP, from, to, (uint32_t)(len / PAGE), 0);
		/* What we held for the destination is stale: it was unmapped. */
		mgi_reclaim_drop(to, to + len);
		int rc = mgi_registry_move(&mgi_agent.reg, from, to, len, &dropped);
		mgi_uncharge(dropped);
		if (rc == 0) {
			mgi_reclaim_moved(from, to, len);
			mgi_thp_moved(from, to, len);
		} else {
			mgi_thp_gone(from, from + len);
			/* Could not follow (the arena is exhausted): drop the
			 * source's charges; the destination is learned again
			 * (with mincore) on its first fault. Evicted pages of
			 * the range cannot be found there any more: say so. */
			if (mgi_agent.reg.nout)
				mgi_agent_log("mremap of %#lx could not be followed (out of agent "
					      "memory): its evicted pages are lost", (unsigned long)from);
			mgi_reclaim_drop(from, from + len);
			mgi_uncharge(mgi_registry_clear(&mgi_agent.reg, from, from + len));
			mgi_registry_remove(&mgi_agent.reg, from, from + len);
		}
		mgi_recent_note(&vacated, from, from + len, now_ns());
		publish_sizes();
		break;
	}
	case UFFD_EVENT_FORK:
		mgi_reclaim_fork((int)m->arg.fork.ufd);
		break;
	default:
		break;
	}
}

static void drain_learn_requests(void)
{
	mgi_learn_req_t req[64];
	ssize_t n;

	while ((n = read(mgi_agent.learn_rd, req, sizeof(req))) > 0)
		for (size_t i = 0; i < (size_t)n / sizeof(req[0]); i++) {
			if (req[i].kind == MGI_REQ_LEARN)
				learn(req[i].start, req[i].end);
			else if (req[i].kind == MGI_REQ_HAND_OVER)
				mgi_request_answer(req[i].waiter,
						   mgi_hand_over(req[i].start, req[i].end));
			else
				mgi_est_request(&req[i]);
		}
}

/*
 * Reads what the uffd has, a batch at a time. Within a batch the events
 * (remove, unmap, remap, fork) are followed before any fault is resolved:
 * once an event is read the kernel stops refusing UFFDIO_COPY and MOVE for
 * it (mmap_changing), so resolving a fault (which may evict) ahead of an
 * unmap read in the same batch would move pages of whatever now lies at
 * the unmapped addresses as if they were the old range's. Faults may be
 * resolved in any order; events keep theirs.
 */
static void drain_uffd(void)
{
	struct uffd_msg msgs[MSGS_PER_READ];
	ssize_t n;

	for (;;) {
		mgi_reclaim_read_begin();
		n = read(mgi_agent.uffd, msgs, sizeof(msgs));
		mgi_reclaim_read_end(msgs, n > 0 ? (size_t)n / sizeof(msgs[0]) : 0);
		if (n <= 0)
			break;
		size_t count = (size_t)n / sizeof(msgs[0]);
		for (size_t i = 0; i < count; i++)
			if (msgs[i].event != UFFD_EVENT_PAGEFAULT)
				on_event(&msgs[i]);
		for (size_t i = 0; i < count; i++)
			if (msgs[i].event == UFFD_EVENT_PAGEFAULT)
				on_event(&msgs[i]);
	}
}

void mgi_handler_follow_events(void)
{
	drain_uffd(); /* faults that need room are parked (make_room) */
}

static void retry_pending(void)
{
	static struct parked retrying[PENDING_MAX];
	unsigned count = npending;

	/* Work from a copy: faults parked while we retry (by drain_uffd's
	 * new events, or by a retry that fails again) go into the emptied
	 * list and must not overwrite entries not yet retried. An earlier
	 * version reset the list in place and lost faults that way: their
	 * threads stayed blocked for ever (caught by tests/progs/stress.c). */
	memcpy(retrying, pending, count * sizeof(pending[0]));
	npending = 0;
	/* (the watchdog reads `parked` only to tell lost faults from waiting
	 * ones; it stays at count until the retries below settle) */
	for (unsigned i = 0; i < count; i++) {
		/* Events first: a parked fault may be waiting on one. */
		drain_uffd();
		if (resolve(retrying[i].addr, &retrying[i].since) == MGI_RETRY)
			park(retrying[i].addr, retrying[i].since);
	}
	atomic_store_explicit(&mgi_agent.parked, npending, memory_order_relaxed);
}

/*
 * Waits for one of the handler's descriptors, polling first for a while
 * when work has been coming in quick succession (as KVM's halt-polling
 * does for a vCPU). A fault's round trip pays two thread wake-ups: the
 * handler's and the faulting thread's. The handler's, onto another CPU,
 * costs ~5 us here (a VM whose idle CPUs halt); polling saves it when the
 * next fault comes within the window. Measured with bench/reclaim's random
 * faults on evicted pages: p50 17.6 -> 12.1 us. The window grows (10 us,
 * doubling to poll_max_ns) while work keeps arriving within it of the
 * handler blocking, and halves each time it polls in vain and then sleeps
 * long, so an idle or rarely faulting process does not poll at all.
 * Never with faults parked (they wait for others), nor on one CPU.
 */
#define POLL_START_NS 10000ULL
/*
 * While polling, the handler compresses staged pages one at a time when
 * its group is this close to its limit, so that the next faults find room
 * instead of stalling for a batch (a fault waits at most for the one page
 * being compressed, ~5 us). Only the process that would evict for its
 * group does (reclaim_here), and only while faults come a page at a time
 * (random access): a sequential writer's faults take a window of pages
 * each, which one page ahead at a time cannot keep up with; they left each
 * fault only the few pages evicted since the last (measured: 79 000
 * faults instead of 6 700 for 256 MiB, swap-out 340 MB/s instead of 550),
 * and are better served by the batch their stall evicts.
 */
#define AHEAD_PAGES (2 * RECLAIM_BATCH)

/* Whether to evict ahead now. *ours caches, between evictions, whether
 * this process is the one to evict for its group: two scans of the group's
 * slots, too many for every turn of the polling loop. */
static bool room_short(int *ours)
{
	if (last_fault_pages != 1 || mgi_counter_margin(&mgi_agent.seg->acct.memory, &mgi_agent.seg->ctl.memory) >= AHEAD_PAGES)
		return false;
	if (*ours < 0)
		*ours = mgi_reclaim_allowed(0) && reclaim_here(0);
	return *ours;
}

static int wait_for_work(struct pollfd p[4], int timeout_ms, bool may_poll)
{
	static uint64_t window_ns;
	uint64_t start = now_ns();
	int rc, ours = -1;

	if (window_ns && may_poll) {
		while ((rc = poll(p, 4, 0)) == 0 && now_ns() - start < window_ns) {
			if (!room_short(&ours) || !mgi_evict_ahead())
				continue;
			/* Eviction follows events: a fault read meanwhile
			 * may be parked, for the caller to retry now. */
			if (npending)
				return 0;
			start = now_ns(); /* (bounded: room_short ends it) */
			ours = -1;
		}
		if (rc != 0)
			return rc; /* caught: the window stays */
	}
	mgi_reclaim_idle();
	rc = poll(p, 4, timeout_ms);
	if (!may_poll || !mgi_agent.poll_max_ns)
		return rc;
	uint64_t waited = now_ns() - start;
	if (waited <= mgi_agent.poll_max_ns) {
		/* a longer window would have caught it */
		window_ns = window_ns ? window_ns * 2 : POLL_START_NS;
		if (window_ns > mgi_agent.poll_max_ns)
			window_ns = mgi_agent.poll_max_ns;
	} else if (window_ns) {
		window_ns = window_ns / 2 >= POLL_START_NS ? window_ns / 2 : 0;
	}
	return rc;
}

/*
 * Every fault of the process waits for this thread to run. On a busy host
 * (more runnable threads than CPUs) a woken handler queues behind ordinary
 * work while the faulting thread waits, where the kernel's own fault path
 * runs in the faulting thread at once: measured with bench/reclaim LOAD=2,
 * see docs/benchmarks.md. So the handler asks to run ahead of ordinary work,
 * the first of these the process may have (MEMGRP_HANDLER_SCHED picks one):
 *  - rt: SCHED_RR at the lowest real-time priority (root, CAP_SYS_NICE or
 *    an RLIMIT_RTPRIO above 0); the kernel's RT throttling still leaves
 *    ordinary work 5 % of each second should the handler spin;
 *  - nice: nice -10 for this thread (CAP_SYS_NICE or RLIMIT_NICE);
 *  - slice: SCHED_OTHER with the shortest slice (sched_attr's
 *    sched_runtime, 0.1 ms, Linux 6.12+): an earlier deadline, so a woken
 *    handler preempts sooner; any user may ask.
 * None is required: when refused, the handler runs as it would have.
 * SCHED_RESET_ON_FORK: nothing the handler might start keeps the priority.
 * A real-time handler does not poll for its next fault (wait_for_work):
 * spinning, it holds the CPU the faulting thread needs to go on, and the
 * wake-up it saves is immediate anyway. Measured, bench_reclaim lat beside
 * 2 CPU-bound processes: p50 66.8 us polling against 9.3 us not (11.6 and
 * 66.6 in a second round; ordinary handler 8.0 and 17.9).
 * Returns whether the handler runs as real-time.
 * A choice named in MEMGRP_HANDLER_SCHED and refused is said once. (The
 * variable is read by the thread starting the handler: the environment is
 * in managed memory, which this thread must not touch.)
 */
struct mgi_sched_attr { /* <linux/sched/types.h>, not in every libc */
	uint32_t size, sched_policy;
	uint64_t sched_flags;
	int32_t sched_nice;
	uint32_t sched_priority;
	uint64_t sched_runtime, sched_deadline, sched_period;
	uint32_t sched_util_min, sched_util_max;
};
#define HANDLER_NICE (-10)
#define HANDLER_SLICE_NS 100000ULL

static bool handler_priority(unsigned choice)
{
	enum { AUTO, RT, NICE, SLICE, OFF } how = choice;
	static const char *const names[] = {"auto", "rt", "nice", "slice", "off"};

	if (how == AUTO || how == RT) {
		struct sched_param sp = {.sched_priority = sched_get_priority_min(SCHED_RR)};
		if (sched_setscheduler(0, SCHED_RR | SCHED_RESET_ON_FORK, &sp) == 0)
			return true;
	}
	if (how == AUTO || how == NICE) {
		if (setpriority(PRIO_PROCESS, (id_t)gettid(), HANDLER_NICE) == 0)
			return false;
	}
	if (how == AUTO || how == SLICE) {
		struct mgi_sched_attr a = {.size = sizeof(a), .sched_policy = SCHED_OTHER,
					   .sched_flags = 1, /* SCHED_FLAG_RESET_ON_FORK */
					   .sched_runtime = HANDLER_SLICE_NS};
		errno = 0;
		a.sched_nice = getpriority(PRIO_PROCESS, (id_t)gettid());
		if (errno == 0 && syscall(SYS_sched_setattr, 0, &a, 0) == 0)
			return false;
	}
	if (how != AUTO && how != OFF)
		mgi_agent_log("MEMGRP_HANDLER_SCHED=%s: refused (%s); the fault handler runs as "
			      "ordinary work", names[how], strerror(errno));
	return false;
}

void *mgi_handler_main(void *arg)
{
	uint64_t est_tick_ns = 0, handed_tick_ns = 0;

	atomic_store(&mgi_agent.handler_tid, gettid());
	if (handler_priority((unsigned)(uintptr_t)arg))
		mgi_agent.poll_max_ns = 0;
	/* In a forked child this thread starts over from a copy of the
	 * parent's memory: the faults its handler had parked are the parent's
	 * threads', not ours. */
	npending = 0;
	/* A forked child's faults were served from its kept store alone until
	 * now (reclaim.c): we take over here, not before this thread exists,
	 * whose creation may itself fault (glibc allocates its TLS). */
	mgi_reclaim_early_stop();
	mincore_vec = mgi_arena_alloc(&mgi_agent.arena, MINCORE_CHUNK);
	if (!mincore_vec) {
		mgi_agent.init_error = -ENOMEM;
		sem_post(&mgi_agent.ready);
		return NULL;
	}
	mgi_scan_and_register();
	/* a forked child that kept its parent's store: its pages are out */
	mgi_reclaim_adopt();
	sem_post(&mgi_agent.ready);

	for (;;) {
		struct pollfd p[4] = {
			{.fd = mgi_agent.uffd, .events = POLLIN},
			{.fd = mgi_agent.learn_rd, .events = POLLIN},
			/* a closed connection polls readable for ever: once
			 * the manager has gone, stop asking (fd -1 is skipped) */
			{.fd = mgi_agent.manager_gone ? -1 : mgi_agent.conn, .events = POLLIN},
			{.fd = mgi_agent.done_rd, .events = POLLIN},
		};
		/* Idle: nothing parked, nothing to do until a descriptor
		 * speaks; the watchdog trusts only this state. */
		atomic_store_explicit(&mgi_agent.idle, npending == 0, memory_order_relaxed);
		bool rejoin = mgi_agent.manager_gone && !mgi_agent.rejoin_refused;
		int rc = wait_for_work(p, mgi_thp_timeout(npending ? OOM_RETRY_MS
						   : rejoin ? REJOIN_MS : mgi_est_on() ? EST_TICK_MS
						   : mgi_handover_any() ? MGI_HANDED_TICK_MS : -1),
				       npending == 0);
		if (rc > 0 && (p[0].revents & POLLIN) && mgi_agent.stall_handler_once) {
			/* Fault injection: woken for a fault, then not run
			 * for three of the watchdog's periods, as a handler
			 * on a host with more runnable threads than CPUs
			 * can be (the fault stays unread meanwhile). */
			struct timespec ts = {STALL_INJECT_S, 0};
			mgi_agent.stall_handler_once = false;
			mgi_agent_log("injected: the fault handler stalls %d s with a fault unread",
				      STALL_INJECT_S);
			while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
				;
		}
		atomic_store_explicit(&mgi_agent.idle, false, memory_order_relaxed);

		if (rc < 0 && errno != EINTR)
			break;
		if (p[2].revents && !mgi_agent_on_manager_message())
			mgi_agent.manager_gone = true;
		if (rejoin && now_ns() - mgi_agent.rejoin_ns >= REJOIN_MS * 1000000ull) {
			/* A restarted manager takes the group back (its
			 * socket reappears at the same path). */
			mgi_agent.rejoin_ns = now_ns();
			mgi_agent_rejoin();
		}
		if (p[3].revents)
			mgi_reclaim_released();
		if (mgi_est_on() && now_ns() - est_tick_ns >= EST_TICK_MS * 1000000ull) {
			est_tick_ns = now_ns();
			mgi_est_tick();
		}
		if (mgi_handover_any() &&
		    now_ns() - handed_tick_ns >= MGI_HANDED_TICK_MS * 1000000ull) {
			handed_tick_ns = now_ns();
			mgi_handover_tick();
		}
		drain_learn_requests();
		drain_uffd();
		if (npending)
			retry_pending();
		mgi_thp_tick();
	}
	mgi_agent_log("fault handler stopped: %s", strerror(errno));
	return NULL;
}

/* Subtracts the agent's arena and the loaded objects' extents from
 * [start, end) and registers what is left. [heap] and [stack] are never
 * inside an object's extent, so they pass whole. */
static bool rescanning; /* estimate mode's tick: excluded parts counted already */

static void register_pieces(uintptr_t start, uintptr_t end, bool stack)
{
	uintptr_t cur = start;

	while (cur < end) {
		uintptr_t stop = end, skip_to = 0;
		bool own = false;
		mgi_range_t ex[MGI_ELF_RANGES_MAX + 1 + MGI_OWN_RANGES_MAX];
		unsigned nex = mgi_agent.nelf;

		memcpy(ex, mgi_agent.elf, nex * sizeof(ex[0]));
		ex[nex].start = mgi_agent.arena.base;
		ex[nex++].end = mgi_agent.arena.end;
		unsigned first_own = nex;
		for (unsigned i = 0; i < mgi_agent.nown; i++)
			ex[nex++] = mgi_agent.own[i];
		for (unsigned i = 0; i < nex; i++) {
			if (ex[i].end <= cur || ex[i].start >= stop)
				continue;
			if (ex[i].start <= cur) { /* cur is excluded */
				if (ex[i].end > skip_to)
					skip_to = ex[i].end;
				/* the agent's own reservations are not the
				 * application's memory: not even untracked */
				own = i >= first_own;
			} else {
				stop = ex[i].start; /* clip before the next exclusion */
			}
		}
		if (skip_to) {
			uintptr_t e = skip_to < end ? skip_to : end;
			if (!own && !rescanning)
				mgi_agent.untracked_bytes += e - cur;
			cur = e;
			continue;
		}
		if (mgi_est_on()) {
			/* Estimate mode: charged at its size, or slow if need
			 * be; the main stack grows unseen, so it is slow. */
			mgi_est_admit(cur, stop, stack);
			cur = stop;
			continue;
		}
		if (!mgi_thp_on()) /* with huge pages on, MADV_COLLAPSE needs it unmarked */
			mgi_raw_madvise((void *)cur, stop - cur, MADV_NOHUGEPAGE);
		if (mgi_uffd_register(mgi_agent.uffd, cur, stop - cur) == 0)
			learn(cur, stop);
		else
			mgi_agent.untracked_bytes += stop - cur;
		cur = stop;
	}
}

/* Estimate mode, once a second: regions that appeared with no call we
 * see (a library's own mmap syscall, glibc's internal ones whose blocks
 * have not reached the malloc wrappers yet) enter like any other: what of
 * each eligible VMA is not known yet is admitted (Algorithm 2). */
void mgi_rescan(void)
{
	rescanning = true;
	mgi_scan_and_register();
	rescanning = false;
}

void mgi_scan_and_register(void)
{
	uintptr_t addr = 0;
	mgi_vma_t v;

	while (mgi_vma_query(mgi_agent.mapsfd, addr, &v) == 0 && v.end > addr) {
		addr = v.end;
		if (!mgi_vma_is_anon_private(&v) || !(v.flags & MGI_VMA_WRITE))
			continue;
		/* [vvar], [vdso], [vsyscall] and the like are not memory of
		 * the application's; [heap] and [stack] are. */
		if (v.name[0] == '[' && strcmp(v.name, "[heap]") != 0 &&
		    strcmp(v.name, "[stack]") != 0)
			continue;
		if (v.end - v.start > MGI_REGION_MAX_BYTES)
			continue;
		register_pieces(v.start, v.end, strcmp(v.name, "[stack]") == 0);
	}
	publish_sizes();
}

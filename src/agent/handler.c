/* handler.c - the fault handler thread: resolves faults, follows events, OOM. */
#include <errno.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "os.h"
#include "proto.h"
#include "size.h"

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
#define OOM_STALE_NS (5ULL * 1000 * 1000 * 1000) /* re-choose a victim after */
#define OOM_ASK_NS (100ULL * 1000 * 1000) /* between requests to the manager */
#define OOM_EPISODE_GAP_NS (1000ULL * 1000 * 1000) /* quiet this long: a new episode */
#define OOM_GIVEUP_NS (10ULL * 1000 * 1000 * 1000) /* the manager did not resolve it */
#define MINCORE_CHUNK 16384                         /* pages per mincore call */

/* Faults waiting for a retry (memory for an OOM wait, or events first). */
static uintptr_t pending[PENDING_MAX];
static unsigned npending;
static unsigned char *mincore_vec;
static uint64_t oom_chosen_ns;

enum resolved { DONE, RETRY };

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void out_of_memory(unsigned level);

/* After every change of usage: the thresholds of the group and of each
 * ancestor (a charge here is a charge there too). A crossing is counted in
 * the segment; the manager, woken through its eventfd, signals the
 * listeners. One load per level when no thresholds are registered. */
static void check_thresholds(void)
{
	unsigned n = 0;

	for (unsigned i = 0; i < mgi_agent.nsegs; i++)
		n += mgi_segment_check_thresholds(mgi_agent.anc[i]);
	if (n && mgi_agent.wakefd >= 0) {
		uint64_t one = 1;
		if (write(mgi_agent.wakefd, &one, sizeof(one)) < 0) {
			/* the manager is gone: nobody to tell */
		}
	}
}

static void charged(uint64_t n)
{
	atomic_fetch_add_explicit(&mgi_agent.me->charged, n, memory_order_relaxed);
	check_thresholds();
}

static void uncharge(uint64_t n)
{
	if (!n)
		return;
	mgi_counter_uncharge(&mgi_agent.path, n);
	atomic_fetch_sub_explicit(&mgi_agent.me->charged, n, memory_order_relaxed);
	check_thresholds();
}

static void publish_sizes(void)
{
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
 * limit instead. */
static void learn_gap(uintptr_t start, uintptr_t end)
{
	mgi_vregion_t *r;
	uint64_t found = 0;

	if (mgi_registry_add(&mgi_agent.reg, start, end) <= 0)
		return;
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
			}
		}
		a += pages * PAGE;
	}
	if (found) {
		mgi_counter_charge(&mgi_agent.path, found);
		charged(found);
		/* Pages that were there before we could see them may have put
		 * the group over its limit: act now, not at the next fault. */
		for (unsigned l = 0; l < mgi_agent.path.depth; l++) {
			const mgi_counter_t *c = mgi_agent.path.level[l];
			if (mgi_counter_read(c) > mgi_counter_read_max(c)) {
				out_of_memory(l);
				break;
			}
		}
	}
}

/* Learns [start, end): only the parts not yet in the registry. */
static void learn(uintptr_t start, uintptr_t end)
{
	uintptr_t cur = start;

	while (cur < end) {
		mgi_vregion_t *r = mgi_registry_next(&mgi_agent.reg, cur);
		if (r && r->start <= cur) {
			cur = r->end;
			continue;
		}
		uintptr_t gap_end = r && r->start < end ? r->start : end;
		learn_gap(cur, gap_end);
		cur = gap_end;
	}
	publish_sizes();
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
	learn(v.start, v.end);
}

static void format_pages(uint64_t pages, char *buf)
{
	mgi_size_format(pages * PAGE, buf, 16);
}

/*
 * Leaves an OOM decision to the manager: an ancestor's limit refused the
 * charge (its victim may be in any group under it, which only the manager
 * sees), or the group has cooperating applications to ask first. Asks at
 * most every OOM_ASK_NS while the episode lasts. Returns false if the
 * manager cannot be asked (it is gone) or has not resolved the episode in
 * OOM_GIVEUP_NS: the caller then chooses a victim in its own group.
 */
static bool ask_manager(unsigned level)
{
	static uint64_t asked_ns, episode_ns;
	mgi_segment_t *anc = mgi_agent.anc[level];
	int32_t victim = atomic_load(&anc->oom_victim);
	uint64_t now = now_ns();
	mgi_msg_t m;

	if (!asked_ns || now - asked_ns > OOM_EPISODE_GAP_NS)
		episode_ns = now; /* not asked lately: a new episode */
	if (now - episode_ns > OOM_GIVEUP_NS)
		return false;
	if (victim > 0 && kill(victim, 0) == 0)
		return true; /* a kill is under way */
	if (asked_ns && now - asked_ns < OOM_ASK_NS)
		return true;
	if (episode_ns == now) {
		char usage[16], max[16];
		format_pages(mgi_counter_read(&anc->memory), usage);
		format_pages(mgi_counter_read_max(&anc->memory), max);
		mgi_agent_log("group '%s' is out of memory (usage %s, max %s): %s", anc->group, usage,
			      max, atomic_load(&anc->cooperators)
				      ? "its cooperating applications are asked to free memory first"
				      : "the manager chooses a victim among its processes");
	}
	asked_ns = now;
	mgi_msg_init(&m, MGI_MSG_OOM_REQ);
	m.oom_req.pid = mgi_agent.pid;
	m.oom_req.level = level;
	return send(mgi_agent.conn, &m, m.hdr.len, MSG_DONTWAIT | MSG_NOSIGNAL) == (ssize_t)m.hdr.len;
}

/*
 * The group (level 0) or an ancestor (level > 0) cannot take another page
 * and nothing can be reclaimed yet: kill the process holding the most (the
 * OOM victim), once per episode, and let the faulting thread wait until
 * its pages are released. The group's own victim is chosen here, from the
 * segment, with no round trip, unless applications cooperate; an
 * ancestor's by the manager.
 */
static void out_of_memory(unsigned level)
{
	mgi_segment_t *seg = mgi_agent.seg;

	if (level < mgi_agent.nsegs &&
	    (level > 0 || atomic_load(&mgi_agent.anc[level]->cooperators) > 0) && ask_manager(level))
		return;
	int32_t victim = atomic_load(&seg->oom_victim);
	int32_t none = 0;
	int idx;

	if (victim > 0) {
		/* A kill is under way. If the victim is gone and nobody (the
		 * manager) released its slot, do it ourselves. */
		if (kill(victim, 0) != 0 && errno == ESRCH) {
			for (int i = 0; i < MGI_PROCS_MAX; i++)
				if (atomic_load(&seg->procs[i].pid) == victim)
					mgi_segment_release(seg, i, victim, &mgi_agent.path);
			int32_t v = victim;
			atomic_compare_exchange_strong(&seg->oom_victim, &v, 0);
		} else if (now_ns() - oom_chosen_ns > OOM_STALE_NS && oom_chosen_ns) {
			int32_t v = victim;
			atomic_compare_exchange_strong(&seg->oom_victim, &v, 0);
		}
		return;
	}
	idx = mgi_segment_largest(seg);
	if (idx < 0)
		idx = mgi_agent.slot; /* nobody holds pages: the fault is ours */
	victim = atomic_load(&seg->procs[idx].pid);
	if (victim <= 0 || !atomic_compare_exchange_strong(&seg->oom_victim, &none, victim))
		return;
	oom_chosen_ns = now_ns();

	uint64_t held = atomic_load(&seg->procs[idx].charged);
	char usage[16], max[16], holds[16], comm[MGI_COMM_MAX];
	format_pages(mgi_counter_read(&seg->memory), usage);
	format_pages(mgi_counter_read_max(&seg->memory), max);
	format_pages(held, holds);
	memcpy(comm, seg->procs[idx].comm, sizeof(comm));
	comm[sizeof(comm) - 1] = '\0';
	mgi_agent_log("group '%s' is out of memory (usage %s, max %s) and nothing can be "
		      "reclaimed: killing pid %d (%s), which holds %s",
		      seg->group, usage, max, victim, comm, holds);
	atomic_fetch_add(&seg->oom_kill, 1);

	mgi_msg_t m;
	mgi_msg_init(&m, MGI_MSG_OOM_KILL);
	m.oom.killer = mgi_agent.pid;
	m.oom.victim = victim;
	m.oom.usage_pages = mgi_counter_read(&seg->memory);
	m.oom.max_pages = mgi_counter_read_max(&seg->memory);
	m.oom.victim_pages = held;
	memcpy(m.oom.victim_comm, comm, sizeof(comm));
	send(mgi_agent.conn, &m, m.hdr.len, MSG_DONTWAIT | MSG_NOSIGNAL);

	kill(victim, SIGKILL); /* may be ourselves */
}

static void park(uintptr_t addr)
{
	if (npending < PENDING_MAX) {
		pending[npending++] = addr;
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
 * the oldest. */
static void remember_run(mgi_vregion_t *r, uintptr_t start, uintptr_t end)
{
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

static enum resolved resolve(uintptr_t addr)
{
	mgi_registry_t *reg = &mgi_agent.reg;
	uintptr_t page = addr & ~(PAGE - 1), s, ws;
	size_t window = atomic_load_explicit(&mgi_agent.seg->fault_around, memory_order_relaxed);
	size_t n, copied, k;
	mgi_vregion_t *r = mgi_registry_find(reg, page);
	int rc;

	if (!r) {
		learn_vma(page);
		r = mgi_registry_find(reg, page);
		if (!r) {
			mgi_uffd_wake(mgi_agent.uffd, page, PAGE);
			return DONE;
		}
	}
	if (mgi_registry_test(r, page)) {
		/* We thought it present; the kernel found it missing (an
		 * MADV_FREE page the kernel reclaimed sends no event). */
		uncharge(mgi_registry_clear(reg, page, page + PAGE));
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
	if (!continues_a_stream(r, page))
		window = 1;

	for (int attempt = 0; attempt < 4; attempt++) {
		/* The aligned window around the fault, clipped to the region,
		 * and in it the run of absent pages containing the fault. */
		ws = r->start + ((page - r->start) / PAGE / window) * window * PAGE;
		s = page;
		while (s > ws && !mgi_registry_test(r, s - PAGE))
			s -= PAGE;
		n = mgi_registry_absent_run(r, s, window - (s - ws) / PAGE);

		if (!mgi_counter_try_charge(&mgi_agent.path, n, NULL)) {
			unsigned level = 0;
			s = page;
			n = 1;
			if (!mgi_counter_try_charge(&mgi_agent.path, 1, &level)) {
				out_of_memory(level);
				return RETRY;
			}
		}
		charged(n);

		rc = mgi_uffd_copy(mgi_agent.uffd, s, mgi_agent.zeros, n * PAGE, &copied);
		k = copied / PAGE;
		if (k) {
			mgi_registry_mark(reg, r, s, k);
			remember_run(r, s, s + k * PAGE);
		}
		uncharge(n - k);
		if (rc == 0 || page < s + copied)
			goto done;
		if (rc == -EEXIST) {
			/* Present though we did not put it there (the kernel
			 * sent no event for it): it is real memory, so count
			 * it, and go round again without it. */
			uintptr_t there = s + copied;
			mgi_counter_charge(&mgi_agent.path, 1);
			charged(1);
			mgi_registry_mark(reg, r, there, 1);
			if (there == page) {
				mgi_uffd_wake(mgi_agent.uffd, page, PAGE);
				goto done;
			}
			continue;
		}
		if (rc == -EAGAIN && k)
			continue; /* a partial copy stopped short of the fault */
		if (rc == -EAGAIN)
			return RETRY; /* the address space is changing: events first */
		/* The range went away (ENOENT, EFAULT): let the thread fault
		 * again and meet whatever is there now. */
		mgi_uffd_wake(mgi_agent.uffd, page, PAGE);
		goto done;
	}
	return RETRY;
done:
	atomic_fetch_add_explicit(&mgi_agent.me->pgfault, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&mgi_agent.seg->pgfault, 1, memory_order_relaxed);
	return DONE;
}

static void on_event(const struct uffd_msg *m)
{
	long n;

	switch (m->event) {
	case UFFD_EVENT_PAGEFAULT:
		if (mgi_agent.drop_one_fault) {
			/* Fault injection: lose this fault, as a handler bug
			 * would, for the watchdog to find. */
			mgi_agent.drop_one_fault = false;
			break;
		}
		if (resolve(m->arg.pagefault.address) == RETRY)
			park(m->arg.pagefault.address);
		break;
	case UFFD_EVENT_REMOVE:
		uncharge(mgi_registry_clear(&mgi_agent.reg, m->arg.remove.start, m->arg.remove.end));
		break;
	case UFFD_EVENT_UNMAP:
		n = mgi_registry_remove(&mgi_agent.reg, m->arg.remove.start, m->arg.remove.end);
		if (n < 0) /* no memory to split: at least drop the charges */
			n = (long)mgi_registry_clear(&mgi_agent.reg, m->arg.remove.start,
						     m->arg.remove.end);
		uncharge((uint64_t)n);
		publish_sizes();
		break;
	case UFFD_EVENT_REMAP:
		if (mgi_registry_move(&mgi_agent.reg, m->arg.remap.from, m->arg.remap.to,
				      m->arg.remap.len) != 0) {
			/* Could not follow: drop the source's charges; the
			 * destination is learned again (with mincore) on its
			 * first fault, so nothing is lost or double counted. */
			uncharge(mgi_registry_clear(&mgi_agent.reg, m->arg.remap.from,
						    m->arg.remap.from + m->arg.remap.len));
			mgi_registry_remove(&mgi_agent.reg, m->arg.remap.from,
					    m->arg.remap.from + m->arg.remap.len);
		}
		publish_sizes();
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
		for (size_t i = 0; i < (size_t)n / sizeof(req[0]); i++)
			learn(req[i].start, req[i].end);
}

static void drain_uffd(void)
{
	struct uffd_msg msgs[MSGS_PER_READ];
	ssize_t n;

	while ((n = read(mgi_agent.uffd, msgs, sizeof(msgs))) > 0)
		for (size_t i = 0; i < (size_t)n / sizeof(msgs[0]); i++)
			on_event(&msgs[i]);
}

static void retry_pending(void)
{
	static uintptr_t retrying[PENDING_MAX];
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
		if (resolve(retrying[i]) == RETRY)
			park(retrying[i]);
	}
	atomic_store_explicit(&mgi_agent.parked, npending, memory_order_relaxed);
}

void *mgi_handler_main(void *arg)
{
	(void)arg;
	mincore_vec = mgi_arena_alloc(&mgi_agent.arena, MINCORE_CHUNK);
	if (!mincore_vec) {
		mgi_agent.init_error = -ENOMEM;
		sem_post(&mgi_agent.ready);
		return NULL;
	}
	mgi_scan_and_register();
	sem_post(&mgi_agent.ready);

	bool manager_there = true;
	for (;;) {
		struct pollfd p[3] = {
			{.fd = mgi_agent.uffd, .events = POLLIN},
			{.fd = mgi_agent.learn_rd, .events = POLLIN},
			/* a closed connection polls readable for ever: once
			 * the manager has gone, stop asking (fd -1 is skipped) */
			{.fd = manager_there ? mgi_agent.conn : -1, .events = POLLIN},
		};
		int rc = poll(p, 3, npending ? OOM_RETRY_MS : -1);

		if (rc < 0 && errno != EINTR)
			break;
		if (p[2].revents)
			manager_there = mgi_agent_on_manager_message();
		drain_learn_requests();
		drain_uffd();
		if (npending)
			retry_pending();
	}
	mgi_agent_log("fault handler stopped: %s", strerror(errno));
	return NULL;
}

/* Subtracts the agent's arena and the loaded objects' extents from
 * [start, end) and registers what is left. [heap] and [stack] are never
 * inside an object's extent, so they pass whole. */
static void register_pieces(uintptr_t start, uintptr_t end)
{
	uintptr_t cur = start;

	while (cur < end) {
		uintptr_t stop = end, skip_to = 0;
		mgi_range_t ex[MGI_ELF_RANGES_MAX + 1];
		unsigned nex = mgi_agent.nelf;

		memcpy(ex, mgi_agent.elf, nex * sizeof(ex[0]));
		ex[nex].start = mgi_agent.arena.base;
		ex[nex++].end = mgi_agent.arena.end;
		for (unsigned i = 0; i < nex; i++) {
			if (ex[i].end <= cur || ex[i].start >= stop)
				continue;
			if (ex[i].start <= cur) { /* cur is excluded */
				if (ex[i].end > skip_to)
					skip_to = ex[i].end;
			} else {
				stop = ex[i].start; /* clip before the next exclusion */
			}
		}
		if (skip_to) {
			uintptr_t e = skip_to < end ? skip_to : end;
			mgi_agent.untracked_bytes += e - cur;
			cur = e;
			continue;
		}
		mgi_raw_madvise((void *)cur, stop - cur, MADV_NOHUGEPAGE);
		if (mgi_uffd_register(mgi_agent.uffd, cur, stop - cur) == 0)
			learn(cur, stop);
		else
			mgi_agent.untracked_bytes += stop - cur;
		cur = stop;
	}
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
		register_pieces(v.start, v.end);
	}
	publish_sizes();
}

/* reclaim.c - eviction and restore: staging area, compressed store, releaser, fork. */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "account.h"
#include "agent.h"
#include "options.h"
#include "os.h"
#include "trace.h"

/*
 * How a page leaves the process and comes back (seed 002 section 2.1, seed
 * 003 "Compressed swap"):
 *
 *  deactivate  the clock (registry.h) picks runs of present pages that no
 *              fault has shown in use since it last passed, and each run is
 *              moved with one UFFDIO_MOVE into consecutive slots of the
 *              staging area. The move is atomic for the process: a write
 *              before it is in the page, a touch after it faults. The page
 *              is still memory (charged) but no longer mapped: this is its
 *              second chance, and the staging area is the inactive list.
 *  activate    a fault on a staged page moves it straight back (one MOVE,
 *              no copy) and sets its ref bit: it is in use.
 *  compress    the oldest staged pages go into the compressed store (swap
 *              charged, memory uncharged) and their slots are retired. The
 *              releaser thread drops their frames: MADV_DONTNEED on a range
 *              registered with our uffd waits until the uffd's reader has
 *              read the REMOVE event, and that reader is the handler, which
 *              therefore must not do it itself (pitfall 1).
 *  restore     a fault on a stored page decompresses it (with its stored
 *              neighbours when the access is sequential: swap readahead)
 *              and copies it in (UFFDIO_COPY), charging memory, uncharging
 *              swap. Its refault distance (pages compressed since it was)
 *              below the resident size marks it part of the working set.
 *
 * The staging area is registered with our uffd in write-protect mode only:
 * a MOVE needs its destination registered on the uffd it goes through, and
 * going through ours makes every move fail with EAGAIN while an event of
 * the process (munmap, madvise, mremap, fork) is unread, so a move never
 * acts on an address space the registry has not caught up with. A hole
 * there reads as zeros, never as a fault nobody would answer.
 *
 * Fork (UFFD_EVENT_FORK): the child keeps our registration on a uffd of
 * its own that the kernel hands us, so a page we hold out of the address
 * space cannot be read as zeros there: the child's thread waits. We copy
 * every held page into the child through that uffd at once and close it;
 * the child's agent waits for that (the beacon) and starts over. Between
 * the child's snapshot and our reading of the event, every copy or move
 * through our uffd fails with EAGAIN, so what we hold cannot change under
 * the child. Without EVENT_FORK (it needs CAP_SYS_PTRACE) the agent does
 * not evict at all: a child would read zeros.
 *
 * The handler thread does all of it: it owns the registry, the staging
 * slots and the store.
 */

#define PAGE MGI_PAGE_SIZE
#define RUN_MAX 64            /* pages per deactivating move */
#define RELEASE_QUEUE 512     /* runs waiting to go to the releaser */
#define STAGE_MIN 64          /* the staging area's target, at least... */
#define STAGE_MAX (MGI_STAGE_SLOTS / 2) /* ...and at most */
#define CHILD_WAIT_MS 60000   /* how long a child waits for its parent's copy */

/* A request to the helper thread, answered with itself once done: drop
 * the frames of n retired staging slots from slot `at` (RELEASE), or break
 * the copy-on-write sharing of n pages from address `at` (UNSHARE). 16
 * bytes: pipe writes of it are atomic. */
enum { RELEASE = 1, UNSHARE = 2 };
typedef struct helper_req {
	uint32_t kind, n;
	uint64_t at;
} helper_req_t;

#define UNSHARES_MAX 64     /* unshare requests outstanding */
/* Retired slots' frames are sent to the helper this many pages at a time
 * (or when the handler is idle, or needs the slots back). Each batch costs
 * a REMOVE event round trip between the two threads (and moves fail with
 * EAGAIN until the handler has read it); measured, sending them after
 * every eviction of 32 pages doubled the context switches of a sequential
 * swap-out and cut its throughput by a third. Until sent, at most this
 * many uncharged frames are still resident (512 KiB). */
#define RELEASE_BATCH 128

static helper_req_t queue[RELEASE_QUEUE];
static unsigned nqueue, unshares_pending;
/* The ranges being unshared: the clock leaves them alone until answered,
 * so the helper never meets a page we moved out meanwhile (it would wait
 * on a fault of ours). */
static mgi_range_t unsharing[UNSHARES_MAX];
static bool warned_conflict, warned_no_evict;


static mgi_counter_path_t swap_path(void)
{
	return mgi_segment_swap_path(&mgi_agent.path);
}

static uint64_t key_of(uintptr_t addr)
{
	return addr >> MGI_PAGE_SHIFT;
}

static void *slot_addr(uint32_t slot)
{
	return (void *)(mgi_agent.stage_base + (uintptr_t)slot * PAGE);
}

/* ---- the helper thread ---- */

/*
 * Does for the handler what the handler must not do itself:
 *  - MADV_DONTNEED of retired staging slots: it waits until the handler
 *    has read the REMOVE event it causes;
 *  - MADV_POPULATE_WRITE of pages the process shares copy-on-write with a
 *    child (after fork): it gives the process its own copy of each, with
 *    the data unchanged (no store is done), so that UFFDIO_MOVE, which
 *    moves only pages mapped once, can evict them. Were one of them absent
 *    after all, the fault would wait for the handler: fine here, fatal in
 *    the handler.
 * Blocks only in read, madvise and write; never touches managed memory.
 */
static void *helper_main(void *arg)
{
	helper_req_t reqs[64];
	ssize_t n;

	(void)arg;
	for (;;) {
		n = read(mgi_agent.release_rd, reqs, sizeof(reqs));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return NULL;
		for (size_t i = 0; i < (size_t)n / sizeof(reqs[0]); i++) {
			if (reqs[i].kind == RELEASE) {
				int rc = mgi_raw_madvise(slot_addr((uint32_t)reqs[i].at),
							 (size_t)reqs[i].n * PAGE, MADV_DONTNEED);
				if (rc != 0)
					reqs[i].kind |= (uint32_t)(rc < 0 ? -rc : rc) << 8;
			} else
				mgi_raw_madvise((void *)(uintptr_t)reqs[i].at, (size_t)reqs[i].n * PAGE,
						MADV_POPULATE_WRITE);
			while (write(mgi_agent.done_wr, &reqs[i], sizeof(reqs[i])) < 0 &&
			       errno == EINTR)
				;
		}
	}
}

/* Sends the queued requests to the helper, as many as the pipe takes. */
static void flush_releases(void)
{
	unsigned sent = 0;

	while (sent < nqueue) {
		ssize_t n = write(mgi_agent.release_wr, &queue[sent], sizeof(queue[0]));
		if (n != sizeof(queue[0]))
			break;
		sent++;
	}
	memmove(queue, queue + sent, (nqueue - sent) * sizeof(queue[0]));
	nqueue -= sent;
}

/* Sends the queued requests once they are worth a round trip: RELEASE_BATCH
 * pages of retired slots, or any unshare (the clock waits on those). */
static void flush_releases_lazily(void)
{
	uint64_t pages = 0;

	for (unsigned i = 0; i < nqueue; i++) {
		if (queue[i].kind != RELEASE || (pages += queue[i].n) >= RELEASE_BATCH) {
			flush_releases();
			return;
		}
	}
}

void mgi_reclaim_idle(void)
{
	if (nqueue)
		flush_releases();
}

/* Queues a request, joining the previous one if it continues it. Returns
 * false if neither the queue nor the pipe has room (try again later). */
static bool queue_req(uint32_t kind, uint64_t at, uint32_t n)
{
	helper_req_t *last = nqueue ? &queue[nqueue - 1] : NULL;

	if (kind == RELEASE)
		mgi_trace(MGI_TR_RELEASE_Q, 0, at, n, 0);
	if (last && kind == RELEASE && last->kind == kind && last->at + last->n == at) {
		last->n += n;
		return true;
	}
	if (nqueue == RELEASE_QUEUE)
		flush_releases();
	if (nqueue == RELEASE_QUEUE)
		return false;
	queue[nqueue++] = (helper_req_t){kind, n, at};
	return true;
}

/* A retired slot's frame is to be dropped. (A full queue leaves it
 * retired, which only blocks its reuse: the queue drains as the helper
 * answers.) */
static void queue_release(uint32_t slot)
{
	queue_req(RELEASE, slot, 1);
}

/* Whether [addr, addr + n pages) overlaps a range being unshared. */
static bool being_unshared(uintptr_t addr, size_t n)
{
	for (unsigned i = 0; i < UNSHARES_MAX; i++)
		if (unsharing[i].end && addr < unsharing[i].end &&
		    addr + n * PAGE > unsharing[i].start)
			return true;
	return false;
}

bool mgi_reclaim_unsharing(uintptr_t page)
{
	return unshares_pending && being_unshared(page, 1);
}

/* Pages shared with a child are to be made our own (one request per range:
 * never merged, so that each answer names its range). */
static void queue_unshare(uintptr_t addr, size_t n)
{
	unsigned i;

	if (being_unshared(addr, n))
		return;
	for (i = 0; i < UNSHARES_MAX && unsharing[i].end; i++)
		;
	if (i == UNSHARES_MAX)
		return; /* enough under way: these wait for the next pass */
	if (nqueue == RELEASE_QUEUE)
		flush_releases();
	if (nqueue == RELEASE_QUEUE)
		return;
	queue[nqueue++] = (helper_req_t){UNSHARE, (uint32_t)n, addr};
	unsharing[i] = (mgi_range_t){addr, addr + n * PAGE};
	unshares_pending++;
}

void mgi_reclaim_released(void)
{
	helper_req_t done[64];
	ssize_t n;

	while ((n = read(mgi_agent.done_rd, done, sizeof(done))) > 0)
		for (size_t i = 0; i < (size_t)n / sizeof(done[0]); i++) {
			if ((done[i].kind & 0xff) == RELEASE) {
				mgi_trace(MGI_TR_RELEASED, 0, done[i].at, done[i].n,
					  (int32_t)(done[i].kind >> 8));
				mgi_staging_freed(&mgi_agent.staging, (uint32_t)done[i].at, done[i].n);
				continue;
			}
			for (unsigned k = 0; k < UNSHARES_MAX; k++)
				if (unsharing[k].start == done[i].at && unsharing[k].end) {
					unsharing[k].end = 0;
					unshares_pending--;
					break;
				}
		}
	flush_releases_lazily();
}

/* Waits up to ms for the helper's answers, following events meanwhile
 * (its madvise may wait on us reading one). */
static void wait_helper(int ms)
{
	struct pollfd p[2] = {{.fd = mgi_agent.uffd, .events = POLLIN},
			      {.fd = mgi_agent.done_rd, .events = POLLIN}};

	flush_releases();
	mgi_handler_follow_events();
	poll(p, 2, ms);
	mgi_handler_follow_events();
	mgi_reclaim_released();
}

/* ---- set-up ---- */

static int own_range(uintptr_t start, size_t len)
{
	if (mgi_agent.nown == MGI_OWN_RANGES_MAX)
		return -ENOSPC;
	mgi_agent.own[mgi_agent.nown++] = (mgi_range_t){start, start + len};
	return 0;
}

static void *reserve(size_t len)
{
	void *p = mgi_raw_mmap(NULL, len, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	/* no huge pages: frames are given back one 4 KiB page at a time */
	mgi_raw_madvise(p, len, MADV_NOHUGEPAGE);
	return p;
}

/* The store's discard: its unused pages go back to the system. The store
 * is not registered with userfaultfd, so this never waits. */
static void store_discard(void *ctx, void *addr, size_t len)
{
	(void)ctx;
	mgi_raw_madvise(addr, len, MADV_DONTNEED);
}

/* ---- the write-back file (--swap-file) ---- */

#define SWAP_FILE_MAX (64ULL << 30) /* per process: bounds its meta reservation */

static int swap_fd = -1;
static uint64_t swap_after; /* bytes; 0: from the group's limit */

/* pwrite or pread of the whole of [buf, buf + len) at off. */
static int file_io(bool write, uint64_t off, char *buf, size_t len)
{
	while (len) {
		ssize_t n = write ? pwrite(swap_fd, buf, len, (off_t)off)
				  : pread(swap_fd, buf, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		buf += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

static int file_write(void *ctx, uint64_t off, const void *buf, size_t len)
{
	(void)ctx;
	return file_io(true, off, (char *)buf, len);
}

static int file_read(void *ctx, uint64_t off, void *buf, size_t len)
{
	(void)ctx;
	return file_io(false, off, buf, len);
}

static void file_discard(void *ctx, uint64_t off, size_t len)
{
	(void)ctx;
	/* Not supported (some file systems): the space stays allocated and
	 * is reused by later pages. */
	(void)fallocate(swap_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off,
			(off_t)len);
}

/* With MEMGRP_SWAP_FILE (memgrp run --swap-file DIR): an unnamed file in
 * DIR, gone with the process, behind the store. */
static void swap_file_init(void)
{
	const char *dir = mgi_env_str(MGI_ENV_SWAP_FILE);
	size_t meta_bytes = mgi_store_file_meta_bytes(SWAP_FILE_MAX);
	void *meta;

	if (!dir || !mgi_agent.store)
		return;
	swap_after = mgi_env_uint(MGI_ENV_SWAP_FILE_AFTER);
	swap_fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (swap_fd < 0) {
		mgi_agent_log("--swap-file %s: %s: compressed pages stay in memory", dir,
			      strerror(errno));
		return;
	}
	meta = reserve(meta_bytes);
	if (!meta || own_range((uintptr_t)meta, meta_bytes) != 0 ||
	    mgi_store_attach_file(mgi_agent.store, meta, meta_bytes) != 0) {
		mgi_agent_log("--swap-file %s: cannot set up: compressed pages stay in memory", dir);
		close(swap_fd);
		swap_fd = -1;
	}
}

/* When the group's compressed pages in memory pass the write-back size,
 * this process (the one evicting: the group's coldest) writes its oldest
 * back to its file, down to 7/8 of the size. */
static void write_back_if_over(void)
{
	mgi_store_stats_t st;
	uint64_t total = 0, after = swap_after;

	if (swap_fd < 0)
		return;
	if (!after) {
		uint64_t max = atomic_load(&mgi_agent.seg->ctl.memory.max);
		after = max >= MGI_PAGES_UNLIMITED ? 256ULL << 20 : max * PAGE / 4;
	}
	mgi_store_stats(mgi_agent.store, &st);
	for (int i = 0; i < MGI_PROCS_MAX; i++)
		if (i != mgi_agent.slot)
			total += atomic_load_explicit(&mgi_agent.seg->acct.procs[i].stored_bytes,
						      memory_order_relaxed);
	total += st.compressed_bytes;
	if (total <= after)
		return;
	uint64_t want = total - after + after / 8, in_memory = st.pages - st.file_pages;
	/* The older half of what is in memory first (stamps are the eviction
	 * clock), then anything older than now. */
	uint64_t freed = mgi_store_writeback(mgi_agent.store, want,
					     mgi_agent.evict_clock - (uint32_t)(in_memory / 2));
	if (freed < want)
		mgi_store_writeback(mgi_agent.store, want - freed, mgi_agent.evict_clock);
	mgi_store_stats_t now;
	mgi_store_stats(mgi_agent.store, &now);
	atomic_fetch_add_explicit(&mgi_agent.seg->acct.written_back, now.written_back - st.written_back,
				  memory_order_relaxed);
}

static int start_releaser(void)
{
	int req[2], done[2];

	if (pipe2(req, O_CLOEXEC) != 0)
		return -errno;
	if (pipe2(done, O_CLOEXEC | O_NONBLOCK) != 0) {
		close(req[0]);
		close(req[1]);
		return -errno;
	}
	mgi_agent.release_rd = req[0];
	mgi_agent.release_wr = req[1];
	mgi_agent.done_rd = done[0];
	mgi_agent.done_wr = done[1];
	/* The handler's end must not block: a full pipe keeps runs queued. */
	fcntl(mgi_agent.release_wr, F_SETFL, O_NONBLOCK);
	fcntl(mgi_agent.done_wr, F_SETFL, 0);
	/* Running our code before the handler starts (mgi_start_thread). */
	return mgi_start_thread(&mgi_agent.releaser, mgi_agent.release_stack, MGI_RELEASER_STACK,
				helper_main, NULL);
}

static mgi_codec_t codec_from_env(void)
{
	return mgi_env_choice(MGI_ENV_CODEC) == 1 ? MGI_CODEC_ZSTD : MGI_CODEC_LZ4;
}

void mgi_reclaim_init(void)
{
	size_t stage_len = (size_t)MGI_STAGE_SLOTS * PAGE;
	mgi_codec_t codec = codec_from_env();
	void *staging_mem;

	mgi_agent.can_evict = false;
	mgi_agent.release_rd = mgi_agent.release_wr = mgi_agent.done_rd = mgi_agent.done_wr = -1;
	if (!mgi_agent.fork_events) {
		mgi_agent.no_evict_why = "its userfaultfd lacks UFFD_EVENT_FORK (it needs "
					 "CAP_SYS_PTRACE), without which a forked child could "
					 "read evicted pages as zeros";
		return;
	}
	mgi_agent.no_evict_why = "out of memory while setting up the staging area and store";
	mgi_agent.stage_base = (uintptr_t)reserve(stage_len);
	mgi_agent.beacon = (uintptr_t)reserve(PAGE);
	mgi_agent.store_bytes = mgi_store_region_bytes(MGI_STORE_MAX_PAGES, codec);
	mgi_agent.store_mem = reserve(mgi_agent.store_bytes);
	staging_mem = mgi_arena_alloc(&mgi_agent.arena, mgi_staging_bytes(MGI_STAGE_SLOTS));
	mgi_agent.restore_buf = mgi_arena_alloc(&mgi_agent.arena, MGI_RESTORE_MAX * PAGE);
	mgi_agent.release_stack = mgi_arena_alloc(&mgi_agent.arena, MGI_RELEASER_STACK);
	if (!mgi_agent.stage_base || !mgi_agent.beacon || !mgi_agent.store_mem || !staging_mem ||
	    !mgi_agent.restore_buf || !mgi_agent.release_stack)
		return;
	own_range(mgi_agent.stage_base, stage_len);
	own_range(mgi_agent.beacon, PAGE);
	own_range((uintptr_t)mgi_agent.store_mem, mgi_agent.store_bytes);
	mgi_agent.store = mgi_store_init(mgi_agent.store_mem, mgi_agent.store_bytes,
					 MGI_STORE_MAX_PAGES, codec,
					 (mgi_store_ops_t){.discard = store_discard,
							   .file_write = file_write,
							   .file_read = file_read,
							   .file_discard = file_discard});
	if (!mgi_agent.store)
		return;
	swap_file_init();
	mgi_staging_init(&mgi_agent.staging, staging_mem, MGI_STAGE_SLOTS);
	*(volatile char *)mgi_agent.beacon = 1; /* present: never a fault of ours */
	if (mgi_uffd_register_wp(mgi_agent.uffd, mgi_agent.stage_base, stage_len) != 0 ||
	    mgi_uffd_register(mgi_agent.uffd, mgi_agent.beacon, PAGE) != 0) {
		mgi_agent.no_evict_why = "the staging area cannot be registered with userfaultfd";
		return;
	}
	if (start_releaser() != 0) {
		mgi_agent.no_evict_why = "the releaser thread cannot start";
		return;
	}
	mgi_agent.no_evict_why = NULL;
	mgi_agent.can_evict = true;
}

void mgi_reclaim_child_start(void)
{
	uint64_t waited_ms = 0;

	if (mgi_agent.beacon && mgi_agent.fork_events) {
		/* Our address space stays registered with the uffd the kernel
		 * gave our parent's agent until it has copied in what it held
		 * for us and closed it: registering the beacon fails with EBUSY
		 * until then. Nothing else runs in this process meanwhile (we
		 * are in fork's child handler, the only thread). */
		char why[160];
		int fd = mgi_uffd_open(NULL, NULL, why, sizeof(why));
		while (fd >= 0 && mgi_uffd_register(fd, mgi_agent.beacon, PAGE) == -EBUSY &&
		       waited_ms < CHILD_WAIT_MS) {
			struct timespec ts = {0, 1000000};
			nanosleep(&ts, NULL);
			waited_ms++;
		}
		if (waited_ms >= CHILD_WAIT_MS)
			mgi_agent_log("the parent's agent did not let go of this child's memory "
				      "in %d s: going on", CHILD_WAIT_MS / 1000);
		if (fd >= 0)
			close(fd);
	}
	/* The parent's reclaim ranges are copies we do not need. */
	for (unsigned i = 0; i < mgi_agent.nown; i++)
		mgi_raw_munmap((void *)mgi_agent.own[i].start,
			       mgi_agent.own[i].end - mgi_agent.own[i].start);
	mgi_agent.nown = 0;
	int *fds[] = {&mgi_agent.release_rd, &mgi_agent.release_wr, &mgi_agent.done_rd,
		      &mgi_agent.done_wr};
	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
		if (*fds[i] >= 0)
			close(*fds[i]);
		*fds[i] = -1;
	}
	if (swap_fd >= 0)
		close(swap_fd); /* the parent's file: ours comes with our store */
	swap_fd = -1;
	mgi_agent.stage_base = mgi_agent.beacon = 0;
	mgi_agent.store_mem = NULL;
	mgi_agent.store = NULL;
	mgi_agent.can_evict = false;
	/* The fork may have caught our parent's handler inside an eviction:
	 * its flag, copied, would keep this process from ever evicting. */
	mgi_agent.evicting = false;
	nqueue = 0;
	unshares_pending = 0;
	memset(unsharing, 0, sizeof(unsharing));
}

/* ---- accounting ---- */

void mgi_reclaim_publish(void)
{
	mgi_proc_slot_t *me = mgi_agent.me;
	mgi_store_stats_t st;
	int32_t oldest;

	if (!mgi_agent.store || !me)
		return;
	mgi_store_stats(mgi_agent.store, &st);
	oldest = mgi_staging_oldest(&mgi_agent.staging);
	atomic_store_explicit(&me->staged, mgi_agent.staging.used, memory_order_relaxed);
	atomic_store_explicit(&me->staged_since_ns,
			      oldest >= 0 ? mgi_agent.staging.slot[oldest].when : 0,
			      memory_order_relaxed);
	atomic_store_explicit(&me->stored_bytes, st.compressed_bytes, memory_order_relaxed);
	atomic_store_explicit(&me->file_bytes, st.file_bytes, memory_order_relaxed);
	atomic_store_explicit(&me->same_filled, st.same_filled, memory_order_relaxed);
}

bool mgi_reclaim_allowed(unsigned level)
{
	mgi_counter_path_t sp;

	if (!mgi_agent.can_evict) {
		if (mgi_agent.no_evict_why && !warned_no_evict &&
		    atomic_load(&mgi_agent.seg->ctl.swap.max) > 0) {
			warned_no_evict = true;
			mgi_agent_log("this process cannot evict pages: %s", mgi_agent.no_evict_why);
		}
		return false;
	}
	if (level >= mgi_agent.nsegs ||
	    atomic_load_explicit(&mgi_agent.seg->ctl.swappiness, memory_order_relaxed) == 0)
		return false;
	sp = swap_path();
	for (unsigned l = 0; l < sp.depth; l++)
		if (mgi_counter_margin(sp.level[l], sp.limit[l]) == 0)
			return false;
	return true;
}

/* ---- deactivate, compress ---- */

/*
 * The slot at the staging area's head is retired (its frame is being
 * dropped): waits for the releaser, following events meanwhile (its
 * madvise waits until we read the REMOVE event it causes). Returns whether
 * there is room now; gives up after a second (the releaser is stuck).
 */
static bool wait_for_room(void)
{
	mgi_staging_t *st = &mgi_agent.staging;
	uint32_t first;

	for (int i = 0; i < 1000; i++) {
		if (st->slot[st->head].key != MGI_STAGING_RETIRED)
			return mgi_staging_room(st, 1, &first) > 0;
		wait_helper(1);
	}
	return false;
}

/*
 * A UFFDIO_MOVE that fails may have moved pages past the count it reports.
 * Measured on Linux 6.18 (tracing bench/coop, MEMGRP_TRACE): a run of 8
 * pages came back -EEXIST with `move` 0 while all 8 had gone into their
 * slots; taking them for pages left behind, the handler had the slots'
 * frames dropped and later gave the application zeros. So after a failure
 * the pages after the reported count are looked at: one whose source is
 * now empty and whose slot holds a frame has moved. (A source page the
 * kernel had emptied otherwise, by a discard, is not evicted at all: the
 * clock leaves recently discarded ranges alone.) Returns how many of the n
 * pages from src (to slots from slot) moved, counting from the first.
 */
static size_t moved_unreported(uintptr_t src, uint32_t slot, size_t n)
{
	unsigned char at_src[RUN_MAX], at_dst[RUN_MAX];
	size_t i;

	if (n > RUN_MAX || mincore((void *)src, n * PAGE, at_src) != 0 ||
	    mincore(slot_addr(slot), n * PAGE, at_dst) != 0)
		return 0;
	for (i = 0; i < n && !(at_src[i] & 1) && (at_dst[i] & 1); i++)
		;
	if (i)
		mgi_trace(MGI_TR_UNREPORTED, src, slot, i, 0);
	return i;
}

/* Moves up to `want` pages the clock chooses into the staging area.
 * Returns how many it moved; stops early when the staging area has no
 * room at its head or the address space is changing (events first). */
static uint64_t deactivate(uint64_t want)
{
	mgi_registry_t *reg = &mgi_agent.reg;
	uint64_t moved_total = 0, now = mgi_now_ns();
	unsigned calls = 0, eagain = 0;
	uint64_t busy = 0;
	static unsigned misreports;

	while (moved_total < want && calls++ < 4 * (want / RUN_MAX + 4) + 2 * (reg->present / RUN_MAX)) {
		uintptr_t run;
		size_t max = want - moved_total < RUN_MAX ? want - moved_total : RUN_MAX;
		/* one revolution at most per call */
		size_t n = mgi_registry_clock(reg, (reg->bytes >> MGI_PAGE_SHIFT) + 64, max, &run);
		uint32_t first, room;
		size_t moved = 0, k;
		int rc;

		if (!n)
			break;
		if (unshares_pending && being_unshared(run, n)) {
			reg->hand = run + n * PAGE; /* not yet ours alone */
			continue;
		}
		if (mgi_recently_removed(run, run + n * PAGE)) {
			reg->hand = run + n * PAGE; /* old pages may still be there */
			continue;
		}
		room = mgi_staging_room(&mgi_agent.staging, (uint32_t)n, &first);
		if (!room) {
			reg->hand = run; /* these pages wait for room */
			if (!wait_for_room())
				break;
			continue;
		}
		rc = mgi_uffd_move(mgi_agent.uffd, (uintptr_t)slot_addr(first), run, room * PAGE, true,
				   &moved);
		if (mgi_agent.misreport_moves && rc == 0 && room > 1 && ++misreports % 4 == 0) {
			/* Fault injection: report a run that moved as the kernel
			 * was seen to (moved_unreported). */
			rc = -EEXIST;
			moved = 0;
		}
		k = moved / PAGE;
		mgi_trace(MGI_TR_EVICT, run, first, (uint32_t)n, (int32_t)(k << 8) | (-rc & 0xff));
		if (rc != 0 && k < room) {
			k += moved_unreported(run + k * PAGE, first + (uint32_t)k, room - k);
			if (k == room)
				rc = 0; /* all of it went after all */
		}
		mgi_vregion_t *r = mgi_registry_find(reg, run);
		if (k) {
			mgi_staging_fill(&mgi_agent.staging, first, (uint32_t)k, key_of(run), now);
			mgi_registry_evict(reg, r, run, k);
			moved_total += k;
		}
		uintptr_t at = run + k * PAGE;
		if (rc == 0) {
			reg->hand = at; /* the rest of the run, if room was short */
			continue;
		}
		if (rc == -EAGAIN) {
			/* The address space is changing: follow it, then go on
			 * (the clock looks at the registry afresh). */
			reg->hand = at;
			if (eagain++ > 200)
				break;
			/* (the forking or unmapping thread has yet to run after
			 * we read its event: give it a moment) */
			wait_helper(eagain > 2 ? 1 : 0);
			continue;
		}
		if (rc == -EEXIST) {
			/* the slot still holds a frame: have it dropped */
			mgi_trace(MGI_TR_BLOCK, *(volatile uint64_t *)slot_addr(first + (uint32_t)k),
				  first + k, 0, 0);
			mgi_staging_block(&mgi_agent.staging, first + (uint32_t)k);
			queue_release(first + (uint32_t)k);
			reg->hand = at;
			continue;
		}
		if (rc == -EBUSY) {
			/* Shared with a child (copy-on-write after fork), or
			 * pinned: the helper gives us our own copies of the rest
			 * of the run. Their ref bits keep the clock off them
			 * until its next pass, when they move. (Pinned pages
			 * stay pinned and are passed over again.) */
			queue_unshare(at, n - k);
			for (size_t i = 0; i < n - k && r; i++)
				mgi_registry_set_ref(r, at + i * PAGE);
			reg->hand = run + n * PAGE;
			busy += n - k;
			if (busy > reg->present)
				break; /* a whole pass of shared pages */
			continue;
		}
		/* EINVAL: the range's protection changed (mprotect) or it is
		 * mlocked; ENOENT: gone. Passed over this time round. */
		for (size_t i = 0; i < n - k && r; i++)
			mgi_registry_set_ref(r, at + i * PAGE);
		reg->hand = run + n * PAGE;
	}
	if (moved_total)
		atomic_fetch_add_explicit(&mgi_agent.seg->acct.pgdeactivate, moved_total,
					  memory_order_relaxed);
	return moved_total;
}

/* Compresses the page in `slot` into the store. Returns 0 or -ENOSPC (the
 * swap limit or the store is full). */
static int compress(uint32_t slot)
{
	uint64_t key = mgi_agent.staging.slot[slot].key;
	int rc;

	if (!mgi_swap_charge(1))
		return -ENOSPC;
	rc = mgi_store_put(mgi_agent.store, key, slot_addr(slot), mgi_agent.evict_clock);
	if (rc == -EEXIST) {
		/* an entry left for this address (cannot happen: unmaps and
		 * discards drop them); the staged page is the live one */
		mgi_store_drop(mgi_agent.store, key);
		mgi_swap_uncharge(1);
		rc = mgi_store_put(mgi_agent.store, key, slot_addr(slot), mgi_agent.evict_clock);
	}
	if (rc != 0) {
		mgi_swap_uncharge(1);
		return -ENOSPC;
	}
	mgi_agent.evict_clock++;
	mgi_trace(MGI_TR_COMPRESS, key << MGI_PAGE_SHIFT, slot, 0,
		  (int32_t)(*(volatile uint64_t *)slot_addr(slot) & 0x7fffffff));
	mgi_staging_retire(&mgi_agent.staging, slot);
	queue_release(slot);
	return 0;
}

/* The staging area's target: an eighth of what the process has mapped,
 * so that a page spends a while there before it is compressed. */
static uint64_t stage_target(void)
{
	uint64_t t = mgi_agent.reg.present / 8;
	return t < STAGE_MIN ? STAGE_MIN : t > STAGE_MAX ? STAGE_MAX : t;
}

/* After compressing `freed` staged pages: they are swap now, not memory;
 * the store may have to write back, and the slots' frames go. */
static void evicted(uint64_t freed)
{
	if (freed) {
		atomic_fetch_add_explicit(&mgi_agent.seg->acct.pswpout, freed, memory_order_relaxed);
		mgi_uncharge(freed); /* memory: it is in the store now (swap) */
	}
	write_back_if_over();
	flush_releases_lazily();
}

uint64_t mgi_evict(uint64_t pages)
{
	mgi_staging_t *st = &mgi_agent.staging;
	uint64_t freed = 0;

	if (!mgi_agent.can_evict || !pages || mgi_agent.evicting)
		return 0;
	mgi_agent.evicting = true;
	mgi_reclaim_released();
	for (int waits = 0; freed < pages;) {
		int32_t s = mgi_staging_oldest(st);
		if (s < 0) {
			if (deactivate(pages - freed) > 0)
				continue;
			/* Nothing could move: if pages shared with a child are
			 * being made ours, wait for that (at most 200 ms: the
			 * helper may itself wait on a fault we cannot serve
			 * from in here). */
			if (!unshares_pending || waits++ >= 200)
				break;
			wait_helper(1);
			continue;
		}
		if (compress((uint32_t)s) != 0)
			break;
		freed++;
	}
	evicted(freed);
	/* The next round's second chances. */
	if (st->used < stage_target())
		deactivate(stage_target() - st->used);
	mgi_reclaim_publish();
	mgi_agent.evicting = false;
	return freed;
}

uint64_t mgi_evict_ahead(void)
{
	mgi_staging_t *st = &mgi_agent.staging;
	int32_t s;

	if (!mgi_agent.can_evict || mgi_agent.evicting || (s = mgi_staging_oldest(st)) < 0)
		return 0; /* nothing staged: the fault that needs room evicts */
	mgi_agent.evicting = true;
	mgi_reclaim_released();
	bool done = compress((uint32_t)s) == 0;
	evicted(done);
	/* topped up a run at a time: one move per page would cost more than
	 * the compression it precedes */
	if (st->used + RUN_MAX <= stage_target())
		deactivate(RUN_MAX);
	mgi_reclaim_publish();
	mgi_agent.evicting = false;
	return done;
}

void mgi_reclaim_age(void)
{
	mgi_staging_t *st = &mgi_agent.staging;

	if (!mgi_agent.can_evict || mgi_agent.evicting || st->used >= stage_target())
		return;
	mgi_agent.evicting = true;
	mgi_reclaim_released();
	deactivate(stage_target() - st->used);
	flush_releases_lazily();
	mgi_reclaim_publish();
	mgi_agent.evicting = false;
}

/* ---- restore ---- */

/* Whether the out page at addr is in the store (not staged). */
static bool stored(uintptr_t addr)
{
	return mgi_staging_find(&mgi_agent.staging, key_of(addr)) < 0 &&
	       mgi_store_contains(mgi_agent.store, key_of(addr));
}

static void conflict(uintptr_t page)
{
	mgi_trace(MGI_TR_CONFLICT, page, 0, 0, 0);
	if (!warned_conflict) {
		warned_conflict = true;
		mgi_agent_log("page %#lx was present though its data was held evicted "
			      "(please report it); the present page was kept",
			      (unsigned long)page);
	}
}

/* A staged page touched again: moved straight back. */
static enum mgi_resolved activate(mgi_vregion_t *r, uintptr_t page, int32_t slot)
{
	size_t moved = 0, copied;
	bool frame_left = false;
	int rc = mgi_uffd_move(mgi_agent.uffd, page, (uintptr_t)slot_addr((uint32_t)slot), PAGE,
			       false, &moved);

	mgi_trace(MGI_TR_ACTIVATE, page, (uint64_t)slot, 0, rc);
	if (rc == -EAGAIN)
		return MGI_RETRY;
	if (rc == -ENOENT) {
		/* The staged frame is gone (a page the process had freed with
		 * MADV_FREE, which the kernel then reclaimed): it reads as zeros,
		 * as it would have in place. */
		rc = mgi_uffd_copy(mgi_agent.uffd, page, mgi_agent.zeros, PAGE, &copied);
	} else if (rc != 0 && rc != -EEXIST) {
		/* EBUSY: the frame is shared with a forked child's copy of the
		 * staging area (until the child drops it). Copy it in instead;
		 * the frame stays with the slot, to be dropped. */
		rc = mgi_uffd_copy(mgi_agent.uffd, page, slot_addr((uint32_t)slot), PAGE, &copied);
		frame_left = true;
	}
	if (rc == -EAGAIN)
		return MGI_RETRY;
	if (rc == -EEXIST) {
		conflict(page);
		frame_left = true;
	} else if (rc != 0) {
		/* the range went away: its event drops the slot */
		mgi_uffd_wake(mgi_agent.uffd, page, PAGE);
		return MGI_DONE;
	}
	if (frame_left) {
		mgi_staging_retire(&mgi_agent.staging, (uint32_t)slot);
		queue_release((uint32_t)slot);
		flush_releases();
	} else {
		mgi_staging_release(&mgi_agent.staging, (uint32_t)slot);
	}
	mgi_registry_restore(&mgi_agent.reg, r, page, 1, true);
	atomic_fetch_add_explicit(&mgi_agent.seg->acct.pgactivate, 1, memory_order_relaxed);
	mgi_reclaim_publish();
	return MGI_DONE;
}

enum mgi_resolved mgi_restore(mgi_vregion_t *r, uintptr_t page, bool sequential,
			      size_t *restored, unsigned *level)
{
	mgi_store_t *store = mgi_agent.store;
	char *buf = mgi_agent.restore_buf;
	uint32_t stamps[MGI_RESTORE_MAX];
	size_t n = 1, copied = 0, k;
	int32_t slot;
	int rc;

	*restored = 0;
	if (!store)
		return MGI_ABSENT;
	slot = mgi_staging_find(&mgi_agent.staging, key_of(page));
	if (slot >= 0) {
		*restored = 1;
		return activate(r, page, slot);
	}
	if (!mgi_store_contains(store, key_of(page))) {
		/* held nowhere (cannot happen): a new page, not a wrong one */
		conflict(page);
		mgi_registry_each_out(&mgi_agent.reg, page, page + PAGE, true, NULL, NULL);
		return MGI_ABSENT;
	}
	/* The fault latency on evicted pages: from here (held in the store)
	 * to the copy that wakes the thread; one vDSO read each end. */
	uint64_t t0 = mgi_now_ns();
	/* Readahead: the stored pages right after, when access is sequential. */
	if (sequential)
		while (n < MGI_RESTORE_MAX && page + n * PAGE < r->end &&
		       mgi_registry_is_out(r, page + n * PAGE) && stored(page + n * PAGE))
			n++;
	/* near the limit, the readahead that fits */
	n = mgi_charge_upto(n, level);
	if (n == 0)
		return MGI_NEED_ROOM;
	for (size_t i = 0; i < n; i++) {
		rc = mgi_store_get(store, key_of(page + i * PAGE), buf + i * PAGE, &stamps[i]);
		if (rc != 0) { /* -EIO: never seen; stop before a page we cannot give */
			mgi_agent_log("page %#lx cannot be restored from the store: %s",
				      (unsigned long)(page + i * PAGE), strerror(-rc));
			if (i == 0)
				abort();
			n = i;
			break;
		}
	}
	rc = mgi_uffd_copy(mgi_agent.uffd, page, buf, n * PAGE, &copied);
	if (rc == -ENOENT && copied == 0 && n > 1) {
		/* The readahead crossed a VMA's edge (a region may span two
		 * VMAs; one ioctl cannot): the page alone. Woken to fault
		 * again instead, the thread would meet the same window. */
		mgi_uncharge(n - 1);
		n = 1;
		rc = mgi_uffd_copy(mgi_agent.uffd, page, buf, PAGE, &copied);
	}
	k = copied / PAGE;
	mgi_trace(MGI_TR_RESTORE, page, k, (uint32_t)n, rc);
	if (rc == -EEXIST && k == 0) {
		/* present though we hold it out: keep the live page */
		conflict(page);
		mgi_store_drop(store, key_of(page));
		mgi_swap_uncharge(1);
		mgi_registry_restore(&mgi_agent.reg, r, page, 1, false);
		k = 0;
		mgi_uncharge(n - 1);
		mgi_uffd_wake(mgi_agent.uffd, page, PAGE);
		*restored = 1;
		return MGI_DONE;
	}
	uint64_t ws = 0;
	for (size_t i = 0; i < k; i++) {
		/* The refault distance: pages compressed since this one was. If
		 * that is within what is resident, a little more memory would
		 * have kept it: it is part of the working set. */
		bool hot = (uint32_t)(mgi_agent.evict_clock - stamps[i]) <= mgi_agent.reg.present;
		mgi_store_drop(store, key_of(page + i * PAGE));
		mgi_registry_restore(&mgi_agent.reg, r, page + i * PAGE, 1, hot);
		ws += hot;
	}
	if (k) {
		mgi_segment_t *seg = mgi_agent.seg;
		mgi_swap_uncharge(k);
		atomic_fetch_add_explicit(&seg->acct.pswpin, k, memory_order_relaxed);
		atomic_fetch_add_explicit(&seg->acct.refault, k, memory_order_relaxed);
		atomic_fetch_add_explicit(&seg->acct.workingset_activate, ws, memory_order_relaxed);
		atomic_fetch_add_explicit(&seg->acct.pgmajfault, 1, memory_order_relaxed);
		mgi_segment_count_restore(seg, mgi_now_ns() - t0);
		mgi_reclaim_publish();
	}
	if (n > k)
		mgi_uncharge(n - k);
	*restored = k;
	if (k)
		return MGI_DONE;
	if (rc == -EAGAIN)
		return MGI_RETRY;
	/* The range went away (ENOENT, EFAULT): its UNMAP event drops what we
	 * hold; let the thread fault again and meet whatever is there. */
	mgi_uffd_wake(mgi_agent.uffd, page, PAGE);
	return MGI_DONE;
}

/* ---- events ---- */

struct dropped {
	uint64_t memory, swap;
};

static void drop_one(void *ctx, uintptr_t addr)
{
	struct dropped *d = ctx;
	int32_t slot = mgi_staging_find(&mgi_agent.staging, key_of(addr));

	if (slot >= 0) {
		mgi_trace(MGI_TR_DROP_STAGED, addr, (uint64_t)slot, 0, 0);
		mgi_staging_retire(&mgi_agent.staging, (uint32_t)slot);
		queue_release((uint32_t)slot);
		d->memory++;
	} else if (mgi_agent.store && mgi_store_drop(mgi_agent.store, key_of(addr))) {
		mgi_trace(MGI_TR_DROP_STORED, addr, 0, 0, 0);
		d->swap++;
	}
}

void mgi_reclaim_drop(uintptr_t start, uintptr_t end)
{
	struct dropped d = {0, 0};

	if (!mgi_agent.reg.nout)
		return;
	mgi_registry_each_out(&mgi_agent.reg, start, end, true, drop_one, &d);
	if (d.memory)
		mgi_uncharge(d.memory);
	mgi_swap_uncharge(d.swap);
	flush_releases();
	mgi_reclaim_publish();
}

struct remap {
	uintptr_t from, to;
};

static void rekey_one(void *ctx, uintptr_t addr)
{
	const struct remap *m = ctx;
	uint64_t from = key_of(addr - m->to + m->from), to = key_of(addr);

	if (mgi_staging_rekey(&mgi_agent.staging, from, to) == 0)
		return;
	if (mgi_agent.store)
		mgi_store_rekey(mgi_agent.store, from, to);
}

void mgi_reclaim_moved(uintptr_t from, uintptr_t to, size_t len)
{
	struct remap m = {from, to};

	if (!mgi_agent.reg.nout)
		return;
	mgi_registry_each_out(&mgi_agent.reg, to, to + len, false, rekey_one, &m);
}

/* Reads and forgets what the child's uffd reports: its own events (its
 * agent starts over with a scan) and faults (woken by our copies or by
 * the close). A fork there hands us a grandchild's uffd: closed at once,
 * which leaves the grandchild unregistered (it copied the child before we
 * finished: a raw fork within the first moments of the child's life). */
/*
 * A forked child's userfaultfd (the FORK event's) lives in this process's
 * fd table from the handler's read of the event until mgi_reclaim_fork
 * closes it. Should the application fork again in that window, the new
 * child inherits that fd, and the first child's memory stays registered
 * with it for as long as the second child lives: the first child waits
 * (its agent cannot register its memory, EBUSY) and then blocks for good in
 * its next munmap, whose event nobody reads. A postmaster forking its
 * helpers in a row met this in 2 of ~40 starts. So: the handler records
 * the fds a read brought (between `reading` set and cleared), the
 * application's fork waits while a read is being recorded (atfork
 * prepare: short, the read is non-blocking), and a new child closes every
 * fd recorded and not yet closed.
 */
#define INFLIGHT_MAX 64
static _Atomic bool reading;
static int inflight[INFLIGHT_MAX];
static _Atomic unsigned ninflight;

void mgi_reclaim_read_begin(void)
{
	atomic_store(&reading, true);
}

void mgi_reclaim_read_end(const struct uffd_msg *msgs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned k = atomic_load(&ninflight);
		if (msgs[i].event == UFFD_EVENT_FORK && k < INFLIGHT_MAX) {
			inflight[k] = (int)msgs[i].arg.fork.ufd;
			atomic_store(&ninflight, k + 1);
		}
	}
	atomic_store(&reading, false);
}

static void inflight_closed(int cfd)
{
	unsigned k = atomic_load(&ninflight);

	for (unsigned i = 0; i < k; i++)
		if (inflight[i] == cfd) {
			inflight[i] = inflight[k - 1];
			atomic_store(&ninflight, k - 1);
			return;
		}
}

void mgi_reclaim_fork_prepare(void)
{
	/* bounded: a handler stopped in the middle of a read (it never is
	 * for long) must not hang the application's fork */
	for (int spins = 0; atomic_load(&reading) && spins < 10000; spins++)
		sched_yield();
}

void mgi_reclaim_close_inflight(void)
{
	unsigned k = atomic_load(&ninflight);

	for (unsigned i = 0; i < k; i++)
		close(inflight[i]);
	atomic_store(&ninflight, 0);
}

static void discard_child_events(int cfd)
{
	struct uffd_msg msgs[16];
	ssize_t n;

	while ((n = read(cfd, msgs, sizeof(msgs))) > 0)
		for (size_t i = 0; i < (size_t)n / sizeof(msgs[0]); i++)
			if (msgs[i].event == UFFD_EVENT_FORK)
				close((int)msgs[i].arg.fork.ufd);
}

static void copy_into_child(int cfd, uintptr_t dst, const void *src)
{
	size_t copied;

	for (int attempt = 0; attempt < 1000; attempt++) {
		if (mgi_uffd_copy(cfd, dst, src, PAGE, &copied) != -EAGAIN)
			return; /* copied, or the child has no page there (EEXIST, ENOENT) */
		discard_child_events(cfd);
	}
}

void mgi_reclaim_fork(int cfd)
{
	mgi_staging_t *st = &mgi_agent.staging;
	uint64_t cursor = 0, key, pages = 0;

	if (mgi_agent.store) {
		for (uint32_t s = 0; s < st->nslots; s++) {
			key = st->slot[s].key;
			if (key && key != MGI_STAGING_RETIRED) {
				copy_into_child(cfd, key << MGI_PAGE_SHIFT, slot_addr(s));
				pages++;
			}
		}
		while (mgi_store_next(mgi_agent.store, &cursor, &key)) {
			if (mgi_store_get(mgi_agent.store, key, mgi_agent.restore_buf, NULL) == 0)
				copy_into_child(cfd, key << MGI_PAGE_SHIFT, mgi_agent.restore_buf);
			pages++;
		}
	}
	/* Lets the child go: its remaining holes fill as new pages, and its
	 * agent can register afresh. The fd leaves the record and the table
	 * as one step for a fork (which waits while `reading` is set): else
	 * a fork between the two would either inherit the fd unrecorded or
	 * have its child close a recorded number already reused for another
	 * file. */
	atomic_store(&reading, true);
	close(cfd);
	inflight_closed(cfd);
	atomic_store(&reading, false);
	(void)pages;
}

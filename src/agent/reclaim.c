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
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <linux/futex.h>
#include <time.h>
#include <unistd.h>

#include "account.h"
#include "agent.h"
#include "options.h"
#include "os.h"
#include "thp.h"
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
 * space cannot be read as zeros there: the child's thread waits. The
 * child's memory is a copy-on-write snapshot of ours, the store and the
 * staging table included: when that snapshot is whole (see "What a forked
 * child may keep"), we tell the child so through its verdict page and
 * close its uffd, and the child keeps the store and restores from it
 * lazily, as we do from ours: pages evicted stay evicted on both sides.
 * Else we copy every held page into the child through that uffd and close
 * it. Either way the child's agent waits for the close (the beacon) and
 * starts over with its own uffd. Between the child's snapshot and our
 * reading of the event, every copy or move through our uffd fails with
 * EAGAIN, so what we hold cannot change under the child. Without
 * EVENT_FORK (it needs CAP_SYS_PTRACE) the agent does not evict at all: a
 * child would read zeros.
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


/* ---- what a forked child may keep ---- */

/*
 * The child's memory is a snapshot of ours taken while our threads run: it
 * holds our store and staging table as they were, which the child can keep
 * and restore from lazily, if the snapshot is whole. The kernel copies the
 * page tables one VMA after another while the handler may be changing the
 * store on another CPU (a compression, a restore's drop): a write to a page
 * already copied waits for the copy's end, one to a page not yet copied
 * goes into the child, and another CPU's stale TLB entry may even write a
 * copied page unseen (the parent's TLB is flushed at the copy's end). A
 * store caught half way through an update is no store. So every change to
 * what a child keeps (the store, the staged slots' keys, the write-back
 * file) is made between two increments of `mut_seq` (odd inside), and the
 * application's fork, in atfork prepare, notes its value (after waiting a
 * moment for it to be even). On the FORK event the same even value means
 * the handler changed nothing from before the snapshot until now: the
 * child's copy is whole. Anything else (a change under way or made
 * meanwhile: a fault served while another thread forked) and we copy every
 * held page into the child, as before. Changes that the child does not
 * read (a retired slot freed, the registry, which the child rebuilds) need
 * no bracket.
 *
 * Which FORK event is whose: the event says nothing of the fork that
 * made it, so the application's forks are made one at a time (`fork_lock`,
 * held from our atfork prepare, the last to run, to our parent handler, the
 * first; the kernel serialises most of a fork anyway) and the one under way
 * leaves its mark in `fork_tok`, which the handler takes with the event.
 * A raw fork (the syscall, without glibc's atfork handlers: its child's
 * agent never starts over) finds no mark and is copied into. Tolerated: a
 * raw fork whose event comes while an application's fork() waits for its
 * own would take that fork's mark (its child, which runs no agent, would
 * wait for ever on a fault), and the fork() then gets the copy.
 */
static _Atomic uint64_t mut_seq;
static unsigned mut_depth;
static pthread_mutex_t fork_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	_Atomic bool pending; /* set by prepare, taken by the event's read */
	uint64_t seq;         /* mut_seq at prepare */
	int sock[2];          /* the uffd goes to the child through these, or -1 */
	unsigned nosock;      /* why not, for the trace (mgi_reclaim_fork) */
} fork_tok = {.sock = {-1, -1}};
/* The application's forks under way (prepare to parent handler): the
 * handler evicts nothing ahead of need meanwhile, so that the child may
 * keep what we hold (an eviction for a fault that needs room still goes:
 * the fork's thread itself may be the one waiting; the child then gets
 * the copy). */
static _Atomic unsigned nforks;

/* What the child kept of its parent's (child start to mgi_reclaim_init and
 * mgi_reclaim_adopt). */
static struct {
	void *store_mem, *meta;
	size_t store_bytes, meta_bytes;
	mgi_store_t *store;
	uint64_t pages; /* entries to charge to swap once adopted */
	bool adopting;
} kept;
static void *swap_meta;
static size_t swap_meta_bytes;

static void mut_begin(void)
{
	if (mut_depth++ == 0)
		atomic_fetch_add(&mut_seq, 1);
}

static void mut_end(void)
{
	if (--mut_depth == 0)
		atomic_fetch_add(&mut_seq, 1);
}

static void conflict(uintptr_t page);

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
	if (kept.meta) {
		/* a forked child's store, file attached, with nothing in its
		 * parent's file (mgi_reclaim_fork): a new file of our own */
		swap_meta = kept.meta;
		swap_meta_bytes = kept.meta_bytes;
		own_range((uintptr_t)kept.meta, kept.meta_bytes);
		kept.meta = NULL;
		return;
	}
	meta = reserve(meta_bytes);
	if (!meta || own_range((uintptr_t)meta, meta_bytes) != 0 ||
	    mgi_store_attach_file(mgi_agent.store, meta, meta_bytes) != 0) {
		mgi_agent_log("--swap-file %s: cannot set up: compressed pages stay in memory", dir);
		close(swap_fd);
		swap_fd = -1;
		return;
	}
	swap_meta = meta;
	swap_meta_bytes = meta_bytes;
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
	if (kept.store) {
		/* a forked child's: its parent's store, kept (adopted once the
		 * handler's scan has registered the address space) */
		mgi_agent.store_bytes = kept.store_bytes;
		mgi_agent.store_mem = kept.store_mem;
	} else {
		mgi_agent.store_bytes = mgi_store_region_bytes(MGI_STORE_MAX_PAGES, codec);
		mgi_agent.store_mem = reserve(mgi_agent.store_bytes);
	}
	staging_mem = mgi_arena_alloc(&mgi_agent.arena, mgi_staging_bytes(MGI_STAGE_SLOTS));
	mgi_agent.restore_buf = mgi_arena_alloc(&mgi_agent.arena, MGI_RESTORE_MAX * PAGE);
	mgi_agent.release_stack = mgi_arena_alloc(&mgi_agent.arena, MGI_RELEASER_STACK);
	if (!mgi_agent.stage_base || !mgi_agent.beacon || !mgi_agent.store_mem || !staging_mem || !mgi_agent.restore_buf ||
	    !mgi_agent.release_stack) {
		/* (a kept store stays mapped: its pages are the only copy) */
		if (kept.store)
			own_range((uintptr_t)kept.store_mem, kept.store_bytes);
		return;
	}
	own_range(mgi_agent.stage_base, stage_len);
	own_range(mgi_agent.beacon, PAGE);
	own_range((uintptr_t)mgi_agent.store_mem, mgi_agent.store_bytes);
	if (kept.store) {
		mgi_agent.store = kept.store;
		kept.store = NULL;
		kept.adopting = true;
	} else {
		mgi_agent.store = mgi_store_init(mgi_agent.store_mem, mgi_agent.store_bytes,
						 MGI_STORE_MAX_PAGES, codec,
						 (mgi_store_ops_t){.discard = store_discard,
								   .file_write = file_write,
								   .file_read = file_read,
								   .file_discard = file_discard});
	}
	if (!mgi_agent.store)
		return;
	swap_file_init();
	if (kept.meta) /* a file meta kept, no file now: its range stays ours */
		own_range((uintptr_t)kept.meta, kept.meta_bytes);
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

/* ---- a forked child's first moments ---- */

/*
 * A child handed its uffd (mgi_reclaim_fork) runs with the pages we held
 * absent and registered on it: anything that touches one before its own
 * handler runs (glibc's fork code, the agent's start on this thread's
 * stack, getenv) waits for a fault to be served. So the first thing the
 * child does is start this server: it answers faults from the kept store
 * alone (no registry yet: a page the store holds comes back, any other
 * comes as zeros, as the handler would give it) and follows the child's
 * events on the store (a discard or unmap drops, a move rekeys), until the
 * handler has its scan and takes over (mgi_reclaim_early_stop). If the
 * agent's start fails, it goes on serving for the process's life.
 */
#define EARLY_STACK (64 * 1024)
#define EARLY_PARKED 64
static char early_stack[EARLY_STACK] __attribute__((aligned(64)));
static char early_page[PAGE] __attribute__((aligned(64)));
static int early_fd = -1, early_stop[2] = {-1, -1};
static mgi_store_t *early_store; /* the kept store (kept.store is handed on) */
static uint64_t early_dropped; /* kept entries it restored or dropped */
/* futex words: the server's tid (cleared by the kernel at its exit) and
 * its "staged pages taken" flag */
static _Atomic int early_tid, early_ready;
static void keep_staged(int cfd);

/*
 * The server is a bare clone of this thread, not a pthread: pthread_create
 * allocates the new thread's TLS vector with malloc, whose heap pages may
 * be out (seen: the child waited for ever in calloc). It shares this
 * thread's TLS, so it makes its system calls itself (glibc's wrappers
 * would set this thread's errno) and calls nothing that uses TLS.
 */
static long early_sys(long nr, long a, long b, long c)
{
	long ret;
	register long r10 __asm__("r10") = 0; /* a 4th argument: none */

	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "0"(nr), "D"(a), "S"(b), "d"(c), "r"(r10)
			 : "rcx", "r11", "memory");
	return ret;
}

static void early_wake(_Atomic int *word)
{
	early_sys(SYS_futex, (long)word, FUTEX_WAKE, 1);
}

/* Waits (on this thread, with glibc) until *word is no longer `val`. */
static void early_wait(_Atomic int *word, int val)
{
	while (atomic_load(word) == val)
		syscall(SYS_futex, word, FUTEX_WAIT, val, NULL, NULL, 0);
}

static int early_copy(uintptr_t dst, const void *src)
{
	struct uffdio_copy c = {.dst = dst, .src = (uintptr_t)src, .len = PAGE};
	long rc = early_sys(SYS_ioctl, early_fd, (long)UFFDIO_COPY, (long)&c);

	return rc < 0 ? (int)rc : 0;
}

static void early_uffd_wake(uintptr_t page)
{
	struct uffdio_range r = {.start = page, .len = PAGE};
	early_sys(SYS_ioctl, early_fd, (long)UFFDIO_WAKE, (long)&r);
}

/* Drops the kept store's entries in [start, end). */
static void early_drop(uintptr_t start, uintptr_t end)
{
	mgi_store_t *store = early_store;
	uint64_t cursor = 0, key;

	if ((end - start) / PAGE <= 65536) {
		for (uintptr_t a = start; a < end; a += PAGE)
			early_dropped += mgi_store_drop(store, key_of(a));
		return;
	}
	while (mgi_store_next(store, &cursor, &key))
		if (key >= key_of(start) && key < key_of(end)) {
			early_dropped += mgi_store_drop(store, key);
			cursor = 0;
		}
}

/* mremap moved [from, from + len) to `to`: the kept entries follow. */
static void early_rekey(uintptr_t from, uintptr_t to, size_t len)
{
	for (size_t off = 0; off < len; off += PAGE)
		mgi_store_rekey(early_store, key_of(from + off), key_of(to + off));
}

/* Serves one fault: false if it must wait for events (EAGAIN). */
static bool early_fault(uintptr_t addr)
{
	uintptr_t page = addr & ~(uintptr_t)(PAGE - 1);
	bool held = mgi_store_get(early_store, key_of(page), early_page, NULL) == 0;
	int rc;

	if (!held)
		memset(early_page, 0, PAGE);
	rc = early_copy(page, early_page);
	if (rc == -EAGAIN)
		return false;
	if (held && (rc == 0 || rc == -EEXIST)) /* restored, or present after all */
		early_dropped += mgi_store_drop(early_store, key_of(page));
	if (rc != 0)
		early_uffd_wake(page);
	return true;
}

static int early_main(void *arg)
{
	struct uffd_msg msgs[16];
	uintptr_t parked[EARLY_PARKED];
	unsigned nparked = 0;

	(void)arg;
	/* First the staged pages: reading them (and compressing, ~16 KiB of
	 * stack) must not wait on a fault nobody serves. */
	keep_staged(early_fd);
	mgi_store_stats_t st;
	mgi_store_stats(early_store, &st);
	kept.pages = st.pages;
	atomic_store(&early_ready, 1);
	early_wake(&early_ready);
	for (;;) {
		struct pollfd p[2] = {{.fd = early_fd, .events = POLLIN},
				      {.fd = early_stop[0], .events = POLLIN}};
		long rc = early_sys(SYS_poll, (long)p, 2, nparked ? 1 : -1);
		if (rc < 0 && rc != -EINTR)
			return 0;
		if (p[1].revents)
			return 0; /* the handler takes over: what is unread is its */
		ssize_t n = early_sys(SYS_read, early_fd, (long)msgs, sizeof(msgs));
		for (ssize_t i = 0; n > 0 && i < n / (ssize_t)sizeof(msgs[0]); i++) {
			const struct uffd_msg *m = &msgs[i];
			switch (m->event) {
			case UFFD_EVENT_PAGEFAULT:
				if (!early_fault((uintptr_t)m->arg.pagefault.address) &&
				    nparked < EARLY_PARKED)
					parked[nparked++] = (uintptr_t)m->arg.pagefault.address;
				break;
			case UFFD_EVENT_REMOVE:
			case UFFD_EVENT_UNMAP:
				early_drop((uintptr_t)m->arg.remove.start, (uintptr_t)m->arg.remove.end);
				break;
			case UFFD_EVENT_REMAP:
				early_rekey((uintptr_t)m->arg.remap.from, (uintptr_t)m->arg.remap.to,
					    (size_t)m->arg.remap.len);
				break;
			case UFFD_EVENT_FORK: /* (a raw fork this early: not kept) */
				early_sys(SYS_close, (long)m->arg.fork.ufd, 0, 0);
				break;
			}
		}
		unsigned left = 0;
		for (unsigned i = 0; i < nparked; i++)
			if (!early_fault(parked[i]))
				parked[left++] = parked[i];
		nparked = left;
	}
}

/* On the handler thread, which must not fault before it serves: its own
 * system calls too (a first call through the PLT runs the dynamic
 * linker's fixup, which reads its link maps, memory that may be out: seen
 * in a sanitizer build, the handler waiting for ever in _dl_fixup). */
void mgi_reclaim_early_stop(void)
{
	int tid;

	if (early_stop[1] < 0)
		return;
	while (early_sys(SYS_write, early_stop[1], (long)"", 1) == -EINTR)
		;
	while ((tid = atomic_load(&early_tid)) != 0)
		early_sys(SYS_futex, (long)&early_tid, FUTEX_WAIT, tid);
	early_sys(SYS_close, early_stop[0], 0, 0);
	early_sys(SYS_close, early_stop[1], 0, 0);
	early_stop[0] = early_stop[1] = -1;
	kept.pages = kept.pages > early_dropped ? kept.pages - early_dropped : 0;
	early_dropped = 0;
}

/* A forked child that keeps its parent's store: its staged pages (frames
 * shared copy-on-write with the parent's staging area, which the child
 * drops) go into the store, compressed, as the parent's would have; one
 * the store cannot take goes back in place through the handed uffd. Runs
 * in fork's child handler, the only thread, before anything else. */
static void keep_staged(int cfd)
{
	mgi_staging_t *st = &mgi_agent.staging;

	for (uint32_t s = 0; st->slot && s < st->nslots; s++) {
		uint64_t key = st->slot[s].key;
		if (!key || key == MGI_STAGING_RETIRED)
			continue;
		int rc = mgi_store_put(mgi_agent.store, key, slot_addr(s), mgi_agent.evict_clock);
		if (rc == -EEXIST) { /* (cannot happen) the staged page is the live one */
			mgi_store_drop(mgi_agent.store, key);
			rc = mgi_store_put(mgi_agent.store, key, slot_addr(s), mgi_agent.evict_clock);
		}
		if (rc == 0) {
			mgi_agent.evict_clock++;
			continue;
		}
		/* EEXIST: present; ENOENT: unmapped before our parent read
		 * the event. Either way nothing is lost. */
		(void)cfd;
		early_copy((uintptr_t)(key << MGI_PAGE_SHIFT), slot_addr(s));
	}
}

/* Our fork's socket end, if our parent's agent made one (at most one
 * fork() at a time gets one: mgi_reclaim_fork_prepare): the uffd comes
 * through it, or its close says our parent copied everything in. */
static int receive_uffd(int sock)
{
	char ctl[CMSG_SPACE(sizeof(int))];
	char byte;
	struct iovec iov = {&byte, 1};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl,
			    .msg_controllen = sizeof(ctl)};
	struct pollfd p = {.fd = sock, .events = POLLIN};
	int fd = -1;

	if (poll(&p, 1, CHILD_WAIT_MS) <= 0 || recvmsg(sock, &mh, MSG_CMSG_CLOEXEC) <= 0)
		return -1;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
			memcpy(&fd, CMSG_DATA(c), sizeof(fd));
	return fd;
}

int mgi_reclaim_child_start(void)
{
	uint64_t waited_ms = 0;
	int cfd = -1, sock = -1;

	/* Our fork's mark, copied before the handler took it (fork_lock
	 * copied held: ours now). */
	pthread_mutex_init(&fork_lock, NULL);
	if (atomic_load(&fork_tok.pending) && fork_tok.sock[1] >= 0) {
		close(fork_tok.sock[0]); /* so that our parent's close is seen */
		sock = fork_tok.sock[1];
	}
	atomic_store(&fork_tok.pending, false);
	fork_tok.sock[0] = fork_tok.sock[1] = -1;
	atomic_store(&nforks, 0);
	if (sock >= 0) {
		cfd = receive_uffd(sock);
		close(sock);
	}
	memset(&kept, 0, sizeof(kept));
	if (cfd >= 0 && mgi_agent.store) {
		kept = (typeof(kept)){.store_mem = mgi_agent.store_mem,
				      .store_bytes = mgi_agent.store_bytes,
				      .store = mgi_agent.store,
				      .meta = swap_meta,
				      .meta_bytes = swap_meta_bytes};
		early_fd = cfd;
		early_store = mgi_agent.store;
		/* The server first: anything this thread touches may be out
		 * (this very stack deeper down). It takes the staged pages
		 * before we drop the staging area. */
		sigset_t all, old;
		int tid = -1;
		atomic_store(&early_ready, 0);
		atomic_store(&early_tid, 0);
		if (pipe2(early_stop, O_CLOEXEC) == 0) {
			sigfillset(&all);
			pthread_sigmask(SIG_SETMASK, &all, &old);
			tid = clone(early_main, early_stack + EARLY_STACK,
				    CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD |
					    CLONE_SYSVSEM | CLONE_PARENT_SETTID |
					    CLONE_CHILD_CLEARTID,
				    NULL, &early_tid, NULL, &early_tid);
			pthread_sigmask(SIG_SETMASK, &old, NULL);
		}
		if (tid < 0) {
			/* Nobody would answer our faults: this is the one
			 * thread, and our pages are held in the store alone. */
			mgi_agent_log("cannot serve this child's faults: %s", strerror(errno));
			abort();
		}
		early_wait(&early_ready, 0);
	} else if (cfd < 0 && mgi_agent.beacon && mgi_agent.fork_events) {
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
	/* The parent's reclaim ranges are copies we do not need, but for a
	 * store (and its file meta) we keep. (Those registered on a handed
	 * uffd make UNMAP events: the early server reads them.) */
	for (unsigned i = 0; i < mgi_agent.nown; i++) {
		void *at = (void *)mgi_agent.own[i].start;
		if (kept.store && (at == kept.store_mem || (kept.meta && at == kept.meta)))
			continue;
		mgi_raw_munmap(at, mgi_agent.own[i].end - mgi_agent.own[i].start);
	}
	mgi_agent.nown = 0;
	swap_meta = NULL;
	swap_meta_bytes = 0;
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
	mut_depth = 0;
	nqueue = 0;
	unshares_pending = 0;
	memset(unsharing, 0, sizeof(unsharing));
	if (!kept.store)
		mgi_agent.evict_clock = 0; /* (a kept store's stamps are on its clock) */
	return kept.store ? cfd : -1;
}

bool mgi_reclaim_adopting(void)
{
	return kept.adopting;
}

void mgi_reclaim_adopt(void)
{
	mgi_store_t *store = mgi_agent.store;
	uint64_t cursor = 0, key, dropped = 0;

	if (!kept.adopting || !store)
		return;
	kept.adopting = false;
	mut_begin();
	while (mgi_store_next(store, &cursor, &key)) {
		uintptr_t a = (uintptr_t)key << MGI_PAGE_SHIFT;
		mgi_vregion_t *r = mgi_registry_find(&mgi_agent.reg, a);
		if (r && mgi_registry_is_out(r, a))
			continue; /* marked already, or evicted by our scan */
		if (r && !mgi_registry_test(r, a)) {
			mgi_registry_mark(&mgi_agent.reg, r, a, 1);
			mgi_registry_evict(&mgi_agent.reg, r, a, 1);
			continue;
		}
		/* Present here (a conflict: the live page is kept), or no
		 * longer memory of the application's (unmapped before our
		 * parent read the event). */
		if (r)
			conflict(a);
		mgi_store_drop(store, key);
		dropped++;
		cursor = 0; /* a drop invalidates it: what is marked is passed over */
	}
	mut_end();
	/* Charged to swap as the parent's are: two stores now, each restored
	 * and dropped on its own (docs/design.md, fork). */
	mgi_swap_charge_anyway(kept.pages > dropped ? kept.pages - dropped : 0);
	mgi_reclaim_publish();
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
			mgi_thp_gone(run, run + k * PAGE);
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
	mut_begin();
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
	mut_end();
	return freed;
}

uint64_t mgi_evict_ahead(void)
{
	mgi_staging_t *st = &mgi_agent.staging;
	int32_t s;

	if (!mgi_agent.can_evict || mgi_agent.evicting || (s = mgi_staging_oldest(st)) < 0 ||
	    atomic_load(&nforks))
		return 0; /* nothing staged: the fault that needs room evicts; or a
			   * fork waits to find us still */
	mut_begin();
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
	mut_end();
	return done;
}

void mgi_reclaim_age(void)
{
	mgi_staging_t *st = &mgi_agent.staging;

	if (!mgi_agent.can_evict || mgi_agent.evicting || st->used >= stage_target() ||
	    atomic_load(&nforks))
		return;
	mut_begin();
	mgi_agent.evicting = true;
	mgi_reclaim_released();
	deactivate(stage_target() - st->used);
	flush_releases_lazily();
	mgi_reclaim_publish();
	mgi_agent.evicting = false;
	mut_end();
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

static enum mgi_resolved restore(mgi_vregion_t *r, uintptr_t page, bool sequential,
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

enum mgi_resolved mgi_restore(mgi_vregion_t *r, uintptr_t page, bool sequential,
			      size_t *restored, unsigned *level)
{
	enum mgi_resolved res;

	mut_begin();
	res = restore(r, page, sequential, restored, level);
	mut_end();
	return res;
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
	mut_begin();
	mgi_registry_each_out(&mgi_agent.reg, start, end, true, drop_one, &d);
	mut_end();
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
	mut_begin();
	mgi_registry_each_out(&mgi_agent.reg, to, to + len, false, rekey_one, &m);
	mut_end();
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
/* for each: an application's fork() (may keep), and mut_seq at its prepare */
static bool inflight_app[INFLIGHT_MAX];
static uint64_t inflight_seq[INFLIGHT_MAX];
static int inflight_sock[INFLIGHT_MAX][2];
static unsigned inflight_nosock[INFLIGHT_MAX];
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
			inflight_app[k] = false;
			inflight_sock[k][0] = inflight_sock[k][1] = -1;
			/* the fork() under way, if any: its mark */
			if (atomic_exchange(&fork_tok.pending, false)) {
				inflight_app[k] = true;
				inflight_seq[k] = fork_tok.seq;
				inflight_sock[k][0] = fork_tok.sock[0];
				inflight_sock[k][1] = fork_tok.sock[1];
				inflight_nosock[k] = fork_tok.nosock;
			}
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
			inflight_app[i] = inflight_app[k - 1];
			inflight_seq[i] = inflight_seq[k - 1];
			inflight_sock[i][0] = inflight_sock[k - 1][0];
			inflight_sock[i][1] = inflight_sock[k - 1][1];
			inflight_nosock[i] = inflight_nosock[k - 1];
			atomic_store(&ninflight, k - 1);
			return;
		}
}

/* Brings back the stack below us, if it was evicted: a child handed its
 * uffd runs fork's child handlers down there before its fault server is
 * up (mgi_reclaim_child_start). The child's path is well within this.
 * Returns whether all of it is there (checked after, so that an eviction
 * meanwhile is seen: the child then gets the copy). */
#define TOUCH_STACK 8192
static __attribute__((noinline)) void touch_stack(uintptr_t *low)
{
	volatile char pad[TOUCH_STACK];

	for (size_t i = 0; i < sizeof(pad); i += 256)
		pad[i] = 0;
	*low = (uintptr_t)pad;
}

/* The pages up to `high` count too: fork's own frames (glibc's __libc_fork
 * and its handler runner, a few hundred bytes above ours), which glibc's
 * child code uses before any handler of ours runs (seen: a child of
 * prog_stress waiting for ever at fork+252, its forker thread's stack page
 * evicted for another thread's fault after fork was entered). Not more:
 * above a shallow main thread's frames lie its environment's cold pages. */
static bool stack_there(uintptr_t low, uintptr_t high)
{
	uintptr_t start = low & ~(uintptr_t)(PAGE - 1);
	unsigned char v;

	for (uintptr_t a = start; a <= high; a += PAGE)
		if (mincore((void *)a, PAGE, &v) != 0 || !(v & 1))
			return false;
	return true;
}

/* Reads a byte of each page in [from, to]: fork's frames above ours, back
 * if they were evicted (a read of a caller's frame: not instrumented). */
__attribute__((noinline, no_sanitize_address)) static void touch_above(uintptr_t from,
								     uintptr_t to)
{
	for (uintptr_t a = from & ~(uintptr_t)(PAGE - 1); a <= to; a += PAGE)
		(void)*(volatile const char *)(a < from ? from : a);
}

/*
 * glibc's own child code runs before any fork handler of ours, on memory a
 * kept child cannot yet fault in: the forking thread's stack (above), every
 * stream's lock, which it resets (fresetlockfiles; a stream opened with
 * fopen is malloc'd, application memory), and the control block at the
 * top of every thread stack it holds, cached ones included (reclaim_stacks;
 * seen: a prog_stress child waiting for ever there, 3 of 3 runs beside a
 * test run). These are brought back and checked with the stack. A live
 * application thread's block is walked further (its thread-specific data,
 * malloc'd): a process with one is copied into, as before.
 */
extern FILE *_IO_list_all;
void _IO_list_lock(void);
void _IO_list_unlock(void);
#define FORK_FILE_ADDRS 256
static uintptr_t fork_file_addrs[FORK_FILE_ADDRS];
static unsigned nfork_file_addrs;

/* Brings back every stream and its lock; false if there are too many to
 * check. Only in a process of one application thread (no stream is
 * closed meanwhile). */
static bool touch_files(void)
{
	bool all = true;

	nfork_file_addrs = 0;
	_IO_list_lock();
	for (FILE *f = _IO_list_all; f; f = f->_chain) {
		const char *lock = (const char *)f->_lock;
		if (nfork_file_addrs + 4 > FORK_FILE_ADDRS) {
			all = false;
			break;
		}
		fork_file_addrs[nfork_file_addrs++] = (uintptr_t)f;
		fork_file_addrs[nfork_file_addrs++] = (uintptr_t)f + sizeof(*f) - 1;
		if (lock) {
			(void)*(volatile const char *)lock;
			fork_file_addrs[nfork_file_addrs++] = (uintptr_t)lock;
			fork_file_addrs[nfork_file_addrs++] = (uintptr_t)lock + 15;
		}
	}
	_IO_list_unlock();
	return all;
}

/* The process's threads, from /proc/self/status; 0 if unknown. */
static unsigned nthreads(void)
{
	char buf[2048];
	int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
	const char *t;

	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	t = strstr(buf, "\nThreads:");
	return t ? (unsigned)strtoul(t + 9, NULL, 10) : 0;
}

/* The control blocks of the application's threads, each page of one (its
 * struct is ~2.3 KiB, at the top of its stack mapping). */
#define TCB_SPAN 4096
static void touch_tcbs(void)
{
	unsigned n = atomic_load(&mgi_app_ntcbs);

	for (unsigned i = 0; i < n && i < MGI_APP_TCBS_MAX; i++) {
		uintptr_t t = mgi_app_tcbs[i];
		if (!t)
			continue;
		/* a freed stack is no longer glibc's: ENOMEM, nothing read */
		mgi_raw_madvise((void *)(t & ~(uintptr_t)(PAGE - 1)), PAGE, MADV_POPULATE_READ);
		mgi_raw_madvise((void *)((t + TCB_SPAN - 1) & ~(uintptr_t)(PAGE - 1)), PAGE,
				MADV_POPULATE_READ);
	}
}

static bool page_there(uintptr_t a)
{
	unsigned char v;

	a &= ~(uintptr_t)(PAGE - 1);
	if (mincore((void *)a, PAGE, &v) != 0)
		return errno == ENOMEM; /* unmapped: nothing to read there */
	return v & 1;
}

static bool tcbs_there(void)
{
	unsigned n = atomic_load(&mgi_app_ntcbs);

	for (unsigned i = 0; i < n && i < MGI_APP_TCBS_MAX; i++)
		if (mgi_app_tcbs[i] &&
		    (!page_there(mgi_app_tcbs[i]) || !page_there(mgi_app_tcbs[i] + TCB_SPAN - 1)))
			return false;
	return true;
}

static bool files_there(void)
{
	unsigned char v;

	for (unsigned i = 0; i < nfork_file_addrs; i++) {
		uintptr_t a = fork_file_addrs[i] & ~(uintptr_t)(PAGE - 1);
		if (mincore((void *)a, PAGE, &v) != 0 || !(v & 1))
			return false;
	}
	return true;
}

void mgi_reclaim_fork_prepare(void)
{
	uint64_t seq;
	uintptr_t low, frame = (uintptr_t)__builtin_frame_address(0), high = frame + 1024;
	/* reg.nout is the handler's: read racily, a hint */
	bool want = mgi_agent.store && mgi_agent.reg.nout && !atomic_load(&mgi_app_tcbs_lost);
	unsigned nosock = want ? 0 : 1024;
	/* no application thread but this one (the agent's, and the early
	 * server of a child whose handler has not yet taken over) */
	if (want) {
		unsigned all = nthreads(), ours = atomic_load(&mgi_agent_threads) + 1 +
						    (atomic_load(&early_tid) != 0);
		want = all && all <= ours;
		nosock = want ? 0 : 512;
	}
	bool there = false;

	pthread_mutex_lock(&fork_lock);
	atomic_fetch_add(&nforks, 1);
	/* The stack brought back, and checked after the sample (an eviction
	 * before it is seen there, one after it changes mut_seq), a few
	 * times: on a loaded host an eviction for another's need (a request
	 * of the manager's) took a page of it between the touch and the
	 * check in 1 of 3 runs of prog_evict 512 fork, and that child was
	 * copied into (why 2). */
	for (int tries = 0; tries < 8 && !there; tries++) {
		touch_stack(&low);
		touch_above(frame, high);
		if (want && !touch_files()) {
			want = false;
			nosock = 128;
		}
		if (want)
			touch_tcbs();
		/* bounded: a handler stopped in the middle of a read (it never
		 * is for long) must not hang the application's fork */
		for (int spins = 0; atomic_load(&reading) && spins < 10000; spins++)
			sched_yield();
		/* A change under way (an eviction of a batch takes ~0.2 ms) is
		 * let end, so that the child can keep what we hold; bounded too
		 * (an odd value only costs the child a copy of everything). */
		for (int spins = 0; ((seq = atomic_load(&mut_seq)) & 1) && spins < 2000; spins++)
			sched_yield();
		there = !want || (stack_there(low, high) && files_there() && tcbs_there());
	}
	fork_tok.seq = seq;
	fork_tok.sock[0] = fork_tok.sock[1] = -1;
	/* A socket for the child's uffd only when something is held out
	 * (else there is nothing to keep, and a shell's fork pays nothing
	 * more). */
	if (want && there &&
	    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fork_tok.sock) != 0)
		fork_tok.sock[0] = fork_tok.sock[1] = -1;
	fork_tok.nosock = !want ? nosock : !there ? (!stack_there(low, high) ? 64 :
						    !files_there() ? 128 : 256) : 0;
	atomic_store(&fork_tok.pending, true);
}

void mgi_reclaim_fork_parent(void)
{
	/* Our fork's event, if it made one, was read before fork returned
	 * (the kernel waits for that), and the mark taken before `reading`
	 * cleared. A mark still there is a fork that failed. */
	for (int spins = 0; atomic_load(&reading) && spins < 10000; spins++)
		sched_yield();
	if (atomic_exchange(&fork_tok.pending, false) && fork_tok.sock[0] >= 0) {
		close(fork_tok.sock[0]);
		close(fork_tok.sock[1]);
	}
	fork_tok.sock[0] = fork_tok.sock[1] = -1;
	atomic_fetch_sub(&nforks, 1);
	pthread_mutex_unlock(&fork_lock);
}

void mgi_reclaim_close_inflight(void)
{
	unsigned k = atomic_load(&ninflight);

	for (unsigned i = 0; i < k; i++) {
		close(inflight[i]);
		if (inflight_sock[i][0] >= 0) { /* a sibling's */
			close(inflight_sock[i][0]);
			close(inflight_sock[i][1]);
		}
	}
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

/* Hands the child its uffd (SCM_RIGHTS: in flight, it stays open after we
 * close ours). Returns whether it went. */
static bool send_uffd(int sock, int cfd)
{
	char ctl[CMSG_SPACE(sizeof(int))] = {0};
	char byte = 'u';
	struct iovec iov = {&byte, 1};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl,
			    .msg_controllen = sizeof(ctl)};
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);

	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &cfd, sizeof(int));
	return sendmsg(sock, &mh, MSG_DONTWAIT | MSG_NOSIGNAL) == 1;
}

void mgi_reclaim_fork(int cfd)
{
	mgi_staging_t *st = &mgi_agent.staging;
	uint64_t cursor = 0, key, pages = 0;
	bool app = false, keep = false;
	uint64_t seq = 0;
	unsigned nosock = 0;
	int sock[2] = {-1, -1};

	for (unsigned i = 0; i < atomic_load(&ninflight); i++)
		if (inflight[i] == cfd) {
			app = inflight_app[i];
			seq = inflight_seq[i];
			sock[0] = inflight_sock[i][0];
			sock[1] = inflight_sock[i][1];
			nosock = inflight_nosock[i];
		}
	/* why not (for the trace): 1 not an application's fork, 2 nothing
	 * held, its stack, streams or threads' blocks not all there, or
	 * another application thread alive (no socket; which, in the bits
	 * above: 64 the stack, 128 the streams, 256 a thread's block, 512
	 * another thread alive, 1024 nothing held or too many threads), 4 a change under way
	 * at its prepare, 8 a change since, 16 pages in the write-back file,
	 * 32 the uffd could not be sent */
	unsigned why = (!app) | (sock[0] < 0) << 1 | (unsigned)(seq & 1) << 2 |
		       (seq != atomic_load(&mut_seq)) << 3 | (sock[0] < 0 ? nosock : 0);
	if (mgi_agent.store && !why) {
		/* Whole, and an application's fork: the child keeps the store,
		 * unless pages of it are in our write-back file, which we go on
		 * punching and reusing (the child would read ours). */
		mgi_store_stats_t sst;
		mgi_store_stats(mgi_agent.store, &sst);
		why |= (sst.file_pages != 0) << 4;
		keep = !why && send_uffd(sock[0], cfd);
		why |= !keep << 5;
	}
	if (keep)
		mgi_trace(MGI_TR_FORK_KEPT, 0, seq, 0, 0);
	else if (mgi_agent.store)
		mgi_trace(MGI_TR_FORK_COPIED, 0, seq, 0, (int32_t)why);
	if (mgi_agent.store && !keep) {
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
	/* after cfd: the child takes the close of its socket's peer for the
	 * end of our copying */
	if (sock[0] >= 0) {
		close(sock[0]);
		close(sock[1]);
	}
	(void)pages;
}

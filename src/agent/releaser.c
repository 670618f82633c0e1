/* releaser.c - the releaser thread and its queue: drops retired staging frames and unshares pages for the handler. */
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
#include "trace.h"
#include "pageout.h"

#define PAGE MGI_PAGE_SIZE
#define RELEASE_QUEUE 512     /* runs waiting to go to the releaser */

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

/* Requests to the releaser and its answers: the handler's ends
 * (release_wr, done_rd) and the thread's (release_rd, done_wr). */
static int release_rd = -1, release_wr = -1, done_rd = -1, done_wr = -1;
static pthread_t releaser;

static helper_req_t queue[RELEASE_QUEUE];
static unsigned nqueue, unshares_pending;
/* The ranges being unshared: the clock leaves them alone until answered,
 * so the helper never meets a page we moved out meanwhile (it would wait
 * on a fault of ours). */
static mgi_range_t unsharing[UNSHARES_MAX];

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
		n = read(release_rd, reqs, sizeof(reqs));
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
			while (write(done_wr, &reqs[i], sizeof(reqs[i])) < 0 &&
			       errno == EINTR)
				;
		}
	}
}

/* Sends the queued requests to the helper, as many as the pipe takes. */
void mgi_releaser_flush(void)
{
	unsigned sent = 0;

	while (sent < nqueue) {
		ssize_t n = write(release_wr, &queue[sent], sizeof(queue[0]));
		if (n != sizeof(queue[0]))
			break;
		sent++;
	}
	memmove(queue, queue + sent, (nqueue - sent) * sizeof(queue[0]));
	nqueue -= sent;
}

/* Sends the queued requests once they are worth a round trip: RELEASE_BATCH
 * pages of retired slots, or any unshare (the clock waits on those). */
void mgi_releaser_flush_lazily(void)
{
	uint64_t pages = 0;

	for (unsigned i = 0; i < nqueue; i++) {
		if (queue[i].kind != RELEASE || (pages += queue[i].n) >= RELEASE_BATCH) {
			mgi_releaser_flush();
			return;
		}
	}
}

void mgi_releaser_idle(void)
{
	if (nqueue)
		mgi_releaser_flush();
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
		mgi_releaser_flush();
	if (nqueue == RELEASE_QUEUE)
		return false;
	queue[nqueue++] = (helper_req_t){kind, n, at};
	return true;
}

/* A retired slot's frame is to be dropped. (A full queue leaves it
 * retired, which only blocks its reuse: the queue drains as the helper
 * answers.) */
void mgi_releaser_release(uint32_t slot)
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

bool mgi_releaser_unsharing(uintptr_t page)
{
	return unshares_pending && being_unshared(page, 1);
}

/* Pages shared with a child are to be made our own (one request per range:
 * never merged, so that each answer names its range). */
void mgi_releaser_unshare(uintptr_t addr, size_t n)
{
	unsigned i;

	if (being_unshared(addr, n))
		return;
	for (i = 0; i < UNSHARES_MAX && unsharing[i].end; i++)
		;
	if (i == UNSHARES_MAX)
		return; /* enough under way: these wait for the next pass */
	if (nqueue == RELEASE_QUEUE)
		mgi_releaser_flush();
	if (nqueue == RELEASE_QUEUE)
		return;
	queue[nqueue++] = (helper_req_t){UNSHARE, (uint32_t)n, addr};
	unsharing[i] = (mgi_range_t){addr, addr + n * PAGE};
	unshares_pending++;
}

void mgi_releaser_answers(void)
{
	helper_req_t done[64];
	ssize_t n;

	while ((n = read(done_rd, done, sizeof(done))) > 0)
		for (size_t i = 0; i < (size_t)n / sizeof(done[0]); i++) {
			if ((done[i].kind & 0xff) == RELEASE) {
				mgi_trace(MGI_TR_RELEASED, 0, done[i].at, done[i].n,
					  (int32_t)(done[i].kind >> 8));
				mgi_staging_freed(&mgi_pageout.staging, (uint32_t)done[i].at, done[i].n);
				continue;
			}
			for (unsigned k = 0; k < UNSHARES_MAX; k++)
				if (unsharing[k].start == done[i].at && unsharing[k].end) {
					unsharing[k].end = 0;
					unshares_pending--;
					break;
				}
		}
	mgi_releaser_flush_lazily();
}

/* Waits up to ms for the helper's answers, following events meanwhile
 * (its madvise may wait on us reading one). */
void mgi_releaser_wait(int ms)
{
	struct pollfd p[2] = {{.fd = mgi_handler.uffd, .events = POLLIN},
			      {.fd = done_rd, .events = POLLIN}};

	mgi_releaser_flush();
	mgi_handler_follow_events();
	poll(p, 2, ms);
	mgi_handler_follow_events();
	mgi_releaser_answers();
}

int mgi_releaser_start(void *stack)
{
	int req[2], done[2];

	if (pipe2(req, O_CLOEXEC) != 0)
		return -errno;
	if (pipe2(done, O_CLOEXEC | O_NONBLOCK) != 0) {
		close(req[0]);
		close(req[1]);
		return -errno;
	}
	release_rd = req[0];
	release_wr = req[1];
	done_rd = done[0];
	done_wr = done[1];
	/* The handler's end must not block: a full pipe keeps runs queued. */
	fcntl(release_wr, F_SETFL, O_NONBLOCK);
	fcntl(done_wr, F_SETFL, 0);
	/* Running our code before the handler starts (mgi_start_thread). */
	return mgi_start_thread(&releaser, stack, MGI_RELEASER_STACK,
				helper_main, NULL);
}

/* A forked child: the parent's queue and pipes are not ours. */
void mgi_releaser_child_reset(void)
{
	int *fds[] = {&release_rd, &release_wr, &done_rd,
		      &done_wr};
	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
		if (*fds[i] >= 0)
			close(*fds[i]);
		*fds[i] = -1;
	}
	nqueue = 0;
	unshares_pending = 0;
	memset(unsharing, 0, sizeof(unsharing));
}

unsigned mgi_releaser_unshares_pending(void)
{
	return unshares_pending;
}

int mgi_releaser_done_fd(void)
{
	return done_rd;
}

bool mgi_releaser_unsharing_range(uintptr_t addr, size_t n)
{
	return unshares_pending && being_unshared(addr, n);
}

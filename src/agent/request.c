/* request.c - application threads' requests to the fault handler: sent through a pipe, answered through a futex. */
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"

/*
 * A request that must be done before the application's call returns (an
 * estimate-mode admission, a hand-over to the application's own
 * userfaultfd) names a waiter: one word the calling thread sleeps on and
 * the handler sets once the request is done, with the handler's result
 * beside it. A waiter waits at most REQ_WAIT_NS: a stuck or dead handler
 * must not hang the application.
 */
#define REQ_WAITERS 64
#define REQ_WAIT_NS 2000000000ull

enum { W_FREE, W_WAITING, W_ANSWERED };

static _Atomic uint32_t *waiters;
static int32_t *results;

/*
 * The pipe copies a request from the writer's buffer while it holds the
 * pipe's mutex, and the handler's read (non-blocking or not) takes that
 * mutex too. A buffer on the calling thread's stack is managed memory: if
 * its page is out, the copy faults inside the pipe and waits for the
 * handler, which waits for the mutex (a redis-server hung so, in the compat
 * suite under load). So a request is first copied (a fault there is an
 * ordinary one) into an outbox slot in the agent's arena, which is never
 * managed, and written from there.
 */
#define OUTBOX_SLOTS 128
static mgi_learn_req_t *outbox;
static _Atomic uint8_t *outbox_busy;
static _Atomic unsigned outbox_next;
/* The pipe of mgi_learn_req_t: application threads write, the handler
 * reads (non-blocking both). */
static int learn_rd = -1, learn_wr = -1;

int mgi_request_fd(void)
{
	return learn_rd;
}

void mgi_request_child_reset(void)
{
	/* (the parent's pipe: the child's start makes its own) */
	if (learn_rd >= 0)
		close(learn_rd);
	if (learn_wr >= 0)
		close(learn_wr);
	learn_rd = learn_wr = -1;
}

int mgi_request_init(void)
{
	int pipefd[2];

	if (pipe2(pipefd, O_NONBLOCK | O_CLOEXEC) != 0)
		return -errno;
	learn_rd = pipefd[0];
	learn_wr = pipefd[1];
	waiters = mgi_arena_alloc(&mgi_arena, REQ_WAITERS * sizeof(*waiters));
	results = mgi_arena_alloc(&mgi_arena, REQ_WAITERS * sizeof(*results));
	outbox = mgi_arena_alloc(&mgi_arena, OUTBOX_SLOTS * sizeof(*outbox));
	outbox_busy = mgi_arena_alloc(&mgi_arena, OUTBOX_SLOTS);
	return waiters && results && outbox && outbox_busy ? 0 : -ENOMEM;
}

bool mgi_request_send(const mgi_learn_req_t *req)
{
	unsigned first = atomic_fetch_add(&outbox_next, 1);

	for (unsigned i = 0; i < OUTBOX_SLOTS; i++) {
		unsigned k = (first + i) % OUTBOX_SLOTS;
		uint8_t free_slot = 0;
		if (!atomic_compare_exchange_strong(&outbox_busy[k], &free_slot, 1))
			continue;
		outbox[k] = *req;
		/* 40 bytes, under PIPE_BUF: the write is atomic among threads */
		bool sent = write(learn_wr, &outbox[k], sizeof(*req)) == (ssize_t)sizeof(*req);
		atomic_store(&outbox_busy[k], 0);
		return sent;
	}
	return false; /* 128 writers at once: as a full pipe, the caller copes */
}

void mgi_request_answer(int32_t w, int result)
{
	uint32_t waiting = W_WAITING;

	if (w < 0 || w >= REQ_WAITERS || !waiters)
		return;
	results[w] = result;
	/* Only a waiter still waiting: one that gave up is free again, and
	 * may be another thread's by now. */
	if (atomic_compare_exchange_strong(&waiters[w], &waiting, W_ANSWERED))
		syscall(SYS_futex, &waiters[w], FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static uint64_t elapsed_ns(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)(t.tv_sec - t0->tv_sec) * 1000000000ull + (uint64_t)t.tv_nsec -
	       (uint64_t)t0->tv_nsec;
}

int mgi_request_call(mgi_learn_req_t *req)
{
	struct timespec t0, step = {0, 100000000}; /* 100 ms */
	int32_t w = -1;
	int rc;

	if (gettid() == mgi_handler_tid())
		return -EDEADLK; /* (a library the handler calls: never wait on ourselves) */
	for (int i = 0; i < REQ_WAITERS && w < 0; i++) {
		uint32_t free_word = W_FREE;
		if (atomic_compare_exchange_strong(&waiters[i], &free_word, W_WAITING))
			w = i;
	}
	if (w < 0)
		return -EAGAIN;
	req->waiter = w;
	if (!mgi_request_send(req)) {
		atomic_store(&waiters[w], W_FREE);
		return -EPIPE;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (atomic_load_explicit(&waiters[w], memory_order_acquire) == W_WAITING) {
		syscall(SYS_futex, &waiters[w], FUTEX_WAIT_PRIVATE, W_WAITING, &step, NULL, 0);
		if (elapsed_ns(&t0) > REQ_WAIT_NS) {
			uint32_t waiting = W_WAITING;
			if (atomic_compare_exchange_strong(&waiters[w], &waiting, W_FREE))
				return -ETIMEDOUT; /* the handler is stuck or gone: go on */
		}
	}
	rc = results[w];
	atomic_store_explicit(&waiters[w], W_FREE, memory_order_release);
	return rc;
}

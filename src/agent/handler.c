/* handler.c - the fault handler thread: its priority, its wait for work, its main loop. */
#include <errno.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <sched.h>
#include <semaphore.h>
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
#include "inject.h"
#include "options.h"
#include "os.h"
#include "proto.h"
#include "recent.h"
#include "size.h"
#include "thp.h"
#include "trace.h"
#include "fault.h"
#include "cow.h"

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

#define OOM_RETRY_MS 2
/* While the manager is gone: how often to look for a restarted one. */
#define REJOIN_MS 1000
#define EST_TICK_MS 1000 /* estimate mode's look at its fast regions */
#define STALL_INJECT_S 6 /* MEMGRP_INJECT=stall-handler: 3 watchdog periods */

struct mgi_handler mgi_handler = {.uffd = -1};

/* The thread, on a stack in the arena; its start-up scan's result. */
static void *stack;
static pthread_t thread;
static sem_t ready;
static int init_error;
static _Atomic pid_t handler_tid;
static _Atomic bool idle;    /* it waits in poll with nothing to do */
static uint64_t poll_max_ns; /* its polling window at most (0: never) */
static uint64_t rejoin_ns;   /* its last attempt to rejoin */

uint64_t mgi_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
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
	if (mgi_fault_last_pages() != 1 || mgi_counter_margin(&mgi_join.seg->acct.memory, &mgi_join.seg->ctl.memory) >= AHEAD_PAGES)
		return false;
	if (*ours < 0)
		*ours = mgi_evict_allowed(0) && mgi_room_here(0);
	return *ours;
}

static int wait_for_work(struct pollfd p[4], int timeout_ms, bool may_poll)
{
	static uint64_t window_ns;
	uint64_t start = mgi_now_ns();
	int rc, ours = -1;

	if (window_ns && may_poll) {
		while ((rc = poll(p, 4, 0)) == 0 && mgi_now_ns() - start < window_ns) {
			if (!room_short(&ours) || !mgi_evict_ahead())
				continue;
			/* Eviction follows events: a fault read meanwhile
			 * may be parked, for the caller to retry now. */
			if (mgi_fault_parked())
				return 0;
			start = mgi_now_ns(); /* (bounded: room_short ends it) */
			ours = -1;
		}
		if (rc != 0)
			return rc; /* caught: the window stays */
	}
	mgi_releaser_idle();
	rc = poll(p, 4, timeout_ms);
	if (!may_poll || !poll_max_ns)
		return rc;
	uint64_t waited = mgi_now_ns() - start;
	if (waited <= poll_max_ns) {
		/* a longer window would have caught it */
		window_ns = window_ns ? window_ns * 2 : POLL_START_NS;
		if (window_ns > poll_max_ns)
			window_ns = poll_max_ns;
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

	atomic_store(&handler_tid, gettid());
	if (handler_priority((unsigned)(uintptr_t)arg))
		poll_max_ns = 0;
	/* In a forked child this thread starts over from a copy of the
	 * parent's memory: the faults its handler had parked are the parent's
	 * threads', not ours. */
	mgi_fault_forget_parked();
	/* A forked child's faults were served from its kept store alone until
	 * now (forkchild.c): we take over here, not before this thread exists,
	 * whose creation may itself fault (glibc allocates its TLS). */
	mgi_fork_early_stop();
	if (mgi_learn_init() != 0) {
		init_error = -ENOMEM;
		sem_post(&ready);
		return NULL;
	}
	mgi_scan_and_register();
	/* a forked child that kept its parent's store: its pages are out */
	mgi_fork_adopt();
	sem_post(&ready);

	for (;;) {
		struct pollfd p[4] = {
			{.fd = mgi_handler.uffd, .events = POLLIN},
			{.fd = mgi_request_fd(), .events = POLLIN},
			/* a closed connection polls readable for ever: once
			 * the manager has gone, stop asking (fd -1 is skipped) */
			{.fd = mgi_join.manager_gone ? -1 : mgi_join.conn, .events = POLLIN},
			{.fd = mgi_releaser_done_fd(), .events = POLLIN},
		};
		/* Idle: nothing parked, nothing to do until a descriptor
		 * speaks; the watchdog trusts only this state. */
		atomic_store_explicit(&idle, mgi_fault_parked() == 0, memory_order_relaxed);
		bool rejoin = mgi_join.manager_gone && !mgi_join.rejoin_refused;
		int rc = wait_for_work(p, mgi_cow_timeout(mgi_thp_timeout(mgi_fault_parked() ? OOM_RETRY_MS
						   : rejoin ? REJOIN_MS : mgi_est_on() ? EST_TICK_MS
						   : mgi_handover_any() ? MGI_HANDED_TICK_MS : -1)),
				       mgi_fault_parked() == 0);
		if (rc > 0 && (p[0].revents & POLLIN) && mgi_inject.stall_handler) {
			/* Fault injection: woken for a fault, then not run
			 * for three of the watchdog's periods, as a handler
			 * on a host with more runnable threads than CPUs
			 * can be (the fault stays unread meanwhile). */
			struct timespec ts = {STALL_INJECT_S, 0};
			mgi_inject.stall_handler = false;
			mgi_agent_log("injected: the fault handler stalls %d s with a fault unread",
				      STALL_INJECT_S);
			while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
				;
		}
		atomic_store_explicit(&idle, false, memory_order_relaxed);

		if (rc < 0 && errno != EINTR)
			break;
		if (p[2].revents && !mgi_agent_on_manager_message())
			mgi_join.manager_gone = true;
		if (rejoin && mgi_now_ns() - rejoin_ns >= REJOIN_MS * 1000000ull) {
			/* A restarted manager takes the group back (its
			 * socket reappears at the same path). */
			rejoin_ns = mgi_now_ns();
			mgi_agent_rejoin();
		}
		if (p[3].revents)
			mgi_releaser_answers();
		if (mgi_est_on() && mgi_now_ns() - est_tick_ns >= EST_TICK_MS * 1000000ull) {
			est_tick_ns = mgi_now_ns();
			mgi_est_tick();
		}
		if (mgi_handover_any() &&
		    mgi_now_ns() - handed_tick_ns >= MGI_HANDED_TICK_MS * 1000000ull) {
			handed_tick_ns = mgi_now_ns();
			mgi_handover_tick();
		}
		mgi_fault_drain_requests();
		mgi_handler_follow_events();
		if (mgi_fault_parked())
			mgi_fault_retry_parked();
		mgi_thp_tick();
		mgi_cow_tick();
	}
	mgi_agent_log("fault handler stopped: %s", strerror(errno));
	return NULL;
}

/* The handler's polling window at most (wait_for_work): MEMGRP_POLL_US,
 * 50 us by default, 0 to never poll (options.c). Never on one CPU:
 * polling there only delays whoever else would run. */
static uint64_t poll_window_ns(void)
{
	uint64_t us = mgi_env_uint(MGI_ENV_POLL_US);
	cpu_set_t cpus;

	if (sched_getaffinity(0, sizeof(cpus), &cpus) == 0 && CPU_COUNT(&cpus) < 2)
		return 0;
	return (uint64_t)us * 1000;
}

int mgi_handler_init(mgi_arena_t *arena)
{
	mgi_handler.zeros = mgi_arena_alloc(arena, MGI_FAULT_AROUND_MAX * MGI_PAGE_SIZE);
	stack = mgi_arena_alloc(arena, MGI_HANDLER_STACK);
	poll_max_ns = poll_window_ns();
	return mgi_handler.zeros && stack ? 0 : -ENOMEM;
}

int mgi_handler_start(void)
{
	int rc;

	if (sem_init(&ready, 0, 0) != 0)
		return -errno;
	rc = mgi_start_thread(&thread, stack, MGI_HANDLER_STACK, mgi_handler_main,
			      (void *)(uintptr_t)mgi_env_choice(MGI_ENV_HANDLER_SCHED));
	if (rc != 0)
		return rc;
	while (sem_wait(&ready) != 0 && errno == EINTR)
		;
	return init_error;
}

void *mgi_handler_stack(void)
{
	return stack;
}

pid_t mgi_handler_tid(void)
{
	return atomic_load(&handler_tid);
}

bool mgi_handler_idle(void)
{
	return atomic_load(&idle);
}

void mgi_handler_child_reset(void)
{
	/* (the uffd is closed by the start, which opens the child's own;
	 * the zeros and stack went with the parent's arena) */
	mgi_handler.zeros = NULL;
	stack = NULL;
	init_error = 0;
	atomic_store(&handler_tid, 0);
	atomic_store(&idle, false);
	rejoin_ns = 0;
}

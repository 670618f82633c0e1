/* watchdog.c - notices threads left waiting for a page and wakes them. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "fault.h"
#include "options.h"
#include "os.h"

/*
 * Pitfall 4 of the design: if a fault is never answered, its thread hangs
 * silently. Every WATCH_PERIOD seconds this thread lists the process's
 * threads and reads their wchan; one found in handle_userfault on two scans
 * in a row, with no fault completed in between (a thread that faults often
 * can be caught waiting at both scans, each time on a new fault: measured
 * in bench/coop, a third of the runs said so before this check), while the
 * handler waits idle in poll with nothing parked (so nothing legitimately
 * waits: no OOM wait, no EAGAIN retry, no eviction under way) and no event
 * unread on the uffd (a fault the handler has not read yet is queued, not
 * lost: the handler was woken and waits for a CPU) was lost. The watchdog says so on
 * stderr, counts it, and wakes every waiter (UFFDIO_WAKE over the whole
 * address space): a woken thread faults again, and the handler sees the
 * fault afresh. A spurious wake costs one extra fault, nothing more.
 *
 * Like the handler, it runs on a stack in the arena and never calls malloc.
 */

#define WATCH_PERIOD 2
#define TIDS_MAX 1024

/* Its thread, on a stack in the arena, with a scratch buffer there. */
static void *watch_stack, *watch_buf;
static pthread_t watchdog;
static _Atomic uint64_t lost_faults; /* threads found waiting and woken */

/* The threads found waiting at the last scan, with their fault counts. A
 * forked child inherits them (and lost_faults): its threads' tids are
 * never its parent's, so none matches (childreset.c). */
static int tids_seen[TIDS_MAX];
static uint64_t faults_seen[TIDS_MAX];
static unsigned nseen;

struct linux_dirent64 {
	uint64_t d_ino;
	int64_t d_off;
	unsigned short d_reclen;
	unsigned char d_type;
	char d_name[];
};

/* Reads /proc/self/task/TID/NAME into buf (NUL-terminated); returns the
 * bytes read, or -1. */
static ssize_t read_task_file(int taskfd, const char *tid, const char *name, char *buf,
			      size_t len)
{
	char path[64];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", tid, name);
	fd = openat(taskfd, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	return n;
}

static bool waits_for_page(int taskfd, const char *tid)
{
	char wchan[64];

	return read_task_file(taskfd, tid, "wchan", wchan, sizeof(wchan)) > 0 &&
	       strcmp(wchan, "handle_userfault") == 0;
}

/* The thread's completed faults (minflt + majflt of its stat): a fault
 * that userfaultfd holds is counted when it completes, so a thread stuck on
 * one keeps its count, and one that faults often (waiting on a new fault
 * at each scan, no fault lost) does not. UINT64_MAX if unreadable. */
static uint64_t fault_count(int taskfd, const char *tid)
{
	char stat[512];
	unsigned long long minflt, majflt;

	if (read_task_file(taskfd, tid, "stat", stat, sizeof(stat)) <= 0)
		return UINT64_MAX;
	const char *p = strrchr(stat, ')'); /* the name may hold anything */
	if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %llu %*u %llu", &minflt, &majflt) != 2)
		return UINT64_MAX;
	return minflt + majflt;
}

/* The handler's state letter (R: runnable, S: asleep) and its schedstat
 * (ns run, ns waited on a run queue); '?' and zeros if unreadable. */
static void handler_sched(int taskfd, char *state, uint64_t *run_ns, uint64_t *wait_ns)
{
	char tid[16], buf[512];
	unsigned long long run, wait;

	*state = '?';
	*run_ns = *wait_ns = 0;
	snprintf(tid, sizeof(tid), "%d", (int)mgi_handler_tid());
	if (read_task_file(taskfd, tid, "stat", buf, sizeof(buf)) > 0) {
		const char *p = strrchr(buf, ')');
		if (p && p[1] == ' ' && p[2])
			*state = p[2];
	}
	if (read_task_file(taskfd, tid, "schedstat", buf, sizeof(buf)) > 0 &&
	    sscanf(buf, "%llu %llu", &run, &wait) == 2) {
		*run_ns = run;
		*wait_ns = wait;
	}
}

/* Whether tid waited at the last scan too, on the same fault. */
static bool was_seen(int tid, uint64_t faults)
{
	for (unsigned i = 0; i < nseen; i++)
		if (tids_seen[i] == tid)
			return faults_seen[i] == faults && faults != UINT64_MAX;
	return false;
}

/* One scan: returns how many threads have waited since the last scan. */
static unsigned scan(int taskfd, char *buf, size_t len)
{
	int now[TIDS_MAX];
	uint64_t now_faults[TIDS_MAX];
	unsigned nnow = 0, stuck = 0;
	long n;

	lseek(taskfd, 0, SEEK_SET);
	while ((n = syscall(SYS_getdents64, taskfd, buf, len)) > 0) {
		for (long off = 0; off < n;) {
			struct linux_dirent64 *d = (struct linux_dirent64 *)(buf + off);
			off += d->d_reclen;
			if (d->d_name[0] < '0' || d->d_name[0] > '9' || !waits_for_page(taskfd, d->d_name))
				continue;
			int tid = atoi(d->d_name);
			uint64_t faults = fault_count(taskfd, d->d_name);
			if (nnow < TIDS_MAX) {
				now[nnow] = tid;
				now_faults[nnow++] = faults;
			}
			if (was_seen(tid, faults))
				stuck++;
		}
	}
	memcpy(tids_seen, now, nnow * sizeof(int));
	memcpy(faults_seen, now_faults, nnow * sizeof(uint64_t));
	nseen = nnow;
	return stuck;
}

/* The handler itself waiting for a page is a memgrp bug (it touched
 * memory it manages: pitfall 4 turned on itself), and nothing can resolve
 * it. Said once, plainly, rather than left as a silent hang. */
static void check_handler(int taskfd)
{
	static int scans;
	static bool said;
	char tid[16];

	snprintf(tid, sizeof(tid), "%d", (int)mgi_handler_tid());
	if (said || tid[0] == '0' || !waits_for_page(taskfd, tid)) {
		scans = 0;
		return;
	}
	if (++scans < 2)
		return;
	said = true;
	mgi_agent_log("watchdog: the fault handler itself waits for a page of managed memory "
		      "(a memgrp bug: please report it); this process cannot go on");
}

static void *watchdog_main(void *arg)
{
	char *buf = arg; /* 4 KiB from the arena */
	uint64_t run0 = 0, wait0 = 0;
	int taskfd = open("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (taskfd < 0)
		return NULL;
	for (;;) {
		struct timespec ts = {WATCH_PERIOD, 0};
		while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
			;
		if (!atomic_load(&mgi_agent_active))
			continue;
		check_handler(taskfd);
		/* Only while the handler waits in poll with nothing parked can
		 * a waiting thread have been forgotten: a busy handler (a long
		 * eviction) reads its queue when done. */
		if (!mgi_handler_idle() || mgi_fault_parked_any() != 0) {
			nseen = 0;
			continue;
		}
		unsigned stuck = scan(taskfd, buf, 4096);
		char state;
		uint64_t run_ns, wait_ns;
		handler_sched(taskfd, &state, &run_ns, &wait_ns);
		uint64_t ran = run_ns - run0, waited = wait_ns - wait0;
		run0 = run_ns;
		wait0 = wait_ns;
		if (!stuck || !mgi_handler_idle() || mgi_fault_parked_any() != 0)
			continue;
		/* Faults still unread on the uffd are not lost: the handler
		 * was woken for them and has not run yet (a host with more
		 * runnable threads than CPUs: bench/busy.sh's 20 groups on 2
		 * CPUs said "a lost fault" so, the handler runnable, its
		 * fault unread). It reads them when it runs; waking their
		 * threads would only make them fault again. */
		struct pollfd pq = {.fd = mgi_handler.uffd, .events = POLLIN};
		int unread = poll(&pq, 1, 0) > 0 && (pq.revents & POLLIN);
		if (unread)
			continue;
		atomic_fetch_add(&lost_faults, stuck);
		/* A fault the tests dropped on purpose says so: the suite's logs
		 * are audited for the other kind (scripts/test.sh). */
		mgi_agent_log("watchdog: %u thread(s) waited over %d s for a page that the fault "
			      "handler is not working on (%s); waking them "
			      "[handler %c, ran %llu ms, waited %llu ms on a run queue since the last scan]",
			      stuck, WATCH_PERIOD,
			      mgi_env_choice(MGI_ENV_INJECT) == 1
				      ? "a lost fault: one MEMGRP_INJECT=drop-fault dropped"
				      : "a lost fault: please report it",
			      state, (unsigned long long)(ran / 1000000),
			      (unsigned long long)(waited / 1000000));
		/* All of user space: UFFDIO_WAKE needs no VMA, only waiters. */
		mgi_uffd_wake(mgi_handler.uffd, MGI_PAGE_SIZE, 0x7ffffffff000UL - MGI_PAGE_SIZE);
		nseen = 0;
	}
	return NULL;
}

int mgi_watchdog_init(mgi_arena_t *arena)
{
	watch_stack = mgi_arena_alloc(arena, MGI_WATCHDOG_STACK);
	watch_buf = mgi_arena_alloc(arena, 4096);
	return watch_stack && watch_buf ? 0 : -ENOMEM;
}

void mgi_watchdog_start(void)
{
	if (mgi_start_thread(&watchdog, watch_stack, MGI_WATCHDOG_STACK, watchdog_main,
			     watch_buf) != 0)
		mgi_agent_log("cannot start the watchdog: lost faults would go unnoticed");
}

/* fork.c - the application's fork: prepare and parent hooks, the FORK event, the child's uffd handed over or copied into. */
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
	unsigned nosock;      /* why not, for the trace (mgi_fork_event) */
} fork_tok = {.sock = {-1, -1}};
/* The application's forks under way (prepare to parent handler): the
 * handler evicts nothing ahead of need meanwhile, so that the child may
 * keep what we hold (an eviction for a fault that needs room still goes:
 * the fork's thread itself may be the one waiting; the child then gets
 * the copy). */
static _Atomic unsigned nforks;

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

/*
 * A forked child's userfaultfd (the FORK event's) lives in this process's
 * fd table from the handler's read of the event until mgi_fork_event
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

void mgi_fork_read_begin(void)
{
	atomic_store(&reading, true);
}

void mgi_fork_read_end(const struct uffd_msg *msgs, size_t n)
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
 * up (mgi_fork_child_start). The child's path is well within this.
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

void mgi_fork_prepare(void)
{
	uint64_t seq;
	uintptr_t low, frame = (uintptr_t)__builtin_frame_address(0), high = frame + 1024;
	/* reg.nout is the handler's: read racily, a hint */
	bool want = mgi_pageout.store && mgi_reg.nout && !atomic_load(&mgi_app_tcbs_lost);
	unsigned nosock = want ? 0 : 1024;
	/* no application thread but this one (the agent's, and the early
	 * server of a child whose handler has not yet taken over) */
	if (want) {
		unsigned all = nthreads(), ours = atomic_load(&mgi_agent_threads) + 1 +
						    mgi_fork_early_serving();
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

void mgi_fork_parent(void)
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

void mgi_fork_close_inflight(void)
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


/* Reads and forgets what the child's uffd reports: its own events (its
 * agent starts over with a scan) and faults (woken by our copies or by
 * the close). A fork there hands us a grandchild's uffd: closed at once,
 * which leaves the grandchild unregistered (it copied the child before we
 * finished: a raw fork within the first moments of the child's life). */
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

void mgi_fork_event(int cfd)
{
	mgi_staging_t *st = &mgi_pageout.staging;
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
	if (mgi_pageout.store && !why) {
		/* Whole, and an application's fork: the child keeps the store,
		 * unless pages of it are in our write-back file, which we go on
		 * punching and reusing (the child would read ours). */
		mgi_store_stats_t sst;
		mgi_store_stats(mgi_pageout.store, &sst);
		why |= (sst.file_pages != 0) << 4;
		keep = !why && send_uffd(sock[0], cfd);
		why |= !keep << 5;
	}
	if (keep)
		mgi_trace(MGI_TR_FORK_KEPT, 0, seq, 0, 0);
	else if (mgi_pageout.store)
		mgi_trace(MGI_TR_FORK_COPIED, 0, seq, 0, (int32_t)why);
	if (mgi_pageout.store && !keep) {
		for (uint32_t s = 0; s < st->nslots; s++) {
			key = st->slot[s].key;
			if (key && key != MGI_STAGING_RETIRED) {
				copy_into_child(cfd, key << MGI_PAGE_SHIFT, slot_addr(s));
				pages++;
			}
		}
		while (mgi_store_next(mgi_pageout.store, &cursor, &key)) {
			if (mgi_store_get(mgi_pageout.store, key, mgi_pageout.restore_buf, NULL) == 0)
				copy_into_child(cfd, key << MGI_PAGE_SHIFT, mgi_pageout.restore_buf);
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

void mgi_fork_change_begin(void)
{
	mut_begin();
}

void mgi_fork_change_end(void)
{
	mut_end();
}

unsigned mgi_fork_under_way(void)
{
	return atomic_load(&nforks);
}

/* A forked child, first thing: our fork's mark, copied before the handler
 * took it (fork_lock copied held: ours now). Returns our socket end, if
 * our parent's agent made one, else -1. */
int mgi_fork_child_reset(void)
{
	int sock = -1;

	pthread_mutex_init(&fork_lock, NULL);
	if (atomic_load(&fork_tok.pending) && fork_tok.sock[1] >= 0) {
		close(fork_tok.sock[0]); /* so that our parent's close is seen */
		sock = fork_tok.sock[1];
	}
	atomic_store(&fork_tok.pending, false);
	fork_tok.sock[0] = fork_tok.sock[1] = -1;
	atomic_store(&nforks, 0);
	mut_depth = 0;
	return sock;
}

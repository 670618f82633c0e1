/* forkchild.c - a forked child's start: its early fault server, the parent's store kept and adopted. */
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
#include "cow.h"

#define PAGE MGI_PAGE_SIZE
#define CHILD_WAIT_MS 60000   /* how long a child waits for its parent's copy */

/* What this child kept of its parent's (pageout.h): filled by the child's
 * start, taken by eviction's and the write-back file's set-up. */
static struct {
	void *store_mem, *meta;
	size_t store_bytes, meta_bytes;
	mgi_store_t *store;
	uint64_t pages; /* entries to charge to swap once adopted */
	bool adopting;
} mgi_kept;

bool mgi_kept_store(void **mem, size_t *bytes)
{
	if (mem)
		*mem = mgi_kept.store_mem;
	if (bytes)
		*bytes = mgi_kept.store_bytes;
	return mgi_kept.store != NULL;
}

mgi_store_t *mgi_kept_take_store(void)
{
	mgi_store_t *store = mgi_kept.store;

	mgi_kept.store = NULL;
	mgi_kept.adopting = store != NULL;
	return store;
}

void *mgi_kept_meta(size_t *bytes)
{
	*bytes = mgi_kept.meta_bytes;
	return mgi_kept.meta;
}

void *mgi_kept_take_meta(size_t *bytes)
{
	void *meta = mgi_kept_meta(bytes);

	mgi_kept.meta = NULL;
	return meta;
}

/* ---- a forked child's first moments ---- */

/*
 * A child handed its uffd (mgi_fork_event) runs with the pages we held
 * absent and registered on it: anything that touches one before its own
 * handler runs (glibc's fork code, the agent's start on this thread's
 * stack, getenv) waits for a fault to be served. So the first thing the
 * child does is start this server: it answers faults from the kept store
 * alone (no registry yet: a page the store holds comes back, any other
 * comes as zeros, as the handler would give it) and follows the child's
 * events on the store (a discard or unmap drops, a move rekeys), until the
 * handler has its scan and takes over (mgi_fork_early_stop). If the
 * agent's start fails, it goes on serving for the process's life.
 */
#define EARLY_STACK (64 * 1024)
#define EARLY_PARKED 64
static char early_stack[EARLY_STACK] __attribute__((aligned(64)));
static char early_page[PAGE] __attribute__((aligned(64)));
static int early_fd = -1, early_stop[2] = {-1, -1};
static mgi_store_t *early_store; /* the kept store (mgi_kept.store is handed on) */
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

/* A write-protect fault (bit 0 of addr): a page our parent had
 * write-protected as shared with its own parent (cow.c) when it forked
 * us; ours now to write (our scan charges it, then it is exclusive). Left
 * to the missing-page path it would be copied into (EEXIST), woken, and
 * fault again for ever: seen in principle, guarded here. */
static bool early_unprotect(uintptr_t page)
{
	struct uffdio_writeprotect w = {.range = {.start = page, .len = PAGE}, .mode = 0};
	long rc = early_sys(SYS_ioctl, early_fd, (long)UFFDIO_WRITEPROTECT, (long)&w);

	if (rc == -EAGAIN)
		return false;
	if (rc != 0)
		early_uffd_wake(page);
	return true;
}

/* Serves one fault: false if it must wait for events (EAGAIN). */
static bool early_fault(uintptr_t addr)
{
	uintptr_t page = addr & ~(uintptr_t)(PAGE - 1);
	int rc;

	if (addr & 1)
		return early_unprotect(page);
	bool held = mgi_store_get(early_store, key_of(page), early_page, NULL) == 0;
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
	mgi_kept.pages = st.pages;
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
			case UFFD_EVENT_PAGEFAULT: {
				uintptr_t a = (uintptr_t)m->arg.pagefault.address;
				if (m->arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP)
					a = (a & ~(uintptr_t)(PAGE - 1)) | 1;
				if (!early_fault(a) && nparked < EARLY_PARKED)
					parked[nparked++] = a;
				break;
			}
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
void mgi_fork_early_stop(void)
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
	mgi_kept.pages = mgi_kept.pages > early_dropped ? mgi_kept.pages - early_dropped : 0;
	early_dropped = 0;
}

/* A forked child that keeps its parent's store: its staged pages (frames
 * shared copy-on-write with the parent's staging area, which the child
 * drops) go into the store, compressed, as the parent's would have; one
 * the store cannot take goes back in place through the handed uffd. Runs
 * in fork's child handler, the only thread, before anything else. */
static void keep_staged(int cfd)
{
	mgi_staging_t *st = &mgi_pageout.staging;

	for (uint32_t s = 0; st->slot && s < st->nslots; s++) {
		uint64_t key = st->slot[s].key;
		if (!key || key == MGI_STAGING_RETIRED)
			continue;
		int rc = mgi_store_put(mgi_pageout.store, key, slot_addr(s), mgi_pageout.evict_clock);
		if (rc == -EEXIST) { /* (cannot happen) the staged page is the live one */
			mgi_store_drop(mgi_pageout.store, key);
			rc = mgi_store_put(mgi_pageout.store, key, slot_addr(s), mgi_pageout.evict_clock);
		}
		if (rc == 0) {
			mgi_pageout.evict_clock++;
			continue;
		}
		/* EEXIST: present; ENOENT: unmapped before our parent read
		 * the event. Either way nothing is lost. */
		(void)cfd;
		early_copy((uintptr_t)(key << MGI_PAGE_SHIFT), slot_addr(s));
	}
}

/* Our fork's socket end, if our parent's agent made one (at most one
 * fork() at a time gets one: mgi_fork_prepare): the uffd comes
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

/* The uffd our parent's agent handed over with the store (mgi_fork_take_uffd). */
static int handed_uffd = -1;

int mgi_fork_take_uffd(void)
{
	int fd = handed_uffd;

	handed_uffd = -1;
	return fd;
}

void mgi_fork_child_start(void)
{
	uint64_t waited_ms = 0;
	int cfd = -1, sock = -1;

	sock = mgi_fork_child_reset(); /* our fork's mark (fork.c) */
	if (sock >= 0) {
		cfd = receive_uffd(sock);
		close(sock);
	}
	memset(&mgi_kept, 0, sizeof(mgi_kept));
	if (cfd >= 0 && mgi_pageout.store) {
		mgi_kept = (typeof(mgi_kept)){.store_mem = mgi_pageout.store_mem,
				      .store_bytes = mgi_pageout.store_bytes,
				      .store = mgi_pageout.store};
		mgi_swapfile_meta(&mgi_kept.meta, &mgi_kept.meta_bytes);
		early_fd = cfd;
		early_store = mgi_pageout.store;
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
	} else if (cfd < 0 && mgi_pageout.beacon && mgi_handler.fork_events) {
		/* Our address space stays registered with the uffd the kernel
		 * gave our parent's agent until it has copied in what it held
		 * for us and closed it: registering the beacon fails with EBUSY
		 * until then. Nothing else runs in this process meanwhile (we
		 * are in fork's child handler, the only thread). */
		char why[160];
		int fd = mgi_uffd_open(NULL, NULL, why, sizeof(why));
		while (fd >= 0 && mgi_uffd_register(fd, mgi_pageout.beacon, PAGE) == -EBUSY &&
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
	/* Next (childreset.c): the parent's reclaim ranges, copies we do not
	 * need, unmapped but for a store (and its file meta) we keep. (Those
	 * registered on a handed uffd make UNMAP events: the early server
	 * reads them.) */
	handed_uffd = mgi_kept.store ? cfd : -1;
}

bool mgi_fork_adopting(void)
{
	return mgi_kept.adopting;
}

void mgi_fork_adopt(void)
{
	mgi_store_t *store = mgi_pageout.store;
	uint64_t cursor = 0, key, dropped = 0;

	if (!mgi_kept.adopting || !store)
		return;
	mgi_kept.adopting = false;
	mgi_fork_change_begin();
	while (mgi_store_next(store, &cursor, &key)) {
		uintptr_t a = (uintptr_t)key << MGI_PAGE_SHIFT;
		mgi_vregion_t *r = mgi_registry_find(&mgi_reg, a);
		if (r && mgi_registry_is_out(r, a))
			continue; /* marked already, or evicted by our scan */
		if (r && !mgi_registry_test(r, a)) {
			mgi_registry_mark(&mgi_reg, r, a, 1);
			mgi_registry_evict(&mgi_reg, r, a, 1);
			continue;
		}
		/* Present here (a conflict: the live page is kept), or no
		 * longer memory of the application's (unmapped before our
		 * parent read the event). */
		if (r)
			mgi_restore_conflict(a);
		mgi_store_drop(store, key);
		dropped++;
		cursor = 0; /* a drop invalidates it: what is marked is passed over */
	}
	mgi_fork_change_end();
	/* Charged to swap as the parent's are: two stores now, each restored
	 * and dropped on its own (docs/design.md, fork). */
	mgi_swap_charge_anyway(mgi_kept.pages > dropped ? mgi_kept.pages - dropped : 0);
	mgi_evict_publish();
}


bool mgi_fork_early_serving(void)
{
	return atomic_load(&early_tid) != 0;
}

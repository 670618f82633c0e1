/* interpose.c - catching new anonymous memory: mmap family, brk/sbrk, mprotect, thread stacks. */
/* Both mmap and mmap64 are defined below; with _FILE_OFFSET_BITS=64 the
 * headers would rename one into the other (off_t is 64-bit here anyway). */
#undef _FILE_OFFSET_BITS
#include <dlfcn.h>
#include <errno.h>
#include <stdatomic.h>
#include <malloc.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdarg.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "agent.h"
#include "os.h"
#include "thp.h"
#include "interpose_int.h"

/*
 * Four ways new anonymous memory appears, each caught here:
 *  - mmap through the PLT (applications, CPython's arenas, jemalloc):
 *    the new range is registered exactly;
 *  - brk/sbrk through the PLT: the heap's new part is registered;
 *  - mprotect through the PLT making a reservation writable (V8, the JVM):
 *    the writable anonymous VMAs in its range are registered;
 *  - glibc's malloc, which calls mmap and brk internally, where no
 *    interposition reaches (pitfall 5): every pointer the malloc family
 *    returns is checked against the calling thread's last known managed
 *    range, and only a pointer outside it costs a VMA query (and, for new
 *    memory, a registration). The check is two compares in the common case.
 * The malloc family forwards to the next definition (RTLD_NEXT), so a
 * program's own allocator (jemalloc, tcmalloc) stays the one that runs.
 *
 * Registration happens in the calling thread (an ioctl, it never waits for
 * the handler); the handler is then asked, through a pipe, to learn the
 * range, i.e. to add it to its registry and charge pages already present.
 * The malloc family and the thread's known ranges are in interpose_malloc.c.
 */


/* New memory [start, end) for the application: registered (exact mode),
 * or charged at its size or admitted (estimate mode: when it does not fit,
 * the handler's answer is awaited, so that a region that must start slow
 * is registered before the application writes it). */
void mgi_register_for_app(uintptr_t start, uintptr_t end)
{
	if (mgi_agent_deferred()) { /* a deferred start (start.c): charged at size */
		mgi_agent_lazy_grow(start, end);
		return;
	}
	if (start >= end || end - start > MGI_REGION_MAX_BYTES || !active())
		return;
	if (mgi_agent_excluded(start, end))
		return;
	if (mgi_est_on())
		mgi_est_map_for_app(start, end);
	else
		mgi_register_exact(start, end);
}

void mgi_register_exact(uintptr_t start, uintptr_t end)
{
	mgi_learn_req_t req = {.start = start, .end = end, .kind = MGI_REQ_LEARN, .waiter = -1};

	if (!mgi_thp_on()) /* with huge pages on, MADV_COLLAPSE needs it unmarked */
		mgi_raw_madvise((void *)start, end - start, MADV_NOHUGEPAGE);
	if (mgi_uffd_register(mgi_handler.uffd, start, end - start) != 0)
		return;
	/* Non-blocking: if the pipe is full the handler learns the range on
	 * its first fault instead (pages present before that are found by
	 * mincore then). */
	mgi_request_send(&req); /* (from agent memory: see request.c) */
}

/* ---- mmap, brk, sbrk ---- */

static bool eligible(int prot, int flags)
{
	return (flags & MAP_ANONYMOUS) && (flags & MAP_TYPE) == MAP_PRIVATE &&
	       !(flags & MAP_HUGETLB) && (prot & PROT_WRITE);
}

/*
 * MAP_POPULATE fills the mapping inside the mmap call, before the range can
 * be registered, and so does MAP_LOCKED: the pages were then found present
 * and charged at once, past the limit, with nothing evicted first
 * (stress-ng's mmap stressor maps 32 MiB with MAP_POPULATE|MAP_LOCKED:
 * under `-m 17M --swap-max 2G` max_usage was 32.9 MiB). So in exact mode
 * the mapping is made without them and registered, locked on fault
 * (mlock2 MLOCK_ONFAULT checks RLIMIT_MEMLOCK as MAP_LOCKED does, and is
 * refused with EAGAIN as it would be), then populated with
 * MADV_POPULATE_WRITE, whose faults go through the handler like any other:
 * charged page by page, evicting what may be evicted (locked pages may not,
 * as in the kernel: a locked mapping larger than the limit ends in an OOM
 * kill, as under memcg). A population that fails does not fail the mmap,
 * as with the flags. The same order is kept in a deferred start (a large
 * mapping ends it: the registration starts the handler) and in estimate
 * mode (a fast region is charged at its size first, a slow one registered).
 */
static bool populate_after(int flags)
{
	return (flags & (MAP_POPULATE | MAP_LOCKED)) && (active() || mgi_agent_deferred());
}

__attribute__((visibility("default"))) void *mmap(void *addr, size_t len, int prot, int flags,
						   int fd, off_t off)
{
	bool later = eligible(prot, flags) && populate_after(flags);
	void *p = mgi_raw_mmap(addr, len, prot, later ? flags & ~(MAP_POPULATE | MAP_LOCKED) : flags,
			       fd, off);

	if (p != MAP_FAILED && eligible(prot, flags))
		mgi_register_for_app((uintptr_t)p, page_up((uintptr_t)p + len));
	if (p == MAP_FAILED || !later)
		return p;
	if ((flags & MAP_LOCKED) && mlock2(p, len, MLOCK_ONFAULT) != 0) {
		munmap(p, len);
		errno = EAGAIN;
		return MAP_FAILED;
	}
	(void)mgi_raw_madvise(p, page_up(len), MADV_POPULATE_WRITE);
	return p;
}

__attribute__((visibility("default"))) void *mmap64(void *addr, size_t len, int prot, int flags,
						     int fd, off_t off)
{
	return mmap(addr, len, prot, flags, fd, off);
}

/*
 * The application's moves and unmappings, one at a time. The kernel queues
 * an mremap's events once it has dropped the mmap lock, each after the one
 * before was read: the UNMAP of a MREMAP_FIXED destination's old mapping,
 * the REMAP, the UNMAP of the old range (an munmap's UNMAP likewise).
 * Another thread's mremap into the range just vacated can queue its REMAP
 * in between, ahead of the first call's REMAP: the handler then took what
 * it held at that range (the first mapping's evicted pages, not yet
 * followed) for stale and dropped it, and the late REMAP moved the
 * newcomer's pages away (tests/progs/remaprace.c "reverse": both read
 * zeros, 3 runs of 3 before this lock). Held from before the system call
 * until it returns, i.e. until every event it queued has been read, the
 * lock keeps the events of two such calls in the order the calls were
 * made. A signal handler that moves memory while its thread holds the lock
 * goes on without it (`moving`); fork takes it, so that no child starts
 * with it held by a thread it does not have. What glibc unmaps internally
 * (malloc's large chunks) does not come here: for that the handler's
 * vacated-range guard is all there is (docs/design.md, Known gaps).
 */
static pthread_mutex_t move_lock = PTHREAD_MUTEX_INITIALIZER;
/* Initial-exec TLS, as the remembered ranges below: a general-dynamic
 * access calls __tls_get_addr, which may allocate, and which ASan
 * intercepts with bookkeeping that a thread's own exit may have unmapped
 * (a SEGV in move_end under ASan, 1 run in 8 of remaprace "reverse"). */
static __thread int moving __attribute__((tls_model("initial-exec")));
static __thread bool fork_took __attribute__((tls_model("initial-exec")));

static void move_begin(void)
{
	if (moving++ == 0)
		pthread_mutex_lock(&move_lock);
}

static void move_end(void)
{
	if (--moving == 0)
		pthread_mutex_unlock(&move_lock);
}

static void move_fork_prepare(void)
{
	fork_took = moving == 0;
	if (fork_took)
		pthread_mutex_lock(&move_lock);
}

static void move_fork_parent(void)
{
	if (fork_took)
		pthread_mutex_unlock(&move_lock);
}

/* Whoever held it in the parent is not here (or is this thread, inside a
 * move a signal handler interrupted: then its own move_end finds it free). */
static void move_fork_child(void)
{
	pthread_mutex_init(&move_lock, NULL);
}

__attribute__((constructor)) static void move_lock_init(void)
{
	pthread_atfork(move_fork_prepare, move_fork_parent, move_fork_child);
}

/* munmap and mremap: in estimate mode, a fast region's unmapping is
 * seen only here (or by the handler's once-a-second check). */
__attribute__((visibility("default"))) int munmap(void *addr, size_t len)
{
	bool est = len && active() && mgi_est_on();
	int rc;

	if (est)
		mgi_est_unmap_for_app((uintptr_t)addr & ~(PAGE - 1), page_up((uintptr_t)addr + len));
	if (len && active() && mgi_handover_any())
		mgi_handover_gone((uintptr_t)addr & ~(PAGE - 1), page_up((uintptr_t)addr + len), true);
	move_begin();
	rc = (int)syscall(SYS_munmap, addr, len);
	move_end();
	if (est && rc != 0)
		mgi_register_vma_at((uintptr_t)addr); /* still there: admitted again */
	return rc;
}

__attribute__((visibility("default"))) void *mremap(void *old, size_t old_len, size_t new_len,
						     int flags, ...)
{
	void *new_addr = NULL, *p;
	va_list ap;

	if (flags & MREMAP_FIXED) {
		va_start(ap, flags);
		new_addr = va_arg(ap, void *);
		va_end(ap);
	}
	bool est = old_len && active() && mgi_est_on();
	if (est) /* told first, as for munmap; the result is admitted anew */
		mgi_est_unmap_for_app((uintptr_t)old & ~(PAGE - 1), page_up((uintptr_t)old + old_len));
	move_begin();
	p = (void *)syscall(SYS_mremap, old, old_len, new_len, flags, new_addr);
	move_end();
	if (mgi_agent_deferred() && p != MAP_FAILED && new_len)
		mgi_register_vma_at((uintptr_t)p); /* a deferred start: at size */
	if (est && p != MAP_FAILED)
		mgi_register_for_app((uintptr_t)p, page_up((uintptr_t)p + new_len));
	else if (est)
		mgi_register_vma_at((uintptr_t)old); /* still there: admitted again */
	return p;
}

/*
 * mprotect: runtimes reserve address space with PROT_NONE and commit it by
 * making parts writable (V8's heap; the JVM; glibc's per-thread arenas grow
 * the same way, but internally, where the malloc check finds them). What
 * becomes writable, anonymous and private is registered or admitted like
 * new memory, one VMA at a time (a registration cannot cross a file
 * mapping); memory already known is not counted twice (the learn and the
 * estimate admission take only what they do not know). Measured before:
 * node holding 343 MB of RSS was charged 3.9 MB.
 */
__attribute__((visibility("default"))) int mprotect(void *addr, size_t len, int prot)
{
	int rc = (int)syscall(SYS_mprotect, addr, len, prot);
	uintptr_t cur = (uintptr_t)addr, end = page_up((uintptr_t)addr + len);
	mgi_vma_t v;

	if (rc != 0 || !(prot & PROT_WRITE) || !len || (!active() && !mgi_agent_deferred()))
		return rc;
	while (cur < end && mgi_vma_query(mgi_maps_fd, cur, &v) == 0 && v.start < end) {
		mgi_register_vma_at(v.start > cur ? v.start : cur);
		cur = v.end;
	}
	return rc;
}

static void *(*next_sbrk)(intptr_t);
static int (*next_brk)(void *);

__attribute__((visibility("default"))) void *sbrk(intptr_t inc)
{
	void *old;

	if (!next_sbrk)
		next_sbrk = (void *(*)(intptr_t))dlsym(RTLD_NEXT, "sbrk");
	old = next_sbrk(inc);
	if (old != (void *)-1 && inc > 0)
		mgi_register_for_app(page_up((uintptr_t)old), page_up((uintptr_t)old + (uintptr_t)inc));
	return old;
}

__attribute__((visibility("default"))) int brk(void *addr)
{
	uintptr_t before;
	int rc;

	if (!next_sbrk)
		next_sbrk = (void *(*)(intptr_t))dlsym(RTLD_NEXT, "sbrk");
	if (!next_brk)
		next_brk = (int (*)(void *))dlsym(RTLD_NEXT, "brk");
	before = (uintptr_t)next_sbrk(0);
	rc = next_brk(addr);
	if (rc == 0 && (uintptr_t)addr > before)
		mgi_register_for_app(page_up(before), page_up((uintptr_t)addr));
	return rc;
}

/* ---- thread stacks ---- */

/* glibc maps a new thread's stack with its internal mmap: register it once
 * the thread exists (pages it touched first are charged when learned). The
 * agent's own handler stack lies in the arena and is refused there. */
static int (*next_pthread_create)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
/* (Kept across fork on purpose, agent.h; move_lock has its own atfork
 * handlers, move_fork_*.) */
uintptr_t mgi_app_tcbs[MGI_APP_TCBS_MAX];
_Atomic unsigned mgi_app_ntcbs;
_Atomic bool mgi_app_tcbs_lost;

/* No lock: a fork while another thread held one would leave it held in
 * the child. Two threads racing may both note a block: harmless. */
static void note_app_tcb(uintptr_t tcb)
{
	unsigned n = atomic_load(&mgi_app_ntcbs);

	for (unsigned i = 0; i < n && i < MGI_APP_TCBS_MAX; i++)
		if (mgi_app_tcbs[i] == tcb)
			return;
	n = atomic_fetch_add(&mgi_app_ntcbs, 1);
	if (n < MGI_APP_TCBS_MAX)
		mgi_app_tcbs[n] = tcb;
	else
		atomic_store(&mgi_app_tcbs_lost, true);
}

__attribute__((visibility("default"))) int pthread_create(pthread_t *t, const pthread_attr_t *attr,
							   void *(*fn)(void *), void *arg)
{
	pthread_attr_t a;
	void *stack;
	size_t size;
	int rc;

	if (!next_pthread_create)
		next_pthread_create = (int (*)(pthread_t *, const pthread_attr_t *, void *(*)(void *),
					       void *))dlsym(RTLD_NEXT, "pthread_create");
	/* A deferred start lasts while the process has one thread (start.c):
	 * the agent starts for good before a second one runs. */
	if (mgi_agent_deferred())
		mgi_agent_start_now();
	rc = next_pthread_create(t, attr, fn, arg);
	if (rc == 0 && fn != mgi_thread_trampoline && (!attr || attr != atomic_load(&mgi_agent_attr)))
		note_app_tcb((uintptr_t)*t);
	if (rc == 0 && active() && pthread_getattr_np(*t, &a) == 0) {
		if (pthread_attr_getstack(&a, &stack, &size) == 0)
			mgi_register_vma_at((uintptr_t)stack + size - 1);
		pthread_attr_destroy(&a);
	}
	return rc;
}

/* interpose.c - catching new anonymous memory: mmap, brk/sbrk, and the malloc family. */
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
 */

#define PAGE MGI_PAGE_SIZE

static inline uintptr_t page_up(uintptr_t a)
{
	return (a + PAGE - 1) & ~(PAGE - 1);
}

static inline bool active(void)
{
	return atomic_load_explicit(&mgi_agent.active, memory_order_acquire);
}

/* New memory [start, end) for the application: registered (exact mode),
 * or charged at its size or admitted (estimate mode: when it does not fit,
 * the handler's answer is awaited, so that a region that must start slow
 * is registered before the application writes it). */
void mgi_register_for_app(uintptr_t start, uintptr_t end)
{
	if (mgi_agent.lazy) { /* a deferred start (agent.c): charged at size */
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
	if (mgi_uffd_register(mgi_agent.uffd, start, end - start) != 0)
		return;
	/* Non-blocking: if the pipe is full the handler learns the range on
	 * its first fault instead (pages present before that are found by
	 * mincore then). */
	mgi_request_send(&req); /* (from agent memory: see request.c) */
}

/* The thread's last known managed range: malloc results inside it need
 * no work. Initial-exec TLS: no allocation, no lock on access. */
static __thread uintptr_t tl_lo __attribute__((tls_model("initial-exec")));
static __thread uintptr_t tl_hi __attribute__((tls_model("initial-exec")));

/* The VMA around addr, found with a malloc block [bs, be) in it (page
 * aligned; empty if none): registered (exact mode) or admitted (estimate
 * mode: what of it is not known yet). */
static void register_found(uintptr_t addr, uintptr_t bs, uintptr_t be)
{
	mgi_vma_t v;

	if ((!active() && !mgi_agent.lazy) || mgi_vma_query(mgi_agent.mapsfd, addr, &v) != 0 ||
	    v.start > addr)
		return;
	if (!mgi_vma_is_anon_private(&v) || !(v.flags & MGI_VMA_WRITE) ||
	    mgi_agent_excluded(v.start, v.end))
		return;
	tl_lo = v.start;
	tl_hi = v.end;
	if (mgi_agent.lazy) {
		mgi_agent_lazy_grow(v.start, v.end);
		return;
	}
	if (mgi_est_on() && v.end - v.start <= MGI_REGION_MAX_BYTES) {
		/* (found after the fact, but before the block reaches the
		 * application) */
		bs = bs > v.start ? bs : v.start;
		be = be < v.end ? be : v.end;
		mgi_est_found_for_app(bs < be ? bs : 0, bs < be ? be : 0, v.start, v.end);
		return;
	}
	mgi_register_for_app(v.start, v.end);
}

void mgi_register_vma_at(uintptr_t addr)
{
	register_found(addr, 0, 0);
}

static inline void check_block(void *p, size_t size)
{
	uintptr_t a = (uintptr_t)p, bs = a & ~(PAGE - 1), be = page_up(a + size);

	if (!p || (a >= tl_lo && a + size <= tl_hi) || (!active() && !mgi_agent.lazy))
		return;
	register_found(a, bs, be);
	if (size > 0 && !(a + size <= tl_hi && a >= tl_lo))
		register_found(a + size - 1, bs, be); /* a block over two VMAs */
}

/* ---- mmap, brk, sbrk ---- */

static bool eligible(int prot, int flags)
{
	return (flags & MAP_ANONYMOUS) && (flags & MAP_TYPE) == MAP_PRIVATE &&
	       !(flags & MAP_HUGETLB) && (prot & PROT_WRITE);
}

__attribute__((visibility("default"))) void *mmap(void *addr, size_t len, int prot, int flags,
						   int fd, off_t off)
{
	void *p = mgi_raw_mmap(addr, len, prot, flags, fd, off);

	if (p != MAP_FAILED && eligible(prot, flags))
		mgi_register_for_app((uintptr_t)p, page_up((uintptr_t)p + len));
	return p;
}

__attribute__((visibility("default"))) void *mmap64(void *addr, size_t len, int prot, int flags,
						     int fd, off_t off)
{
	return mmap(addr, len, prot, flags, fd, off);
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
	rc = (int)syscall(SYS_munmap, addr, len);
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
	p = (void *)syscall(SYS_mremap, old, old_len, new_len, flags, new_addr);
	if (mgi_agent.lazy && p != MAP_FAILED && new_len)
		register_found((uintptr_t)p, 0, 0); /* a deferred start: at size */
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

	if (rc != 0 || !(prot & PROT_WRITE) || !len || (!active() && !mgi_agent.lazy))
		return rc;
	while (cur < end && mgi_vma_query(mgi_agent.mapsfd, cur, &v) == 0 && v.start < end) {
		register_found(v.start > cur ? v.start : cur, 0, 0);
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
	/* A deferred start lasts while the process has one thread (agent.c):
	 * the agent starts for good before a second one runs. */
	if (mgi_agent.lazy)
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

/* ---- the malloc family ---- */

static void *(*next_malloc)(size_t);
static void *(*next_calloc)(size_t, size_t);
static void *(*next_realloc)(void *, size_t);
static void (*next_free)(void *);
static int (*next_posix_memalign)(void **, size_t, size_t);
static void *(*next_aligned_alloc)(size_t, size_t);
static void *(*next_memalign)(size_t, size_t);

/* dlsym itself may call calloc before we know the next calloc: serve it
 * from a small static buffer, which free() then recognizes and ignores. */
static char bootstrap[4096] __attribute__((aligned(16)));
static size_t bootstrap_used;
static _Atomic int resolving;

static bool from_bootstrap(const void *p)
{
	return (const char *)p >= bootstrap && (const char *)p < bootstrap + sizeof(bootstrap);
}

static void *bootstrap_alloc(size_t size)
{
	size_t at = (bootstrap_used + 15) & ~(size_t)15;

	if (at + size > sizeof(bootstrap))
		return NULL;
	bootstrap_used = at + size;
	return bootstrap + at;
}

static void resolve_next(void)
{
	if (next_malloc || atomic_exchange(&resolving, 1))
		return;
	next_calloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "calloc");
	next_realloc = (void *(*)(void *, size_t))dlsym(RTLD_NEXT, "realloc");
	next_free = (void (*)(void *))dlsym(RTLD_NEXT, "free");
	next_posix_memalign = (int (*)(void **, size_t, size_t))dlsym(RTLD_NEXT, "posix_memalign");
	next_aligned_alloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "aligned_alloc");
	next_memalign = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "memalign");
	next_malloc = (void *(*)(size_t))dlsym(RTLD_NEXT, "malloc");
}

__attribute__((visibility("default"))) void *malloc(size_t size)
{
	void *p;

	resolve_next();
	if (!next_malloc)
		return bootstrap_alloc(size);
	p = next_malloc(size);
	check_block(p, size);
	return p;
}

__attribute__((visibility("default"))) void *calloc(size_t n, size_t size)
{
	void *p;

	if (!next_calloc) {
		resolve_next();
		if (!next_calloc) { /* dlsym's own call, during resolve_next */
			if (size && n > SIZE_MAX / size)
				return NULL;
			return bootstrap_alloc(n * size);
		}
	}
	p = next_calloc(n, size);
	check_block(p, n * size);
	return p;
}

__attribute__((visibility("default"))) void *realloc(void *old, size_t size)
{
	void *p;

	resolve_next();
	if (from_bootstrap(old)) {
		p = malloc(size);
		if (p && old)
			memcpy(p, old, size < sizeof(bootstrap) ? size : sizeof(bootstrap));
		return p;
	}
	p = next_realloc(old, size);
	check_block(p, size);
	return p;
}

__attribute__((visibility("default"))) void free(void *p)
{
	if (!p || from_bootstrap(p))
		return;
	resolve_next();
	next_free(p);
}

__attribute__((visibility("default"))) int posix_memalign(void **out, size_t align, size_t size)
{
	int rc;

	resolve_next();
	rc = next_posix_memalign(out, align, size);
	if (rc == 0)
		check_block(*out, size);
	return rc;
}

__attribute__((visibility("default"))) void *aligned_alloc(size_t align, size_t size)
{
	void *p;

	resolve_next();
	p = next_aligned_alloc(align, size);
	check_block(p, size);
	return p;
}

__attribute__((visibility("default"))) void *memalign(size_t align, size_t size)
{
	void *p;

	resolve_next();
	p = next_memalign(align, size);
	check_block(p, size);
	return p;
}

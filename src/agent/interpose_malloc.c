/* interpose_malloc.c - the malloc family interposed: each block checked against the thread's known ranges. */
#include <dlfcn.h>
#include <malloc.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "os.h"
#include "interpose_int.h"

/*
 * The thread's last known managed ranges: malloc results inside one of
 * them need no work. glibc grows its heap with brk internally, where no
 * wrapper sees it, and writes the new top chunk's header at once: each
 * growth (~128 KiB) becomes a VMA of its own with its own anon_vma, and
 * stays one after it is registered (VMAs with different anon_vmas do not
 * merge). cc1's heap was 19 VMAs. With one range remembered, one
 * `gcc -O2 -c` of a 60-function file (600 faults) made 233 000 VMA
 * queries, madvise calls, registrations and learn requests, its blocks
 * coming from those VMAs in turn: 1.3 s of system time against 0.02 s
 * unmanaged. So several ranges are remembered, and ranges that touch are
 * remembered as one (each of them was registered, so their union is):
 * the heap's pieces become one range as they are found. The most recent
 * is in slot 0, checked first. Initial-exec TLS: no allocation, no lock
 * on access.
 */
/* A forked child inherits the forking thread's ranges: the same address
 * space, registered again by the child's scan (childreset.c). */
#define TL_RANGES 8
static __thread uintptr_t tl_lo[TL_RANGES] __attribute__((tls_model("initial-exec")));
static __thread uintptr_t tl_hi[TL_RANGES] __attribute__((tls_model("initial-exec")));

/*
 * A remembered range can hold another mapping later: glibc trims its heap
 * with brk and grows it again, frees a large chunk with munmap and maps
 * another at the same place, all internally. That new mapping is not
 * registered, and a thread that still remembered the range would let its
 * blocks through uncounted. The handler bumps known_gen at each UNMAP and
 * REMAP it takes, before it looks at what is mapped there now (and
 * registers it); a thread that sees the count move forgets every range.
 * Either the new mapping was made before the handler looked (it registers
 * it) or after, and then, ordered by the mmap lock, the thread sees the new
 * count.
 */
static _Atomic uint64_t known_gen;
static __thread uint64_t tl_gen __attribute__((tls_model("initial-exec")));

static inline void tl_check_gen(void)
{
	uint64_t g = atomic_load_explicit(&known_gen, memory_order_acquire);

	if (__builtin_expect(g != tl_gen, 0)) {
		memset(tl_lo, 0, sizeof(tl_lo));
		memset(tl_hi, 0, sizeof(tl_hi));
		tl_gen = g;
	}
}

static inline bool tl_known(uintptr_t a, uintptr_t e)
{
	for (unsigned i = 0; i < TL_RANGES; i++)
		if (a >= tl_lo[i] && e <= tl_hi[i])
			return true;
	return false;
}

/* [lo, hi) becomes the most recent, joined with every remembered range
 * it touches; when nothing was joined, the oldest is forgotten. */
static void tl_remember(uintptr_t lo, uintptr_t hi)
{
	unsigned n = TL_RANGES - 1; /* the slots kept below slot 0 */

	for (unsigned i = 0; i < TL_RANGES; i++) {
		if (tl_lo[i] >= tl_hi[i] || tl_hi[i] < lo || tl_lo[i] > hi)
			continue;
		lo = tl_lo[i] < lo ? tl_lo[i] : lo;
		hi = tl_hi[i] > hi ? tl_hi[i] : hi;
		tl_lo[i] = tl_hi[i] = 0; /* joined: its slot is free */
	}
	/* Compact the others (most recent first) into slots 1..n. */
	uintptr_t keep_lo[TL_RANGES], keep_hi[TL_RANGES];
	unsigned k = 0;
	for (unsigned i = 0; i < TL_RANGES && k < n; i++)
		if (tl_lo[i] < tl_hi[i]) {
			keep_lo[k] = tl_lo[i];
			keep_hi[k++] = tl_hi[i];
		}
	tl_lo[0] = lo;
	tl_hi[0] = hi;
	for (unsigned i = 0; i < n; i++) {
		tl_lo[i + 1] = i < k ? keep_lo[i] : 0;
		tl_hi[i + 1] = i < k ? keep_hi[i] : 0;
	}
}

/* The VMA around addr, found with a malloc block [bs, be) in it (page
 * aligned; empty if none): registered (exact mode) or admitted (estimate
 * mode: what of it is not known yet). */
static void register_found(uintptr_t addr, uintptr_t bs, uintptr_t be)
{
	mgi_vma_t v;

	if ((!active() && !mgi_agent_deferred()) || mgi_vma_query(mgi_maps_fd, addr, &v) != 0 ||
	    v.start > addr)
		return;
	if (!mgi_vma_is_anon_private(&v) || !(v.flags & MGI_VMA_WRITE) ||
	    mgi_agent_excluded(v.start, v.end))
		return;
	tl_remember(v.start, v.end);
	if (mgi_agent_deferred()) {
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

void mgi_interpose_unmapped(uintptr_t start)
{
	atomic_fetch_add_explicit(&known_gen, 1, memory_order_seq_cst);
	/* Estimate mode admits new memory on its own tick, and its admission
	 * may wait for the handler, which is the caller. */
	if (!mgi_est_on())
		register_found(start, 0, 0);
}

static inline void check_block(void *p, size_t size)
{
	uintptr_t a = (uintptr_t)p, bs = a & ~(PAGE - 1), be = page_up(a + size);

	if (!p)
		return;
	tl_check_gen();
	if (tl_known(a, a + size) || (!active() && !mgi_agent_deferred()))
		return;
	register_found(a, bs, be);
	if (size > 0 && !tl_known(a, a + size))
		register_found(a + size - 1, bs, be); /* a block over two VMAs */
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
 * from a small static buffer, which free() then recognizes and ignores.
 * (Kept across fork, with the next definitions: the child's pointers.) */
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

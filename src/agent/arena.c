/* arena.c - a size-class allocator inside one reserved, unmanaged range. */
#include "arena.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "os.h"

#define COMMIT_STEP (1UL << 20)
#define PAGE MGI_PAGE_SIZE

static unsigned class_of(size_t bytes)
{
	unsigned c = 4; /* 16 bytes minimum */
	while (((size_t)1 << c) < bytes)
		c++;
	return c;
}

int mgi_arena_init(mgi_arena_t *a, size_t bytes)
{
	void *p = mgi_raw_mmap(NULL, bytes, PROT_NONE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	memset(a, 0, sizeof(*a));
	if (p == MAP_FAILED)
		return -ENOMEM;
	a->base = a->bump = a->committed = (uintptr_t)p;
	a->end = a->base + bytes;
	return 0;
}

void mgi_arena_destroy(mgi_arena_t *a)
{
	if (a->base)
		mgi_raw_munmap((void *)a->base, a->end - a->base);
	memset(a, 0, sizeof(*a));
}

void *mgi_arena_alloc(mgi_arena_t *a, size_t bytes)
{
	unsigned c = class_of(bytes ? bytes : 1);
	size_t size = (size_t)1 << c;
	size_t align = size < PAGE ? 16 : PAGE;
	uintptr_t p;

	if (c >= sizeof(a->free_lists) / sizeof(a->free_lists[0]))
		return NULL;
	if (a->free_lists[c]) {
		void *blk = a->free_lists[c];
		a->free_lists[c] = *(void **)blk;
		memset(blk, 0, size < PAGE ? size : sizeof(void *));
		return blk;
	}
	p = (a->bump + align - 1) & ~(uintptr_t)(align - 1);
	if (p + size > a->end || p + size < p)
		return NULL;
	while (p + size > a->committed) {
		size_t step = COMMIT_STEP;
		if (a->committed + step > a->end)
			step = a->end - a->committed;
		if (mgi_raw_mprotect((void *)a->committed, step, PROT_READ | PROT_WRITE) != 0)
			return NULL;
		a->committed += step;
	}
	a->bump = p + size;
	return (void *)p; /* fresh pages are zero */
}

void mgi_arena_free(mgi_arena_t *a, void *p, size_t bytes)
{
	unsigned c;

	if (!p)
		return;
	c = class_of(bytes ? bytes : 1);
	/* Large blocks give their pages back and come back zeroed; small
	 * ones are zeroed again at allocation. */
	if (((size_t)1 << c) >= PAGE)
		mgi_raw_madvise(p, (size_t)1 << c, MADV_DONTNEED);
	*(void **)p = a->free_lists[c];
	a->free_lists[c] = p;
}

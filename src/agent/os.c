/* os.c - the agent's own OS calls: userfaultfd ioctls, PROCMAP_QUERY, raw memory syscalls (the shared ones are in src/os). */
#include "os.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif

/* Debian 12's uapi headers predate these (pitfall 6 of the design). */
#ifndef PROCMAP_QUERY
struct procmap_query {
	uint64_t size;
	uint64_t query_flags;
	uint64_t query_addr;
	uint64_t vma_start;
	uint64_t vma_end;
	uint64_t vma_flags;
	uint64_t vma_page_size;
	uint64_t vma_offset;
	uint64_t inode;
	uint32_t dev_major;
	uint32_t dev_minor;
	uint32_t vma_name_size;
	uint32_t build_id_size;
	uint64_t vma_name_addr;
	uint64_t build_id_addr;
};
#define PROCMAP_QUERY _IOWR('f', 17, struct procmap_query)
#define PROCMAP_QUERY_COVERING_OR_NEXT_VMA 0x10
#endif

#ifndef UFFD_FEATURE_MOVE
#define UFFD_FEATURE_MOVE (1ULL << 16)
struct uffdio_move {
	uint64_t dst;
	uint64_t src;
	uint64_t len;
	uint64_t mode;
	int64_t move;
};
#define _UFFDIO_MOVE (0x05)
#define UFFDIO_MOVE _IOWR(UFFDIO, _UFFDIO_MOVE, struct uffdio_move)
#endif
#ifndef UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES
#define UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES ((uint64_t)1 << 1)
#endif

int mgi_uffd_register(int uffd, uintptr_t start, size_t len)
{
	struct uffdio_register r = {
		.range = {.start = start, .len = len},
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};
	return ioctl(uffd, UFFDIO_REGISTER, &r) == 0 ? 0 : -errno;
}

int mgi_uffd_unregister(int uffd, uintptr_t start, size_t len)
{
	struct uffdio_range r = {.start = start, .len = len};
	return ioctl(uffd, UFFDIO_UNREGISTER, &r) == 0 ? 0 : -errno;
}

int mgi_uffd_register_wp(int uffd, uintptr_t start, size_t len)
{
	struct uffdio_register r = {
		.range = {.start = start, .len = len},
		.mode = UFFDIO_REGISTER_MODE_WP,
	};
	return ioctl(uffd, UFFDIO_REGISTER, &r) == 0 ? 0 : -errno;
}

int mgi_uffd_move(int uffd, uintptr_t dst, uintptr_t src, size_t len, bool allow_holes,
		  size_t *moved)
{
	struct uffdio_move m = {
		.dst = dst, .src = src, .len = len,
		.mode = allow_holes ? UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES : 0,
	};
	int rc = ioctl(uffd, UFFDIO_MOVE, &m) == 0 ? 0 : -errno;

	*moved = m.move > 0 ? (size_t)m.move : 0;
	if (rc == 0)
		*moved = len;
	return rc;
}

int mgi_uffd_copy(int uffd, uintptr_t dst, const void *src, size_t len, size_t *copied)
{
	struct uffdio_copy c = {
		.dst = dst, .src = (uintptr_t)src, .len = len, .mode = 0, .copy = 0,
	};
	int rc = ioctl(uffd, UFFDIO_COPY, &c) == 0 ? 0 : -errno;

	*copied = c.copy > 0 ? (size_t)c.copy : 0;
	return rc;
}

int mgi_uffd_wake(int uffd, uintptr_t start, size_t len)
{
	struct uffdio_range r = {.start = start, .len = len};
	return ioctl(uffd, UFFDIO_WAKE, &r) == 0 ? 0 : -errno;
}

int mgi_vma_query(int mapsfd, uintptr_t addr, mgi_vma_t *out)
{
	struct procmap_query q;

	memset(&q, 0, sizeof(q));
	memset(out, 0, sizeof(*out));
	q.size = sizeof(q);
	q.query_flags = PROCMAP_QUERY_COVERING_OR_NEXT_VMA;
	q.query_addr = addr;
	q.vma_name_addr = (uintptr_t)out->name;
	q.vma_name_size = sizeof(out->name);
	if (ioctl(mapsfd, PROCMAP_QUERY, &q) != 0) {
		int err = errno;
		if (err == ENAMETOOLONG) { /* a long path: we only need "not anon" */
			q.vma_name_size = 0;
			q.vma_name_addr = 0;
			if (ioctl(mapsfd, PROCMAP_QUERY, &q) != 0)
				return -errno;
		} else {
			return -err;
		}
	}
	out->start = q.vma_start;
	out->end = q.vma_end;
	out->flags = q.vma_flags;
	out->inode = q.inode;
	out->dev_major = q.dev_major;
	out->dev_minor = q.dev_minor;
	return 0;
}

/*
 * In a sanitizer build, a raw mmap is unseen by the runtime, whose shadow
 * of those addresses may still describe what was there before: in a
 * forked child, the parent's agent threads' stacks (the arena, unmapped by
 * the child's start) keep the redzones of the frames those threads were
 * in at the fork, and a new mapping there (the trace ring) was reported as
 * a stack-buffer-overflow by the child's handler (which then waited for
 * ever on managed memory inside the report: the 3-deep fork chain's hang).
 * New memory is addressable: its shadow is cleared, whole shadow pages
 * given back (__asan_unpoison_memory_region writes every shadow byte: for
 * the store's reservation, a gigabyte of it, and the kernel killed the
 * process at its memory limit).
 */
#if defined(__SANITIZE_ADDRESS__)
/* Not instrumented, and no memset (intercepted: it checks the shadow of
 * what it writes, and the shadow's own shadow is the protected gap). */
__attribute__((no_sanitize_address)) static void shadow_zero(uintptr_t from, uintptr_t to)
{
	for (volatile unsigned char *b = (volatile unsigned char *)from; b < (unsigned char *)to; b++)
		*b = 0;
}
#endif

static void shadow_clear(void *p, size_t len)
{
#if defined(__SANITIZE_ADDRESS__)
	size_t scale, offset;

	__asan_get_shadow_mapping(&scale, &offset);
	uintptr_t beg = ((uintptr_t)p >> scale) + offset;
	uintptr_t end = (((uintptr_t)p + len + (1UL << scale) - 1) >> scale) + offset;
	uintptr_t pbeg = (beg + 4095) & ~(uintptr_t)4095, pend = end & ~(uintptr_t)4095;

	if (pbeg >= pend) {
		shadow_zero(beg, end);
		return;
	}
	shadow_zero(beg, pbeg);
	shadow_zero(pend, end);
	syscall(SYS_madvise, pbeg, pend - pbeg, MADV_DONTNEED);
#else
	(void)p;
	(void)len;
#endif
}

void *mgi_raw_mmap(void *addr, size_t len, int prot, int flags, int fd, long off)
{
	void *p = (void *)syscall(SYS_mmap, addr, len, prot, flags, fd, off);

	if (p != MAP_FAILED)
		shadow_clear(p, len);
	return p;
}

int mgi_raw_munmap(void *addr, size_t len)
{
	return syscall(SYS_munmap, addr, len) == 0 ? 0 : -errno;
}

int mgi_raw_mprotect(void *addr, size_t len, int prot)
{
	return syscall(SYS_mprotect, addr, len, prot) == 0 ? 0 : -errno;
}

int mgi_raw_madvise(void *addr, size_t len, int advice)
{
	return syscall(SYS_madvise, addr, len, advice) == 0 ? 0 : -errno;
}

void mgi_write_str(int fd, const char *s)
{
	size_t len = strlen(s);

	while (len > 0) {
		ssize_t n = write(fd, s, len);
		if (n <= 0) {
			if (n < 0 && errno == EINTR)
				continue;
			return;
		}
		s += n;
		len -= (size_t)n;
	}
}

uint64_t mgi_mincore_count(uintptr_t start, uintptr_t end, unsigned char *vec, size_t vec_pages)
{
	uint64_t n = 0;

	for (uintptr_t a = start; a < end;) {
		size_t pages = (end - a) / MGI_PAGE_SIZE;
		if (pages > vec_pages)
			pages = vec_pages;
		if (mincore((void *)a, pages * MGI_PAGE_SIZE, vec) == 0)
			for (size_t i = 0; i < pages; i++)
				n += vec[i] & 1;
		a += pages * MGI_PAGE_SIZE;
	}
	return n;
}

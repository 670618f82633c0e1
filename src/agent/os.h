/* os.h - the agent's own OS calls: userfaultfd ioctls, VMA queries, raw memory calls (the shared ones are in src/os). */
#ifndef MGI_AGENT_OS_H
#define MGI_AGENT_OS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Contract: every function returns 0 (or a count) on success and a negative
 * errno on failure; none allocates from the C heap (the fault handler calls
 * them and must never touch managed memory); none retries on its own unless
 * it says so.
 */


/* mgi_uffd_open, the probe the CLI shares, is in src/os/oslayer.h. */
#include "oslayer.h"

/* Resident pages in [start, end) by mincore, vec_pages at a time into vec
 * (unmapped holes count none). */
uint64_t mgi_mincore_count(uintptr_t start, uintptr_t end, unsigned char *vec, size_t vec_pages);

/* Registers [start, start + len) for missing-page faults. */
int mgi_uffd_register(int uffd, uintptr_t start, size_t len);

/* Registers [start, start + len) in write-protect mode only: a missing page
 * there is filled by the kernel as usual (never a fault to read), and the
 * range can be the destination of UFFDIO_MOVE through this uffd. */
/* Unregisters [start, start + len): faults there are the kernel's again. */
int mgi_uffd_unregister(int uffd, uintptr_t start, size_t len);

int mgi_uffd_register_wp(int uffd, uintptr_t start, size_t len);

/*
 * Moves len bytes of pages from src to dst (UFFDIO_MOVE; dst registered on
 * this uffd and empty; src anywhere, but a page shared with another process
 * or pinned cannot move). With allow_holes, holes in src are skipped (dst
 * stays a hole there); without, a hole stops the move with -ENOENT. Returns
 * 0 when all moved; otherwise the negative errno (-EAGAIN: the address
 * space is changing, read the events first; -EBUSY: a shared or pinned
 * page; -EEXIST: dst populated), with *moved the bytes moved before it
 * stopped.
 */
int mgi_uffd_move(int uffd, uintptr_t dst, uintptr_t src, size_t len, bool allow_holes,
		  size_t *moved);

/*
 * Resolves by copying len bytes of src to dst (page aligned) and waking the
 * faulting threads. Returns 0 when all was copied; otherwise the negative
 * errno, with *copied the bytes copied before it stopped (a partial copy
 * reports -EAGAIN with *copied > 0; -EAGAIN with *copied == 0 means the
 * address space is changing and the caller must read events and retry).
 */
int mgi_uffd_copy(int uffd, uintptr_t dst, const void *src, size_t len, size_t *copied);

/* Wakes threads waiting on faults in [start, start + len). */
int mgi_uffd_wake(int uffd, uintptr_t start, size_t len);

typedef struct mgi_vma {
	uintptr_t start, end;
	uint64_t flags;   /* MGI_VMA_* */
	uint64_t inode;
	uint32_t dev_major, dev_minor;
	char name[64];    /* "[heap]", "[stack]", a path, or "" */
} mgi_vma_t;

#define MGI_VMA_READ 0x1
#define MGI_VMA_WRITE 0x2
#define MGI_VMA_EXEC 0x4
#define MGI_VMA_SHARED 0x8

/*
 * The VMA covering addr, or if none the next one above it (PROCMAP_QUERY,
 * Linux 6.11+). mapsfd is an open /proc/self/maps. -ENOENT past the last.
 */
int mgi_vma_query(int mapsfd, uintptr_t addr, mgi_vma_t *out);

/* Anonymous private and not backed by a file or device. */
static inline int mgi_vma_is_anon_private(const mgi_vma_t *v)
{
	return !(v->flags & MGI_VMA_SHARED) && v->inode == 0 && v->dev_major == 0 &&
	       v->dev_minor == 0;
}

/* mmap/munmap/mprotect/madvise by raw syscall, bypassing memgrp's own
 * interposition (agent memory must never be registered). */
void *mgi_raw_mmap(void *addr, size_t len, int prot, int flags, int fd, long off);
int mgi_raw_munmap(void *addr, size_t len);
int mgi_raw_mprotect(void *addr, size_t len, int prot);
int mgi_raw_madvise(void *addr, size_t len, int advice);

/* Writes a whole string to fd, ignoring errors (logging from any thread). */
void mgi_write_str(int fd, const char *s);

#endif

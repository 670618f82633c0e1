/* exclude.c - what the agent never registers: its arena and ranges, the handler's objects and their data. */
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "account.h"
#include "agent.h"
#include "pageout.h"
#include "options.h"
#include "victim.h"
#include "os.h"
#include "proto.h"
#include "size.h"
#include "trace.h"
#include "start.h"

/* Loaded ELF objects' extents: the anonymous bss after their data must
 * not be registered (the handler itself uses libc's). Kept in a forked
 * child (the same objects), found anew at every full start. */
static mgi_range_t elf[MGI_ELF_RANGES_MAX];
static unsigned nelf;
/* The agent's own ranges outside the arena (staging area, store, beacon):
 * never registered for the application. */
static mgi_range_t own[MGI_OWN_RANGES_MAX];
static unsigned nown;

bool mgi_agent_excluded(uintptr_t start, uintptr_t end)
{
	if (start < mgi_arena.end && end > mgi_arena.base)
		return true;
	for (unsigned i = 0; i < nown; i++)
		if (start < own[i].end && end > own[i].start)
			return true;
	for (unsigned i = 0; i < nelf; i++)
		if (start < elf[i].end && end > elf[i].start)
			return true;
	return false;
}

int mgi_own_range(uintptr_t start, size_t len)
{
	if (nown == MGI_OWN_RANGES_MAX)
		return -ENOSPC;
	own[nown++] = (mgi_range_t){start, start + len};
	return 0;
}

void mgi_exclude_next(uintptr_t cur, uintptr_t *stop, uintptr_t *skip_to, bool *is_own)
{
	const mgi_range_t arena = {mgi_arena.base, mgi_arena.end};
	int whose = 0;

	*skip_to = 0;
	/* (the objects, the arena, then the own ranges: the last covering
	 * one says whose) */
	mgi_ranges_meet(elf, nelf, 0, cur, stop, skip_to, &whose);
	mgi_ranges_meet(&arena, 1, 0, cur, stop, skip_to, &whose);
	mgi_ranges_meet(own, nown, 1, cur, stop, skip_to, &whose);
	*is_own = whose == 1;
}

void mgi_exclude_child_reset(void)
{
	void *keep = NULL, *keep2 = NULL;
	size_t bytes;

	/* (a store its parent's agent let it keep, and its file meta) */
	if (mgi_kept_store(&keep, NULL))
		keep2 = mgi_kept_meta(&bytes);
	else
		keep = NULL;
	for (unsigned i = 0; i < nown; i++) {
		void *at = (void *)own[i].start;
		if (keep && (at == keep || at == keep2))
			continue;
		mgi_raw_munmap(at, own[i].end - own[i].start);
	}
	nown = 0;
}

/* Objects whose code the fault handler runs: their bss (anonymous pages
 * right after their data) must never be registered, or the handler could
 * fault on memory only it can resolve. Every other object's bss (a
 * program's static arrays) is application memory and is managed. */
static bool handler_uses(const char *path)
{
	static const char *const names[] = {
		"libc.so", "ld-linux", "libmemgrp-agent", /* the handler's own code */
		"liblz4", "libzstd", /* the store's codecs, run by the handler */
		"libasan", "libubsan", "libtsan", "libclang_rt", /* sanitizer builds */
	};
	const char *base = strrchr(path, '/');

	base = base ? base + 1 : path;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strstr(base, names[i]))
			return true;
	return false;
}

/* Extents of the objects the handler uses, from their PT_LOAD segments. */
static int collect_elf(struct dl_phdr_info *info, size_t size, void *arg)
{
	uintptr_t lo = UINTPTR_MAX, hi = 0;

	(void)size;
	(void)arg;
	if (!info->dlpi_name || !handler_uses(info->dlpi_name))
		return 0;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_LOAD)
			continue;
		uintptr_t s = info->dlpi_addr + ph->p_vaddr, e = s + ph->p_memsz;
		if (s < lo)
			lo = s;
		if (e > hi)
			hi = e;
	}
	if (hi > lo && nelf < MGI_ELF_RANGES_MAX) {
		elf[nelf].start = lo & ~(MGI_PAGE_SIZE - 1);
		elf[nelf].end = (hi + MGI_PAGE_SIZE - 1) & ~(MGI_PAGE_SIZE - 1);
		nelf++;
	}
	return 0;
}

#if defined(__x86_64__)
#define MGI_R_GLOB_DAT R_X86_64_GLOB_DAT
#elif defined(__aarch64__)
#define MGI_R_GLOB_DAT R_AARCH64_GLOB_DAT
#endif

/* A dynamic-section address: glibc rebases some entries in place, others
 * stay relative to the object's load address. */
static uintptr_t dyn_addr(const struct dl_phdr_info *info, ElfW(Addr) p)
{
	return p < info->dlpi_addr ? info->dlpi_addr + p : p;
}

/*
 * Data the handler's objects reach through their GOT may live outside
 * them: a program linked against a shared runtime gets copy relocations,
 * so ASan's __asan_option_detect_stack_use_after_return (read in every
 * instrumented function's prologue) or libc's environ sit in the
 * executable's bss, which is application memory and gets registered. Were
 * such a page evicted, the handler would fault on a page only it can
 * bring back. Every writable GLOB_DAT target of the handler's objects is
 * excluded, page by page (the symbol's size when the object spans more).
 */
static int exclude_got_targets(struct dl_phdr_info *info, size_t size, void *arg)
{
#ifdef MGI_R_GLOB_DAT
	const ElfW(Dyn) *dyn = NULL;
	const ElfW(Rela) *rela = NULL;
	const ElfW(Sym) *symtab = NULL;
	size_t relasz = 0;

	(void)size;
	(void)arg;
	if (!info->dlpi_name || !handler_uses(info->dlpi_name))
		return 0;
	for (int i = 0; i < info->dlpi_phnum; i++)
		if (info->dlpi_phdr[i].p_type == PT_DYNAMIC)
			dyn = (const ElfW(Dyn) *)(info->dlpi_addr + info->dlpi_phdr[i].p_vaddr);
	for (; dyn && dyn->d_tag != DT_NULL; dyn++) {
		if (dyn->d_tag == DT_RELA)
			rela = (const ElfW(Rela) *)dyn_addr(info, dyn->d_un.d_ptr);
		else if (dyn->d_tag == DT_RELASZ)
			relasz = dyn->d_un.d_val;
		else if (dyn->d_tag == DT_SYMTAB)
			symtab = (const ElfW(Sym) *)dyn_addr(info, dyn->d_un.d_ptr);
	}
	if (!rela || !symtab)
		return 0;
	for (size_t i = 0; i < relasz / sizeof(*rela); i++) {
		if (ELF64_R_TYPE(rela[i].r_info) != MGI_R_GLOB_DAT)
			continue;
		uintptr_t target = *(const uintptr_t *)(info->dlpi_addr + rela[i].r_offset);
		size_t len = symtab[ELF64_R_SYM(rela[i].r_info)].st_size;
		mgi_vma_t v;

		if (!target || mgi_agent_excluded(target, target + 1) ||
		    mgi_vma_query(mgi_maps_fd, target, &v) != 0 || v.start > target ||
		    !(v.flags & MGI_VMA_WRITE))
			continue;
		if (nelf >= MGI_ELF_RANGES_MAX)
			break;
		elf[nelf].start = target & ~(MGI_PAGE_SIZE - 1);
		elf[nelf].end =
			(target + (len ? len : 1) + MGI_PAGE_SIZE - 1) & ~(MGI_PAGE_SIZE - 1);
		nelf++;
	}
#else
	(void)info;
	(void)size;
	(void)arg;
#endif
	return 0;
}

/*
 * The starting thread's control block (struct pthread, with its static TLS
 * and rseq area) lives in an anonymous mapping of ld.so's, beside the
 * loaded objects (or, in a forked child, at the top of that thread's
 * stack). The handler's libc touches it, and so does the kernel on every
 * return to user space (rseq): were it evicted, the handler would wait on
 * itself. Excluded like the objects' bss: the VMA holding pthread_self().
 */
static void exclude_own_tcb(void)
{
	uintptr_t self = (uintptr_t)pthread_self();
	mgi_vma_t v;

	if (mgi_vma_query(mgi_maps_fd, self, &v) != 0 || v.start > self ||
	    nelf >= MGI_ELF_RANGES_MAX)
		return;
	/* a thread's stack mapping can be large: keep only its top, where
	 * the control block and static TLS are */
	if (v.end - v.start > (256UL << 10) && self - v.start > (128UL << 10))
		v.start = (self - (128UL << 10)) & ~(MGI_PAGE_SIZE - 1);
	elf[nelf].start = v.start;
	elf[nelf].end = v.end;
	nelf++;
}

void mgi_exclude_objects(void)
{
	nelf = 0;
	dl_iterate_phdr(collect_elf, NULL);
}

void mgi_exclude_handler_data(void)
{
	dl_iterate_phdr(exclude_got_targets, NULL);
	exclude_own_tcb();
}

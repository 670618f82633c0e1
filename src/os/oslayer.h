/* oslayer.h - the OS calls the agent, the manager and the CLI share: pidfds, /proc status, userfaultfd probe. */
#ifndef MGI_OSLAYER_H
#define MGI_OSLAYER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "page.h"
#include "procstatus.h"

/*
 * Contract, for every function here:
 *  - returns 0 (or a descriptor, a count) on success and a negative errno on
 *    failure; never exits, never retries on its own unless it says so;
 *  - allocates nothing from the C heap and keeps no state: the agent runs
 *    inside other programs, and what its fault handler calls must not touch
 *    the memory it manages. Functions marked "signal-safe" make only
 *    async-signal-safe calls (open, read, close, syscall); the others say
 *    what they use beyond;
 *  - names the kernel it needs; a fallback syscall number is defined once,
 *    in oslayer.c, for libc headers that predate the call.
 * Pure parsing is in src/core (procstatus.c), fuzzed there.
 */

/* The page size memgrp counts in (MGI_PAGE_SIZE). Returns 0 when the
 * kernel's is the same, else -ENOTSUP (memgrp counts 4 KiB pages only).
 * Signal-safe. */
int mgi_os_page_size_check(void);

/* CLOCK_MONOTONIC in nanoseconds: the one clock the manager's timeouts,
 * ages and rates are measured on. Signal-safe. */
uint64_t mgi_os_now_ns(void);

/* A pidfd for pid (Linux 5.3+), close-on-exec. Returns the fd or -errno.
 * Signal-safe. */
int mgi_pidfd_open(pid_t pid);

/* Sends sig (0: only checks the process is still there) through a pidfd
 * (Linux 5.1+): no pid reuse can redirect it. Returns 0 or -errno.
 * Signal-safe. */
int mgi_pidfd_send_signal(int pidfd, int sig);

/* Takes a killed process's memory back at once (process_mrelease, Linux
 * 5.15+). Returns 0 or -errno (best effort: callers may ignore it).
 * Signal-safe. */
int mgi_pidfd_mrelease(int pidfd);

/*
 * Reads and parses PROC/PID/status (proc: "/proc", or a test's copy of
 * it; NULL means "/proc"). Reads at most 4 KiB into a stack buffer: the
 * fields memgrp reads are in the first lines. Returns 0, or -errno (-ENOENT:
 * no such process; -EINVAL: nothing recognisable). Signal-safe.
 */
int mgi_proc_status_read(const char *proc, pid_t pid, mgi_proc_status_t *out);

/*
 * Reads PROC/PID/smaps whole (in 16 KiB chunks, a line at a time into
 * mgi_smaps_line: a line longer than a chunk is cut there, only its start
 * matters) and sums what its agent may have charged (procstatus.h).
 * Returns 0, or -errno (-ENOENT: no such process). Not signal-safe in
 * cost: the kernel walks the page tables of every VMA (grant.c calls it
 * only when a refused grant has a claim judged).
 */
int mgi_proc_smaps_read(const char *proc, pid_t pid, mgi_smaps_t *out);

/* The same for PROC/PID/stat (at most 1 KiB read): 0, or -errno (-ENOENT:
 * no such process; -EINVAL: not parsable). Signal-safe. */
int mgi_pid_stat_read(const char *proc, pid_t pid, mgi_pid_stat_t *out);

/* How long ago the process of st started, in ms (UINT64_MAX if unknown). */
uint64_t mgi_pid_age_ms(const mgi_pid_stat_t *st);

/*
 * Opens a non-blocking, close-on-exec userfaultfd able to see kernel-mode
 * faults, and negotiates EVENT_REMOVE, EVENT_UNMAP, EVENT_REMAP, MOVE and,
 * if the process may (CAP_SYS_PTRACE), EVENT_FORK: *fork_events (if not
 * NULL) says whether it got it. Refuses (-ENOTSUP) a kernel whose page
 * size is not MGI_PAGE_SIZE. On failure writes one line naming the
 * cause and the remedy into why (snprintf, strerror: call it at start-up,
 * not from a handler). The CLI calls it as a probe before starting work.
 * When this process may not turn on fork events itself, broker (if not
 * NULL) is asked to do UFFDIO_API on a new one with the given features
 * (the agent's manager may: see src/daemon/manager.c on_uffd_features).
 */
int mgi_uffd_open(bool *fork_events, int (*broker)(int fd, uint64_t features), char *why,
		  size_t whylen);
/* /dev/userfaultfd as the manager lent it (WELCOME): tried when this
 * process may not open a userfaultfd itself. Kept until exec. */
void mgi_uffd_lend(int devfd);

/* Whether the ELF file at path has no PT_INTERP (a static binary: no
 * dynamic linker, so LD_PRELOAD never loads the agent): 1 static, 0
 * dynamic, -errno if unreadable or not a 64-bit ELF. */
int mgi_os_elf_static(const char *path);

/* Reads a small file (a /proc or cgroup file) into buf, NUL-terminated:
 * its length, or -errno. One read: what does not fit is cut. */
int mgi_os_read_small(const char *path, char *buf, size_t size);

/* Whether fd is an anonymous inode of that kind ("eventfd", "userfaultfd":
 * its /proc/self/fd link reads "anon_inode:[kind]"). Not signal-safe:
 * the path is made with snprintf. */
bool mgi_os_fd_is(int fd, const char *kind);

/* The file fd is open on, opened again through /proc/self/fd with flags
 * (close-on-exec added): a new open file description, so its access mode
 * is flags' and the file's permissions are checked again (a dup would keep
 * fd's). The fd, or -errno. Not signal-safe: the path is made with
 * snprintf. */
int mgi_os_reopen(int fd, int flags);

#endif

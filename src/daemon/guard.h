/* guard.h - the manager survives a truncated accounting file: SIGBUS inside a watched mapping is patched over. */
#ifndef MGI_GUARD_H
#define MGI_GUARD_H

#include <stdbool.h>
#include <stddef.h>

/*
 * A file in memgrpd's state directory cannot be sealed, and every agent of
 * a group holds a writable fd of its accounting part: a process that
 * truncates it would have the manager's next read of the cut pages raise
 * SIGBUS, which kills the daemon. The guard's handler maps anonymous zero
 * pages over the cut part of a watched mapping (from the faulting page to
 * its end) and flags it; the faulting read then runs again and reads
 * zeros. The manager's loop (mgi_tree_audit) takes the flag, restores the
 * file's size and maps the file again (mgi_tree_repair).
 *
 * Why this is sound: SIGBUS for a file mapping beyond its end is
 * synchronous, raised on the thread that read, at the instruction that
 * read; nothing was half done but that load or store. The handler calls
 * only mmap (a raw system call in glibc: no lock, no allocation, so safe
 * in a signal handler in practice though POSIX does not list it) and
 * writes atomics. A store the manager made to a cut page lands in the
 * anonymous page and is lost when the file is mapped again: the file lost
 * the page's figures anyway (the truncation zeroed them for everyone).
 * A SIGBUS anywhere else goes to the handler installed before (a
 * sanitizer's), else kills as it would have.
 */

#define MGI_GUARD_MAX 512 /* watched mappings: one per group, with room */

/* Installs the SIGBUS handler (once; later calls do nothing). Returns 0
 * or -errno. */
int mgi_guard_install(void);

/* Watches [start, start + len) (page-aligned). Returns 0, or -ENOSPC when
 * MGI_GUARD_MAX mappings are watched already (then unprotected). */
int mgi_guard_watch(void *start, size_t len);

/* Stops watching the mapping that starts at start (before it is unmapped). */
void mgi_guard_forget(void *start);

/* Whether a read in the mapping at start faulted since the last call (and
 * was patched over); clears the flag. */
bool mgi_guard_take(void *start);

#endif

/* cow.h - a forked child's frames shared copy-on-write with its parent: charged once, at the first write (cow.c). */
#ifndef MGI_AGENT_COW_H
#define MGI_AGENT_COW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent.h"

/* A forked child's agent starts over: what follows applies to it. */
void mgi_cow_child_start(void);
/* Registers [start, start + len) on the handler's uffd: with write-protect
 * mode too in a forked child. 0 or -errno. */
int mgi_cow_register(uintptr_t start, size_t len);
/* The present pages of [start, end) just learned that this process shares
 * with another: write-protected and not charged. Returns how many (the
 * caller charges the rest). Handler thread. */
uint64_t mgi_cow_learn(uintptr_t start, uintptr_t end);
/* n present pages of [start, end) are gone (unmapped, discarded): returns
 * how many of them were charged (the owed ones were not). */
uint64_t mgi_cow_forget(uintptr_t start, uintptr_t end, uint64_t n);
/* The owed pages of [start, end) become ordinary ones: charged now. */
void mgi_cow_settle(uintptr_t start, uintptr_t end);
/* A write-protect fault at page (handler thread): charged, then un-protected. */
enum mgi_resolved mgi_cow_fault(uintptr_t page, uint64_t *since);
/* The eviction clock's run of n pages at run: returns how many leading
 * pages to pass over (owed: evicting one frees nothing of the group's), or
 * 0 with *n clipped to the pages before the first owed one. */
size_t mgi_cow_clip(uintptr_t run, size_t *n);
/* The handler's wait: at most until the next check of owed pages. */
int mgi_cow_timeout(int timeout_ms);
/* Owed pages that became this process's alone (the other side wrote its
 * copy, or exited) are charged: checked every few ms while any is owed. */
void mgi_cow_tick(void);
/* Pages owed now (tests, stats). */
uint64_t mgi_cow_owed(void);

#endif

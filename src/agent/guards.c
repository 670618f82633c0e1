/* guards.c - the event-order guards: ranges just given back (removed) and ranges an mremap vacated. */
#include <errno.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "account.h"
#include "agent.h"
#include "os.h"
#include "proto.h"
#include "recent.h"
#include "size.h"
#include "trace.h"
#include "fault.h"


/*
 * Ranges the application just gave back (MADV_DONTNEED, MADV_REMOVE). The
 * kernel queues UFFD_EVENT_REMOVE, waits until we have read it, and only
 * then zaps the range: for a moment after we have followed the event the
 * old pages may still be there. A move out of the range then would keep
 * old contents as evicted data (to come back where the application must
 * read zeros), and a copy into it would meet an old page and count it as
 * present just before it goes. So for a while the handler leaves such a
 * range alone: no eviction there, no fault-around into it, and an old page
 * met there is not counted.
 */
#define REMOVED_RECENT 16
#define REMOVED_QUARANTINE_NS (50ULL * 1000 * 1000)
static mgi_recent_t removed;

void mgi_guard_note_removed(uintptr_t start, uintptr_t end)
{
	mgi_recent_note(&removed, start, end, mgi_now_ns());
}

bool mgi_recently_removed(uintptr_t start, uintptr_t end)
{
	return mgi_recent_overlaps(&removed, start, end, mgi_now_ns(), REMOVED_QUARANTINE_NS);
}

/*
 * Ranges an mremap moved a mapping away from, whose UNMAP is still to come.
 * The kernel unmaps the old range under the mmap lock; then, the lock
 * dropped, it queues REMAP, waits until we have read it, and only then
 * queues UNMAP for the old range. Meanwhile another thread's mremap can
 * move a mapping into the vacated range, and its REMAP comes first. Taken
 * at its word, the late UNMAP dropped the newcomer's evicted pages, which
 * the application then read as zeros (tests/progs/stress.c, traced on
 * 2026-11-24: "after mremap, byte 655360"). The REMAP has already taken
 * everything held for the old range to its new place, so that UNMAP has
 * nothing of the old mapping left to drop: it is skipped (the UNMAP
 * claims the vacated entry). An entry not claimed within VACATED_NS
 * (MREMAP_DONTUNMAP queues no UNMAP) lapses. Each moving thread has at
 * most one entry pending (it waits until its UNMAP is read): this many
 * threads moving at once are covered.
 */
#define VACATED_RECENT 64
/* 10 s, not 1: a CI run lost B's bytes in tests/progs/remaprace.c (round
 * 50 of 100, "moved into the range A vacated, byte 0 wrong") while other
 * tests ran beside it, and the 1 s this was then is the only way the
 * claim fails: A's thread, which queues the UNMAP after its REMAP was
 * read, can wait that long for a CPU on a loaded host (real-time fault
 * handlers of other processes run first). The cost of a longer life: a
 * range MREMAP_DONTUNMAP vacated and munmapped exactly within it keeps
 * its registry entries (and charges) until the process exits. */
#define VACATED_NS (10ULL * 1000 * 1000 * 1000)
static mgi_recent_t vacated;

/* Both guards start empty, in a forked child too (they are the parent's
 * handler's memory of its own events). */
void mgi_handler_guards_reset(void)
{
	mgi_recent_init(&removed, REMOVED_RECENT);
	mgi_recent_init(&vacated, VACATED_RECENT);
}


void mgi_guard_note_vacated(uintptr_t start, uintptr_t end)
{
	mgi_recent_note(&vacated, start, end, mgi_now_ns());
}

bool mgi_guard_claim_vacated(uintptr_t start, uintptr_t end)
{
	return mgi_recent_claim(&vacated, start, end, mgi_now_ns(), VACATED_NS);
}

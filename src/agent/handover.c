/* handover.c - a program's own userfaultfd: the ranges it registers are handed over to it, unmanaged. */
#include <errno.h>
#include <linux/userfaultfd.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "account.h"
#include "agent.h"
#include "os.h"

/*
 * A range is registered with one userfaultfd only: a program that runs a
 * pager of its own (stress-ng's userfaultfd stressor, a user-space
 * checkpointer, a garbage collector's write barrier) gets EBUSY from
 * UFFDIO_REGISTER on memory whose faults the agent takes. Its ioctl is
 * caught here; when the kernel refuses it for that reason, the handler
 * hands the range over (below) and the call is made again, so the program
 * runs as it would unmanaged. The agent no longer sees the range's faults,
 * so its pages are counted the way estimate mode counts a fast region's:
 * by mincore, every HANDED_TICK_MS while any range is handed over, charged
 * whatever the limit says (the program's pager fills them, nobody can
 * refuse it; the group's other pages are evicted to make up). Such a range
 * leaves the table when the program unmaps it (munmap is caught) or when
 * the agent registers new memory there (the program's userfaultfd cannot
 * hold it then).
 */

#define PAGE MGI_PAGE_SIZE
#define OUT_BATCH 64
#define ROOM_TRIES 500 /* about 0.5 s of 1 ms pauses: the caller waits 2 s at most */
#define HANDED_MAX 32
#define VEC_PAGES 4096

/* The ranges handed over, and what each is charged now: the handler's
 * alone (munmap's caller only marks an entry gone). */
static struct handed {
	uintptr_t start, end;
	uint64_t charged;
	_Atomic bool gone;
} handed[HANDED_MAX];
static unsigned nhanded;
static unsigned char *vec;

int mgi_handover_init(void)
{
	nhanded = 0; /* a forked child: its VMAs are not the parent's pager's */
	vec = mgi_arena_alloc(&mgi_arena, VEC_PAGES);
	return vec ? 0 : -ENOMEM;
}

bool mgi_handover_any(void)
{
	return nhanded != 0;
}

/* Resident pages in [start, end), over the VMAs still there. */
static uint64_t resident(uintptr_t start, uintptr_t end)
{
	uint64_t n = 0;
	mgi_vma_t v;

	for (uintptr_t cur = start;
	     cur < end && mgi_vma_query(mgi_maps_fd, cur, &v) == 0 && v.start < end;
	     cur = v.end) {
		uintptr_t a = v.start > cur ? v.start : cur, e = v.end < end ? v.end : end;
		n += mgi_mincore_count(a, e, vec, VEC_PAGES);
	}
	return n;
}

/* Brings entry i's charge to what it holds now (0 once gone). */
static void account(unsigned i)
{
	struct handed *h = &handed[i];
	uint64_t now = atomic_load(&h->gone) ? 0 : resident(h->start, h->end);

	if (now > h->charged) {
		mgi_charge_anyway(now - h->charged);
	} else if (now < h->charged) {
		mgi_uncharge(h->charged - now);
	}
	h->charged = now;
}

static void forget(unsigned i)
{
	atomic_store(&handed[i].gone, true);
	account(i);
	handed[i] = handed[--nhanded];
}

void mgi_handover_tick(void)
{
	for (unsigned i = 0; i < nhanded;)
		if (atomic_load(&handed[i].gone))
			forget(i);
		else
			account(i++);
}

/* [start, end) is unmapped by the program (whole: only mincore over the
 * VMAs left tells a partial unmap), or registered by the agent anew (the
 * program's userfaultfd cannot hold it any more): ranges there are done
 * with. From munmap's caller this only marks; the handler's next tick
 * uncharges. */
void mgi_handover_gone(uintptr_t start, uintptr_t end, bool whole)
{
	for (unsigned i = 0; i < nhanded; i++)
		if (whole ? start <= handed[i].start && handed[i].end <= end
			  : handed[i].start < end && start < handed[i].end)
			atomic_store(&handed[i].gone, true);
}

static inline uintptr_t page_up(uintptr_t a)
{
	return (a + PAGE - 1) & ~(PAGE - 1);
}

struct out_pages {
	uintptr_t page[OUT_BATCH];
	size_t n;
};

static void collect_out(void *ctx, uintptr_t addr)
{
	struct out_pages *o = ctx;

	if (o->n < OUT_BATCH)
		o->page[o->n++] = addr;
}

/* Brings one evicted page back and gives up its charge at once: restoring
 * a whole range needs one page of room, not the range's size. */
static int bring_back(uintptr_t page)
{
	for (unsigned tries = 0; tries < ROOM_TRIES; tries++) {
		mgi_vregion_t *r = mgi_registry_find(&mgi_reg, page);
		size_t restored;
		unsigned level;

		if (!r || !mgi_registry_is_out(r, page))
			return 0;
		switch (mgi_restore(r, page, false, &restored, &level)) {
		case MGI_DONE:
		case MGI_ABSENT: /* nothing held: the page reads as new */
			mgi_uncharge(mgi_registry_clear(&mgi_reg, page, page + PAGE));
			if (mgi_registry_is_out(r, page))
				return -EIO; /* not restored: the range stays ours */
			return 0;
		case MGI_RETRY: /* events first (the kernel refuses moves until read),
				 * or a staged frame busy for a moment: a short pause */
			mgi_handler_follow_events();
			nanosleep(&(struct timespec){0, 1000000}, NULL);
			break;
		case MGI_NEED_ROOM:
			if (mgi_evict(OUT_BATCH) == 0)
				return -ENOMEM;
			break;
		}
	}
	return -EAGAIN;
}

/* In the handler: the program registers [start, end) with its own
 * userfaultfd. Its present pages leave the group's usage; its evicted pages
 * come back first (no byte is lost); then ours unregisters. Returns 0 or
 * -errno (the program's ioctl then fails as the kernel first said, EBUSY). */
int mgi_hand_over(uintptr_t start, uintptr_t end)
{
	static bool said;
	struct out_pages o;
	uint64_t restored = 0;
	int rc;

	start &= ~(PAGE - 1);
	end = page_up(end);
	if (start >= end)
		return -EINVAL;
	/* Present pages first: their charges are room for the restores, and
	 * eviction, which takes present pages, no longer picks them. */
	mgi_uncharge(mgi_registry_clear(&mgi_reg, start, end));
	do {
		o.n = 0;
		mgi_registry_each_out(&mgi_reg, start, end, false, collect_out, &o);
		for (size_t i = 0; i < o.n; i++)
			if ((rc = bring_back(o.page[i])) != 0) {
				mgi_agent_log("cannot hand %#lx-%#lx over to the program's own "
					      "userfaultfd: page %#lx not restored (%s)",
					      (unsigned long)start, (unsigned long)end,
					      (unsigned long)o.page[i], strerror(-rc));
				return rc;
			}
		restored += o.n;
	} while (o.n == OUT_BATCH);
	rc = mgi_uffd_unregister(mgi_handler.uffd, start, end - start);
	if (rc != 0)
		return rc;
	long present = mgi_registry_remove(&mgi_reg, start, end);
	if (present > 0)
		mgi_uncharge((uint64_t)present);
	mgi_evict_publish();
	if (nhanded < HANDED_MAX) {
		handed[nhanded] = (struct handed){.start = start, .end = end};
		account(nhanded++);
	}
	if (!said) {
		said = true;
		if (nhanded == HANDED_MAX)
			mgi_agent_log("%#lx-%#lx is handed over to the program's own userfaultfd, "
				      "uncounted (%d ranges are already): the kernel backstop bounds it",
				      (unsigned long)start, (unsigned long)end, HANDED_MAX);
		else
			mgi_agent_log("%#lx-%#lx is handed over to the program's own userfaultfd "
				      "(%llu evicted pages brought back first): its resident pages "
				      "are counted every %d ms",
				      (unsigned long)start, (unsigned long)end,
				      (unsigned long long)restored, MGI_HANDED_TICK_MS);
	}
	return 0;
}

/* The program's ioctl (see the top). Only a refused UFFDIO_REGISTER on a
 * userfaultfd that is not ours costs more than the system call. */
__attribute__((visibility("default"))) int ioctl(int fd, unsigned long request, ...)
{
	va_list ap;
	void *arg;
	long rc;

	va_start(ap, request);
	arg = va_arg(ap, void *);
	va_end(ap);
	rc = syscall(SYS_ioctl, fd, request, arg);
	if (rc == 0 || errno != EBUSY || request != UFFDIO_REGISTER || !arg ||
	    !atomic_load_explicit(&mgi_agent_active, memory_order_acquire) || fd == mgi_handler.uffd)
		return (int)rc;
	const struct uffdio_register *r = arg;
	mgi_learn_req_t req = {.start = (uintptr_t)r->range.start,
			       .end = (uintptr_t)(r->range.start + r->range.len),
			       .kind = MGI_REQ_HAND_OVER};
	if (mgi_request_call(&req) != 0) {
		errno = EBUSY; /* as the kernel said */
		return -1;
	}
	return (int)syscall(SYS_ioctl, fd, request, arg);
}

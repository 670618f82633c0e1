/* cow.c - a forked child's frames shared copy-on-write with its parent: charged once, by the side that writes or keeps them alone. */
#include "cow.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "account.h"
#include "fault.h"
#include "os.h"

/*
 * After fork, parent and child map the same frames until one side writes
 * (the kernel's copy-on-write). The parent holds them charged; a child
 * that charged them again at its start-up scan put the group at up to
 * twice its limit (docs/design.md, fork). So a forked child charges at
 * its scan only the pages pagemap reports mapped by it alone
 * (PM_MMAP_EXCLUSIVE, bit 56); the others it write-protects (uffd-wp) and
 * keeps as owed, one bit a page. Its first write to one is a write-protect
 * fault: charged then (a refused charge makes room as any fault's), then
 * un-protected, and the kernel copies the frame on the retried write.
 * When the parent writes first (or exits, or unshares the page to evict
 * it), the child's frame becomes its alone with no event here: the tick
 * re-reads pagemap for the owed pages and charges those (measured in
 * bench/cowprobe: the child's bit 56 turns on when the parent writes).
 * Owed pages that go (unmap, discard) are not uncharged; the eviction
 * clock passes them over (evicting one frees no frame of the group's: the
 * other side keeps it).
 */

#define PAGE MGI_PAGE_SIZE
#define PM_PRESENT (1ULL << 63)
#define PM_EXCLUSIVE (1ULL << 56)
#define EXT_PAGES 16384u     /* pages an extent covers (64 MiB): one pagemap read */
#define EXTENTS_MAX 4096     /* 256 GiB of owed address space */
#define TICK_MIN_MS 2        /* a tick that found pages: the next soon */
#define TICK_MAX_MS 100      /* nothing found: backs off to this */

struct extent {
	uintptr_t start;       /* EXT_PAGES pages from here */
	uint64_t *bits;        /* owed pages */
	uint32_t owed;
};

static struct extent ext[EXTENTS_MAX];
static unsigned next;
static uint64_t owed_total;
static bool child;     /* a forked child: shared frames are possible */
static int pm_fd = -1;
static uint64_t *pm;   /* EXT_PAGES entries */
static uint64_t tick_due_ns;
static unsigned tick_ms = TICK_MIN_MS;

void mgi_cow_child_start(void)
{
	if (pm_fd >= 0)
		close(pm_fd); /* our parent's pagemap: its address space, not ours */
	pm_fd = -1;
	pm = NULL; /* (in the parent's arena, which the child drops) */
	memset(ext, 0, sizeof(ext));
	next = 0;
	owed_total = 0;
	child = true;
	tick_ms = TICK_MIN_MS;
}

int mgi_cow_register(uintptr_t start, size_t len)
{
	struct uffdio_register r = {
		.range = {.start = start, .len = len},
		.mode = UFFDIO_REGISTER_MODE_MISSING | (child ? UFFDIO_REGISTER_MODE_WP : 0),
	};
	if (ioctl(mgi_handler.uffd, UFFDIO_REGISTER, &r) == 0)
		return 0;
	if (!child)
		return -errno;
	/* (a kernel without anonymous uffd-wp: as before, charged at once) */
	child = false;
	return mgi_uffd_register(mgi_handler.uffd, start, len);
}

static int wprotect(uintptr_t start, size_t len, bool on)
{
	struct uffdio_writeprotect w = {.range = {.start = start, .len = len},
					.mode = on ? UFFDIO_WRITEPROTECT_MODE_WP : 0};
	return ioctl(mgi_handler.uffd, UFFDIO_WRITEPROTECT, &w) == 0 ? 0 : -errno;
}

static bool pm_ready(void)
{
	if (!pm)
		pm = mgi_arena_alloc(&mgi_arena, EXT_PAGES * sizeof(*pm));
	if (pm_fd < 0)
		pm_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	return pm && pm_fd >= 0;
}

/* Reads pagemap for n pages from a into pm. */
static bool pm_read(uintptr_t a, size_t n)
{
	size_t want = n * sizeof(*pm);
	return pread(pm_fd, pm, want, (off_t)(a / PAGE * sizeof(*pm))) == (ssize_t)want;
}

static struct extent *find(uintptr_t a)
{
	uintptr_t base = a - (a % ((uintptr_t)EXT_PAGES * PAGE));

	for (unsigned i = 0; i < next; i++)
		if (ext[i].start == base && ext[i].bits)
			return &ext[i];
	return NULL;
}

static struct extent *find_or_add(uintptr_t a)
{
	uintptr_t base = a - (a % ((uintptr_t)EXT_PAGES * PAGE));
	struct extent *e = find(a);

	if (e)
		return e;
	for (unsigned i = 0; i < next; i++)
		if (!ext[i].bits) { /* a freed one */
			e = &ext[i];
			break;
		}
	if (!e && next < EXTENTS_MAX)
		e = &ext[next++];
	if (!e)
		return NULL;
	e->bits = mgi_arena_alloc(&mgi_arena, EXT_PAGES / 8);
	if (!e->bits)
		return NULL;
	memset(e->bits, 0, EXT_PAGES / 8);
	e->start = base;
	e->owed = 0;
	return e;
}

static bool owed_at(const struct extent *e, size_t i)
{
	return e->bits[i / 64] & (1ULL << (i % 64));
}

static void clear_at(struct extent *e, size_t i)
{
	e->bits[i / 64] &= ~(1ULL << (i % 64));
	e->owed--;
	owed_total--;
	if (!e->owed) {
		mgi_arena_free(&mgi_arena, e->bits, EXT_PAGES / 8);
		e->bits = NULL;
	}
}

uint64_t mgi_cow_learn(uintptr_t start, uintptr_t end)
{
	uint64_t owed = 0;

	if (!child || !pm_ready())
		return 0;
	for (uintptr_t a = start; a < end;) {
		uintptr_t ext_end = a - (a % ((uintptr_t)EXT_PAGES * PAGE)) + (uintptr_t)EXT_PAGES * PAGE;
		uintptr_t stop = ext_end < end ? ext_end : end;
		size_t n = (stop - a) / PAGE;
		struct extent *e = NULL;
		if (!pm_read(a, n))
			break;
		for (size_t i = 0; i < n;) {
			if (!(pm[i] & PM_PRESENT) || (pm[i] & PM_EXCLUSIVE)) {
				i++;
				continue;
			}
			/* a run of shared pages: write-protected as one */
			size_t j = i;
			while (j < n && (pm[j] & PM_PRESENT) && !(pm[j] & PM_EXCLUSIVE))
				j++;
			mgi_vregion_t *r = mgi_registry_find(&mgi_reg, a + i * PAGE);
			if (!e)
				e = find_or_add(a);
			if (!e || !r || r->end < a + j * PAGE ||
			    wprotect(a + i * PAGE, (j - i) * PAGE, true) != 0) {
				i = j; /* charged as before */
				continue;
			}
			for (; i < j; i++) {
				size_t bit = (a + i * PAGE - e->start) / PAGE;
				if (!mgi_registry_test(r, a + i * PAGE) || owed_at(e, bit))
					continue;
				e->bits[bit / 64] |= 1ULL << (bit % 64);
				e->owed++;
				owed_total++;
				owed++;
			}
		}
		if (e && !e->owed) {
			mgi_arena_free(&mgi_arena, e->bits, EXT_PAGES / 8);
			e->bits = NULL;
		}
		a = stop;
	}
	return owed;
}

/* Clears the owed bits of [start, end): returns how many were set. */
static uint64_t clear_range(uintptr_t start, uintptr_t end)
{
	uint64_t cleared = 0;

	if (!owed_total)
		return 0;
	for (unsigned k = 0; k < next && owed_total; k++) {
		struct extent *e = &ext[k];
		uintptr_t e_end = e->start + (uintptr_t)EXT_PAGES * PAGE;
		if (!e->bits || e_end <= start || e->start >= end)
			continue;
		uintptr_t s = start > e->start ? start : e->start, t = end < e_end ? end : e_end;
		for (uintptr_t a = s; a < t && e->bits; a += PAGE) {
			size_t bit = (a - e->start) / PAGE;
			if (owed_at(e, bit)) {
				clear_at(e, bit);
				cleared++;
			}
		}
	}
	return cleared;
}

uint64_t mgi_cow_forget(uintptr_t start, uintptr_t end, uint64_t n)
{
	uint64_t owed = clear_range(start, end);
	return n > owed ? n - owed : 0;
}

void mgi_cow_settle(uintptr_t start, uintptr_t end)
{
	uint64_t owed = clear_range(start, end);
	if (owed)
		mgi_charge_anyway(owed);
}

enum mgi_resolved mgi_cow_fault(uintptr_t page, uint64_t *since)
{
	struct extent *e = owed_total ? find(page) : NULL;
	size_t bit = e ? (page - e->start) / PAGE : 0;
	int rc;

	if (e && owed_at(e, bit)) {
		unsigned level = 0;
		bool charged = false;
		for (int attempt = 0; attempt < 4 && !charged; attempt++) {
			charged = mgi_charge(1, &level);
			if (charged)
				break;
			if (mgi_releaser_unsharing(page)) {
				/* the helper unsharing it to evict: cannot wait
				 * for room it is making (as fault.c's fill) */
				mgi_charge_anyway(1);
				charged = true;
			} else if (!mgi_room_make(level, since)) {
				return MGI_RETRY;
			}
		}
		if (!charged)
			return MGI_RETRY;
		clear_at(e, bit);
	}
	/* (not owed: write-protected still, e.g. found alone by the tick, or
	 * inherited so from our parent: just let the write through) */
	rc = wprotect(page, PAGE, false);
	if (rc == -EAGAIN)
		return MGI_RETRY; /* the address space is changing: events first */
	if (rc != 0)
		mgi_uffd_wake(mgi_handler.uffd, page, PAGE);
	return MGI_DONE;
}

size_t mgi_cow_clip(uintptr_t run, size_t *n)
{
	struct extent *e = owed_total ? find(run) : NULL;
	size_t k = 0;

	if (!e)
		return 0;
	uintptr_t e_end = e->start + (uintptr_t)EXT_PAGES * PAGE;
	bool lead = owed_at(e, (run - e->start) / PAGE);
	/* the leading pages of one kind (the clock's run stays in a region;
	 * one crossing an extent's end is cut there) */
	while (k < *n && run + k * PAGE < e_end && owed_at(e, (run + k * PAGE - e->start) / PAGE) == lead)
		k++;
	if (lead)
		return k;
	*n = k;
	return 0;
}

int mgi_cow_timeout(int timeout_ms)
{
	if (!owed_total)
		return timeout_ms;
	uint64_t now = mgi_now_ns();
	int left = tick_due_ns > now ? (int)((tick_due_ns - now) / 1000000) + 1 : 0;
	return timeout_ms < 0 || left < timeout_ms ? left : timeout_ms;
}

void mgi_cow_tick(void)
{
	uint64_t alone = 0, gone = 0, now = mgi_now_ns();

	if (!owed_total || now < tick_due_ns || pm_fd < 0)
		return;
	for (unsigned k = 0; k < next && owed_total; k++) {
		struct extent *e = &ext[k];
		if (!e->bits || !pm_read(e->start, EXT_PAGES))
			continue;
		for (size_t i = 0; i < EXT_PAGES && e->bits; i++) {
			if (!owed_at(e, i))
				continue;
			if (!(pm[i] & PM_PRESENT)) {
				clear_at(e, i); /* gone unseen (reclaimed MADV_FREE) */
				gone++;
			} else if (pm[i] & PM_EXCLUSIVE) {
				clear_at(e, i);
				alone++;
			}
		}
	}
	tick_ms = alone ? TICK_MIN_MS : tick_ms * 2 > TICK_MAX_MS ? TICK_MAX_MS : tick_ms * 2;
	tick_due_ns = mgi_now_ns() + (uint64_t)tick_ms * 1000000;
	if (!alone)
		return;
	/* Frames that exist: charged whatever the limit, then evicted back
	 * under it if this process may (they are its own now: no copy). */
	mgi_charge_anyway(alone);
	const mgi_counter_path_t *path = mgi_account_path();
	for (unsigned l = 0; l < path->depth; l++) {
		uint64_t usage = mgi_counter_read(path->level[l]);
		uint64_t max = mgi_counter_read_max(path->limit[l]);
		if (usage > max && mgi_evict_allowed(l))
			mgi_evict(usage - max + RECLAIM_BATCH);
	}
}

uint64_t mgi_cow_owed(void)
{
	return owed_total;
}

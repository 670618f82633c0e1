/* swapfile.c - the write-back file (--swap-file): an unnamed file behind the compressed store. */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <linux/futex.h>
#include <time.h>
#include <unistd.h>

#include "account.h"
#include "agent.h"
#include "options.h"
#include "os.h"
#include "trace.h"
#include "pageout.h"

#define PAGE MGI_PAGE_SIZE

#define SWAP_FILE_MAX (64ULL << 30) /* per process: bounds its meta reservation */

static int swap_fd = -1;
static uint64_t swap_after; /* bytes; 0: from the group's limit */
static void *swap_meta;
static size_t swap_meta_bytes;

/* pwrite or pread of the whole of [buf, buf + len) at off. */
static int file_io(bool write, uint64_t off, char *buf, size_t len)
{
	while (len) {
		ssize_t n = write ? pwrite(swap_fd, buf, len, (off_t)off)
				  : pread(swap_fd, buf, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		buf += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

int mgi_swapfile_write(void *ctx, uint64_t off, const void *buf, size_t len)
{
	(void)ctx;
	return file_io(true, off, (char *)buf, len);
}

int mgi_swapfile_read(void *ctx, uint64_t off, void *buf, size_t len)
{
	(void)ctx;
	return file_io(false, off, buf, len);
}

void mgi_swapfile_discard(void *ctx, uint64_t off, size_t len)
{
	(void)ctx;
	/* Not supported (some file systems): the space stays allocated and
	 * is reused by later pages. */
	(void)fallocate(swap_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off,
			(off_t)len);
}

/* With MEMGRP_SWAP_FILE (memgrp run --swap-file DIR): an unnamed file in
 * DIR, gone with the process, behind the store. */
void mgi_swapfile_init(void)
{
	const char *dir = mgi_env_str(MGI_ENV_SWAP_FILE);
	size_t meta_bytes = mgi_store_file_meta_bytes(SWAP_FILE_MAX);
	void *meta;

	if (!dir || !mgi_pageout.store)
		return;
	swap_after = mgi_env_uint(MGI_ENV_SWAP_FILE_AFTER);
	swap_fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (swap_fd < 0) {
		mgi_agent_log("--swap-file %s: %s: compressed pages stay in memory", dir,
			      strerror(errno));
		return;
	}
	size_t kept_bytes;
	void *kept = mgi_kept_take_meta(&kept_bytes);
	if (kept) {
		/* a forked child's store, file attached, with nothing in its
		 * parent's file (mgi_fork_event): a new file of our own */
		swap_meta = kept;
		swap_meta_bytes = kept_bytes;
		mgi_own_range((uintptr_t)kept, kept_bytes);
		return;
	}
	meta = mgi_reserve(meta_bytes);
	if (!meta || mgi_own_range((uintptr_t)meta, meta_bytes) != 0 ||
	    mgi_store_attach_file(mgi_pageout.store, meta, meta_bytes) != 0) {
		mgi_agent_log("--swap-file %s: cannot set up: compressed pages stay in memory", dir);
		close(swap_fd);
		swap_fd = -1;
		return;
	}
	swap_meta = meta;
	swap_meta_bytes = meta_bytes;
}

/* When the group's compressed pages in memory pass the write-back size,
 * this process (the one evicting: the group's coldest) writes its oldest
 * back to its file, down to 7/8 of the size. */
void mgi_swapfile_write_back(void)
{
	mgi_store_stats_t st;
	uint64_t total = 0, after = swap_after;

	if (swap_fd < 0)
		return;
	if (!after) {
		uint64_t max = atomic_load(&mgi_join.seg->ctl.memory.max);
		after = max >= MGI_PAGES_UNLIMITED ? 256ULL << 20 : max * PAGE / 4;
	}
	mgi_store_stats(mgi_pageout.store, &st);
	for (int i = 0; i < MGI_PROCS_MAX; i++)
		if (i != mgi_join.slot)
			total += atomic_load_explicit(&mgi_join.seg->acct.procs[i].stored_bytes,
						      memory_order_relaxed);
	total += st.compressed_bytes;
	if (total <= after)
		return;
	uint64_t want = total - after + after / 8, in_memory = st.pages - st.file_pages;
	/* The older half of what is in memory first (stamps are the eviction
	 * clock), then anything older than now. */
	uint64_t freed = mgi_store_writeback(mgi_pageout.store, want,
					     mgi_pageout.evict_clock - (uint32_t)(in_memory / 2));
	if (freed < want)
		mgi_store_writeback(mgi_pageout.store, want - freed, mgi_pageout.evict_clock);
	mgi_store_stats_t now;
	mgi_store_stats(mgi_pageout.store, &now);
	atomic_fetch_add_explicit(&mgi_join.seg->acct.written_back, now.written_back - st.written_back,
				  memory_order_relaxed);
}

void mgi_swapfile_meta(void **meta, size_t *bytes)
{
	*meta = swap_meta;
	*bytes = swap_meta_bytes;
}

/* A forked child: the parent's file is not ours (ours comes with our store). */
void mgi_swapfile_child_reset(void)
{
	swap_meta = NULL;
	swap_meta_bytes = 0;
	if (swap_fd >= 0)
		close(swap_fd);
	swap_fd = -1;
}

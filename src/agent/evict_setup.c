/* evict_setup.c - eviction's set-up: the staging area, the store (new, or a forked child's kept one), the releaser. */
#include <stdbool.h>
#include <sys/mman.h>

#include "agent.h"
#include "options.h"
#include "os.h"
#include "pageout.h"

#define PAGE MGI_PAGE_SIZE

void *mgi_reserve(size_t len)
{
	void *p = mgi_raw_mmap(NULL, len, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	/* no huge pages: frames are given back one 4 KiB page at a time */
	mgi_raw_madvise(p, len, MADV_NOHUGEPAGE);
	return p;
}

/* The store's discard: its unused pages go back to the system. The store
 * is not registered with userfaultfd, so this never waits. */
static void store_discard(void *ctx, void *addr, size_t len)
{
	(void)ctx;
	mgi_raw_madvise(addr, len, MADV_DONTNEED);
}

static mgi_codec_t codec_from_env(void)
{
	return mgi_env_choice(MGI_ENV_CODEC) == 1 ? MGI_CODEC_ZSTD : MGI_CODEC_LZ4;
}

void mgi_evict_init(void)
{
	size_t stage_len = (size_t)MGI_STAGE_SLOTS * PAGE;
	mgi_codec_t codec = codec_from_env();
	void *staging_mem, *kept_mem, *kept_meta;
	size_t kept_bytes, kept_meta_bytes;
	bool kept = mgi_kept_store(&kept_mem, &kept_bytes);

	mgi_pageout.can_evict = false;
	if (!mgi_handler.fork_events) {
		mgi_pageout.no_evict_why = "its userfaultfd lacks UFFD_EVENT_FORK (it needs "
					 "CAP_SYS_PTRACE), without which a forked child could "
					 "read evicted pages as zeros";
		return;
	}
	mgi_pageout.no_evict_why = "out of memory while setting up the staging area and store";
	mgi_pageout.stage_base = (uintptr_t)mgi_reserve(stage_len);
	mgi_pageout.beacon = (uintptr_t)mgi_reserve(PAGE);
	if (kept) {
		/* a forked child's: its parent's store, kept (adopted once the
		 * handler's scan has registered the address space) */
		mgi_pageout.store_bytes = kept_bytes;
		mgi_pageout.store_mem = kept_mem;
	} else {
		mgi_pageout.store_bytes = mgi_store_region_bytes(MGI_STORE_MAX_PAGES, codec);
		mgi_pageout.store_mem = mgi_reserve(mgi_pageout.store_bytes);
	}
	staging_mem = mgi_arena_alloc(&mgi_arena, mgi_staging_bytes(MGI_STAGE_SLOTS));
	mgi_pageout.restore_buf = mgi_arena_alloc(&mgi_arena, MGI_RESTORE_MAX * PAGE);
	void *release_stack = mgi_arena_alloc(&mgi_arena, MGI_RELEASER_STACK);
	if (!mgi_pageout.stage_base || !mgi_pageout.beacon || !mgi_pageout.store_mem || !staging_mem || !mgi_pageout.restore_buf ||
	    !release_stack) {
		/* (a kept store stays mapped: its pages are the only copy) */
		if (kept)
			mgi_own_range((uintptr_t)kept_mem, kept_bytes);
		return;
	}
	mgi_own_range(mgi_pageout.stage_base, stage_len);
	mgi_own_range(mgi_pageout.beacon, PAGE);
	mgi_own_range((uintptr_t)mgi_pageout.store_mem, mgi_pageout.store_bytes);
	if (kept) {
		mgi_pageout.store = mgi_kept_take_store();
	} else {
		mgi_pageout.store = mgi_store_init(mgi_pageout.store_mem, mgi_pageout.store_bytes,
						 MGI_STORE_MAX_PAGES, codec,
						 (mgi_store_ops_t){.discard = store_discard,
								   .file_write = mgi_swapfile_write,
								   .file_read = mgi_swapfile_read,
								   .file_discard = mgi_swapfile_discard});
	}
	if (!mgi_pageout.store)
		return;
	mgi_swapfile_init();
	kept_meta = mgi_kept_meta(&kept_meta_bytes);
	if (kept_meta) /* a file meta kept, no file now: its range stays ours */
		mgi_own_range((uintptr_t)kept_meta, kept_meta_bytes);
	mgi_staging_init(&mgi_pageout.staging, staging_mem, MGI_STAGE_SLOTS);
	*(volatile char *)mgi_pageout.beacon = 1; /* present: never a fault of ours */
	if (mgi_uffd_register_wp(mgi_handler.uffd, mgi_pageout.stage_base, stage_len) != 0 ||
	    mgi_uffd_register(mgi_handler.uffd, mgi_pageout.beacon, PAGE) != 0) {
		mgi_pageout.no_evict_why = "the staging area cannot be registered with userfaultfd";
		return;
	}
	if (mgi_releaser_start(release_stack) != 0) {
		mgi_pageout.no_evict_why = "the releaser thread cannot start";
		return;
	}
	mgi_pageout.no_evict_why = NULL;
	mgi_pageout.can_evict = true;
}

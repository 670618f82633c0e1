/* vrange_fork.c - volatile ranges across fork: the child inherits its parent's ranges and their purge marks. */
#include <string.h>
#include <sys/mman.h>

#include "agent.h"
#include "os.h"
#include "vrange.h"
#include "vrange_int.h"

#define PAGE MGI_PAGE_SIZE

/* A forked child's copy of the table between its fork handler (the
 * parent's arena goes) and its start (a new arena): a raw mapping. */
static mgi_vrtab_t saved;
static void *saved_mem;
static size_t saved_bytes, saved_used;

static void *bump_alloc(void *ctx, size_t bytes)
{
	(void)ctx;
	bytes = (bytes + 15) & ~(size_t)15;
	if (saved_used + bytes > saved_bytes)
		return NULL;
	saved_used += bytes;
	return (char *)saved_mem + saved_used - bytes; /* zeroed: a fresh mapping */
}

static void bump_free(void *ctx, void *p, size_t bytes)
{
	(void)ctx, (void)p, (void)bytes;
}

void mgi_vrange_child_save(void)
{
	size_t bytes = 16 + mgi_vr_tab.n * (sizeof(mgi_vrange_t) + 16);

	mgi_vr_child_reset();
	saved_mem = NULL;
	if (!mgi_vr_tab_ready)
		return;
	mgi_vr_tab_ready = false;
	if (!mgi_vr_tab.n)
		return;
	for (uint32_t i = 0; i < mgi_vr_tab.n; i++)
		bytes += mgi_vr_tab.v[i].nwords * sizeof(uint64_t);
	bytes = (bytes + PAGE - 1) & ~(PAGE - 1);
	saved_mem = mgi_raw_mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
				 -1, 0);
	if (saved_mem == MAP_FAILED) {
		saved_mem = NULL;
		return;
	}
	saved_bytes = bytes;
	saved_used = 0;
	saved.a = (mgi_allocator_t){bump_alloc, bump_free, NULL};
	if (mgi_vrtab_copy(&saved, &mgi_vr_tab) != 0) {
		mgi_raw_munmap(saved_mem, saved_bytes);
		saved_mem = NULL;
	}
}

void mgi_vrange_child_start(void)
{
	if (!saved_mem)
		return;
	if (!mgi_vr_ensure_tab() || mgi_vrtab_copy(&mgi_vr_tab, &saved) != 0)
		mgi_agent_log("fork: no agent memory for the parent's volatile ranges: "
			      "the child's are not volatile");
	mgi_raw_munmap(saved_mem, saved_bytes);
	saved_mem = NULL;
}

/* tree.c - the group tree: its nodes and segments, creation and removal, paths and fds. */
#include "tree.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "grant.h"
#include "group.h"
#include "guard.h"
#include "oslayer.h"
#include "size.h"
#include "tree_int.h"

/* The accounting part's file name for a control part's. */
void mgi_tree_account_file(const char *ctl, char *out, size_t outlen)
{
	snprintf(out, outlen, ACCOUNT_PREFIX "%s", ctl + strlen(SEGMENT_PREFIX));
}

/* A segment's two files in dirfd removed (file: the control part's). */
static void unlink_parts(int dirfd, const char *file)
{
	char acct[40];

	mgi_tree_account_file(file, acct, sizeof(acct));
	unlinkat(dirfd, file, 0);
	unlinkat(dirfd, acct, 0);
}

void mgi_tree_close_parts(mgi_segment_t **seg, int *ctl, int *acct, int *ro)
{
	if (*seg)
		mgi_tree_unmap_pair(*seg);
	*seg = NULL;
	if (*ctl >= 0)
		close(*ctl);
	if (*acct >= 0)
		close(*acct);
	if (*ro >= 0)
		close(*ro);
	*ctl = *acct = *ro = -1;
}

/* say() with a printf format. */
void mgi_tree_sayf(void (*say)(void *, const char *), void *arg, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	say(arg, msg);
}

/* New segment files in the state directory (the control part named in
 * n->file, the accounting part beside it); 0, or -1 with errno. */
static int new_segment_files(int dirfd, mgi_group_node_t *n)
{
	static const char digits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
	struct timespec ts;
	char acct[sizeof(n->file) + 8];

	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ ((uint64_t)getpid() << 40);
	for (int attempt = 0; attempt < 100; attempt++) {
		char *p = n->file + snprintf(n->file, sizeof(n->file), SEGMENT_PREFIX);
		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
		for (int k = 0; k < 8; k++)
			*p++ = digits[(x >> (64 - 6 * (k + 1))) % 36];
		*p = '\0';
		mgi_tree_account_file(n->file, acct, sizeof(acct));
		n->segfd = openat(dirfd, n->file, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
				  0600);
		if (n->segfd < 0 && errno == EEXIST)
			continue;
		if (n->segfd < 0)
			return -1;
		n->acctfd = openat(dirfd, acct, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
				   0600);
		if (n->acctfd >= 0)
			return 0;
		int e = errno;
		close(n->segfd);
		unlinkat(dirfd, n->file, 0);
		n->segfd = -1;
		if (e != EEXIST) {
			errno = e;
			return -1;
		}
	}
	errno = EEXIST;
	return -1;
}

mgi_segment_t *mgi_tree_map_pair(int ctlfd, int acctfd)
{
	void *base = mmap(NULL, sizeof(mgi_segment_t), PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (base == MAP_FAILED)
		return NULL;
	if (mmap(base, MGI_SEGMENT_CTL_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, ctlfd,
		 0) == MAP_FAILED ||
	    mmap((char *)base + MGI_SEGMENT_CTL_BYTES, MGI_SEGMENT_ACCT_BYTES,
		 PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, acctfd, 0) == MAP_FAILED) {
		int e = errno;
		munmap(base, sizeof(mgi_segment_t));
		errno = e;
		return NULL;
	}
	/* A state file can be truncated by an agent holding its fd: the
	 * manager's reads of the cut pages are patched over (guard.h). */
	mgi_guard_watch((char *)base + MGI_SEGMENT_CTL_BYTES, MGI_SEGMENT_ACCT_BYTES);
	return base;
}

void mgi_tree_unmap_pair(mgi_segment_t *seg)
{
	mgi_guard_forget(&seg->acct);
	munmap(seg, sizeof(mgi_segment_t));
}

int mgi_tree_new_segment(int dirfd, mgi_group_node_t *n, const char *name, uint32_t fault_around)
{
	n->file[0] = '\0';
	n->seg = NULL;
	n->segfd = n->acctfd = n->rofd = -1;
	if (dirfd >= 0) {
		if (new_segment_files(dirfd, n) != 0)
			return -errno;
	} else {
		n->segfd = memfd_create("memgrp-control", MFD_CLOEXEC | MFD_ALLOW_SEALING);
		n->acctfd = memfd_create("memgrp-account", MFD_CLOEXEC | MFD_ALLOW_SEALING);
		if (n->segfd < 0 || n->acctfd < 0)
			goto fail;
		/* memfds are made 0777: only the manager's user may open the
		 * control part for writing through /proc. */
		if (fchmod(n->segfd, 0600) != 0 || fchmod(n->acctfd, 0600) != 0)
			goto fail;
	}
	if (ftruncate(n->segfd, MGI_SEGMENT_CTL_BYTES) != 0 ||
	    ftruncate(n->acctfd, MGI_SEGMENT_ACCT_BYTES) != 0)
		goto fail;
	/* Fixed sizes: an agent truncating the accounting part it may write
	 * would have the manager's next read fault (SIGBUS). And no seal
	 * added later: an agent sealing it against writes would keep the
	 * group's next processes out. (Files in a state directory cannot be
	 * sealed: see docs/design.md, Trust and permissions.) */
	if (dirfd < 0 &&
	    (fcntl(n->segfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0 ||
	     fcntl(n->acctfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0))
		goto fail;
	if ((n->rofd = mgi_os_reopen(n->segfd, O_RDONLY)) < 0)
		goto fail;
	n->seg = mgi_tree_map_pair(n->segfd, n->acctfd);
	if (!n->seg)
		goto fail;
	mgi_segment_init(n->seg, name, fault_around);
	return 0;
fail:;
	int e = -errno;
	mgi_tree_close_parts(&n->seg, &n->segfd, &n->acctfd, &n->rofd);
	if (n->file[0])
		unlink_parts(dirfd, n->file);
	n->file[0] = '\0';
	return e;
}

static void free_node(mgi_group_node_t *n)
{
	mgi_tree_close_parts(&n->seg, &n->segfd, &n->acctfd, &n->rofd);
	memset(n, 0, sizeof(*n));
	n->segfd = n->acctfd = n->rofd = -1;
	n->parent = -1;
}

int mgi_tree_init(mgi_tree_t *t, uint32_t fault_around)
{
	memset(t, 0, sizeof(*t));
	/* Not free_node(): a zeroed node's segfd is 0, and closing it took
	 * the manager's stdin (and, through fd reuse, its child's). */
	for (int i = 0; i < MGI_GROUPS_MAX; i++) {
		t->node[i].segfd = t->node[i].acctfd = t->node[i].rofd = -1;
		t->node[i].parent = -1;
	}
	t->fault_around = fault_around;
	t->dirfd = -1;
	int rc = mgi_tree_new_segment(-1, &t->node[0], "", fault_around);
	if (rc == 0)
		t->node[0].used = true;
	return rc;
}

void mgi_tree_destroy(mgi_tree_t *t)
{
	for (int i = 0; i < MGI_GROUPS_MAX; i++)
		free_node(&t->node[i]);
	if (t->dirfd >= 0)
		close(t->dirfd);
	t->dirfd = -1;
}

int mgi_tree_find(const mgi_tree_t *t, const char *name)
{
	for (int i = 0; i < MGI_GROUPS_MAX; i++)
		if (t->node[i].used && strcmp(t->node[i].name, name) == 0)
			return i;
	return -1;
}

uint64_t mgi_tree_pages(uint64_t bytes)
{
	if (bytes == UINT64_MAX || bytes == MGI_SET_UNLIMITED)
		return MGI_PAGES_UNLIMITED;
	return bytes / MGI_PAGE_SIZE > MGI_PAGES_UNLIMITED ? MGI_PAGES_UNLIMITED : bytes / MGI_PAGE_SIZE;
}

int mgi_tree_free_node(const mgi_tree_t *t, char *why, size_t whylen)
{
	int i;

	for (i = 1; i < MGI_GROUPS_MAX && t->node[i].used; i++)
		;
	if (i == MGI_GROUPS_MAX) {
		snprintf(why, whylen, "this manager already serves %d groups, its most",
			 MGI_GROUPS_MAX - 1);
		return -ENOSPC;
	}
	return i;
}

int mgi_tree_create(mgi_tree_t *t, const char *name, uint64_t memory_max, char *why,
		    size_t whylen)
{
	char parent[MGI_GROUP_NAME_MAX];
	int p, i, rc;

	if (mgi_group_name_check(name, why, whylen) != 0)
		return -EINVAL;
	if (mgi_tree_find(t, name) >= 0) {
		snprintf(why, whylen, "group '%s' exists", name);
		return -EEXIST;
	}
	mgi_group_parent(name, parent);
	p = mgi_tree_find(t, parent);
	if (p < 0) {
		snprintf(why, whylen, "no group '%s' to create '%s' in (create the parent first)",
			 parent, name);
		return -ENOENT;
	}
	if ((i = mgi_tree_free_node(t, why, whylen)) < 0)
		return i;
	rc = mgi_tree_new_segment(t->dirfd, &t->node[i], name, t->fault_around);
	if (rc != 0) {
		snprintf(why, whylen, "cannot make the group's segment: %s", strerror(-rc));
		return rc;
	}
	mgi_counter_set_max(&t->node[i].seg->acct.memory, &t->node[i].seg->ctl.memory,
			    mgi_tree_pages(memory_max));
	/* Swap is off unless asked for: a top-level group may not evict until
	 * given a swap limit; a nested one is bounded by its ancestors'. */
	if (p == 0)
		atomic_store(&t->node[i].seg->ctl.swap.max, 0);
	snprintf(t->node[i].name, sizeof(t->node[i].name), "%s", name);
	t->node[i].parent = p;
	t->node[i].used = true;
	t->node[p].children++;
	return i;
}

void mgi_tree_name_slot(mgi_tree_t *t, int idx, int slot, int pid)
{
	char path[40], comm[MGI_COMM_MAX] = "";
	int n;

	if (idx < 0 || idx >= MGI_GROUPS_MAX || !t->node[idx].used || slot < 0 ||
	    slot >= MGI_PROCS_MAX)
		return;
	snprintf(path, sizeof(path), "/proc/%d/comm", pid);
	n = mgi_os_read_small(path, comm, sizeof(comm));
	if (n > 0 && comm[n - 1] == '\n')
		n--;
	comm[n > 0 ? n : 0] = '\0';
	memcpy(t->node[idx].seg->ctl.procs[slot].comm, comm, sizeof(comm));
}


int mgi_tree_remove(mgi_tree_t *t, int idx, char *why, size_t whylen)
{
	if (idx < 0 || idx >= MGI_GROUPS_MAX || !t->node[idx].used) {
		snprintf(why, whylen, "no such group");
		return -ENOENT;
	}
	mgi_group_node_t *n = &t->node[idx];

	if (idx == 0) {
		snprintf(why, whylen, "the root group cannot be removed");
		return -EPERM;
	}
	if (n->children) {
		snprintf(why, whylen, "group '%s' has %u child group(s): remove them first", n->name,
			 n->children);
		return -EBUSY;
	}
	unsigned procs = mgi_segment_nr_procs(n->seg);
	if (procs) {
		snprintf(why, whylen, "group '%s' still has %u process(es)", n->name, procs);
		return -EBUSY;
	}
	t->node[n->parent].children--;
	/* What it was granted leaves its parent's usage (all of it: no
	 * process of it is left to hold any). */
	if (n->parent > 0) {
		mgi_grant_return_to(n->seg, t->node[n->parent].seg, false);
		mgi_grant_return_to(n->seg, t->node[n->parent].seg, true);
	}
	if (n->file[0] && t->dirfd >= 0)
		unlink_parts(t->dirfd, n->file);
	free_node(n);
	return 0;
}

mgi_counter_path_t mgi_tree_path(const mgi_tree_t *t, int idx)
{
	mgi_counter_path_t p = {.depth = 0};

	if (idx == 0)
		return mgi_segment_path(t->node[0].seg);
	for (int i = idx; i > 0 && p.depth < MGI_DEPTH_MAX; i = t->node[i].parent)
		mgi_segment_path_add(&p, t->node[i].seg);
	return p;
}

mgi_counter_path_t mgi_tree_charge_path(const mgi_tree_t *t, int idx)
{
	if (idx > 0 && t->node[idx].parent > 0)
		return mgi_grant_path(t->node[idx].seg, false);
	return mgi_segment_path(t->node[idx].seg);
}

unsigned mgi_tree_grant_chain(const mgi_tree_t *t, int idx, mgi_segment_t **seg)
{
	unsigned n = 0;

	if (idx <= 0 || t->node[idx].parent <= 0)
		return 0;
	for (int i = idx; i > 0 && n < MGI_DEPTH_MAX; i = t->node[i].parent)
		seg[n++] = t->node[i].seg;
	return n;
}

/* A read-only fd of the same file as fd: what agents get of a control
 * part. Opening it read-only (not dup) is what makes a writable mapping,
 * mprotect and write() fail in an agent; the file's mode (0600, the
 * manager's) is what makes reopening /proc/self/fd/N for writing fail. */
int mgi_tree_reopen_ro(int fd)
{
	return mgi_os_reopen(fd, O_RDONLY);
}

unsigned mgi_tree_segment_fds(const mgi_tree_t *t, int idx, int *fds)
{
	unsigned n = 0;

	if (idx == 0) {
		fds[0] = t->node[0].rofd;
		fds[1] = t->node[0].acctfd;
		return 1;
	}
	for (int i = idx; i > 0 && n < MGI_DEPTH_MAX; i = t->node[i].parent) {
		fds[2 * n] = t->node[i].rofd;
		fds[2 * n + 1] = t->node[i].acctfd;
		n++;
	}
	return n;
}

bool mgi_tree_is_under(const mgi_tree_t *t, int idx, int anc)
{
	for (int i = idx; i >= 0; i = t->node[i].parent)
		if (i == anc)
			return true;
	return false;
}


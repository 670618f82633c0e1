/* tree.c - the group tree: segments, creation and removal, paths, subtree figures. */
#include "tree.h"

#include <dirent.h>
#include <errno.h>
#include <regex.h>
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
#include "size.h"

#define SEGMENT_PREFIX "segment-" /* the control part's file */
#define ACCOUNT_PREFIX "account-" /* the accounting part's, same suffix */

/* The accounting part's file name for a control part's. */
static void account_file(const char *ctl, char *out, size_t outlen)
{
	snprintf(out, outlen, ACCOUNT_PREFIX "%s", ctl + strlen(SEGMENT_PREFIX));
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
		account_file(n->file, acct, sizeof(acct));
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

/* A read-only fd of the same file as fd: what agents get of a control
 * part. Opening it read-only (not dup) is what makes a writable mapping,
 * mprotect and write() fail in an agent; the file's mode (0600, the
 * manager's) is what makes reopening /proc/self/fd/N for writing fail. */
static int reopen(int fd, int flags)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	return open(path, flags | O_CLOEXEC);
}

static mgi_segment_t *map_pair(int ctlfd, int acctfd)
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

static void unmap_pair(mgi_segment_t *seg)
{
	mgi_guard_forget(&seg->acct);
	munmap(seg, sizeof(mgi_segment_t));
}

static int new_segment(int dirfd, mgi_group_node_t *n, const char *name, uint32_t fault_around)
{
	n->file[0] = '\0';
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
	if ((n->rofd = reopen(n->segfd, O_RDONLY)) < 0)
		goto fail;
	n->seg = map_pair(n->segfd, n->acctfd);
	if (!n->seg)
		goto fail;
	mgi_segment_init(n->seg, name, fault_around);
	return 0;
fail:;
	int e = -errno;
	if (n->segfd >= 0)
		close(n->segfd);
	if (n->acctfd >= 0)
		close(n->acctfd);
	if (n->rofd >= 0)
		close(n->rofd);
	if (n->file[0]) {
		char acct[sizeof(n->file) + 8];
		account_file(n->file, acct, sizeof(acct));
		unlinkat(dirfd, n->file, 0);
		unlinkat(dirfd, acct, 0);
	}
	n->segfd = n->acctfd = n->rofd = -1;
	n->seg = NULL;
	n->file[0] = '\0';
	return e;
}

static void free_node(mgi_group_node_t *n)
{
	if (n->seg)
		unmap_pair(n->seg);
	if (n->segfd >= 0)
		close(n->segfd);
	if (n->acctfd >= 0)
		close(n->acctfd);
	if (n->rofd >= 0)
		close(n->rofd);
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
	int rc = new_segment(-1, &t->node[0], "", fault_around);
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

static uint64_t bytes_to_pages(uint64_t bytes)
{
	if (bytes == UINT64_MAX || bytes == MGI_SET_UNLIMITED)
		return MGI_PAGES_UNLIMITED;
	return bytes / 4096 > MGI_PAGES_UNLIMITED ? MGI_PAGES_UNLIMITED : bytes / 4096;
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
	for (i = 1; i < MGI_GROUPS_MAX && t->node[i].used; i++)
		;
	if (i == MGI_GROUPS_MAX) {
		snprintf(why, whylen, "this manager already serves %d groups, its most",
			 MGI_GROUPS_MAX - 1);
		return -ENOSPC;
	}
	rc = new_segment(t->dirfd, &t->node[i], name, t->fault_around);
	if (rc != 0) {
		snprintf(why, whylen, "cannot make the group's segment: %s", strerror(-rc));
		return rc;
	}
	mgi_counter_set_max(&t->node[i].seg->acct.memory, &t->node[i].seg->ctl.memory,
			    bytes_to_pages(memory_max));
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

/* An open segment: its two parts' fds (the control part's read-write, and
 * read-only for agents) and their mapping. */
struct segfiles {
	int ctl, acct, ro;
	mgi_segment_t *seg;
};

/* Makes a node of a group whose segment exists (mapped, its fds owned from
 * now on if this succeeds), under parent p. Returns its index or -ENOSPC. */
static int insert_node(mgi_tree_t *t, const char *name, int p, const struct segfiles *sf,
		       const char *file, char *why, size_t whylen)
{
	int i;

	for (i = 1; i < MGI_GROUPS_MAX && t->node[i].used; i++)
		;
	if (i == MGI_GROUPS_MAX) {
		snprintf(why, whylen, "this manager already serves %d groups, its most",
			 MGI_GROUPS_MAX - 1);
		return -ENOSPC;
	}
	t->node[i].segfd = sf->ctl;
	t->node[i].acctfd = sf->acct;
	t->node[i].rofd = sf->ro;
	t->node[i].seg = sf->seg;
	snprintf(t->node[i].file, sizeof(t->node[i].file), "%s", file);
	snprintf(t->node[i].name, sizeof(t->node[i].name), "%s", name);
	t->node[i].parent = p;
	t->node[i].used = true;
	t->node[p].children++;
	return i;
}

static void close_segfiles(struct segfiles *sf)
{
	if (sf->seg)
		unmap_pair(sf->seg);
	if (sf->ctl >= 0)
		close(sf->ctl);
	if (sf->acct >= 0)
		close(sf->acct);
	if (sf->ro >= 0)
		close(sf->ro);
	*sf = (struct segfiles){.ctl = -1, .acct = -1, .ro = -1};
}

/* Whether fd is a regular file of `bytes` bytes owned by the manager's
 * user (a part a managed process made itself would be its own). With
 * may_cut, a longer one of the manager's user is cut back to `bytes`: an
 * agent holds a writable fd of its group's and its ancestors' accounting
 * parts, and a state file cannot be sealed against growing; what lies
 * beyond the segment carries nothing, and refusing the file would set the
 * group (and so every group below it) aside at the restart. */
static bool part_ok(int fd, size_t bytes, bool may_cut, const char *what, char *why,
		    size_t whylen)
{
	struct stat st;

	if (may_cut && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid() &&
	    st.st_size > (off_t)bytes && ftruncate(fd, (off_t)bytes) != 0) {
		snprintf(why, whylen, "its %s part grew to %lld bytes and cannot be cut back: %s",
			 what, (long long)st.st_size, strerror(errno));
		return false;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size != (off_t)bytes) {
		snprintf(why, whylen, "not a segment of this memgrp (%s part: %lld bytes, expected %zu)",
			 what, (long long)st.st_size, bytes);
		return false;
	}
	if (st.st_uid != geteuid()) {
		snprintf(why, whylen, "its %s part belongs to uid %u, not to this manager's %u", what,
			 (unsigned)st.st_uid, (unsigned)geteuid());
		return false;
	}
	return true;
}

/* Maps a segment's two open parts and checks the whole of it
 * (mgi_segment_check) before anything of it is used. Fills sf->seg and
 * name, or returns -EINVAL with why. */
static int map_checked(struct segfiles *sf, char *name, char *why, size_t whylen)
{
	if (!part_ok(sf->ctl, MGI_SEGMENT_CTL_BYTES, false, "control", why, whylen) ||
	    !part_ok(sf->acct, MGI_SEGMENT_ACCT_BYTES, true, "accounting", why, whylen))
		return -EINVAL;
	sf->seg = map_pair(sf->ctl, sf->acct);
	if (!sf->seg) {
		snprintf(why, whylen, "cannot map the segment: %s", strerror(errno));
		return -errno;
	}
	if (mgi_segment_check(sf->seg, sizeof(mgi_segment_t), why, whylen) != 0) {
		unmap_pair(sf->seg);
		sf->seg = NULL;
		return -EINVAL;
	}
	memcpy(name, sf->seg->ctl.group, MGI_GROUP_NAME_MAX);
	return 0;
}

/* A segment found in the state directory at start. */
struct found {
	struct segfiles sf;
	char name[MGI_GROUP_NAME_MAX];
	char file[24];
};

static int by_depth(const void *a, const void *b)
{
	const struct found *x = a, *y = b;
	unsigned dx = x->name[0] ? mgi_group_depth(x->name) : 0;
	unsigned dy = y->name[0] ? mgi_group_depth(y->name) : 0;
	return (dx > dy) - (dx < dy);
}

static void sayf(void (*say)(void *, const char *), void *arg, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void sayf(void (*say)(void *, const char *), void *arg, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	say(arg, msg);
}

/* Sets a rejected segment's files aside (NAME.rejected), kept for a
 * post-mortem and never read again; says so with the reason. */
static void set_aside(int dfd, const char *dir, const char *file, const char *reason,
		      void (*say)(void *, const char *), void *arg)
{
	char acct[40], to[64];
	bool moved;

	snprintf(to, sizeof(to), "%s.rejected", file);
	moved = renameat(dfd, file, dfd, to) == 0;
	account_file(file, acct, sizeof(acct));
	snprintf(to, sizeof(to), "%s.rejected", acct);
	renameat(dfd, acct, dfd, to); /* may not exist */
	if (moved)
		sayf(say, arg, "%s/%s: %s; set aside as %s.rejected", dir, file, reason, file);
	else
		sayf(say, arg, "%s/%s: %s; could not be set aside (%s), left alone", dir, file,
		     reason, strerror(errno));
}

/* A restored child's grant is charged in its parent's usage: one above it
 * was not given by a manager (the parent's file is older, or was written):
 * clamped to it, so that a later return cannot uncharge more than the
 * parent holds. */
static void restore_grant(const mgi_segment_t *parent, mgi_segment_t *child, const char *name,
			  void (*say)(void *, const char *), void *arg)
{
	char gwhy[160];

	if (!parent->ctl.group[0] || mgi_segment_check_grant(parent, child, gwhy, sizeof(gwhy)) == 0)
		return;
	uint64_t u = mgi_counter_read(&parent->acct.memory), su = mgi_counter_read(&parent->acct.swap);
	if (atomic_load(&child->ctl.granted) > u)
		atomic_store(&child->ctl.granted, u);
	if (atomic_load(&child->ctl.swap_granted) > su)
		atomic_store(&child->ctl.swap_granted, su);
	sayf(say, arg, "group '%s': %s; clamped to it", name, gwhy);
}

/*
 * A restored group's usage against what the manager trusts: its own
 * processes' charges (its slots, which the check held to its usage) and
 * the grants of its restored groups below. A group set aside (or left
 * alone) at this restart leaves its grant in its parent's usage, and its
 * figures are not trusted, so nothing of it can be returned; so the
 * parent's usage is recomputed instead, when it is higher than that by
 * more than a fault-around window per process (charges of a top-level
 * group's processes in flight: they charge while no manager runs). Only
 * ever lowered. A nested parent's grant then holds more than its usage:
 * the tick returns it to the grandparent.
 */
static void recount_usage(mgi_tree_t *t, int g, void (*say)(void *, const char *), void *arg)
{
	mgi_segment_t *seg = t->node[g].seg;

	for (int swap = 0; swap < 2; swap++) {
		mgi_counter_t *cnt = swap ? &seg->acct.swap : &seg->acct.memory;
		uint64_t own = 0, below = 0, usage = mgi_counter_read(cnt);
		unsigned np = 0;
		for (int sl = 0; sl < MGI_PROCS_MAX; sl++) {
			if (atomic_load(&seg->ctl.procs[sl].pid) == 0)
				continue;
			np++;
			own += atomic_load(swap ? &seg->acct.procs[sl].swapped : &seg->acct.procs[sl].charged);
		}
		for (int c = 1; c < MGI_GROUPS_MAX; c++)
			if (t->node[c].used && t->node[c].parent == g)
				below += atomic_load(swap ? &t->node[c].seg->ctl.swap_granted
							  : &t->node[c].seg->ctl.granted);
		if (usage <= own + below + (uint64_t)np * MGI_FAULT_AROUND_MAX)
			continue;
		atomic_fetch_sub(&cnt->usage, usage - own - below);
		sayf(say, arg, "group '%s': %s usage %llu KiB, but its processes hold %llu KiB and its "
			       "groups below %llu KiB of grant (a group below set aside, or a figure "
			       "written): recomputed from what the manager trusts, %llu KiB",
		     t->node[g].name, swap ? "swap" : "memory", (unsigned long long)usage * 4,
		     (unsigned long long)own * 4, (unsigned long long)below * 4,
		     (unsigned long long)(own + below) * 4);
	}
}

int mgi_tree_use_dir(mgi_tree_t *t, const char *dir, void (*say)(void *arg, const char *msg),
		     void *arg, char *why, size_t whylen)
{
	enum { FOUND_MAX = 2 * MGI_GROUPS_MAX };
	static struct found f[FOUND_MAX];
	char msg[200];
	unsigned n = 0;
	struct dirent *de;
	DIR *d;
	int dfd;

	if (mgi_guard_install() != 0) {
		snprintf(why, whylen, "cannot install the SIGBUS guard: %s", strerror(errno));
		return -errno;
	}
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		snprintf(why, whylen, "cannot create the state directory %s: %s", dir, strerror(errno));
		return -errno;
	}
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || !(d = fdopendir(dup(dfd)))) {
		snprintf(why, whylen, "cannot open the state directory %s: %s", dir, strerror(errno));
		if (dfd >= 0)
			close(dfd);
		return -errno;
	}
	while ((de = readdir(d)) && n < FOUND_MAX) {
		char acct[40];
		if (strncmp(de->d_name, SEGMENT_PREFIX, strlen(SEGMENT_PREFIX)) != 0 ||
		    strlen(de->d_name) >= sizeof(f[n].file) || strchr(de->d_name, '.'))
			continue; /* not a control part, or one set aside */
		f[n].sf = (struct segfiles){.ctl = -1, .acct = -1, .ro = -1};
		account_file(de->d_name, acct, sizeof(acct));
		f[n].sf.ctl = openat(dfd, de->d_name, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
		if (f[n].sf.ctl < 0) {
			sayf(say, arg, "%s/%s: %s; left alone", dir, de->d_name, strerror(errno));
			continue;
		}
		f[n].sf.acct = openat(dfd, acct, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
		if (f[n].sf.acct < 0) {
			snprintf(msg, sizeof(msg), "not a segment of this memgrp (no accounting part %s: %s)",
				 acct, strerror(errno));
		} else if (map_checked(&f[n].sf, f[n].name, msg, sizeof(msg)) == 0 &&
			   (f[n].sf.ro = reopen(f[n].sf.ctl, O_RDONLY)) < 0) {
			snprintf(msg, sizeof(msg), "cannot reopen it read-only: %s", strerror(errno));
		} else if (f[n].sf.seg && f[n].sf.ro >= 0) {
			snprintf(f[n].file, sizeof(f[n].file), "%s", de->d_name);
			n++;
			continue;
		}
		close_segfiles(&f[n].sf);
		set_aside(dfd, dir, de->d_name, msg, say, arg);
	}
	closedir(d);
	t->dirfd = dfd;
	/* Parents before children; the root (depth 0) first. */
	qsort(f, n, sizeof(f[0]), by_depth);
	/* The root: the one found, else a new one in the directory, in place
	 * of the memfds made at init (nothing has joined it yet). */
	unsigned k = 0;
	mgi_group_node_t root = {0};
	if (n && !f[0].name[0]) {
		root.seg = f[0].sf.seg;
		root.segfd = f[0].sf.ctl;
		root.acctfd = f[0].sf.acct;
		root.rofd = f[0].sf.ro;
		snprintf(root.file, sizeof(root.file), "%s", f[0].file);
		mgi_segment_forget_manager(root.seg);
		k = 1;
	} else {
		int rc = new_segment(dfd, &root, "", t->fault_around);
		if (rc != 0) {
			snprintf(why, whylen, "cannot make the root group's segment in %s: %s", dir,
				 strerror(-rc));
			return rc;
		}
	}
	mgi_group_node_t *r0 = &t->node[0];
	unmap_pair(r0->seg);
	close(r0->segfd);
	close(r0->acctfd);
	close(r0->rofd);
	r0->seg = root.seg;
	r0->segfd = root.segfd;
	r0->acctfd = root.acctfd;
	r0->rofd = root.rofd;
	memcpy(r0->file, root.file, sizeof(root.file));
	for (; k < n; k++) {
		char parent[MGI_GROUP_NAME_MAX];
		int p, i = -1;
		if (!f[k].name[0] || mgi_tree_find(t, f[k].name) >= 0) {
			sayf(say, arg, "%s/%s: a second segment of group '%s'; left alone", dir,
			     f[k].file, f[k].name[0] ? f[k].name : "(root)");
		} else if (mgi_group_parent(f[k].name, parent), (p = mgi_tree_find(t, parent)) < 0) {
			sayf(say, arg, "%s/%s: group '%s' has no parent '%s' here; left alone", dir,
			     f[k].file, f[k].name, parent);
		} else if ((i = insert_node(t, f[k].name, p, &f[k].sf, f[k].file, msg,
					    sizeof(msg))) < 0) {
			sayf(say, arg, "%s/%s: %s; left alone", dir, f[k].file, msg);
		}
		if (i < 0) {
			close_segfiles(&f[k].sf);
			continue;
		}
		mgi_segment_forget_manager(f[k].sf.seg);
		restore_grant(t->node[p].seg, f[k].sf.seg, f[k].name, say, arg);
		sayf(say, arg, "restored group '%s' (usage %llu KiB, %u processes)", f[k].name,
		     (unsigned long long)mgi_counter_read(&f[k].sf.seg->acct.memory) * 4,
		     mgi_segment_nr_procs(f[k].sf.seg));
	}
	for (int g = 1; g < MGI_GROUPS_MAX; g++)
		if (t->node[g].used)
			recount_usage(t, g, say, arg);
	return 0;
}

/* Whether two fds are the same open file (the same segment). */
static bool same_file(int a, int b)
{
	struct stat sa, sb;

	return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
	       sa.st_ino == sb.st_ino;
}

int mgi_tree_adopt(mgi_tree_t *t, int ctlfd, int acctfd, bool *fresh, char *why, size_t whylen)
{
	char name[MGI_GROUP_NAME_MAX], parent[MGI_GROUP_NAME_MAX];
	struct segfiles sf = {.ctl = -1, .acct = -1, .ro = -1};
	int p, i, own;

	*fresh = false;
	for (int k = 0; k < MGI_GROUPS_MAX; k++) {
		if (t->node[k].used && same_file(ctlfd, t->node[k].segfd)) {
			if (!same_file(acctfd, t->node[k].acctfd)) {
				snprintf(why, whylen, "the accounting part handed back with group '%s' "
					 "is not its own", t->node[k].name);
				return -EINVAL;
			}
			return k; /* adopted already, through another process */
		}
	}
	/* An adopted part may be a file (not sealed): see guard.h. */
	if (mgi_guard_install() != 0) {
		snprintf(why, whylen, "cannot install the SIGBUS guard: %s", strerror(errno));
		return -errno;
	}
	/* What the process holds of the control part is read-only: the
	 * manager opens the same file again to write it (its own). */
	sf.ctl = reopen(ctlfd, O_RDWR);
	/* And the accounting part, which a process of a group below holds
	 * read-only (its ancestors' are: grant.h). */
	sf.acct = reopen(acctfd, O_RDWR);
	sf.ro = reopen(ctlfd, O_RDONLY);
	if (sf.ctl < 0 || sf.acct < 0 || sf.ro < 0) {
		snprintf(why, whylen, "cannot open the segment again: %s", strerror(errno));
		close_segfiles(&sf);
		return -EPERM;
	}
	int rc = map_checked(&sf, name, why, whylen);
	if (rc != 0) {
		close_segfiles(&sf);
		return rc;
	}
	if ((own = mgi_tree_find(t, name)) >= 0) {
		snprintf(why, whylen, "group '%s' exists here already with other accounts "
			 "(created since the restart)", name[0] ? name : "(root)");
		close_segfiles(&sf);
		return -EEXIST;
	}
	mgi_group_parent(name, parent);
	if ((p = mgi_tree_find(t, parent)) < 0) {
		snprintf(why, whylen, "no group '%s' to adopt '%s' in", parent, name);
		close_segfiles(&sf);
		return -ENOENT;
	}
	i = insert_node(t, name, p, &sf, "", why, whylen);
	if (i < 0) {
		close_segfiles(&sf);
		return i;
	}
	*fresh = true;
	return i;
}

void mgi_tree_name_slot(mgi_tree_t *t, int idx, int slot, int pid)
{
	char path[40], comm[MGI_COMM_MAX] = "";
	int fd;
	ssize_t n = 0;

	if (idx < 0 || idx >= MGI_GROUPS_MAX || !t->node[idx].used || slot < 0 ||
	    slot >= MGI_PROCS_MAX)
		return;
	snprintf(path, sizeof(path), "/proc/%d/comm", pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0) {
		n = read(fd, comm, sizeof(comm) - 1);
		close(fd);
	}
	if (n > 0 && comm[n - 1] == '\n')
		n--;
	comm[n > 0 ? n : 0] = '\0';
	memcpy(t->node[idx].seg->ctl.procs[slot].comm, comm, sizeof(comm));
}

/*
 * A group whose accounting file was truncated under the manager (the guard
 * patched zeros over its reads of the cut pages): the file gets its size
 * back (what was cut reads as zeros, for the group's processes too) and is
 * mapped again in place of the patch. The group goes on from those
 * figures, as one whose process wrote zeros there would: only its own
 * figures are wrong. Returns whether it was repaired, with why.
 */
static bool repair_truncated(mgi_group_node_t *n, char *why, size_t whylen)
{
	struct stat st;
	long long was;

	if (!mgi_guard_take(&n->seg->acct))
		return false;
	was = fstat(n->acctfd, &st) == 0 ? (long long)st.st_size : -1;
	if (was >= 0 && was < (long long)MGI_SEGMENT_ACCT_BYTES &&
	    ftruncate(n->acctfd, MGI_SEGMENT_ACCT_BYTES) != 0) {
		/* The patch stays: the manager reads zeros, its writes are
		 * its own; tried again at the next fault. */
		snprintf(why, whylen, "its accounting file was truncated to %lld bytes and cannot be "
			 "restored (%s)", was, strerror(errno));
		return true;
	}
	if (mmap(&n->seg->acct, MGI_SEGMENT_ACCT_BYTES, PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_FIXED, n->acctfd, 0) == MAP_FAILED) {
		snprintf(why, whylen, "its accounting file was truncated to %lld bytes; restored, "
			 "but it cannot be mapped again (%s)", was, strerror(errno));
		return true;
	}
	snprintf(why, whylen, "its accounting file was truncated to %lld bytes (restored to %zu: "
		 "the figures cut read as zero)", was, (size_t)MGI_SEGMENT_ACCT_BYTES);
	return true;
}

unsigned mgi_tree_audit(mgi_tree_t *t, void (*say)(void *arg, const char *msg), void *arg)
{
	unsigned told = 0;

	for (int g = 0; g < MGI_GROUPS_MAX; g++) {
		mgi_group_node_t *n = &t->node[g];
		char why[200];
		if (!n->used)
			continue;
		/* Charges in flight: a process's slot may run ahead of the
		 * counter by what it is uncharging (a large munmap). */
		uint64_t slack = (uint64_t)1024 * (mgi_segment_nr_procs(n->seg) + 1);
		unsigned bits = mgi_segment_audit(n->seg, slack, why, sizeof(why));
		if (bits & MGI_TAMPER_SLOTS) {
			/* Seen twice in a row, or it was a charge in flight. */
			unsigned again = mgi_segment_audit(n->seg, slack, NULL, 0);
			if (!(again & MGI_TAMPER_SLOTS))
				bits &= ~(unsigned)MGI_TAMPER_SLOTS;
		}
		/* Reported every time: each truncation is a new act. */
		if (repair_truncated(n, why, sizeof(why))) {
			bits = MGI_TAMPER_TRUNCATED;
			n->tampered &= ~(unsigned)MGI_TAMPER_TRUNCATED;
			mgi_segment_audit(n->seg, slack, NULL, 0);
		}
		if (!(bits & ~n->tampered))
			continue;
		n->tampered |= bits;
		sayf(say, arg, "group '%s': its accounting was tampered with: %s (clamped; only this "
			       "group's figures are affected)",
		     g ? n->name : "(root)", why);
		told++;
	}
	return told;
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
	if (n->file[0] && t->dirfd >= 0) {
		char acct[40];
		account_file(n->file, acct, sizeof(acct));
		unlinkat(t->dirfd, n->file, 0);
		unlinkat(t->dirfd, acct, 0);
	}
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

int mgi_tree_reopen_ro(int fd)
{
	return reopen(fd, O_RDONLY);
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

/* The groups whose figures add up in anc's: its subtree, except for the
 * root, whose counter is charged by its own processes only (no path
 * includes it, to keep a shared cache line out of every fault). */
static bool counted_in(const mgi_tree_t *t, int idx, int anc)
{
	return anc == 0 ? idx == 0 : mgi_tree_is_under(t, idx, anc);
}

bool mgi_tree_is_under(const mgi_tree_t *t, int idx, int anc)
{
	for (int i = idx; i >= 0; i = t->node[i].parent)
		if (i == anc)
			return true;
	return false;
}

void mgi_tree_stats(const mgi_tree_t *t, int idx, mgi_stats_t *out)
{
	const mgi_segment_t *seg = t->node[idx].seg;

	memset(out, 0, sizeof(*out));
	out->usage = mgi_counter_read(&seg->acct.memory) * 4096;
	out->max_usage = atomic_load(&seg->acct.memory.watermark) * 4096;
	out->limit = mgi_counter_read_max(&seg->ctl.memory) * 4096;
	out->failcnt = atomic_load(&seg->acct.memory.failcnt);
	out->high = atomic_load(&seg->ctl.memory.high) * 4096;
	out->low = atomic_load(&seg->ctl.memory.low) * 4096;
	out->soft = atomic_load(&seg->ctl.memory.soft) * 4096;
	out->swappiness = atomic_load(&seg->ctl.swappiness);
	out->mode = atomic_load(&seg->ctl.mode);
	out->estimate = out->usage;
	out->swap_usage = mgi_counter_read(&seg->acct.swap) * 4096;
	out->swap_max_usage = atomic_load(&seg->acct.swap.watermark) * 4096;
	out->swap_limit = mgi_counter_read_max(&seg->ctl.swap) * 4096;
	out->memsw_usage = out->usage + out->swap_usage;
	out->under_oom = atomic_load(&seg->ctl.under_oom);
	for (int g = 0; g < MGI_GROUPS_MAX; g++) {
		if (!t->node[g].used || !counted_in(t, g, idx))
			continue;
		const mgi_segment_t *s = t->node[g].seg;
		out->pgfault += atomic_load(&s->acct.pgfault);
		out->oom_kill += atomic_load(&s->ctl.oom_kill);
		out->oom_pauses += atomic_load(&s->ctl.oom_pauses);
		out->oom_none += atomic_load(&s->ctl.oom_none);
		out->ladder_coop += atomic_load(&s->ctl.ladder_coop);
		out->ladder_coop_enough += atomic_load(&s->ctl.ladder_coop_enough);
		out->ladder_evict += atomic_load(&s->ctl.ladder_evict);
		out->ladder_evict_empty += atomic_load(&s->ctl.ladder_evict_empty);
		out->ladder_purge += atomic_load(&s->ctl.ladder_purge);
		out->tamper_reports += t->node[g].tamper_reports;
		out->coop_requests += atomic_load(&s->ctl.coop_requests);
		out->coop_freed += atomic_load(&s->ctl.coop_freed) * 4096;
		out->pswpout += atomic_load(&s->acct.pswpout);
		out->pswpin += atomic_load(&s->acct.pswpin);
		out->pgmajfault += atomic_load(&s->acct.pgmajfault);
		out->pgdeactivate += atomic_load(&s->acct.pgdeactivate);
		out->pgactivate += atomic_load(&s->acct.pgactivate);
		out->refault += atomic_load(&s->acct.refault);
		out->workingset_activate += atomic_load(&s->acct.workingset_activate);
		out->written_back_pages += atomic_load(&s->acct.written_back);
		out->vrange_purged_pages += atomic_load(&s->acct.vrange_purged_pages);
		out->mode_switches += atomic_load(&s->acct.mode_switches);
		out->mode_switch_avg_us += atomic_load(&s->acct.mode_switch_ns); /* a sum, until below */
		for (int b = 0; b < MGI_RECLAIM_BUCKETS; b++)
			out->reclaim_hist[b] += atomic_load(&s->acct.reclaim_hist[b]);
		for (int b = 0; b < MGI_RECLAIM_BUCKETS; b++)
			out->restore_hist[b] += atomic_load(&s->acct.restore_hist[b]);
		out->restore_ns += atomic_load(&s->acct.restore_ns);
		for (int b = 0; b < MGI_RECLAIM_BUCKETS; b++)
			out->notify_hist[b] += t->node[g].notify_hist[b];
		out->notify_ns += t->node[g].notify_ns;
		for (int i = 0; i < MGI_PROCS_MAX; i++) {
			const mgi_proc_slot_t *sl = &s->acct.procs[i];
			if (atomic_load(&s->ctl.procs[i].pid) <= 0)
				continue;
			out->nr_processes++;
			out->tracked_bytes += atomic_load(&sl->tracked_bytes);
			out->untracked_bytes += atomic_load(&sl->untracked_bytes);
			out->staged_bytes += atomic_load(&sl->staged) * 4096;
			out->stored_pages += atomic_load(&sl->swapped);
			out->compressed_bytes += atomic_load(&sl->stored_bytes);
			out->swap_file_bytes += atomic_load(&sl->file_bytes);
			out->same_filled_pages += atomic_load(&sl->same_filled);
			out->mapped += atomic_load(&sl->est_mapped) * 4096;
			out->resident += atomic_load(&sl->est_resident) * 4096;
			out->slow_regions += atomic_load(&sl->est_slow);
			out->fast_regions += atomic_load(&sl->est_fast);
			out->vrange_bytes += atomic_load(&sl->vrange_pages) * 4096;
		}
	}
	out->mode_switch_avg_us = out->mode_switches
					  ? out->mode_switch_avg_us / out->mode_switches / 1000
					  : 0;
	/* The root's counters are its own processes' only (see counted_in);
	 * its swap counter likewise. */
	mgi_stats_stall_quantiles(out);
}

void mgi_tree_stat_msg(const mgi_tree_t *t, int idx, mgi_msg_t *out)
{
	mgi_msg_stat_t *r = &out->stat;

	mgi_msg_init(out, MGI_MSG_STAT);
	mgi_tree_stats(t, idx, &r->figures);
	snprintf(r->group, sizeof(r->group), "%s", t->node[idx].name);
	for (int g = 0; g < MGI_GROUPS_MAX; g++) {
		if (!t->node[g].used || !counted_in(t, g, idx))
			continue;
		const mgi_segment_t *seg = t->node[g].seg;
		for (int i = 0; i < MGI_PROCS_MAX && r->nprocs < MGI_STAT_PROCS_MAX; i++) {
			const mgi_proc_slot_t *sl = &seg->acct.procs[i];
			int32_t pid = atomic_load(&seg->ctl.procs[i].pid);
			if (pid <= 0)
				continue;
			mgi_proc_stat_t *p = &r->procs[r->nprocs++];
			p->pid = pid;
			p->charged = mgi_segment_slot_charged(seg, i) * 4096;
			p->pgfault = atomic_load(&sl->pgfault);
			memcpy(p->comm, seg->ctl.procs[i].comm, sizeof(p->comm));
			p->comm[sizeof(p->comm) - 1] = '\0';
		}
	}
}

bool mgi_tree_largest(const mgi_tree_t *t, int idx, int *group, int *slot)
{
	uint64_t most = 0;

	for (int g = 0; g < MGI_GROUPS_MAX; g++) {
		if (!t->node[g].used || !mgi_tree_is_under(t, g, idx))
			continue;
		int s = mgi_segment_largest(t->node[g].seg);
		uint64_t c = s >= 0 ? mgi_segment_slot_charged(t->node[g].seg, s) : 0;
		if (c > most) {
			most = c;
			*group = g;
			*slot = s;
		}
	}
	return most > 0;
}

static uint64_t soft_pages(uint64_t bytes)
{
	return bytes == MGI_SET_UNLIMITED || bytes == UINT64_MAX ? MGI_PAGES_UNLIMITED
								  : bytes_to_pages(bytes);
}

/* Compiles an OOM regex as the kill will (extended, no submatches):
 * 0, or -EINVAL with regerror's words in why. */
static int regex_ok(const char *what, const char *re, char *why, size_t whylen)
{
	regex_t rx;
	int rc = *re ? regcomp(&rx, re, REG_EXTENDED | REG_NOSUB) : 0;
	char msg[96];

	if (rc == 0) {
		if (*re)
			regfree(&rx);
		return 0;
	}
	regerror(rc, &rx, msg, sizeof(msg));
	snprintf(why, whylen, "--oom-%s '%s': %s", what, re, msg);
	return -EINVAL;
}

int mgi_tree_check_oom(const mgi_msg_set_t *set, char *why, size_t whylen)
{
	int rc = 0;

	/* what mgi_msg_parse checks, again: the embedded manager's limits and
	 * the unit tests come without it */
	if ((set->oom_set & ~MGI_OOM_SET_ALL) ||
	    !memchr(set->oom_prefer, '\0', sizeof(set->oom_prefer)) ||
	    !memchr(set->oom_avoid, '\0', sizeof(set->oom_avoid))) {
		snprintf(why, whylen, "OOM settings: unknown flags or an unterminated regex");
		return -EINVAL;
	}

	if (set->oom_set & MGI_OOM_SET_PREFER)
		rc = regex_ok("prefer", set->oom_prefer, why, whylen);
	if (rc == 0 && (set->oom_set & MGI_OOM_SET_AVOID))
		rc = regex_ok("avoid", set->oom_avoid, why, whylen);
	return rc;
}

/* Writes the OOM settings SET/CREATE names (oom_set): mgi_msg_parse
 * checked the ranges, mgi_tree_set_limits the regexes' syntax first. */
static int set_oom(mgi_segment_t *seg, const mgi_msg_set_t *set)
{
	mgi_segment_ctl_t *c = &seg->ctl;

	if (set->oom_set & MGI_OOM_SET_POLICY)
		c->oom_policy = set->oom_policy;
	if (set->oom_set & MGI_OOM_SET_SCOPE)
		c->oom_scope = set->oom_scope;
	if (set->oom_set & MGI_OOM_SET_SIGNAL) {
		c->oom_signal = set->oom_signal;
		c->oom_grace_ms = set->oom_grace_ms;
	}
	if (set->oom_set & MGI_OOM_SET_PREFER)
		memcpy(c->oom_prefer, set->oom_prefer, sizeof(c->oom_prefer));
	if (set->oom_set & MGI_OOM_SET_AVOID)
		memcpy(c->oom_avoid, set->oom_avoid, sizeof(c->oom_avoid));
	if (set->oom_set & MGI_OOM_SET_DISABLE)
		c->oom_kill_disable = set->oom_kill_disable ? 1 : 0;
	if (set->oom_set & MGI_OOM_SET_PREKILL) {
		memcpy(c->oom_prekill, set->oom_prekill, sizeof(c->oom_prekill));
		c->oom_prekill[sizeof(c->oom_prekill) - 1] = '\0';
		c->oom_prekill_timeout_ms = set->oom_prekill_timeout_ms;
	}
	c->oom_set |= set->oom_set;
	return 0;
}

int mgi_tree_set_limits(mgi_tree_t *t, int idx, const mgi_msg_set_t *set, char *why,
			size_t whylen)
{
	mgi_segment_t *seg = t->node[idx].seg;
	char usage[16];
	int rc;

	/* a bad regex refuses the whole request, before anything changed */
	if ((rc = mgi_tree_check_oom(set, why, whylen)) != 0)
		return rc;
	if (set->memory_max != MGI_SET_KEEP &&
	    mgi_counter_set_max(&seg->acct.memory, &seg->ctl.memory,
				bytes_to_pages(set->memory_max)) != 0) {
		mgi_size_format(mgi_counter_read(&seg->acct.memory) * 4096, usage, sizeof(usage));
		snprintf(why, whylen,
			 "the group uses %s, more than the new limit: lower its usage first "
			 "(a --memory-high at the new value has it evicted down to there, "
			 "if it may swap)", usage);
		return -EBUSY;
	}
	if (set->memory_high != MGI_SET_KEEP)
		mgi_counter_set_high(&seg->ctl.memory, soft_pages(set->memory_high));
	if (set->memory_low != MGI_SET_KEEP)
		mgi_counter_set_low(&seg->ctl.memory, set->memory_low == MGI_SET_UNLIMITED
							? MGI_PAGES_UNLIMITED
							: set->memory_low / 4096);
	if (set->memory_soft != MGI_SET_KEEP)
		mgi_counter_set_soft(&seg->ctl.memory, soft_pages(set->memory_soft));
	/* Below the swap usage, a new limit only stops new evictions. */
	if (set->swap_max != MGI_SET_KEEP)
		atomic_store(&seg->ctl.swap.max, soft_pages(set->swap_max));
	if (set->swappiness != MGI_SET_KEEP)
		atomic_store(&seg->ctl.swappiness, (uint32_t)set->swappiness);
	if (set->mode != MGI_SET_KEEP)
		atomic_store(&seg->ctl.mode, (uint32_t)set->mode);
	return set_oom(seg, set);
}

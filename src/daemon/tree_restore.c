/* tree_restore.c - a manager takes groups back: from its state directory at start, or adopted from a rejoining process. */
#include "tree.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "group.h"
#include "guard.h"
#include "oslayer.h"
#include "tree_int.h"

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

	if ((i = mgi_tree_free_node(t, why, whylen)) < 0)
		return i;
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
	mgi_tree_close_parts(&sf->seg, &sf->ctl, &sf->acct, &sf->ro);
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
	sf->seg = mgi_tree_map_pair(sf->ctl, sf->acct);
	if (!sf->seg) {
		snprintf(why, whylen, "cannot map the segment: %s", strerror(errno));
		return -errno;
	}
	if (mgi_segment_check(sf->seg, sizeof(mgi_segment_t), why, whylen) != 0) {
		mgi_tree_unmap_pair(sf->seg);
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

/* Sets a rejected segment's files aside (NAME.rejected), kept for a
 * post-mortem and never read again; says so with the reason. */
static void set_aside(int dfd, const char *dir, const char *file, const char *reason,
		      void (*say)(void *, const char *), void *arg)
{
	char acct[40], to[64];
	bool moved;

	snprintf(to, sizeof(to), "%s.rejected", file);
	moved = renameat(dfd, file, dfd, to) == 0;
	mgi_tree_account_file(file, acct, sizeof(acct));
	snprintf(to, sizeof(to), "%s.rejected", acct);
	renameat(dfd, acct, dfd, to); /* may not exist */
	if (moved)
		mgi_tree_sayf(say, arg, "%s/%s: %s; set aside as %s.rejected", dir, file, reason, file);
	else
		mgi_tree_sayf(say, arg, "%s/%s: %s; could not be set aside (%s), left alone", dir, file,
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
	mgi_tree_sayf(say, arg, "group '%s': %s; clamped to it", name, gwhy);
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
		mgi_tree_sayf(say, arg, "group '%s': %s usage %llu KiB, but its processes hold %llu KiB and its "
			       "groups below %llu KiB of grant (a group below set aside, or a figure "
			       "written): recomputed from what the manager trusts, %llu KiB",
		     t->node[g].name, swap ? "swap" : "memory", (unsigned long long)usage * MGI_PAGE_KIB,
		     (unsigned long long)own * MGI_PAGE_KIB, (unsigned long long)below * MGI_PAGE_KIB,
		     (unsigned long long)(own + below) * MGI_PAGE_KIB);
	}
}

/* The segments in the state directory (d, open on dfd) that pass the
 * checks, into f (at most max); the others set aside. Returns how many. */
static unsigned find_segments(int dfd, DIR *d, const char *dir, struct found *f, unsigned max,
			      void (*say)(void *arg, const char *msg), void *arg)
{
	char msg[200];
	unsigned n = 0;
	struct dirent *de;

	while ((de = readdir(d)) && n < max) {
		char acct[40];
		if (strncmp(de->d_name, SEGMENT_PREFIX, strlen(SEGMENT_PREFIX)) != 0 ||
		    strlen(de->d_name) >= sizeof(f[n].file) || strchr(de->d_name, '.'))
			continue; /* not a control part, or one set aside */
		f[n].sf = (struct segfiles){.ctl = -1, .acct = -1, .ro = -1};
		mgi_tree_account_file(de->d_name, acct, sizeof(acct));
		f[n].sf.ctl = openat(dfd, de->d_name, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
		if (f[n].sf.ctl < 0) {
			mgi_tree_sayf(say, arg, "%s/%s: %s; left alone", dir, de->d_name, strerror(errno));
			continue;
		}
		f[n].sf.acct = openat(dfd, acct, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
		if (f[n].sf.acct < 0) {
			snprintf(msg, sizeof(msg), "not a segment of this memgrp (no accounting part %s: %s)",
				 acct, strerror(errno));
		} else if (map_checked(&f[n].sf, f[n].name, msg, sizeof(msg)) == 0 &&
			   (f[n].sf.ro = mgi_os_reopen(f[n].sf.ctl, O_RDONLY)) < 0) {
			snprintf(msg, sizeof(msg), "cannot reopen it read-only: %s", strerror(errno));
		} else if (f[n].sf.seg && f[n].sf.ro >= 0) {
			snprintf(f[n].file, sizeof(f[n].file), "%s", de->d_name);
			n++;
			continue;
		}
		close_segfiles(&f[n].sf);
		set_aside(dfd, dir, de->d_name, msg, say, arg);
	}
	return n;
}

int mgi_tree_use_dir(mgi_tree_t *t, const char *dir, void (*say)(void *arg, const char *msg),
		     void *arg, char *why, size_t whylen)
{
	enum { FOUND_MAX = 2 * MGI_GROUPS_MAX };
	static struct found f[FOUND_MAX];
	char msg[200];
	unsigned n;
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
	n = find_segments(dfd, d, dir, f, FOUND_MAX, say, arg);
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
		int rc = mgi_tree_new_segment(dfd, &root, "", t->fault_around);
		if (rc != 0) {
			snprintf(why, whylen, "cannot make the root group's segment in %s: %s", dir,
				 strerror(-rc));
			return rc;
		}
	}
	mgi_group_node_t *r0 = &t->node[0];
	mgi_tree_unmap_pair(r0->seg);
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
			mgi_tree_sayf(say, arg, "%s/%s: a second segment of group '%s'; left alone", dir,
			     f[k].file, f[k].name[0] ? f[k].name : "(root)");
		} else if (mgi_group_parent(f[k].name, parent), (p = mgi_tree_find(t, parent)) < 0) {
			mgi_tree_sayf(say, arg, "%s/%s: group '%s' has no parent '%s' here; left alone", dir,
			     f[k].file, f[k].name, parent);
		} else if ((i = insert_node(t, f[k].name, p, &f[k].sf, f[k].file, msg,
					    sizeof(msg))) < 0) {
			mgi_tree_sayf(say, arg, "%s/%s: %s; left alone", dir, f[k].file, msg);
		}
		if (i < 0) {
			close_segfiles(&f[k].sf);
			continue;
		}
		mgi_segment_forget_manager(f[k].sf.seg);
		restore_grant(t->node[p].seg, f[k].sf.seg, f[k].name, say, arg);
		mgi_tree_sayf(say, arg, "restored group '%s' (usage %llu KiB, %u processes)", f[k].name,
		     (unsigned long long)mgi_counter_read(&f[k].sf.seg->acct.memory) * MGI_PAGE_KIB,
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
	sf.ctl = mgi_os_reopen(ctlfd, O_RDWR);
	/* And the accounting part, which a process of a group below holds
	 * read-only (its ancestors' are: grant.h). */
	sf.acct = mgi_os_reopen(acctfd, O_RDWR);
	sf.ro = mgi_os_reopen(ctlfd, O_RDONLY);
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


/* tree.c - the group tree: segments, creation and removal, paths, subtree figures. */
#include "tree.h"

#include <dirent.h>
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

#include "group.h"
#include "size.h"

#define SEGMENT_PREFIX "segment-"

/* A new segment file in the state directory, named in n->file; its fd, or
 * -1 with errno (as memfd_create). */
static int new_segment_file(int dirfd, mgi_group_node_t *n)
{
	static const char digits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ ((uint64_t)getpid() << 40);
	for (int attempt = 0; attempt < 100; attempt++) {
		char *p = n->file + snprintf(n->file, sizeof(n->file), SEGMENT_PREFIX);
		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
		for (int k = 0; k < 8; k++)
			*p++ = digits[(x >> (64 - 6 * (k + 1))) % 36];
		*p = '\0';
		int fd = openat(dirfd, n->file, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
				0600);
		if (fd >= 0 || errno != EEXIST)
			return fd;
	}
	errno = EEXIST;
	return -1;
}

static int new_segment(int dirfd, mgi_group_node_t *n, const char *name, uint32_t fault_around)
{
	n->file[0] = '\0';
	if (dirfd >= 0)
		n->segfd = new_segment_file(dirfd, n);
	else
		n->segfd = memfd_create("memgrp-segment", MFD_CLOEXEC);
	if (n->segfd < 0)
		return -errno;
	if (ftruncate(n->segfd, sizeof(mgi_segment_t)) != 0)
		goto fail;
	n->seg = mmap(NULL, sizeof(mgi_segment_t), PROT_READ | PROT_WRITE, MAP_SHARED, n->segfd, 0);
	if (n->seg == MAP_FAILED)
		goto fail;
	mgi_segment_init(n->seg, name, fault_around);
	return 0;
fail:;
	int e = -errno;
	close(n->segfd);
	if (n->file[0])
		unlinkat(dirfd, n->file, 0);
	n->segfd = -1;
	n->seg = NULL;
	n->file[0] = '\0';
	return e;
}

static void free_node(mgi_group_node_t *n)
{
	if (n->seg)
		munmap(n->seg, sizeof(mgi_segment_t));
	if (n->segfd >= 0)
		close(n->segfd);
	memset(n, 0, sizeof(*n));
	n->segfd = -1;
	n->parent = -1;
}

int mgi_tree_init(mgi_tree_t *t, uint32_t fault_around)
{
	memset(t, 0, sizeof(*t));
	/* Not free_node(): a zeroed node's segfd is 0, and closing it took
	 * the manager's stdin (and, through fd reuse, its child's). */
	for (int i = 0; i < MGI_GROUPS_MAX; i++) {
		t->node[i].segfd = -1;
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
	mgi_counter_set_max(&t->node[i].seg->memory, bytes_to_pages(memory_max));
	/* Swap is off unless asked for: a top-level group may not evict until
	 * given a swap limit; a nested one is bounded by its ancestors'. */
	if (p == 0)
		atomic_store(&t->node[i].seg->swap.max, 0);
	snprintf(t->node[i].name, sizeof(t->node[i].name), "%s", name);
	t->node[i].parent = p;
	t->node[i].used = true;
	t->node[p].children++;
	return i;
}

/* Makes a node of a group whose segment exists (mapped, its fd owned from
 * now on if this succeeds), under parent p. Returns its index or -ENOSPC. */
static int insert_node(mgi_tree_t *t, const char *name, int p, int fd, mgi_segment_t *seg,
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
	t->node[i].segfd = fd;
	t->node[i].seg = seg;
	snprintf(t->node[i].file, sizeof(t->node[i].file), "%s", file);
	snprintf(t->node[i].name, sizeof(t->node[i].name), "%s", name);
	t->node[i].parent = p;
	t->node[i].used = true;
	t->node[p].children++;
	return i;
}

/* Maps an open segment file or memfd and checks it: size, magic, version,
 * a valid group name (or "" for the root). Returns the mapping or NULL
 * with why. */
static mgi_segment_t *map_checked(int fd, char *name, char *why, size_t whylen)
{
	struct stat st;
	mgi_segment_t *seg;

	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
	    st.st_size != (off_t)sizeof(mgi_segment_t)) {
		snprintf(why, whylen, "not a segment of this memgrp (%lld bytes, expected %zu)",
			 (long long)st.st_size, sizeof(mgi_segment_t));
		return NULL;
	}
	seg = mmap(NULL, sizeof(mgi_segment_t), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (seg == MAP_FAILED) {
		snprintf(why, whylen, "cannot map the segment: %s", strerror(errno));
		return NULL;
	}
	if (!mgi_segment_valid(seg, sizeof(mgi_segment_t))) {
		snprintf(why, whylen, "not a segment of this memgrp version");
		goto bad;
	}
	memcpy(name, seg->group, MGI_GROUP_NAME_MAX);
	name[MGI_GROUP_NAME_MAX - 1] = '\0';
	if (name[0] && mgi_group_name_check(name, why, whylen) != 0)
		goto bad;
	return seg;
bad:
	munmap(seg, sizeof(mgi_segment_t));
	return NULL;
}

/* A segment file found in the state directory at start. */
struct found {
	int fd;
	mgi_segment_t *seg;
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

int mgi_tree_use_dir(mgi_tree_t *t, const char *dir, void (*say)(void *arg, const char *msg),
		     void *arg, char *why, size_t whylen)
{
	enum { FOUND_MAX = 2 * MGI_GROUPS_MAX };
	static struct found f[FOUND_MAX];
	char msg[160];
	unsigned n = 0;
	struct dirent *de;
	DIR *d;
	int dfd;

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
		if (strncmp(de->d_name, SEGMENT_PREFIX, strlen(SEGMENT_PREFIX)) != 0 ||
		    strlen(de->d_name) >= sizeof(f[n].file))
			continue;
		f[n].fd = openat(dfd, de->d_name, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
		if (f[n].fd < 0) {
			sayf(say, arg, "%s/%s: %s; left alone", dir, de->d_name, strerror(errno));
			continue;
		}
		f[n].seg = map_checked(f[n].fd, f[n].name, msg, sizeof(msg));
		if (!f[n].seg) {
			sayf(say, arg, "%s/%s: %s; left alone", dir, de->d_name, msg);
			close(f[n].fd);
			continue;
		}
		snprintf(f[n].file, sizeof(f[n].file), "%s", de->d_name);
		n++;
	}
	closedir(d);
	t->dirfd = dfd;
	/* Parents before children; the root (depth 0) first. */
	qsort(f, n, sizeof(f[0]), by_depth);
	/* The root: the one found, else a new one in the directory, in place
	 * of the memfd made at init (nothing has joined it yet). */
	unsigned k = 0;
	mgi_group_node_t root = {0};
	if (n && !f[0].name[0]) {
		root.seg = f[0].seg;
		root.segfd = f[0].fd;
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
	munmap(t->node[0].seg, sizeof(mgi_segment_t));
	close(t->node[0].segfd);
	t->node[0].seg = root.seg;
	t->node[0].segfd = root.segfd;
	memcpy(t->node[0].file, root.file, sizeof(root.file));
	for (; k < n; k++) {
		char parent[MGI_GROUP_NAME_MAX];
		int p, i = -1;
		if (!f[k].name[0] || mgi_tree_find(t, f[k].name) >= 0) {
			sayf(say, arg, "%s/%s: a second segment of group '%s'; left alone", dir,
			     f[k].file, f[k].name[0] ? f[k].name : "(root)");
		} else if (mgi_group_parent(f[k].name, parent), (p = mgi_tree_find(t, parent)) < 0) {
			sayf(say, arg, "%s/%s: group '%s' has no parent '%s' here; left alone", dir,
			     f[k].file, f[k].name, parent);
		} else if ((i = insert_node(t, f[k].name, p, f[k].fd, f[k].seg, f[k].file, msg,
					    sizeof(msg))) < 0) {
			sayf(say, arg, "%s/%s: %s; left alone", dir, f[k].file, msg);
		}
		if (i < 0) {
			munmap(f[k].seg, sizeof(mgi_segment_t));
			close(f[k].fd);
			continue;
		}
		mgi_segment_forget_manager(f[k].seg);
		sayf(say, arg, "restored group '%s' (usage %llu KiB, %u processes)", f[k].name,
		     (unsigned long long)mgi_counter_read(&f[k].seg->memory) * 4,
		     mgi_segment_nr_procs(f[k].seg));
	}
	return 0;
}

/* Whether two fds are the same open file (the same segment). */
static bool same_file(int a, int b)
{
	struct stat sa, sb;

	return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
	       sa.st_ino == sb.st_ino;
}

int mgi_tree_adopt(mgi_tree_t *t, int fd, bool *fresh, char *why, size_t whylen)
{
	char name[MGI_GROUP_NAME_MAX], parent[MGI_GROUP_NAME_MAX];
	mgi_segment_t *seg;
	int p, i, own;

	*fresh = false;
	if (!(seg = map_checked(fd, name, why, whylen)))
		return -EINVAL;
	if ((own = mgi_tree_find(t, name)) >= 0) {
		if (same_file(fd, t->node[own].segfd)) {
			munmap(seg, sizeof(mgi_segment_t));
			return own; /* adopted already, through another process */
		}
		snprintf(why, whylen, "group '%s' exists here already with other accounts "
			 "(created since the restart)", name[0] ? name : "(root)");
		munmap(seg, sizeof(mgi_segment_t));
		return -EEXIST;
	}
	mgi_group_parent(name, parent);
	if ((p = mgi_tree_find(t, parent)) < 0) {
		snprintf(why, whylen, "no group '%s' to adopt '%s' in", parent, name);
		munmap(seg, sizeof(mgi_segment_t));
		return -ENOENT;
	}
	int keep = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (keep < 0) {
		snprintf(why, whylen, "cannot keep the segment: %s", strerror(errno));
		munmap(seg, sizeof(mgi_segment_t));
		return -EMFILE;
	}
	i = insert_node(t, name, p, keep, seg, "", why, whylen);
	if (i < 0) {
		close(keep);
		munmap(seg, sizeof(mgi_segment_t));
		return i;
	}
	*fresh = true;
	return i;
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
	if (n->file[0] && t->dirfd >= 0)
		unlinkat(t->dirfd, n->file, 0);
	free_node(n);
	return 0;
}

mgi_counter_path_t mgi_tree_path(const mgi_tree_t *t, int idx)
{
	mgi_counter_path_t p = {.depth = 0};

	if (idx == 0)
		return mgi_segment_path(t->node[0].seg);
	for (int i = idx; i > 0 && p.depth < MGI_DEPTH_MAX; i = t->node[i].parent)
		p.level[p.depth++] = &t->node[i].seg->memory;
	return p;
}

unsigned mgi_tree_segment_fds(const mgi_tree_t *t, int idx, int *fds)
{
	unsigned n = 0;

	if (idx == 0) {
		fds[0] = t->node[0].segfd;
		return 1;
	}
	for (int i = idx; i > 0 && n < MGI_DEPTH_MAX; i = t->node[i].parent)
		fds[n++] = t->node[i].segfd;
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
	out->usage = mgi_counter_read(&seg->memory) * 4096;
	out->max_usage = atomic_load(&seg->memory.watermark) * 4096;
	out->limit = mgi_counter_read_max(&seg->memory) * 4096;
	out->failcnt = atomic_load(&seg->memory.failcnt);
	out->high = atomic_load(&seg->memory.high) * 4096;
	out->low = atomic_load(&seg->memory.low) * 4096;
	out->soft = atomic_load(&seg->memory.soft) * 4096;
	out->swappiness = atomic_load(&seg->swappiness);
	out->mode = atomic_load(&seg->mode);
	out->estimate = out->usage;
	out->swap_usage = mgi_counter_read(&seg->swap) * 4096;
	out->swap_max_usage = atomic_load(&seg->swap.watermark) * 4096;
	out->swap_limit = mgi_counter_read_max(&seg->swap) * 4096;
	out->memsw_usage = out->usage + out->swap_usage;
	for (int g = 0; g < MGI_GROUPS_MAX; g++) {
		if (!t->node[g].used || !counted_in(t, g, idx))
			continue;
		const mgi_segment_t *s = t->node[g].seg;
		out->pgfault += atomic_load(&s->pgfault);
		out->oom_kill += atomic_load(&s->oom_kill);
		out->coop_requests += atomic_load(&s->coop_requests);
		out->coop_freed += atomic_load(&s->coop_freed) * 4096;
		out->pswpout += atomic_load(&s->pswpout);
		out->pswpin += atomic_load(&s->pswpin);
		out->pgmajfault += atomic_load(&s->pgmajfault);
		out->pgdeactivate += atomic_load(&s->pgdeactivate);
		out->pgactivate += atomic_load(&s->pgactivate);
		out->refault += atomic_load(&s->refault);
		out->workingset_activate += atomic_load(&s->workingset_activate);
		out->written_back_pages += atomic_load(&s->written_back);
		out->mode_switches += atomic_load(&s->mode_switches);
		out->mode_switch_avg_us += atomic_load(&s->mode_switch_ns); /* a sum, until below */
		for (int b = 0; b < MGI_RECLAIM_BUCKETS; b++)
			out->reclaim_hist[b] += atomic_load(&s->reclaim_hist[b]);
		for (int i = 0; i < MGI_PROCS_MAX; i++) {
			const mgi_proc_slot_t *sl = &s->procs[i];
			if (atomic_load(&sl->pid) <= 0)
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
			const mgi_proc_slot_t *sl = &seg->procs[i];
			int32_t pid = atomic_load(&sl->pid);
			if (pid <= 0)
				continue;
			mgi_proc_stat_t *p = &r->procs[r->nprocs++];
			p->pid = pid;
			p->charged = atomic_load(&sl->charged) * 4096;
			p->pgfault = atomic_load(&sl->pgfault);
			memcpy(p->comm, sl->comm, sizeof(p->comm));
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
		uint64_t c = s >= 0 ? atomic_load(&t->node[g].seg->procs[s].charged) : 0;
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

int mgi_tree_set_limits(mgi_tree_t *t, int idx, const mgi_msg_set_t *set, char *why,
			size_t whylen)
{
	mgi_segment_t *seg = t->node[idx].seg;
	char usage[16];

	if (set->memory_max != MGI_SET_KEEP &&
	    mgi_counter_set_max(&seg->memory, bytes_to_pages(set->memory_max)) != 0) {
		mgi_size_format(mgi_counter_read(&seg->memory) * 4096, usage, sizeof(usage));
		snprintf(why, whylen,
			 "the group uses %s, more than the new limit: lower its usage first "
			 "(a --memory-high at the new value has it evicted down to there, "
			 "if it may swap)", usage);
		return -EBUSY;
	}
	if (set->memory_high != MGI_SET_KEEP)
		mgi_counter_set_high(&seg->memory, soft_pages(set->memory_high));
	if (set->memory_low != MGI_SET_KEEP)
		mgi_counter_set_low(&seg->memory, set->memory_low == MGI_SET_UNLIMITED
							? MGI_PAGES_UNLIMITED
							: set->memory_low / 4096);
	if (set->memory_soft != MGI_SET_KEEP)
		mgi_counter_set_soft(&seg->memory, soft_pages(set->memory_soft));
	/* Below the swap usage, a new limit only stops new evictions. */
	if (set->swap_max != MGI_SET_KEEP)
		atomic_store(&seg->swap.max, soft_pages(set->swap_max));
	if (set->swappiness != MGI_SET_KEEP)
		atomic_store(&seg->swappiness, (uint32_t)set->swappiness);
	if (set->mode != MGI_SET_KEEP)
		atomic_store(&seg->mode, (uint32_t)set->mode);
	return 0;
}

void mgi_stats_print_json_fields(FILE *f, const mgi_stats_t *s)
{
	for (const mgi_stats_field_t *fl = mgi_stats_fields; fl->name; fl++)
		fprintf(f, "%s\"%s\": %llu", fl == mgi_stats_fields ? "" : ", ", fl->name,
			(unsigned long long)mgi_stats_get(s, fl));
	/* bucket i counts the direct-reclaim stalls shorter than 2^i us */
	fputs(", \"reclaim_stall_hist\": [", f);
	for (int b = 0; b < MGI_RECLAIM_BUCKETS; b++)
		fprintf(f, "%s%llu", b ? ", " : "", (unsigned long long)s->reclaim_hist[b]);
	fputc(']', f);
}

int mgi_stats_write_json(const mgi_stats_t *s, const char *path)
{
	FILE *f = fopen(path, "w");

	if (!f)
		return -errno;
	fputc('{', f);
	mgi_stats_print_json_fields(f, s);
	fputs("}\n", f);
	return fclose(f) == 0 ? 0 : -errno;
}

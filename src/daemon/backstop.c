/* backstop.c - the kernel cgroup behind every group: made, limited, removed, and who may be placed in it. */
#include "backstop.h"
#include "backstop_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>

#include "group.h"
#include "kbackend.h"
#include "size.h"

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/* How many processes hold a slot in each group: counted once per use
 * (a scan, a join, a limit change), so that a subtree's count is a sum
 * over groups, not a walk of every group's slots per group. */
typedef struct {
	uint16_t own[MGI_GROUPS_MAX];
} proc_counts_t;

static void count_procs(const mgi_manager_t *m, proc_counts_t *pc)
{
	for (int c = 0; c < MGI_GROUPS_MAX; c++) {
		pc->own[c] = 0;
		if (c == 0 || !m->tree.node[c].used)
			continue;
		for (int i = 0; i < MGI_PROCS_MAX; i++)
			pc->own[c] += atomic_load(&m->tree.node[c].seg->ctl.procs[i].pid) > 0;
	}
}

/* Processes holding a slot in g or a group below it. */
static uint64_t subtree_procs(const mgi_manager_t *m, int g, const proc_counts_t *pc)
{
	uint64_t n = 0;

	for (int c = 1; c < MGI_GROUPS_MAX; c++)
		if (pc->own[c] && mgi_tree_is_under(&m->tree, c, g))
			n += pc->own[c];
	return n;
}

/* memory limit + swap limit (the stores' bound) + slack + a share per
 * process with the agent; none without a
 * memory limit, or with unbounded swap. */
static uint64_t kernel_limit(const mgi_manager_t *m, int g, const proc_counts_t *pc)
{
	const mgi_segment_t *seg = m->tree.node[g].seg;
	uint64_t mem = mgi_counter_read_max(&seg->ctl.memory), swap = MGI_PAGES_UNLIMITED;

	if (g == 0 || mem >= MGI_PAGES_UNLIMITED)
		return UINT64_MAX;
	/* The kernel backend: the kernel is the accountant, its limit is the
	 * group's (memsw is kbackend.c's). */
	if (mgi_kbackend_is(m, g))
		return mem * MGI_PAGE_SIZE;
	for (int a = g; a > 0; a = m->tree.node[a].parent)
		swap = min_u64(swap, atomic_load(&m->tree.node[a].seg->ctl.swap.max));
	if (swap >= MGI_PAGES_UNLIMITED)
		return UINT64_MAX;
	uint64_t bytes = (mem + swap) * MGI_PAGE_SIZE;
	return bytes + MGI_BACKSTOP_SLACK_MIN + bytes / MGI_BACKSTOP_SLACK_DIV +
	       MGI_BACKSTOP_PER_PROC * subtree_procs(m, g, pc);
}

static void watch(mgi_manager_t *m, int fd, uint32_t events, uint64_t tag)
{
	struct epoll_event ev = {.events = events, .data.u64 = tag};
	epoll_ctl(m->epfd, EPOLL_CTL_ADD, fd, &ev);
}

static void make(mgi_manager_t *m, int g)
{
	struct mgi_backstop *bs = m->backstop;
	struct bs_group *bg = &bs->g[g];
	int rc;

	if (bg->made)
		return;
	if (g != 0 && (rc = mgi_kcg_create(&bs->k, gname(m, g))) != 0) {
		mgi_manager_log(m, "group '%s': cannot make its kernel cgroup: %s; the limit covers "
				   "only what the agent sees", gname(m, g), strerror(-rc));
		return;
	}
	bg->made = true;
	bg->oomfd = -1;
	mgi_backstop_limits(m, g);
	if (g == 0)
		return; /* the root: no limit, nothing to watch */
	bg->oomfd = mgi_kcg_watch_oom(&bs->k, gname(m, g));
	if (bg->oomfd < 0) {
		mgi_manager_log(m, "group '%s': cannot watch its kernel cgroup's OOM: %s",
				gname(m, g), strerror(-bg->oomfd));
		return;
	}
	watch(m, bg->oomfd, bs->k.version == 1 ? EPOLLIN : EPOLLPRI, TAG_OOM_BASE + (uint64_t)g);
}

static bool keep_group(void *arg, const char *name)
{
	return mgi_tree_find(&((mgi_manager_t *)arg)->tree, name) >= 0;
}

void mgi_backstop_init(mgi_manager_t *m, bool on)
{
	char mount[128], self[200], base[256];
	struct mgi_backstop *bs;
	int version, rc;

	m->backstop = NULL;
	if (!on)
		return;
	version = mgi_kcg_probe("/proc/self/mounts", mount, sizeof(mount));
	if (version < 0) {
		mgi_manager_log(m, "the kernel offers no memory cgroup here: the limits cover only "
				   "what the agent sees");
		return;
	}
	if ((rc = mgi_kcg_pid_path(version, "/proc", getpid(), self, sizeof(self))) != 0) {
		mgi_manager_log(m, "cannot find this manager's memory cgroup: %s; the limits cover "
				   "only what the agent sees", strerror(-rc));
		return;
	}
	snprintf(base, sizeof(base), "%s/memgrp@%08x", strcmp(self, "/") ? self : "",
		 mgi_bs_hash(m->sock_path));
	if (!(bs = calloc(1, sizeof(*bs))))
		return;
	bs->scan_fd = bs->oom_timer_fd = -1;
	bs->lock_fd = mgi_bs_lock_take(strrchr(base, '/') + 1);
	if (bs->lock_fd >= 0) {
		/* The directory this lock stands for, for mgi_bs_prune_locks(). */
		char full[sizeof(mount) + sizeof(base)];
		int len = snprintf(full, sizeof(full), "%s%s", mount, base);
		if (ftruncate(bs->lock_fd, 0) != 0 ||
		    pwrite(bs->lock_fd, full, (size_t)len, 0) != (ssize_t)len)
			mgi_manager_log(m, "cannot write the lock file of %s: %s", base, strerror(errno));
	}
	if ((rc = mgi_kcg_open(&bs->k, version, mount, base, "/proc")) != 0) {
		mgi_manager_log(m, "cannot use the kernel memory cgroup %s%s: %s; the limits cover "
				   "only what the agent sees", mount, base, strerror(-rc));
		if (bs->lock_fd >= 0)
			close(bs->lock_fd);
		free(bs);
		return;
	}
	m->backstop = bs;
	if (bs->lock_fd >= 0 && (rc = mgi_kcg_sweep(&bs->k, mgi_bs_manager_dead, NULL)) > 0)
		mgi_manager_log(m, "%d kernel cgroup director%s of managers gone still hold processes: "
				   "the kernel's OOM killer watches them again", rc, rc == 1 ? "y" : "ies");
	if (bs->lock_fd >= 0)
		mgi_bs_prune_locks(&bs->k, strrchr(base, '/') + 1);
	/* A crash's leftovers go; those of groups the tree has (restored
	 * from the state directory) are taken back. */
	rc = mgi_kcg_clean(&bs->k, keep_group, m);
	if (rc > 0)
		mgi_manager_log(m, "%d kernel cgroup(s) under %s%s still hold processes: left in "
				   "place", rc, mount, base);
	/* Parents first: by index is not enough after restores. */
	for (unsigned depth = 0; depth <= MGI_DEPTH_MAX; depth++)
		for (int g = 0; g < MGI_GROUPS_MAX; g++)
			if (m->tree.node[g].used &&
			    (g == 0 ? 0 : mgi_group_depth(gname(m, g))) == depth)
				make(m, g);
	bs->scan_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	bs->oom_timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (bs->scan_fd >= 0) {
		watch(m, bs->scan_fd, EPOLLIN, TAG_SCAN);
		arm(bs->scan_fd, SCAN_MS);
	}
	if (bs->oom_timer_fd >= 0)
		watch(m, bs->oom_timer_fd, EPOLLIN, TAG_OOM_TIMER);
}

static void unmake(mgi_manager_t *m, int g, const char *name)
{
	struct mgi_backstop *bs = m->backstop;
	struct bs_group *bg = &bs->g[g];

	if (!bg->made)
		return;
	if (bg->oomfd >= 0) {
		epoll_ctl(m->epfd, EPOLL_CTL_DEL, bg->oomfd, NULL);
		close(bg->oomfd);
	}
	if (g != 0) {
		int rc = mgi_kcg_remove(&bs->k, name);
		if (rc != 0 && rc != -ENOENT) {
			/* Processes without the agent still run in it: they keep
			 * its limit, with the kernel's own OOM killer (nobody
			 * watches it now), until they are gone. */
			mgi_kcg_kernel_killer(&bs->k, name, true);
			if (bs->nlingering < 32)
				snprintf(bs->lingering[bs->nlingering++], MGI_GROUP_NAME_MAX, "%s", name);
			mgi_manager_log(m, "group '%s': its kernel cgroup stays until its processes are "
					   "gone (%s)", name,
					rc == -EBUSY ? "processes without the agent run in it" : strerror(-rc));
		}
	}
	memset(bg, 0, sizeof(*bg));
	bg->oomfd = -1;
}

void mgi_backstop_destroy(mgi_manager_t *m)
{
	struct mgi_backstop *bs = m->backstop;
	int rc;

	mgi_kbackend_destroy(m);
	if (!bs)
		return;
	for (int depth = MGI_DEPTH_MAX; depth >= 1; depth--)
		for (int g = 1; g < MGI_GROUPS_MAX; g++)
			if (m->tree.node[g].used && mgi_group_depth(gname(m, g)) == (unsigned)depth)
				unmake(m, g, gname(m, g));
	unmake(m, 0, "");
	for (unsigned i = 0; i < bs->nlingering; i++)
		mgi_kcg_remove(&bs->k, bs->lingering[i]);
	/* The manager's directory, if empty; its lock file goes with it (the
	 * lock still held: a sweeper that opened the file before the unlink
	 * finds another inode at the path, or none, and leaves it). */
	rc = mgi_kcg_remove(&bs->k, "");
	if ((rc == 0 || rc == -ENOENT) && bs->lock_fd >= 0) {
		char path[256];
		const char *slash = strrchr(bs->k.base, '/');
		if (slash && mgi_bs_lock_path(slash + 1, path, sizeof(path)) == 0)
			unlink(path);
	}
	if (bs->scan_fd >= 0)
		close(bs->scan_fd);
	if (bs->oom_timer_fd >= 0)
		close(bs->oom_timer_fd);
	if (bs->lock_fd >= 0)
		close(bs->lock_fd);
	free(bs);
	m->backstop = NULL;
}

void mgi_backstop_group_added(mgi_manager_t *m, int g)
{
	if (m->backstop)
		make(m, g);
}

/*
 * An agent group's kernel bound: memory.limit, and the same figure for
 * memory + the host's swap (v1's memsw; v2: no kernel swap under a limit),
 * so that what bypasses the agent cannot pass the bound by being swapped
 * out by the kernel: measured, with host swap on and memsw left unlimited,
 * 256 MiB written through a memfd under -m 64M finished. v1 keeps memsw
 * at or above the limit at every step: raised first, lowered last. A
 * kernel without swap accounting has the limit alone.
 */
static int set_bound(const struct mgi_backstop *bs, const char *name, uint64_t lim)
{
	int rc;

	if (bs->k.version == 2) {
		if ((rc = mgi_kcg_set_limit(&bs->k, name, lim)) != 0)
			return rc;
		rc = mgi_kcg_set_file(&bs->k, name, "memory.swap.max", lim == UINT64_MAX ? UINT64_MAX : 0);
		return rc == -ENOENT ? 0 : rc;
	}
	const char *refused;
	rc = mgi_kcg_v1_set_pair(&bs->k, name, true, lim, lim, &refused);
	if (rc == -ENOENT && strstr(refused, "memsw")) /* no swap accounting: the limit alone */
		return mgi_kcg_set_limit(&bs->k, name, lim);
	return rc;
}

void mgi_backstop_limits(mgi_manager_t *m, int g)
{
	struct mgi_backstop *bs = m->backstop;
	int rc;

	if (!bs || !bs->g[g].made || g == 0)
		return;
	static proc_counts_t pc; /* the manager's one thread */
	count_procs(m, &pc);
	/* The children's follow from the ancestors' swap limit. */
	for (int c = 1; c < MGI_GROUPS_MAX; c++) {
		if (!m->tree.node[c].used || !bs->g[c].made || !mgi_tree_is_under(&m->tree, c, g))
			continue;
		uint64_t lim = kernel_limit(m, c, &pc);
		/* (a kernel-backend group's memsw is kbackend.c's) */
		rc = mgi_kbackend_is(m, c) ? mgi_kcg_set_limit(&bs->k, gname(m, c), lim)
					   : set_bound(bs, gname(m, c), lim);
		bs->g[c].bound = rc == 0 ? lim : 0;
		if (rc != 0) {
			char s[16];
			mgi_size_format(lim, s, sizeof(s));
			mgi_manager_log(m, "group '%s': cannot set its kernel limit to %s: %s",
					gname(m, c), s, strerror(-rc));
		}
	}
}

/* Moves g's kernel bound to what its processes now call for; `grow_only`
 * leaves a larger bound as it is (a join: lowering waits for the scan). */
static void follow_procs(mgi_manager_t *m, int g, bool grow_only, const proc_counts_t *pc)
{
	struct mgi_backstop *bs = m->backstop;
	uint64_t lim;

	if (!bs->g[g].made || mgi_kbackend_is(m, g) || (lim = kernel_limit(m, g, pc)) == bs->g[g].bound ||
	    (grow_only && lim < bs->g[g].bound))
		return;
	int rc = set_bound(bs, gname(m, g), lim);
	if (rc == 0)
		bs->g[g].bound = lim;
	else if (!grow_only && lim < bs->g[g].bound)
		return; /* above the new bound still (v1 refuses): tried again next scan */
	else
		mgi_manager_log(m, "group '%s': cannot raise its kernel limit for its processes: %s",
				gname(m, g), strerror(-rc));
}

void mgi_backstop_joined(mgi_manager_t *m, int g)
{
	static proc_counts_t pc;

	if (!m->backstop)
		return;
	count_procs(m, &pc);
	for (int a = g; a > 0; a = m->tree.node[a].parent)
		follow_procs(m, a, true, &pc);
}

void mgi_bs_follow_procs(mgi_manager_t *m)
{
	static proc_counts_t pc;

	count_procs(m, &pc);
	for (int g = 1; g < MGI_GROUPS_MAX; g++)
		if (m->tree.node[g].used)
			follow_procs(m, g, false, &pc);
}

void mgi_backstop_group_removed(mgi_manager_t *m, int g, const char *name)
{
	if (m->backstop)
		unmake(m, g, name);
}

/* The group whose kernel cgroup holds path (relative to the mount): the
 * deepest one of this tree containing it; -1 if path is outside base. */
int mgi_bs_group_of_path(const mgi_manager_t *m, const char *path)
{
	const struct mgi_backstop *bs = m->backstop;
	size_t bl = strlen(bs->k.base);
	int best = -1;
	size_t best_len = 0;

	if (strncmp(path, bs->k.base, bl) != 0 || (path[bl] && path[bl] != '/'))
		return -1;
	const char *rel = path[bl] ? path + bl + 1 : "";
	for (int g = 0; g < MGI_GROUPS_MAX; g++) {
		const char *n = gname(m, g);
		size_t nl = strlen(n);
		if (!m->tree.node[g].used || !bs->g[g].made)
			continue;
		if (g == 0 ? best < 0
			   : (strncmp(rel, n, nl) == 0 && (rel[nl] == '\0' || rel[nl] == '/') &&
			      nl >= best_len)) {
			best = g;
			best_len = nl;
		}
	}
	return best;
}

/* Whether a kernel cgroup path is some memgrp manager's. */
static bool in_memgrp(const char *path)
{
	return strstr(path, "/memgrp@") != NULL;
}

int mgi_bs_pid_path(const mgi_manager_t *m, pid_t pid, char *out, size_t len)
{
	return mgi_kcg_pid_path(m->backstop->k.version, m->backstop->k.proc, pid, out, len);
}

int mgi_backstop_hello(mgi_manager_t *m, pid_t pid, bool privileged, int g, char *why,
		       size_t whylen)
{
	struct mgi_backstop *bs = m->backstop;
	char path[512];
	int rc, in;

	if (mgi_kbackend_is(m, g)) {
		snprintf(why, whylen, "group '%s' is served by the kernel backend: no agent joins it "
			 "(run its programs without the agent: memgrp run -g %s)", gname(m, g),
			 gname(m, g));
		return -EPERM;
	}
	if (!bs || !bs->g[g].made)
		return 0;
	if ((rc = mgi_bs_pid_path(m, pid, path, sizeof(path))) != 0) {
		snprintf(why, whylen, "cannot read pid %d's kernel cgroup: %s", (int)pid, strerror(-rc));
		return -ESRCH;
	}
	in = mgi_bs_group_of_path(m, path);
	if (in == g)
		return 0;
	if (in < 0 && privileged && !in_memgrp(path)) {
		/* started with the agent by hand: its limit starts now */
		if ((rc = mgi_kcg_add_pid(&bs->k, gname(m, g), pid)) != 0) {
			snprintf(why, whylen, "cannot move pid %d into group '%s''s kernel cgroup: %s",
				 (int)pid, gname(m, g), strerror(-rc));
			return rc;
		}
		return 0;
	}
	if (in >= 0)
		snprintf(why, whylen, "pid %d is in group '%s' (its kernel cgroup): it may not join "
			 "group '%s' (a process cannot move itself to another group; memgrp attach "
			 "can move it)", (int)pid, in == 0 ? "(root)" : gname(m, in), gname(m, g));
	else
		snprintf(why, whylen, "pid %d runs in kernel cgroup %s, which is not this manager's: "
			 "it may not join group '%s'", (int)pid, path, gname(m, g));
	mgi_manager_log(m, "refused: %s", why);
	return -EPERM;
}

bool mgi_backstop_holds(mgi_manager_t *m, pid_t pid, int g)
{
	char path[512];

	return m->backstop && m->backstop->g[g].made && mgi_bs_pid_path(m, pid, path, sizeof(path)) == 0 &&
	       mgi_bs_group_of_path(m, path) == g;
}

int mgi_backstop_place(mgi_manager_t *m, pid_t pid, bool privileged, int g, char *why,
		       size_t whylen)
{
	struct mgi_backstop *bs = m->backstop;
	char path[512];
	int rc, in;

	if (!bs || !bs->g[g].made) {
		snprintf(why, whylen, "no kernel backstop here");
		return -EOPNOTSUPP;
	}
	if ((rc = mgi_bs_pid_path(m, pid, path, sizeof(path))) != 0) {
		snprintf(why, whylen, "cannot read pid %d's kernel cgroup: %s", (int)pid, strerror(-rc));
		return -ESRCH;
	}
	in = mgi_bs_group_of_path(m, path);
	/* Downwards in the kernel's hierarchy from a memgrp group (a nested
	 * `memgrp run` with a manager of its own makes its groups below its
	 * group's): whatever bounds pid now still bounds it there. Not for an
	 * unprivileged process from outside every group: it could crowd a
	 * group to its kernel limit and have one of its processes killed. */
	char target[512];
	size_t pl = strlen(path);
	snprintf(target, sizeof(target), "%s%s%s", bs->k.base, g ? "/" : "", gname(m, g));
	bool down = strncmp(target, path, pl) == 0 && (target[pl] == '/' || target[pl] == '\0');
	bool ok = in >= 0 ? mgi_tree_is_under(&m->tree, g, in)
			  : (down && (privileged || in_memgrp(path))) || (privileged && !in_memgrp(path));
	if (!ok) {
		if (in >= 0)
			snprintf(why, whylen, "pid %d is in group '%s': it may go only to that group "
				 "or one below it, not '%s'", (int)pid, in == 0 ? "(root)" : gname(m, in),
				 gname(m, g));
		else
			snprintf(why, whylen, "pid %d runs in kernel cgroup %s: it may not go to "
				 "group '%s'", (int)pid, path, gname(m, g));
		mgi_manager_log(m, "refused: %s", why);
		return -EPERM;
	}
	if ((rc = mgi_kcg_add_pid(&bs->k, gname(m, g), pid)) != 0) {
		snprintf(why, whylen, "cannot move pid %d into group '%s''s kernel cgroup: %s",
			 (int)pid, gname(m, g), strerror(-rc));
		return rc;
	}
	return 0;
}

void mgi_backstop_moved(mgi_manager_t *m, pid_t pid, int g)
{
	struct mgi_backstop *bs = m->backstop;
	int rc;

	if (bs && bs->g[g].made && (rc = mgi_kcg_add_pid(&bs->k, gname(m, g), pid)) != 0)
		mgi_manager_log(m, "pid %d: cannot move it into group '%s''s kernel cgroup: %s",
				(int)pid, gname(m, g), strerror(-rc));
}

void mgi_backstop_kernel_stats(const mgi_kcg_figures_t *f, mgi_stats_t *st)
{
	st->kernel_usage = f->usage;
	st->kernel_max_usage = f->max_usage;
	st->kernel_limit = f->limit;
	st->kernel_file = f->file;
	st->kernel_shmem = f->shmem;
	st->kernel_anon = f->anon;
}

void mgi_backstop_stats(const mgi_manager_t *m, int g, mgi_stats_t *st)
{
	const struct mgi_backstop *bs = m->backstop;
	mgi_kcg_figures_t f;

	if (!bs || !bs->g[g].made || mgi_kcg_read(&bs->k, gname(m, g), &f) != 0)
		return;
	st->unmanaged_processes = bs->g[g].unmanaged;
	mgi_backstop_kernel_stats(&f, st);
	if (mgi_kbackend_is(m, g))
		mgi_kbackend_stats(m, g, st);
}

const struct mgi_kcg *mgi_backstop_kcg(const mgi_manager_t *m)
{
	return m->backstop ? &m->backstop->k : NULL;
}


/* backstop.c - the kernel cgroup behind every group: limits, placement, who runs unmanaged, the kernel's OOM. */
#include "backstop.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/kcmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "group.h"
#include "kbackend.h"
#include "kcgroup.h"
#include "oslayer.h"
#include "manager.h"
#include "size.h"

/* epoll tags: above the manager's (connections, pidfds). */
#define TAG_OOM_BASE (3ULL << 32) /* + group */
#define TAG_SCAN (TAG_OOM_BASE + MGI_GROUPS_MAX)
#define TAG_OOM_TIMER (TAG_SCAN + 1)

/* How often the kernel cgroups' process lists are read. */
#define SCAN_MS 500
/* A process younger than this is not reported yet: it may be between
 * fork and exec, or its agent about to say HELLO. */
#define GRACE_MS 500
/* While a group waits at its kernel limit: how often it is looked at, how
 * long a victim has to go before the next one is chosen, and how long
 * before the kernel's own OOM killer is let act (nothing hangs). */
#define OOM_CHECK_MS 100
#define KILL_WAIT_MS 1000
#define PAUSE_MAX_MS 5000
/* Kernel backend: cooperative episodes asked in one pause at the limit. */
#define COOP_ASKS 4
#define PIDS_MAX 4096

struct bs_group {
	bool made;
	int oomfd;
	uint64_t paused_ns, killed_ns, high_events;
	pid_t victim;
	bool released; /* the kernel's killer let act after PAUSE_MAX_MS */
	unsigned coop_asks; /* kernel backend: cooperative episodes in this pause */
	unsigned unmanaged;
};

struct mgi_backstop {
	mgi_kcg_t k;
	int scan_fd, oom_timer_fd;
	bool oom_timer_on;
	struct bs_group g[MGI_GROUPS_MAX];
	pid_t reported[256];
	unsigned nreported;
	/* kernel cgroups of removed groups that processes without the agent
	 * still ran in: removed by the scan once empty (children first, as
	 * they were added) */
	char lingering[32][MGI_GROUP_NAME_MAX];
	unsigned nlingering;
	int lock_fd; /* held while this manager lives: see manager_lock() */
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static const char *gname(const mgi_manager_t *m, int g)
{
	return m->tree.node[g].name;
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/* memory limit + swap limit (the stores' bound) + slack; none without a
 * memory limit, or with unbounded swap. */
static uint64_t kernel_limit(const mgi_manager_t *m, int g)
{
	const mgi_segment_t *seg = m->tree.node[g].seg;
	uint64_t mem = mgi_counter_read_max(&seg->ctl.memory), swap = MGI_PAGES_UNLIMITED;

	if (g == 0 || mem >= MGI_PAGES_UNLIMITED)
		return UINT64_MAX;
	/* The kernel backend: the kernel is the accountant, its limit is the
	 * group's (memsw is kbackend.c's). */
	if (mgi_kbackend_is(m, g))
		return mem * 4096;
	for (int a = g; a > 0; a = m->tree.node[a].parent)
		swap = min_u64(swap, atomic_load(&m->tree.node[a].seg->ctl.swap.max));
	if (swap >= MGI_PAGES_UNLIMITED)
		return UINT64_MAX;
	uint64_t bytes = (mem + swap) * 4096;
	return bytes + MGI_BACKSTOP_SLACK_MIN + bytes / MGI_BACKSTOP_SLACK_DIV;
}

/* The one kill of this file: through a pidfd (no pid reuse in between),
 * then the victim's memory is taken back at once (process_mrelease). */
static int kill_pid(pid_t pid)
{
	int fd = mgi_pidfd_open(pid);

	if (fd < 0)
		return fd;
	int rc = mgi_pidfd_send_signal(fd, SIGKILL);
	if (rc == 0)
		mgi_pidfd_mrelease(fd); /* best effort (Linux 5.15+) */
	close(fd);
	return rc;
}

static void arm(int fd, unsigned ms)
{
	struct itimerspec its = {{ms / 1000, (long)(ms % 1000) * 1000000},
				 {ms / 1000, (long)(ms % 1000) * 1000000}};
	timerfd_settime(fd, 0, &its, NULL);
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

static uint32_t fnv1a(const char *s)
{
	uint32_t h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return h;
}

/*
 * Whose kernel cgroups are whose: each manager holds an flock on
 * LOCK_DIR/memgrp@<hash>.lock for as long as it runs (the kernel drops it
 * when the process dies, kill -9 included). A memgrp@ directory beside
 * ours whose lock nobody holds is a dead manager's: a memgrp run killed
 * with -9, a crash, or a run whose command left a background child. Its
 * cgroups had the kernel's OOM killer off and nobody watching: every
 * manager that starts turns the killer back on there and removes what is
 * empty (mgi_kcg_sweep), so nothing a crash leaves outlives the next start.
 */
#define LOCK_DIR "/run/memgrp/kcg"

static int lock_path(const char *name, char *out, size_t len)
{
	return (size_t)snprintf(out, len, "%s/%s.lock", LOCK_DIR, name) < len ? 0 : -ENAMETOOLONG;
}

/* Takes this manager's lock (before its directory exists). -errno if the
 * lock directory cannot be made (the sweep is then skipped). */
static int manager_lock(const char *name)
{
	char path[256];
	int fd;

	mkdir("/run/memgrp", 0755);
	if (mkdir(LOCK_DIR, 0700) != 0 && errno != EEXIST)
		return -errno;
	if (lock_path(name, path, sizeof(path)) != 0)
		return -ENAMETOOLONG;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	return fd;
}

/*
 * Opens name's lock file and takes its lock if no manager holds it: the fd
 * (lock held), or -1 if a manager lives or the file is not there. A lock
 * taken on a file that was unlinked meanwhile (its manager ended cleanly
 * and a new one of the same name may have made a new file) is no proof
 * of death: the inode at the path must be the one locked.
 */
static int lock_if_dead(const char *path)
{
	struct stat locked, linked;
	int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0)
		return -1;
	if (flock(fd, LOCK_EX | LOCK_NB) != 0 || fstat(fd, &locked) != 0 ||
	    stat(path, &linked) != 0 || locked.st_ino != linked.st_ino ||
	    locked.st_dev != linked.st_dev) {
		close(fd);
		return -1;
	}
	return fd;
}

static bool manager_dead(void *arg, const char *name)
{
	char path[256];
	int fd;

	(void)arg;
	if (lock_path(name, path, sizeof(path)) != 0)
		return false;
	/* No lock file: a directory no manager of this kind made, or one
	 * made before locks existed; left alone. */
	if ((fd = lock_if_dead(path)) < 0)
		return false;
	close(fd); /* (and the lock with it) */
	return true;
}

/*
 * Lock files outlive nothing: a manager that ends cleanly unlinks its own
 * once its directory is gone (mgi_backstop_destroy); a dead manager's is
 * unlinked here, at the next start, once its directory (whose full path
 * the file holds) is gone too. A file that names no directory (written
 * before the path was kept) is judged by the directory of that name
 * beside ours. Runs after the sweep, which removes what it can.
 */
static void prune_locks(const mgi_kcg_t *k, const char *own)
{
	DIR *d = opendir(LOCK_DIR);
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d))) {
		char path[256], dir[sizeof(k->mount) + sizeof(k->base) + 8];
		const char *dot = strrchr(de->d_name, '.');
		struct stat st;
		ssize_t n;
		int fd;

		if (strncmp(de->d_name, "memgrp@", 7) != 0 || !dot || strcmp(dot, ".lock") != 0 ||
		    ((size_t)(dot - de->d_name) == strlen(own) && !strncmp(de->d_name, own, strlen(own))) ||
		    (size_t)snprintf(path, sizeof(path), "%s/%s", LOCK_DIR, de->d_name) >= sizeof(path) ||
		    (fd = lock_if_dead(path)) < 0)
			continue;
		n = pread(fd, dir, sizeof(dir) - 1, 0);
		if (n > 0 && dir[0] == '/' && !memchr(dir, 0, (size_t)n)) {
			dir[n] = 0;
		} else {
			const char *slash = strrchr(k->base, '/');
			snprintf(dir, sizeof(dir), "%s%.*s/%.*s", k->mount,
				 slash ? (int)(slash - k->base) : 0, k->base,
				 (int)(dot - de->d_name), de->d_name);
		}
		if (stat(dir, &st) != 0 && errno == ENOENT)
			unlink(path);
		close(fd);
	}
	closedir(d);
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
		 fnv1a(m->sock_path));
	if (!(bs = calloc(1, sizeof(*bs))))
		return;
	bs->scan_fd = bs->oom_timer_fd = -1;
	bs->lock_fd = manager_lock(strrchr(base, '/') + 1);
	if (bs->lock_fd >= 0) {
		/* The directory this lock stands for, for prune_locks(). */
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
	if (bs->lock_fd >= 0 && (rc = mgi_kcg_sweep(&bs->k, manager_dead, NULL)) > 0)
		mgi_manager_log(m, "%d kernel cgroup director%s of managers gone still hold processes: "
				   "the kernel's OOM killer watches them again", rc, rc == 1 ? "y" : "ies");
	if (bs->lock_fd >= 0)
		prune_locks(&bs->k, strrchr(base, '/') + 1);
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
		if (slash && lock_path(slash + 1, path, sizeof(path)) == 0)
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
	uint64_t now;
	int rc;

	if (bs->k.version == 2) {
		if ((rc = mgi_kcg_set_limit(&bs->k, name, lim)) != 0)
			return rc;
		rc = mgi_kcg_set_file(&bs->k, name, "memory.swap.max", lim == UINT64_MAX ? UINT64_MAX : 0);
		return rc == -ENOENT ? 0 : rc;
	}
	bool raise = mgi_kcg_get_file(&bs->k, name, "memory.limit_in_bytes", &now) != 0 || lim >= now;
	if (raise && (rc = mgi_kcg_set_file(&bs->k, name, "memory.memsw.limit_in_bytes", lim)) != 0 &&
	    rc != -ENOENT)
		return rc;
	if ((rc = mgi_kcg_set_limit(&bs->k, name, lim)) != 0)
		return rc;
	if (!raise && (rc = mgi_kcg_set_file(&bs->k, name, "memory.memsw.limit_in_bytes", lim)) != 0 &&
	    rc != -ENOENT)
		return rc;
	return 0;
}

void mgi_backstop_limits(mgi_manager_t *m, int g)
{
	struct mgi_backstop *bs = m->backstop;
	int rc;

	if (!bs || !bs->g[g].made || g == 0)
		return;
	/* The children's follow from the ancestors' swap limit. */
	for (int c = 1; c < MGI_GROUPS_MAX; c++) {
		if (!m->tree.node[c].used || !bs->g[c].made || !mgi_tree_is_under(&m->tree, c, g))
			continue;
		uint64_t lim = kernel_limit(m, c);
		/* (a kernel-backend group's memsw is kbackend.c's) */
		rc = mgi_kbackend_is(m, c) ? mgi_kcg_set_limit(&bs->k, gname(m, c), lim)
					   : set_bound(bs, gname(m, c), lim);
		if (rc != 0) {
			char s[16];
			mgi_size_format(lim, s, sizeof(s));
			mgi_manager_log(m, "group '%s': cannot set its kernel limit to %s: %s",
					gname(m, c), s, strerror(-rc));
		}
	}
}

void mgi_backstop_group_removed(mgi_manager_t *m, int g, const char *name)
{
	if (m->backstop)
		unmake(m, g, name);
}

/* The group whose kernel cgroup holds path (relative to the mount): the
 * deepest one of this tree containing it; -1 if path is outside base. */
static int group_of_path(const mgi_manager_t *m, const char *path)
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

static int pid_path(const mgi_manager_t *m, pid_t pid, char *out, size_t len)
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
	if ((rc = pid_path(m, pid, path, sizeof(path))) != 0) {
		snprintf(why, whylen, "cannot read pid %d's kernel cgroup: %s", (int)pid, strerror(-rc));
		return -ESRCH;
	}
	in = group_of_path(m, path);
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

	return m->backstop && m->backstop->g[g].made && pid_path(m, pid, path, sizeof(path)) == 0 &&
	       group_of_path(m, path) == g;
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
	if ((rc = pid_path(m, pid, path, sizeof(path))) != 0) {
		snprintf(why, whylen, "cannot read pid %d's kernel cgroup: %s", (int)pid, strerror(-rc));
		return -ESRCH;
	}
	in = group_of_path(m, path);
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

static void comm_of(const mgi_manager_t *m, pid_t pid, char *out, size_t len)
{
	char path[96];
	snprintf(path, sizeof(path), "%s/%d/comm", m->backstop->k.proc, (int)pid);
	if (mgi_os_read_small(path, out, len) <= 0)
		snprintf(out, len, "?");
	out[strcspn(out, "\n")] = '\0';
}

static uint64_t rss_of(const mgi_manager_t *m, pid_t pid)
{
	mgi_proc_status_t st;

	if (mgi_proc_status_read(m->backstop->k.proc, pid, &st) != 0)
		return 0;
	return (st.rss_anon_kb + st.rss_file_kb + st.rss_shmem_kb) << 10;
}

/* How long ago pid started, in ms (large if unknown). */
static uint64_t age_ms(const mgi_manager_t *m, pid_t pid)
{
	char path[96], buf[1024];
	double up;
	unsigned long long start;

	if (mgi_os_read_small("/proc/uptime", buf, sizeof(buf)) <= 0 || sscanf(buf, "%lf", &up) != 1)
		return UINT64_MAX;
	snprintf(path, sizeof(path), "%s/%d/stat", m->backstop->k.proc, (int)pid);
	if (mgi_os_read_small(path, buf, sizeof(buf)) <= 0)
		return UINT64_MAX;
	char *p = strrchr(buf, ')'); /* comm may hold spaces */
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d "
				"%*d %*d %*d %llu", &start) != 1)
		return UINT64_MAX;
	double ms = up * 1000.0 - (double)start * 1000.0 / (double)sysconf(_SC_CLK_TCK);
	return ms < 0 ? 0 : (uint64_t)ms;
}

/*
 * Whether pid is on its way out: a zombie, or exiting (PF_EXITING in the
 * flags of /proc/PID/stat). Its agent's connection closes with its file
 * table, early in exit, while the process stays listed in its cgroup (a
 * leader waits as a zombie for its other threads): measured, the end of
 * every multi-threaded program (prog_stress) was reported as running
 * without the agent.
 */
static bool exiting(const mgi_manager_t *m, pid_t pid)
{
	char path[96], buf[1024], state;
	unsigned flags;

	snprintf(path, sizeof(path), "%s/%d/stat", m->backstop->k.proc, (int)pid);
	if (mgi_os_read_small(path, buf, sizeof(buf)) <= 0)
		return true; /* gone */
	char *p = strrchr(buf, ')');
	if (!p || sscanf(p + 2, "%c %*d %*d %*d %*d %*d %u", &state, &flags) != 2)
		return false;
	return state == 'Z' || state == 'X' || (flags & 0x4 /* PF_EXITING */);
}

/* Whether the program pid runs has a PT_INTERP (a dynamic linker, which
 * loads LD_PRELOAD); -1 if unknown. */
static int has_interp(const mgi_manager_t *m, pid_t pid)
{
	char path[96];
	int rc;

	snprintf(path, sizeof(path), "%s/%d/exe", m->backstop->k.proc, (int)pid);
	rc = mgi_os_elf_static(path);
	return rc < 0 ? -1 : !rc;
}

/* Whether a NUL-separated file (environ, maps are lines) holds needle. */
static int file_has(const char *path, const char *needle)
{
	static char buf[1 << 16];
	int fd = open(path, O_RDONLY | O_CLOEXEC), hit = 0;
	size_t nl = strlen(needle), keep = 0;
	ssize_t n;

	if (fd < 0)
		return -1;
	while (!hit && (n = read(fd, buf + keep, sizeof(buf) - keep)) > 0) {
		size_t len = keep + (size_t)n;
		hit = memmem(buf, len, needle, nl) != NULL;
		keep = len > nl ? nl : len;
		memmove(buf, buf + len - keep, keep);
	}
	close(fd);
	return hit;
}

/* Why pid runs without the agent, as far as /proc tells. */
static void diagnose(const mgi_manager_t *m, pid_t pid, char *out, size_t len)
{
	const char *proc = m->backstop->k.proc;
	char path[512], cg[512];
	mgi_proc_status_t st;

	size_t bl = strlen(m->backstop->k.base);
	if (pid_path(m, pid, cg, sizeof(cg)) == 0 && strncmp(cg, m->backstop->k.base, bl) == 0 &&
	    strstr(cg + bl, "/memgrp@")) {
		snprintf(out, len, "it runs in a nested memgrp group (kernel cgroup %.160s)", cg);
		return;
	}
	snprintf(path, sizeof(path), "%s/%d/maps", proc, (int)pid);
	if (file_has(path, "libmemgrp-agent") == 1) {
		snprintf(out, len, "the agent is loaded but not connected to this manager (refused, "
			 "or a child forked without the agent's handlers)");
		return;
	}
	if (has_interp(m, pid) == 0) {
		snprintf(out, len, "a static binary (no PT_INTERP): no dynamic linker loads the agent");
		return;
	}
	if (mgi_proc_status_read(proc, pid, &st) == 0 && (st.have & MGI_PS_UID) &&
	    st.ruid != st.euid) {
		snprintf(out, len, "a setuid program: the dynamic linker ignores LD_PRELOAD");
		return;
	}
	snprintf(path, sizeof(path), "%s/%d/environ", proc, (int)pid);
	if (file_has(path, "LD_PRELOAD=") == 0) {
		snprintf(out, len, "LD_PRELOAD is missing from its environment");
		return;
	}
	snprintf(out, len, "the agent did not start (LD_PRELOAD does not name it, or it failed)");
}

/* Whether pid runs the agent for this manager: connected, or holding a
 * slot of a group restored after a restart while its agent has not
 * rejoined yet (it tries once a second). */
static bool managed(const mgi_manager_t *m, pid_t pid)
{
	for (unsigned k = 0; k < m->nconns; k++)
		if (m->conns[k].fd >= 0 && m->conns[k].slot >= 0 && m->conns[k].pid == pid)
			return true;
	for (int g = 0; g < MGI_GROUPS_MAX; g++) {
		if (!m->tree.node[g].used)
			continue;
		for (int i = 0; i < MGI_PROCS_MAX; i++)
			if (atomic_load(&m->tree.node[g].seg->ctl.procs[i].pid) == pid)
				return true;
	}
	return false;
}

/* Whether pid shares its address space with a managed process of group g:
 * a clone(CLONE_VM) child (stress-ng's userfaultfd stressor makes one, as
 * do vfork and some runtimes) has no agent of its own and needs none: its
 * pages are the managed process's, counted there. */
static bool shares_managed_vm(const mgi_manager_t *m, int g, pid_t pid)
{
	for (int i = 0; i < MGI_PROCS_MAX; i++) {
		int32_t owner = atomic_load(&m->tree.node[g].seg->ctl.procs[i].pid);
		if (owner > 0 && owner != pid && syscall(SYS_kcmp, pid, owner, KCMP_VM, 0, 0) == 0)
			return true;
	}
	return false;
}

static bool reported(struct mgi_backstop *bs, pid_t pid)
{
	for (unsigned i = 0; i < bs->nreported && i < 256; i++)
		if (bs->reported[i] == pid)
			return true;
	bs->reported[bs->nreported++ % 256] = pid;
	return false;
}

/* Every SCAN_MS: each kernel cgroup's processes; those without an agent
 * connected here are counted, and reported once. */
static void scan(mgi_manager_t *m)
{
	static pid_t pids[PIDS_MAX];
	struct mgi_backstop *bs = m->backstop;
	unsigned kept = 0;

	for (unsigned i = 0; i < bs->nlingering; i++)
		if (mgi_tree_find(&m->tree, bs->lingering[i]) < 0 &&
		    mgi_kcg_remove(&bs->k, bs->lingering[i]) == -EBUSY)
			memmove(bs->lingering[kept++], bs->lingering[i], MGI_GROUP_NAME_MAX);
	bs->nlingering = kept;
	for (int g = 0; g < MGI_GROUPS_MAX; g++) {
		if (!m->tree.node[g].used || !bs->g[g].made)
			continue;
		if (mgi_kbackend_is(m, g)) {
			bs->g[g].unmanaged = 0; /* no agent there, by design */
			continue;
		}
		int n = mgi_kcg_pids(&bs->k, gname(m, g), g != 0, pids, PIDS_MAX);
		unsigned unmanaged = 0;
		for (int i = 0; i < n && i < PIDS_MAX; i++) {
			if (managed(m, pids[i]) || age_ms(m, pids[i]) < GRACE_MS ||
			    exiting(m, pids[i]) || shares_managed_vm(m, g, pids[i]))
				continue;
			unmanaged++;
			char path[512], comm[32], why[256];
			if (pid_path(m, pids[i], path, sizeof(path)) != 0 ||
			    group_of_path(m, path) != g || reported(bs, pids[i]))
				continue;
			comm_of(m, pids[i], comm, sizeof(comm));
			diagnose(m, pids[i], why, sizeof(why));
			mgi_manager_log(m, "group '%s': pid %d (%s) runs without the agent: %s; only "
					   "its kernel cgroup bounds it", g ? gname(m, g) : "(root)",
					(int)pids[i], comm, why);
		}
		bs->g[g].unmanaged = unmanaged;
	}
}

/* Whether g waits at its own kernel limit now (not an ancestor's, whose
 * OOM marks the whole subtree, nor a descendant's). */
static bool paused(struct mgi_backstop *bs, int g, const mgi_kcg_figures_t *f)
{
	if (bs->k.version == 1)
		return f->under_oom && f->limit != UINT64_MAX && f->usage + (2u << 20) >= f->limit;
	bool rose = f->high_events != bs->g[g].high_events;
	bs->g[g].high_events = f->high_events;
	return rose && f->limit != UINT64_MAX && f->usage >= f->limit;
}

/* The kernel limit of g refused: the largest process of its subtree by
 * the kernel's RSS, managed or not, is killed (one at a time); after
 * PAUSE_MAX_MS the kernel's own killer may act. Returns whether g still
 * waits. */
static bool resolve(mgi_manager_t *m, int g)
{
	static pid_t pids[PIDS_MAX];
	struct mgi_backstop *bs = m->backstop;
	struct bs_group *bg = &bs->g[g];
	mgi_kcg_figures_t f;
	uint64_t now = now_ns();

	if (mgi_kcg_read(&bs->k, gname(m, g), &f) != 0 || !paused(bs, g, &f)) {
		if (bg->released)
			mgi_kcg_kernel_killer(&bs->k, gname(m, g), false);
		bg->paused_ns = 0;
		bg->released = false;
		bg->coop_asks = 0;
		return false;
	}
	if (!bg->paused_ns)
		bg->paused_ns = now;
	/* The kernel backend at its limit: as an agent's refused charge
	 * does, the group's cooperating clients are asked first (coop.c);
	 * the kill waits for the episode. Unlike an agent's faulting thread,
	 * which waits for the manager's answer, the group's tasks wait in the
	 * kernel and are woken by what the clients free, and may take it
	 * again before the episode measures it (seen: "freed 0" after a
	 * client dropped 6 MiB, then a kill). So up to COOP_ASKS episodes per
	 * pause, each bounded by the clients' wait. */
	if (mgi_kbackend_is(m, g)) {
		if (m->coop.active && m->coop.group == g)
			return true;
		if (bg->coop_asks < COOP_ASKS) {
			bg->coop_asks++;
			if (mgi_coop_start(m, g, -1, -1))
				return true;
		}
	}
	if (bg->victim > 0 && kill(bg->victim, 0) == 0 && now - bg->killed_ns < KILL_WAIT_MS * 1000000ULL)
		return true; /* the last victim is on its way out */
	if (now - bg->paused_ns > PAUSE_MAX_MS * 1000000ULL) {
		if (!bg->released) {
			mgi_kcg_kernel_killer(&bs->k, gname(m, g), true);
			bg->released = true;
			mgi_manager_log(m, "group '%s' still waits at its kernel limit after %d ms: the "
					   "kernel's OOM killer may act", gname(m, g), PAUSE_MAX_MS);
		}
		return true;
	}
	int n = mgi_kcg_pids(&bs->k, gname(m, g), true, pids, PIDS_MAX);
	pid_t victim = 0;
	uint64_t most = 0;
	for (int i = 0; i < n && i < PIDS_MAX; i++) {
		uint64_t r = rss_of(m, pids[i]);
		if (r > most) {
			most = r;
			victim = pids[i];
		}
	}
	if (victim <= 0)
		return true;
	char usage[16], limit[16], anon[16], file[16], shmem[16], holds[16], comm[32], how[300];
	char vpath[512];
	int vg = pid_path(m, victim, vpath, sizeof(vpath)) == 0 ? group_of_path(m, vpath) : -1;
	mgi_size_format(f.usage, usage, sizeof(usage));
	mgi_size_format(f.limit, limit, sizeof(limit));
	mgi_size_format(f.anon, anon, sizeof(anon));
	mgi_size_format(f.file, file, sizeof(file));
	mgi_size_format(f.shmem, shmem, sizeof(shmem));
	mgi_size_format(most, holds, sizeof(holds));
	comm_of(m, victim, comm, sizeof(comm));
	if (managed(m, victim))
		snprintf(how, sizeof(how), "it runs with the agent");
	else {
		char why[256];
		diagnose(m, victim, why, sizeof(why));
		snprintf(how, sizeof(how), "it runs without the agent: %s", why);
	}
	if (mgi_kbackend_is(m, g)) {
		/* memgrp's own OOM message (manager.c), the kernel's figures */
		char where[MGI_GROUP_NAME_MAX + 16] = "";
		if (vg > 0 && vg != g)
			snprintf(where, sizeof(where), " of group '%s'", gname(m, vg));
		mgi_manager_log(m, "group '%s' is out of memory (usage %s, max %s) and nothing can "
				   "be reclaimed: killing pid %d (%s)%s, which holds %s",
				gname(m, g), usage, limit, (int)victim, comm, where, holds);
	} else {
		mgi_manager_log(m, "group '%s' is out of memory at its kernel limit (kernel usage %s "
				   "of %s: anon %s, file %s, shmem %s): killing pid %d (%s) of group "
				   "'%s', which holds %s (RSS); %s",
				gname(m, g), usage, limit, anon, file, shmem, (int)victim, comm,
				vg > 0 ? gname(m, vg) : gname(m, g), holds, how);
	}
	if (kill_pid(victim) == 0) {
		atomic_fetch_add(&m->tree.node[g].seg->ctl.oom_kill, 1);
		mgi_notify_oom(m, g);
	}
	bg->victim = victim;
	bg->killed_ns = now;
	return true;
}

static void oom_tick(mgi_manager_t *m)
{
	struct mgi_backstop *bs = m->backstop;
	bool any = false;

	for (int g = 1; g < MGI_GROUPS_MAX; g++)
		if (bs->g[g].made && bs->g[g].paused_ns)
			any |= resolve(m, g);
	if (!any && bs->oom_timer_on) {
		struct itimerspec off = {{0, 0}, {0, 0}};
		timerfd_settime(bs->oom_timer_fd, 0, &off, NULL);
		bs->oom_timer_on = false;
	}
}

bool mgi_backstop_event(mgi_manager_t *m, uint64_t tag)
{
	struct mgi_backstop *bs = m->backstop;
	uint64_t v;
	char buf[256];

	if (mgi_kbackend_event(m, tag))
		return true;
	if (!bs || tag < TAG_OOM_BASE || tag > TAG_OOM_TIMER)
		return false;
	if (tag == TAG_SCAN) {
		if (read(bs->scan_fd, &v, sizeof(v)) < 0) {
			/* EAGAIN: nothing */
		}
		scan(m);
		return true;
	}
	if (tag == TAG_OOM_TIMER) {
		if (read(bs->oom_timer_fd, &v, sizeof(v)) < 0) {
			/* EAGAIN */
		}
		oom_tick(m);
		return true;
	}
	int g = (int)(tag - TAG_OOM_BASE);
	struct bs_group *bg = &bs->g[g];
	if (!bg->made || bg->oomfd < 0)
		return true;
	if (bs->k.version == 1) {
		if (read(bg->oomfd, &v, sizeof(v)) < 0) {
			/* EAGAIN */
		}
	} else if (pread(bg->oomfd, buf, sizeof(buf), 0) < 0) {
		/* re-read: clears the modification mark */
	}
	if (resolve(m, g) && !bs->oom_timer_on && bs->oom_timer_fd >= 0) {
		arm(bs->oom_timer_fd, OOM_CHECK_MS);
		bs->oom_timer_on = true;
	}
	return true;
}

void mgi_backstop_stats(const mgi_manager_t *m, int g, mgi_stats_t *st)
{
	const struct mgi_backstop *bs = m->backstop;
	mgi_kcg_figures_t f;

	if (!bs || !bs->g[g].made || mgi_kcg_read(&bs->k, gname(m, g), &f) != 0)
		return;
	st->unmanaged_processes = bs->g[g].unmanaged;
	st->kernel_usage = f.usage;
	st->kernel_max_usage = f.max_usage;
	st->kernel_limit = f.limit;
	st->kernel_file = f.file;
	st->kernel_shmem = f.shmem;
	st->kernel_anon = f.anon;
	if (mgi_kbackend_is(m, g))
		mgi_kbackend_stats(m, g, st);
}

const struct mgi_kcg *mgi_backstop_kcg(const mgi_manager_t *m)
{
	return m->backstop ? &m->backstop->k : NULL;
}

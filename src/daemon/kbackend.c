/* kbackend.c - the kernel backend: a group its kernel memory cgroup accounts, with no agent (see kbackend.h). */
#include "kbackend.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "group.h"
#include "kcgroup.h"
#include "manager.h"
#include "oslayer.h"
#include "size.h"

/* epoll tags: above the backstop's (3 << 32 ...). */
#define TAG_KB_BASE (5ULL << 32)
#define WATCHES_MAX 512
#define TAG_KB_POLL (TAG_KB_BASE + WATCHES_MAX)
/* Where the kernel has no usage thresholds (cgroup v2), usage is read this
 * often while a crossing is armed: the nearest v2 offers (its memory.events
 * tell of memory.high only). The latency is up to this, and a swing that
 * goes and comes back between two reads is not seen. */
#define POLL_MS 100

/* One crossing armed in the kernel for a registration. */
struct kb_watch {
	int efd;      /* the manager's eventfd, registered on usage; -1: free,
		       * POLLED: no kernel threshold, read every POLL_MS */
	int ri;       /* the registration (manager's regs[]) */
	int group;
	uint64_t at;  /* bytes */
	bool memsw, up_only;
	bool above;   /* usage at or above `at`, as last known: polled, as last
		       * read; else, as the kernel's signals tell (each one
		       * is a change of side) */
};
#define POLLED (-2)

struct mgi_kbackend {
	struct kb_watch w[WATCHES_MAX];
	int poll_fd; /* timerfd while polled watches exist, else -1 */
	bool force_poll; /* MEMGRP_KBACKEND_POLL=1: poll on v1 too (tests) */
	bool said_poll;
};

bool mgi_kbackend_is(const mgi_manager_t *m, int g)
{
	return g >= 0 && g < MGI_GROUPS_MAX && m->tree.node[g].used &&
	       atomic_load(&m->tree.node[g].seg->ctl.backend) == MGI_BACKEND_KERNEL;
}

static bool limited(uint64_t v)
{
	return v != MGI_SET_KEEP && v != MGI_SET_UNLIMITED;
}

/* What the kernel backend cannot honour, here. */
static int check_set(const mgi_manager_t *m, const mgi_msg_set_t *set, char *why, size_t whylen)
{
	const mgi_kcg_t *k = mgi_backstop_kcg(m);

	if (!k) {
		snprintf(why, whylen, "the kernel backend needs a kernel memory cgroup, and this "
				      "manager has none (see its log: no memory controller mounted, "
				      "cgroupfs not writable, or --kernel-backstop off)");
		return -EOPNOTSUPP;
	}
	if (set->mode == MGI_MODE_ESTIMATE) {
		snprintf(why, whylen, "estimate mode needs the agent (it charges regions as the agent "
				      "sees them mapped): not with the kernel backend");
		return -EINVAL;
	}
	if (k->version == 1 && (limited(set->memory_high) || limited(set->memory_low))) {
		snprintf(why, whylen, "cgroup v1 (this kernel's memory hierarchy) has no memory.high "
				      "or memory.low: with the kernel backend they need v2 (a soft "
				      "limit is v1's nearest: --memory-soft)");
		return -EINVAL;
	}
	if (k->version == 2 && limited(set->memory_soft)) {
		snprintf(why, whylen, "cgroup v2 has no soft limit: with the kernel backend use "
				      "--memory-low (protection) or --memory-high (throttling)");
		return -EINVAL;
	}
	return 0;
}

int mgi_kbackend_check_create(mgi_manager_t *m, const char *name, const mgi_msg_set_t *set,
			      char *why, size_t whylen)
{
	char parent[MGI_GROUP_NAME_MAX];
	const char *slash = strrchr(name, '/');
	int p = 0, rc;

	if (slash) {
		snprintf(parent, sizeof(parent), "%.*s", (int)(slash - name), name);
		p = mgi_tree_find(&m->tree, parent);
	}
	bool parent_kernel = p > 0 && mgi_kbackend_is(m, p);
	if (set->backend == MGI_SET_KEEP)
		return parent_kernel ? MGI_BACKEND_KERNEL : MGI_BACKEND_AGENT;
	if (set->backend == MGI_BACKEND_AGENT) {
		if (parent_kernel) {
			snprintf(why, whylen, "group '%s' is served by the kernel backend: the groups "
					      "below it are too (no agent joins there)", parent);
			return -EINVAL;
		}
		return MGI_BACKEND_AGENT;
	}
	if (p > 0 && !parent_kernel) {
		snprintf(why, whylen, "a kernel-backend group may not be made under group '%s', "
				      "whose agents would not count its memory: make it at the top "
				      "or under another kernel-backend group", parent);
		return -EINVAL;
	}
	if ((rc = check_set(m, set, why, whylen)) != 0)
		return rc;
	return MGI_BACKEND_KERNEL;
}

/* Bytes of a SET field, or the group's current figure (pages) if kept. */
static uint64_t bytes_or(uint64_t v, uint64_t current_pages)
{
	if (v == MGI_SET_KEEP)
		return current_pages >= MGI_PAGES_UNLIMITED ? UINT64_MAX : current_pages * MGI_PAGE_SIZE;
	return v == MGI_SET_UNLIMITED ? UINT64_MAX : v;
}

/* v1's memory + swap bound for a memory and a swap limit. */
static uint64_t memsw_of(uint64_t max, uint64_t swap)
{
	return max == UINT64_MAX || swap == UINT64_MAX || max + swap < max ? UINT64_MAX : max + swap;
}

static int refused_limit(int rc, uint64_t max, const char *name, char *why, size_t whylen)
{
	char s[16];
	snprintf(why, whylen, "the kernel refused the limit %s for group '%s': %s",
		 mgi_size_format(max, s, sizeof(s)), name,
		 rc == -EBUSY ? "it could not reclaim the group's usage under it (no swap, or "
				"memory in use)"
			      : strerror(-rc));
	return rc;
}

/*
 * The memory limit and the swap limit, as the agent's groups have them: a
 * group may swap what its swap limit says, no more, and a group given no
 * swap limit may not swap at all (memgrp's default, whatever swap the host
 * has: measured, a static program wrote 256M under -m 64M to the end on a
 * host with zram swap while memsw was left unlimited). v2 bounds swap
 * alone (memory.swap.max); v1 bounds memory + swap (memsw = max + swap),
 * and keeps memory's limit at or under memsw's at every step: a growing
 * memsw is set first, a shrinking one last; a step the kernel refuses
 * puts back what the steps before it changed. A kernel that does not account swap per
 * cgroup is an error only when a swap limit was asked for.
 */
static int set_memory_and_swap(const mgi_kcg_t *k, const char *name, mgi_segment_t *seg,
			       const mgi_msg_set_t *set, char *why, size_t whylen)
{
	uint64_t max = bytes_or(set->memory_max, mgi_counter_read_max(&seg->ctl.memory));
	uint64_t swap = bytes_or(set->swap_max, mgi_counter_read_max(&seg->ctl.swap));
	const char *f = k->version == 1 ? "memory.memsw.limit_in_bytes" : "memory.swap.max";
	bool asked = set->swap_max != MGI_SET_KEEP, set_max = set->memory_max != MGI_SET_KEEP;
	int rc;

	if (k->version == 2) {
		if (set_max && (rc = mgi_kcg_set_limit(k, name, max)) != 0)
			return refused_limit(rc, max, name, why, whylen);
		rc = mgi_kcg_set_file(k, name, f, swap);
		if (rc == -ENOENT && !asked)
			return 0; /* no swap accounting, none asked for */
		if (rc != 0)
			goto swap_refused;
		return 0;
	}
	/* v1 (at creation the tree already has the new figures) */
	const char *refused;
	rc = mgi_kcg_v1_set_pair(k, name, set_max, max, memsw_of(max, swap), &refused);
	if (rc == -ENOENT && strcmp(refused, f) == 0 && !asked) {
		/* no swap accounting, none asked for: the limit alone */
		if (set_max && (rc = mgi_kcg_set_limit(k, name, max)) != 0)
			return refused_limit(rc, max, name, why, whylen);
		return 0;
	}
	if (rc != 0 && strcmp(refused, f) != 0)
		return refused_limit(rc, max, name, why, whylen);
	if (rc != 0)
		goto swap_refused;
	return 0;
swap_refused:
	if (rc == -ENOENT) {
		snprintf(why, whylen, "this kernel does not account swap per cgroup (%s: %s): "
				      "--swap-max needs it with the kernel backend", f, strerror(-rc));
		return -EOPNOTSUPP;
	}
	snprintf(why, whylen, "the kernel refused %s for group '%s': %s", f, name,
		 rc == -EBUSY ? "it could not bring the group's memory and swap under it"
			      : strerror(-rc));
	return rc;
}

int mgi_kbackend_set(mgi_manager_t *m, int g, const mgi_msg_set_t *set, char *why, size_t whylen)
{
	const mgi_kcg_t *k;
	const char *name = m->tree.node[g].name;
	int rc;

	if (set->backend != MGI_SET_KEEP && set->backend != MGI_BACKEND_KERNEL) {
		snprintf(why, whylen, "group '%s' is served by the kernel backend, fixed at its "
				      "creation", name);
		return -EINVAL;
	}
	if ((rc = check_set(m, set, why, whylen)) != 0)
		return rc;
	k = mgi_backstop_kcg(m);
	if (g == 0)
		return 0;
	if (set->memory_max != MGI_SET_KEEP || set->swap_max != MGI_SET_KEEP) {
		rc = set_memory_and_swap(k, name, m->tree.node[g].seg, set, why, whylen);
		if (rc != 0)
			return rc;
	}
	struct {
		uint64_t v;
		const char *file;
		int version;
	} files[] = {
		{set->memory_soft, "memory.soft_limit_in_bytes", 1},
		{set->memory_high, "memory.high", 2},
		{set->memory_low, "memory.low", 2},
	};
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		if (files[i].v == MGI_SET_KEEP || files[i].version != k->version)
			continue;
		uint64_t v = files[i].v == MGI_SET_UNLIMITED ? UINT64_MAX : files[i].v;
		if (k->version == 2 && !strcmp(files[i].file, "memory.low") && v == UINT64_MAX)
			v = 0; /* "no protection" */
		if ((rc = mgi_kcg_set_file(k, name, files[i].file, v)) != 0) {
			snprintf(why, whylen, "cannot set %s of group '%s': %s", files[i].file, name,
				 strerror(-rc));
			return rc;
		}
	}
	if (set->swappiness != MGI_SET_KEEP && k->version == 1) {
		char path[600], num[8];
		snprintf(path, sizeof(path), "%s%s/%s/memory.swappiness", k->mount, k->base, name);
		snprintf(num, sizeof(num), "%u", (unsigned)set->swappiness);
		int fd = open(path, O_WRONLY | O_CLOEXEC);
		if (fd >= 0) {
			if (write(fd, num, strlen(num)) < 0) {
				/* (ignored: the tree keeps it for stats) */
			}
			close(fd);
		}
	}
	return 0;
}

uint64_t mgi_kbackend_usage(const mgi_manager_t *m, int g)
{
	const mgi_kcg_t *k = mgi_backstop_kcg(m);
	mgi_kcg_figures_t f;

	if (!k || mgi_kcg_read(k, m->tree.node[g].name, &f) != 0)
		return 0;
	return f.usage / MGI_PAGE_SIZE;
}

static struct mgi_kbackend *kb_of(mgi_manager_t *m)
{
	if (!m->kbackend) {
		m->kbackend = calloc(1, sizeof(*m->kbackend));
		if (m->kbackend) {
			for (int i = 0; i < WATCHES_MAX; i++)
				m->kbackend->w[i].efd = -1;
			m->kbackend->poll_fd = -1;
			const char *e = getenv("MEMGRP_KBACKEND_POLL");
			m->kbackend->force_poll = e && !strcmp(e, "1");
		}
	}
	return m->kbackend;
}

/* The usage a watch compares with, bytes; UINT64_MAX if unreadable. */
static uint64_t watched_usage(const mgi_manager_t *m, const struct kb_watch *w)
{
	const mgi_kcg_t *k = mgi_backstop_kcg(m);
	mgi_kcg_figures_t f;

	if (!k || mgi_kcg_read(k, m->tree.node[w->group].name, &f) != 0)
		return UINT64_MAX;
	return f.usage + (w->memsw ? f.swap : 0);
}

static bool any_polled(const struct mgi_kbackend *kb)
{
	for (int i = 0; i < WATCHES_MAX; i++)
		if (kb->w[i].efd == POLLED)
			return true;
	return false;
}

/* Starts the poll timer (a polled watch was added) or stops it (none is
 * left): idle costs nothing without polled watches. */
static void poll_timer(mgi_manager_t *m, struct mgi_kbackend *kb)
{
	bool want = any_polled(kb);

	if (want && kb->poll_fd < 0) {
		kb->poll_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
		if (kb->poll_fd < 0)
			return;
		struct itimerspec its = {{0, POLL_MS * 1000000L}, {0, POLL_MS * 1000000L}};
		struct epoll_event ev = {.events = EPOLLIN, .data.u64 = TAG_KB_POLL};
		timerfd_settime(kb->poll_fd, 0, &its, NULL);
		epoll_ctl(m->epfd, EPOLL_CTL_ADD, kb->poll_fd, &ev);
	} else if (!want && kb->poll_fd >= 0) {
		epoll_ctl(m->epfd, EPOLL_CTL_DEL, kb->poll_fd, NULL);
		close(kb->poll_fd);
		kb->poll_fd = -1;
	}
}

int mgi_kbackend_arm(mgi_manager_t *m, int ri, int g, bool memsw, uint64_t bytes, bool up_only)
{
	struct mgi_kbackend *kb = kb_of(m);
	const mgi_kcg_t *k = mgi_backstop_kcg(m);
	int i, efd;

	if (!kb)
		return -ENOMEM;
	if (!k)
		return -EOPNOTSUPP;
	for (i = 0; i < WATCHES_MAX && kb->w[i].efd != -1; i++)
		;
	if (i == WATCHES_MAX)
		return -ENOSPC;
	efd = kb->force_poll ? -EOPNOTSUPP : mgi_kcg_watch_usage(k, m->tree.node[g].name, memsw, bytes);
	if (efd == -EOPNOTSUPP) {
		/* no kernel threshold (v2): polled */
		kb->w[i] = (struct kb_watch){.efd = POLLED, .ri = ri, .group = g, .at = bytes,
					     .memsw = memsw, .up_only = up_only};
		uint64_t u = watched_usage(m, &kb->w[i]);
		kb->w[i].above = u != UINT64_MAX && u >= bytes;
		if (!kb->said_poll)
			mgi_manager_log(m, "group '%s': the kernel has no usage thresholds here%s: its "
					   "usage is read every %d ms while crossings are armed",
					m->tree.node[g].name,
					kb->force_poll ? " (MEMGRP_KBACKEND_POLL=1)" : " (cgroup v2)", POLL_MS);
		kb->said_poll = true;
		poll_timer(m, kb);
		return 0;
	}
	if (efd < 0)
		return efd;
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = TAG_KB_BASE + (uint64_t)i};
	if (epoll_ctl(m->epfd, EPOLL_CTL_ADD, efd, &ev) != 0) {
		int e = -errno;
		close(efd);
		return e;
	}
	kb->w[i] = (struct kb_watch){.efd = efd, .ri = ri, .group = g, .at = bytes, .memsw = memsw,
				     .up_only = up_only};
	/* (a crossing between this read and the registration above would
	 * leave the side wrong until the next one: tolerated) */
	uint64_t u = watched_usage(m, &kb->w[i]);
	kb->w[i].above = u != UINT64_MAX && u >= bytes;
	return 0;
}

static void drop(mgi_manager_t *m, struct kb_watch *w)
{
	if (w->efd >= 0) {
		epoll_ctl(m->epfd, EPOLL_CTL_DEL, w->efd, NULL);
		close(w->efd);
	}
	w->efd = -1;
}

void mgi_kbackend_release(mgi_manager_t *m, int ri)
{
	if (!m->kbackend)
		return;
	for (int i = 0; i < WATCHES_MAX; i++)
		if (m->kbackend->w[i].efd != -1 && m->kbackend->w[i].ri == ri)
			drop(m, &m->kbackend->w[i]);
	poll_timer(m, m->kbackend);
}

/* Every POLL_MS while polled watches exist: a change of side is a
 * crossing (upward only for up_only watches). */
static void poll_all(mgi_manager_t *m, struct mgi_kbackend *kb)
{
	uint64_t v;

	if (read(kb->poll_fd, &v, sizeof(v)) < 0) {
		/* EAGAIN */
	}
	for (int i = 0; i < WATCHES_MAX; i++) {
		struct kb_watch *w = &kb->w[i];
		if (w->efd != POLLED)
			continue;
		if (!m->tree.node[w->group].used) {
			drop(m, w);
			continue;
		}
		uint64_t u = watched_usage(m, w);
		if (u == UINT64_MAX)
			continue;
		bool above = u >= w->at;
		if (above == w->above)
			continue;
		w->above = above;
		if (above || !w->up_only)
			mgi_notify_kernel_crossing(m, w->ri, w->group, 1);
	}
	poll_timer(m, kb);
}

bool mgi_kbackend_event(mgi_manager_t *m, uint64_t tag)
{
	struct mgi_kbackend *kb = m->kbackend;
	uint64_t n = 0;

	if (tag < TAG_KB_BASE || tag > TAG_KB_POLL)
		return false;
	if (!kb)
		return true;
	if (tag == TAG_KB_POLL) {
		if (kb->poll_fd >= 0)
			poll_all(m, kb);
		return true;
	}
	struct kb_watch *w = &kb->w[tag - TAG_KB_BASE];
	if (w->efd < 0)
		return true;
	if (read(w->efd, &n, sizeof(n)) != sizeof(n) || n == 0)
		return true; /* EAGAIN: drained already */
	if (!m->tree.node[w->group].used) {
		drop(m, w); /* the group went (the kernel signals on rmdir) */
		return true;
	}
	/* The kernel signals a threshold when its usage is on the other
	 * side of it than at its last check: n signals are n changes of side,
	 * alternately up and down from the side last known. Counted so, not
	 * by reading usage now (under load the group could be back below by
	 * the time the manager reads it, and an entry was lost: seen in the
	 * suite at load 7). */
	uint64_t ups = w->above ? n / 2 : (n + 1) / 2;
	if (n & 1)
		w->above = !w->above;
	if (w->up_only) {
		if (ups == 0)
			return true; /* a downward crossing */
		n = ups;
	}
	mgi_notify_kernel_crossing(m, w->ri, w->group, n);
	return true;
}

void mgi_kbackend_destroy(mgi_manager_t *m)
{
	if (!m->kbackend)
		return;
	for (int i = 0; i < WATCHES_MAX; i++)
		if (m->kbackend->w[i].efd != -1)
			drop(m, &m->kbackend->w[i]);
	poll_timer(m, m->kbackend);
	free(m->kbackend);
	m->kbackend = NULL;
}

void mgi_kbackend_stats(const mgi_manager_t *m, int g, mgi_stats_t *st)
{
	const mgi_kcg_t *k = mgi_backstop_kcg(m);
	static pid_t pids[4096];
	mgi_kcg_figures_t f;

	st->backend = MGI_BACKEND_KERNEL;
	if (!k || mgi_kcg_read(k, m->tree.node[g].name, &f) != 0)
		return;
	/* memgrp's names for the kernel's figures (memcg's where they match) */
	mgi_backstop_kernel_stats(&f, st);
	st->usage = f.usage;
	st->max_usage = f.max_usage;
	if (f.limit != UINT64_MAX)
		st->limit = f.limit;
	st->failcnt = f.failcnt;
	st->pgfault = f.pgfault;
	st->pgmajfault = f.pgmajfault;
	st->swap_usage = f.swap;
	st->memsw_usage = f.usage + f.swap;
	st->oom_kill = atomic_load(&m->tree.node[g].seg->ctl.oom_kill);
	int n = mgi_kcg_pids(k, m->tree.node[g].name, g != 0, pids, 4096);
	st->nr_processes = n > 0 ? (uint64_t)n : 0;
	/* all of them run without an agent, by design: not "unmanaged" */
	st->unmanaged_processes = 0;
	st->tracked_bytes = st->untracked_bytes = 0;
}

void mgi_kbackend_stat_msg(const mgi_manager_t *m, int g, mgi_msg_t *out)
{
	const mgi_kcg_t *k = mgi_backstop_kcg(m);
	static pid_t pids[MGI_STAT_PROCS_MAX];
	char path[96], buf[1024];

	if (!mgi_kbackend_is(m, g))
		return;
	mgi_kbackend_stats(m, g, &out->stat.figures);
	out->stat.nprocs = 0;
	if (!k)
		return;
	int n = mgi_kcg_pids(k, m->tree.node[g].name, g != 0, pids, MGI_STAT_PROCS_MAX);
	for (int i = 0; i < n && i < MGI_STAT_PROCS_MAX; i++) {
		mgi_proc_stat_t *p = &out->stat.procs[out->stat.nprocs];
		unsigned long long size, res;
		memset(p, 0, sizeof(*p));
		p->pid = pids[i];
		snprintf(path, sizeof(path), "%s/%d/statm", k->proc, (int)pids[i]);
		if (mgi_os_read_small(path, buf, sizeof(buf)) > 0 &&
		    sscanf(buf, "%llu %llu", &size, &res) == 2)
			p->charged = res * MGI_PAGE_SIZE; /* RSS: the kernel charges it to the group */
		mgi_pid_stat_t st;
		if (mgi_pid_stat_read(k->proc, pids[i], &st) == 0) {
			snprintf(p->comm, sizeof(p->comm), "%.*s", (int)sizeof(p->comm) - 1, st.comm);
			p->pgfault = st.minflt + st.majflt;
		}
		out->stat.nprocs++;
	}
}

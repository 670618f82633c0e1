/* thpbalance.c - huge pages shared fairly among groups: /proc/buddyinfo read once a second, each group's share and stop/demote flags written to its control part. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "manager.h"
#include "oslayer.h"
#include "thpbalance.h"
#include "thpshare.h"
#include "tree.h"

#define TAG_THP_TIMER (10ULL << 32)
/* Fewer free order-9 blocks than this is scarcity: the shares bind. */
#define SCARCE_BLOCKS 64
#define PERIOD_NS 1000000000ULL

/* Whether a group of the tree has huge pages on. */
static bool any_on(const mgi_manager_t *m)
{
	for (int g = 0; g < MGI_GROUPS_MAX; g++)
		if (m->tree.node[g].used && atomic_load(&m->tree.node[g].seg->ctl.thp_mode) != MGI_THP_NEVER)
			return true;
	return false;
}

/* The 1 s tick, on while a group has huge pages on. */
static void arm(mgi_manager_t *m, bool on)
{
	struct itimerspec its = {0};

	if (m->thp_timerfd < 0) {
		if (!on)
			return;
		m->thp_timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
		if (m->thp_timerfd < 0)
			return;
		if (mgi_manager_watch(m, m->thp_timerfd, TAG_THP_TIMER) != 0) {
			close(m->thp_timerfd);
			m->thp_timerfd = -1;
			return;
		}
	}
	if (on) {
		its.it_value.tv_sec = 1;
		its.it_interval.tv_sec = 1;
	}
	if (timerfd_settime(m->thp_timerfd, 0, &its, NULL) == 0)
		m->thp_timer_on = on;
}

/* Free order-9 blocks, from /proc/buddyinfo (or the file MEMGRP_BUDDYINFO
 * names: the tests' scarcity). 0, or -errno. */
static int read_buddy(mgi_buddy_t *b)
{
	const char *path = getenv("MEMGRP_BUDDYINFO");
	char buf[8192];
	int fd = open(path && *path ? path : "/proc/buddyinfo", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, buf, sizeof(buf));
	close(fd);
	if (n <= 0)
		return n < 0 ? -errno : -EINVAL;
	return mgi_buddyinfo_parse(buf, (size_t)n, b);
}

/* One used group's inputs: its processes' huge pages (the agents'
 * words, clamped to what a process can hold), idle ones, and waiting. */
static void group_in(const mgi_segment_t *s, mgi_thp_group_in_t *in)
{
	in->weight = s->ctl.thp_weight;
	for (int i = 0; i < MGI_PROCS_MAX; i++) {
		if (atomic_load(&s->ctl.procs[i].pid) <= 0)
			continue;
		uint64_t h = atomic_load(&s->acct.procs[i].thp_huge_pages);
		uint64_t idle = atomic_load(&s->acct.procs[i].thp_idle);
		h = h < (1ULL << 32) ? h : (1ULL << 32);
		in->huge += h;
		in->idle += idle < h ? idle : h;
		in->wants |= atomic_load(&s->acct.procs[i].thp_waiting) != 0;
	}
}

static uint64_t thread_cpu_us(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_THREAD, &ru) != 0)
		return 0;
	return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000u +
	       (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

/* Writes "1" to path (a compaction: the kernel runs it in this thread). */
static bool write_one(const char *path)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	bool ok = write(fd, "1", 1) == 1;
	close(fd);
	return ok;
}

/* Promotions wait for order-9 blocks: asks the kernel to compact, each
 * node the buddyinfo names (its own file), else all memory; at most once
 * in --thp-compact-rate's gap. The CPU it takes is the manager thread's
 * (the write runs the compaction), measured around it. */
static void compact(mgi_manager_t *m, const mgi_buddy_t *b)
{
	uint64_t now = mgi_os_now_ns(), cpu = thread_cpu_us();
	unsigned done = 0;
	char path[64];

	if (!m->thp_compact_gap_ns || (m->thp_compact_last_ns && now - m->thp_compact_last_ns < m->thp_compact_gap_ns))
		return;
	m->thp_compact_last_ns = now;
	for (unsigned n = 0; n < b->nodes; n++) {
		snprintf(path, sizeof(path), "/sys/devices/system/node/node%u/compact", n);
		done += write_one(path);
	}
	if (!done && !write_one("/proc/sys/vm/compact_memory")) {
		mgi_manager_log(m, "huge pages: cannot ask the kernel to compact (%s)", strerror(errno));
		return;
	}
	uint64_t used = thread_cpu_us() - cpu;
	m->thp_compactions++;
	m->thp_compact_cpu_us += used;
	mgi_manager_log(m, "huge pages: %llu free order-9 blocks, promotions waiting: compacted "
			   "(%u node%s, %llu us of CPU)", (unsigned long long)b->huge_free, done,
			done == 1 ? "" : "s", (unsigned long long)used);
}

void mgi_thp_stats(const mgi_manager_t *m, int g, mgi_stats_t *out)
{
	if (g != 0)
		return;
	out->thp_compactions = m->thp_compactions;
	out->thp_compact_cpu_us = m->thp_compact_cpu_us;
}

/* Computes every group's share and writes it with its flags. */
static void balance(mgi_manager_t *m)
{
	mgi_thp_group_in_t in[MGI_GROUPS_MAX];
	mgi_thp_group_out_t out[MGI_GROUPS_MAX];
	int dense[MGI_GROUPS_MAX], node[MGI_GROUPS_MAX];
	unsigned n = 0;
	mgi_buddy_t b;
	uint64_t held = 0;

	if (read_buddy(&b) != 0)
		return; /* no figure: the last flags stay */
	for (int g = 0; g < MGI_GROUPS_MAX; g++) {
		dense[g] = -1;
		if (m->tree.node[g].used) {
			node[n] = g;
			dense[g] = (int)n++;
		}
	}
	for (unsigned i = 0; i < n; i++) {
		const mgi_group_node_t *gn = &m->tree.node[node[i]];
		in[i] = (mgi_thp_group_in_t){.parent = gn->parent >= 0 ? dense[gn->parent] : -1};
		group_in(gn->seg, &in[i]);
		held += in[i].huge;
	}
	bool scarce = b.huge_free < SCARCE_BLOCKS;
	if (mgi_thp_shares(in, n, held + b.huge_free, scarce, MGI_THP_IDLE_TAX_DEFAULT, out) != 0)
		return;
	bool waits = false;
	for (unsigned i = 0; i < n; i++) {
		/* a stopped group waits for blocks too: with more free,
		 * the shares grow */
		waits |= in[i].wants;
		mgi_segment_ctl_t *c = &m->tree.node[node[i]].seg->ctl;
		atomic_store(&c->thp_share, out[i].share);
		atomic_store(&c->thp_own, out[i].own);
		atomic_store(&c->thp_flags, (out[i].stop ? MGI_THP_STOP : 0u) |
						    (out[i].demote ? MGI_THP_DEMOTE : 0u));
	}
	if (scarce && waits)
		compact(m, &b);
}

bool mgi_thp_event(mgi_manager_t *m, uint64_t tag)
{
	uint64_t v;

	if (tag != TAG_THP_TIMER)
		return false;
	if (read(m->thp_timerfd, &v, sizeof(v)) < 0) {
		/* EAGAIN: the tick follows in mgi_manager_poll */
	}
	return true;
}

void mgi_thp_tick(mgi_manager_t *m)
{
	uint64_t now = mgi_os_now_ns();

	if (now - m->thp_last_ns < PERIOD_NS - PERIOD_NS / 10)
		return;
	m->thp_last_ns = now;
	bool on = any_on(m);
	if (on != m->thp_timer_on)
		arm(m, on);
	if (on)
		balance(m);
}

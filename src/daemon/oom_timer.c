/* oom_timer.c - the OOM timer: graces ending in SIGKILL, victims that do not exit (stuck), growth samples, the pause's end, the hook's timeout. */
#include "oom_int.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/timerfd.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "manager.h"
#include "conn.h"
#include "oslayer.h"

/* How long a victim may take to exit after SIGKILL before it is taken
 * for stuck (uninterruptible sleep) and the next one is chosen. */
#define OOM_STUCK_MS 1000
#define TAG_OOMKILL_TIMER (6ULL << 32)
#define OOM_TICK_MS 100

static bool growth_wanted(const mgi_manager_t *m)
{
	for (int g = 0; g < MGI_GROUPS_MAX; g++)
		if (m->tree.node[g].used && (m->tree.node[g].seg->ctl.oom_set & MGI_OOM_SET_POLICY) &&
		    m->tree.node[g].seg->ctl.oom_policy == MGI_OOM_GROWTH)
			return true;
	return false;
}

static bool dying(const struct mgi_conn *c)
{
	return c->fd >= 0 && c->slot >= 0 && (c->oom_term_ns || c->oom_kill_ns) && !c->oom_stuck;
}

static bool any_paused(const mgi_manager_t *m)
{
	for (int g = 0; g < MGI_GROUPS_MAX; g++)
		if (m->tree.node[g].used && atomic_load(&m->tree.node[g].seg->ctl.under_oom))
			return true;
	return false;
}

void mgi_oom_arm(mgi_manager_t *m)
{
	bool want = growth_wanted(m) || any_paused(m) || m->prekill_pid;

	for (unsigned k = 0; k < m->nconns && !want; k++)
		want = dying(&m->conns[k]);
	if (want == m->oom_timer_armed)
		return;
	if (want && m->oom_timerfd <= 0) {
		int fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
		if (fd == 0) { /* 0 means "not made" here */
			fd = fcntl(0, F_DUPFD_CLOEXEC, 1);
			close(0);
		}
		if (fd < 0 || mgi_manager_watch(m, fd, TAG_OOMKILL_TIMER) != 0) {
			mgi_manager_log(m, "OOM timer: %s: graces end at the next OOM request",
					strerror(errno));
			if (fd > 0)
				close(fd);
			return;
		}
		m->oom_timerfd = fd;
	}
	if (m->oom_timerfd <= 0)
		return;
	struct itimerspec its = {{0, 0}, {0, 0}};
	if (want)
		its.it_value.tv_nsec = its.it_interval.tv_nsec = OOM_TICK_MS * 1000000L;
	timerfd_settime(m->oom_timerfd, 0, &its, NULL);
	m->oom_timer_armed = want;
}

/* A victim's state letter from /proc/PID/stat ('?' if unknown). */
static char state_of(pid_t pid)
{
	mgi_pid_stat_t st;
	return mgi_pid_stat_read(NULL, pid, &st) == 0 ? st.state : '?';
}

/*
 * Whether a killed victim is done with its memory: every task of it is a
 * zombie (Z, or X: being reaped) or it is gone. Its pidfd tells of the
 * whole thread group's exit and drops its connection, so a victim seen
 * here as Z is mostly a leader that exited before its other threads: one
 * of them still alive (in D, say) holds the memory, and that one is stuck.
 * A zombie its parent does not reap holds no memory (exit_mm comes before
 * the zombie state) and is not stuck.
 */
static bool memory_freed(pid_t pid)
{
	char dir[48];
	struct dirent *d;
	bool freed = true;
	mgi_pid_stat_t st;

	snprintf(dir, sizeof(dir), "/proc/%d/task", (int)pid);
	DIR *t = opendir(dir);
	if (!t)
		return errno == ENOENT; /* reaped meanwhile; other errors: cannot tell */
	while (freed && (d = readdir(t))) {
		char *end;
		long tid = strtol(d->d_name, &end, 10);
		if (*end || tid <= 0)
			continue;
		/* a task reaped while we look is freed; unreadable is not */
		int rc = mgi_pid_stat_read(dir, (pid_t)tid, &st);
		if (rc == 0 ? st.state != 'Z' && st.state != 'X' : rc != -ENOENT)
			freed = false;
	}
	closedir(t);
	return freed;
}

static void oom_tick(mgi_manager_t *m)
{
	uint64_t now = mgi_os_now_ns();
	bool sample = growth_wanted(m) && now - m->oom_sample_ns >= MGI_OOM_SAMPLE_MS * 1000000ULL;

	if (sample)
		m->oom_sample_ns = now;
	for (unsigned k = 0; k < m->nconns; k++) {
		struct mgi_conn *c = &m->conns[k];
		if (c->fd < 0 || c->slot < 0 || !m->tree.node[c->group].used)
			continue;
		if (sample) {
			c->hist_ns[c->hist_next] = now;
			c->hist_pages[c->hist_next] = mgi_segment_slot_charged(m->tree.node[c->group].seg, c->slot);
			c->hist_next = (uint8_t)((c->hist_next + 1) % MGI_OOM_HIST);
			if (c->hist_n < MGI_OOM_HIST)
				c->hist_n++;
		}
		if (c->oom_term_ns && !c->oom_kill_ns &&
		    now - c->oom_term_ns >= (uint64_t)c->oom_grace_ms * 1000000ULL) {
			/* the grace is over: SIGKILL, and its memory back at once */
			c->oom_kill_ns = now;
			if (c->pidfd >= 0 && mgi_pidfd_send_signal(c->pidfd, SIGKILL) == 0) {
				mgi_manager_log(m, "group '%s': pid %d did not exit within its %u ms "
						   "grace: killing it", m->tree.node[c->group].name, (int)c->pid,
						c->oom_grace_ms);
				mgi_pidfd_mrelease(c->pidfd);
			}
		} else if (c->oom_kill_ns && !c->oom_stuck && memory_freed(c->pid)) {
			/* dead, its pidfd not heard yet: its memory is back,
			 * and its charge with it (the connection dropped, as
			 * at its pidfd's word): the kill is done */
			mgi_manager_log(m, "group '%s': pid %d has exited after SIGKILL (a zombie not "
					   "reaped yet, or gone): its memory is freed, not stuck",
					m->tree.node[c->group].name, (int)c->pid);
			mgi_join_exited(m, k);
		} else if (c->oom_kill_ns && !c->oom_stuck && now - c->oom_kill_ns >= OOM_STUCK_MS * 1000000ULL) {
			/* never a hang: report it and let the next victim be chosen */
			char st = state_of(c->pid);
			c->oom_stuck = true;
			mgi_manager_log(m, "group '%s': pid %d has not exited %d ms after SIGKILL (state "
					   "%c%s): choosing the next victim", m->tree.node[c->group].name,
					(int)c->pid, OOM_STUCK_MS, st,
					st == 'D' ? ", uninterruptible sleep" : "");
			if (c->oom_target >= 0)
				mgi_conn_clear_victim(m, c->oom_target, c->pid);
		}
	}
	if (m->prekill_pid && now >= m->prekill_deadline_ns)
		mgi_oom_prekill_end(m, true);
	mgi_oom_pause_check(m);
	mgi_oom_arm(m);
}

bool mgi_oom_event(mgi_manager_t *m, uint64_t tag)
{
	uint64_t v;

	if (mgi_oom_prekill_event(m, tag))
		return true;
	if (tag != TAG_OOMKILL_TIMER)
		return false;
	if (m->oom_timerfd > 0 && read(m->oom_timerfd, &v, sizeof(v)) < 0) {
		/* EAGAIN: nothing */
	}
	oom_tick(m);
	return true;
}

void mgi_oom_destroy(mgi_manager_t *m)
{
	mgi_oom_prekill_destroy(m);
	if (m->oom_timerfd > 0)
		close(m->oom_timerfd);
	m->oom_timerfd = 0;
	m->oom_timer_armed = false;
	free(m->oom_records);
	m->oom_records = NULL;
}

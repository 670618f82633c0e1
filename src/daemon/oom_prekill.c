/* oom_prekill.c - the pre-kill hook (--oom-prekill): a command run before the OOM kill, watched through its pidfd, ended at its timeout; the kill follows it. */
#include "oom_int.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/epoll.h>
#include <sys/wait.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "manager.h"
#include "conn.h"
#include "hostwatch.h"
#include "oslayer.h"

/* Which kill the running hook precedes: the joined processes' (the
 * group's policy again at its end), the backstop's at a kernel limit (its
 * next try), one by hand (memgrp oom --kill, of hand_pid), or the host
 * ladder's (host_ladder.c: the kill at its end if the host is still
 * short, host_state saying why). */
static enum { PK_JOINED, PK_KERNEL, PK_HAND, PK_HOST } pk_kind;
static char host_state[256];
static pid_t hand_pid;
static unsigned hand_uid;
/* A hook before the backstop's kill of kernel_group ended at
 * kernel_done_ns: its next try within a second kills without one. */
static int kernel_group = -1;
static uint64_t kernel_done_ns;

#define TAG_PREKILL ((6ULL << 32) + 1)
#define TAG_PREKILL_REAP ((6ULL << 32) + 2)

/*
 * The pre-kill hook (--oom-prekill): the group's command, its words split
 * at spaces (no shell), run with posix_spawnp (PATH as the manager's),
 * stdin /dev/null, stdout and stderr the manager's log, no signal
 * blocked, and an environment of its own: PATH and the MEMGRP_OOM_*
 * figures. The manager does not wait: the hook's pidfd is watched in its
 * loop and the OOM tick ends it at its timeout; the kill waits
 * (mgi_oom_kill_pending) and follows when the hook is over. Returns 0 if
 * the hook runs, or -errno (logged; the kill then goes on without it).
 */
static int prekill_start(mgi_manager_t *m, int target, const struct mgi_oom_eff *e,
			 const mgi_victim_t *v, const char *state)
{
	static char words[MGI_OOM_PREKILL_MAX], env[16][640], cmd[512];
	char *argv[33], *envp[17], comm[MGI_COMM_MAX + 1] = "";
	const mgi_segment_t *seg = m->tree.node[target].seg;
	const char *path = getenv("PATH");
	int argc = 0, nenv = 0, rc;

	snprintf(words, sizeof(words), "%s", e->prekill);
	for (char *save = NULL, *w = strtok_r(words, " ", &save); w && argc < 32;
	     w = strtok_r(NULL, " ", &save))
		argv[argc++] = w;
	argv[argc] = NULL;
	if (!argc)
		return -EINVAL;
	struct mgi_conn *vc = mgi_oom_joined_conn(m, v->pid);
	if (vc)
		snprintf(comm, sizeof(comm), "%.*s", MGI_COMM_MAX - 1,
			 m->tree.node[vc->group].seg->ctl.procs[vc->slot].comm);
	mgi_oom_cmdline(v->pid, cmd, sizeof(cmd));
#define ENV(...) snprintf(env[nenv], sizeof(env[nenv]), __VA_ARGS__), envp[nenv] = env[nenv], nenv++
	ENV("PATH=%s", path ? path : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
	ENV("MEMGRP_OOM_GROUP=%s", m->tree.node[target].name);
	ENV("MEMGRP_OOM_REASON=%s", state);
	ENV("MEMGRP_OOM_POLICY=%s", mgi_oom_policy_name(e->policy));
	ENV("MEMGRP_OOM_SCOPE=%s", e->scope == MGI_OOM_SCOPE_GROUP ? "group" : "process");
	ENV("MEMGRP_OOM_SIGNAL=%s", e->signal == SIGTERM ? "TERM" : "KILL");
	ENV("MEMGRP_OOM_USAGE=%llu", (unsigned long long)mgi_counter_read(&seg->acct.memory) * MGI_PAGE_SIZE);
	ENV("MEMGRP_OOM_LIMIT=%llu", (unsigned long long)mgi_counter_read_max(&seg->ctl.memory) * MGI_PAGE_SIZE);
	ENV("MEMGRP_OOM_VICTIM_PID=%d", (int)v->pid);
	ENV("MEMGRP_OOM_VICTIM_GROUP=%s", v->group >= 0 ? m->tree.node[v->group].name : "");
	ENV("MEMGRP_OOM_VICTIM_COMM=%s", comm);
	ENV("MEMGRP_OOM_VICTIM_CMDLINE=%s", cmd);
	ENV("MEMGRP_OOM_VICTIM_CHARGED=%llu", (unsigned long long)v->pages * MGI_PAGE_SIZE);
	ENV("MEMGRP_OOM_VICTIM_AGE_MS=%llu", (unsigned long long)v->age_ms);
	ENV("MEMGRP_OOM_TIMEOUT_MS=%u", e->prekill_ms);
#undef ENV
	envp[nenv] = NULL;

	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, dfl;
	pid_t pid;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, STDERR_FILENO, STDOUT_FILENO);
	posix_spawnattr_init(&at);
	sigemptyset(&none);
	sigfillset(&dfl);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &dfl);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	rc = -posix_spawnp(&pid, argv[0], &fa, &at, argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	if (rc != 0) {
		mgi_manager_log(m, "group '%s': --oom-prekill '%s' could not run: %s; the kill goes "
				   "on", m->tree.node[target].name, e->prekill, strerror(-rc));
		return rc;
	}
	int fd = mgi_pidfd_open(pid);
	if (fd < 0 || mgi_manager_watch(m, fd, TAG_PREKILL) != 0) {
		/* cannot watch it: end it, and kill without it */
		rc = fd < 0 ? fd : -errno;
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		if (fd >= 0)
			close(fd);
		mgi_manager_log(m, "group '%s': --oom-prekill cannot be watched: %s; the kill goes on",
				m->tree.node[target].name, strerror(-rc));
		return rc;
	}
	m->prekill_pid = pid;
	m->prekill_pidfd = fd;
	m->prekill_target = target;
	m->prekill_victim = v->pid;
	m->prekill_start_ns = mgi_os_now_ns();
	m->prekill_deadline_ns = m->prekill_start_ns + (uint64_t)e->prekill_ms * 1000000ULL;
	mgi_manager_log(m, "group '%s' is out of memory %s: running --oom-prekill (pid %d) before "
			   "the kill of pid %d (%s), for at most %u ms", m->tree.node[target].name, state,
			(int)pid, (int)v->pid, comm, e->prekill_ms);
	mgi_oom_arm(m);
	return 0;
}

bool mgi_oom_prekill_first(mgi_manager_t *m, int target, const struct mgi_oom_eff *e,
			   const mgi_victim_t *cand, const bool *sel, size_t n, const char *state)
{
	static mgi_victim_t sub[MGI_MANAGER_CONNS_MAX];

	if (m->prekill_pid)
		return true;
	if (!e->prekill[0] || m->prekill_done || !mgi_oom_at_limit(m, target))
		return false;
	/* the victim as the kill will choose it (the group scope: the unit's
	 * largest, as its record names) */
	mgi_victim_policy_t pol = {.total_pages = mgi_counter_read_max(&m->tree.node[target].seg->ctl.memory),
				   .policy = e->scope == MGI_OOM_SCOPE_GROUP ? MGI_OOM_LARGEST : e->policy};
	size_t k = 0;
	for (size_t i = 0; i < n && k < MGI_MANAGER_CONNS_MAX; i++)
		if (sel[i])
			sub[k++] = cand[i];
	int best = mgi_victim_choose(sub, k, &pol, NULL);
	if (best < 0)
		return false; /* nobody: the kill says so */
	if (prekill_start(m, target, e, &sub[best], state) != 0)
		return false;
	pk_kind = PK_JOINED;
	return true;
}

bool mgi_oom_prekill_kernel(mgi_manager_t *m, int g, mgi_victim_t *cand, size_t n,
			    const mgi_victim_policy_t *pol, const char *state)
{
	if (m->prekill_pid)
		return true;
	if (kernel_group == g && mgi_os_now_ns() - kernel_done_ns < 1000000000ULL) {
		/* the hook was told of m->prekill_victim: it, if still here */
		kernel_group = -1;
		for (size_t i = 0; m->prekill_victim && i < n; i++)
			if (cand[i].pid == m->prekill_victim)
				for (size_t j = 0; j < n; j++)
					cand[j].tried = cand[j].tried || j != i;
		m->prekill_victim = 0;
		return false;
	}
	struct mgi_oom_eff e = mgi_oom_effective(m, g);
	if (!e.prekill[0] || m->prekill_done)
		return false;
	int best = mgi_victim_choose(cand, n, pol, NULL);
	if (best < 0 || prekill_start(m, g, &e, &cand[best], state) != 0)
		return false; /* nobody (the kill says so), or the hook could not run */
	pk_kind = PK_KERNEL;
	return true;
}

bool mgi_oom_prekill_host(mgi_manager_t *m, int g, const struct mgi_oom_eff *e, const mgi_victim_t *v,
			  const char *state)
{
	if (m->prekill_pid)
		return true;
	if (!e->prekill[0] || m->prekill_done || prekill_start(m, g, e, v, state) != 0)
		return false;
	pk_kind = PK_HOST;
	snprintf(host_state, sizeof(host_state), "%s", state);
	return true;
}

bool mgi_oom_prekill_hand(mgi_manager_t *m, int g, const mgi_victim_t *v, unsigned uid, unsigned *ms)
{
	struct mgi_oom_eff e = mgi_oom_effective(m, g);
	char state[64];

	if (m->prekill_pid || !e.prekill[0] || m->prekill_done)
		return false;
	snprintf(state, sizeof(state), "and paused: uid %u kills by hand (memgrp oom --kill)", uid);
	if (prekill_start(m, g, &e, v, state) != 0)
		return false;
	pk_kind = PK_HAND;
	hand_pid = v->pid;
	hand_uid = uid;
	*ms = e.prekill_ms;
	return true;
}

/* The hook is over (exited, or killed at its timeout): the kill it
 * preceded, of the same victim if it is still a candidate. */
void mgi_oom_prekill_end(mgi_manager_t *m, bool timed_out)
{
	int st = 0, target = m->prekill_target;
	uint64_t ms = (mgi_os_now_ns() - m->prekill_start_ns) / 1000000ULL;
	pid_t pid = m->prekill_pid;
	char how[64];

	if (timed_out) {
		mgi_pidfd_send_signal(m->prekill_pidfd, SIGKILL);
		snprintf(how, sizeof(how), "did not finish within %llu ms: killed", (unsigned long long)ms);
	}
	pid_t r = waitpid(pid, &st, WNOHANG);
	if (!timed_out) {
		if (r == pid && WIFEXITED(st))
			snprintf(how, sizeof(how), "exited with status %d after %llu ms", WEXITSTATUS(st),
				 (unsigned long long)ms);
		else if (r == pid)
			snprintf(how, sizeof(how), "died of signal %d after %llu ms", WTERMSIG(st),
				 (unsigned long long)ms);
		else
			snprintf(how, sizeof(how), "ended after %llu ms", (unsigned long long)ms);
	}
	if (r == 0) {
		/* killed, not yet reaped: its pidfd says when (an older one
		 * still waiting is reaped now: SIGKILL was sent long ago) */
		if (m->prekill_reap_pid) {
			waitpid(m->prekill_reap_pid, NULL, 0);
			close(m->prekill_reap_pidfd);
		}
		m->prekill_reap_pid = pid;
		m->prekill_reap_pidfd = m->prekill_pidfd;
		epoll_ctl(m->epfd, EPOLL_CTL_DEL, m->prekill_pidfd, NULL);
		mgi_manager_watch(m, m->prekill_pidfd, TAG_PREKILL_REAP);
	} else {
		close(m->prekill_pidfd); /* (also leaves the epoll set) */
	}
	m->prekill_pid = 0;
	m->prekill_pidfd = -1;
	if (target < 0 || target >= MGI_GROUPS_MAX || !m->tree.node[target].used)
		return;
	if (pk_kind == PK_KERNEL) {
		/* the backstop tries again at its next tick if g still waits */
		mgi_manager_log(m, "group '%s': --oom-prekill (pid %d) %s; the kill follows if the "
				   "group still waits at its kernel limit", m->tree.node[target].name,
				(int)pid, how);
		kernel_group = target;
		kernel_done_ns = mgi_os_now_ns();
		return;
	}
	if (pk_kind == PK_HOST) {
		mgi_manager_log(m, "group '%s': --oom-prekill (pid %d) %s; the host's kill follows if the "
				   "host is still short", m->tree.node[target].name, (int)pid, how);
		m->prekill_done = true;
		mgi_host_ladder_after_prekill(m, host_state);
		m->prekill_done = false;
		m->prekill_victim = 0;
		return;
	}
	if (pk_kind == PK_HAND) {
		char comm[MGI_COMM_MAX + 1] = "";
		bool paused = atomic_load(&m->tree.node[target].seg->ctl.under_oom) != 0;
		int err = paused ? mgi_oom_hand_kill(m, target, hand_pid, hand_uid, comm, sizeof(comm)) : 0;
		mgi_manager_log(m, "group '%s': --oom-prekill (pid %d) %s; %s pid %d%s%s",
				m->tree.node[target].name, (int)pid, how,
				!paused ? "the group has room now: not killed:" : err ? "could not kill"
										  : "killed by hand:",
				(int)hand_pid, err ? ": " : "", err ? strerror(-err) : "");
		hand_pid = 0;
		m->prekill_victim = 0;
		return;
	}
	mgi_manager_log(m, "group '%s': --oom-prekill (pid %d) %s; %s", m->tree.node[target].name,
			(int)pid, how, mgi_oom_at_limit(m, target) ? "the kill follows"
							   : "the group has room now: nobody is killed");
	m->prekill_done = true;
	mgi_oom_kill_joined(m, target);
	m->prekill_done = false;
	m->prekill_victim = 0;
}

bool mgi_oom_prekill_event(mgi_manager_t *m, uint64_t tag)
{
	if (tag == TAG_PREKILL) {
		if (m->prekill_pid)
			mgi_oom_prekill_end(m, false);
		return true;
	}
	if (tag == TAG_PREKILL_REAP) {
		if (m->prekill_reap_pid) {
			waitpid(m->prekill_reap_pid, NULL, WNOHANG);
			close(m->prekill_reap_pidfd);
			m->prekill_reap_pid = 0;
		}
		return true;
	}
	return false;
}

void mgi_oom_prekill_destroy(mgi_manager_t *m)
{
	/* a hook still running ends with its manager */
	if (m->prekill_pid) {
		mgi_pidfd_send_signal(m->prekill_pidfd, SIGKILL);
		waitpid(m->prekill_pid, NULL, 0);
		close(m->prekill_pidfd);
		m->prekill_pid = 0;
	}
	if (m->prekill_reap_pid) {
		waitpid(m->prekill_reap_pid, NULL, 0);
		close(m->prekill_reap_pidfd);
		m->prekill_reap_pid = 0;
	}
}

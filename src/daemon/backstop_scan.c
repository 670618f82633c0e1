/* backstop_scan.c - who runs in a group's kernel cgroup without the agent: counted, reported once, and why. */
#include "backstop.h"
#include "backstop_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <linux/kcmp.h>
#include <sys/syscall.h>

#include "oslayer.h"

/* How long after a manager's start a restored process's agent may take to
 * rejoin (agents try once a second; a loaded host delays them). */
#define REJOIN_GRACE_NS (5 * 1000000000ULL)

void mgi_bs_comm(const mgi_manager_t *m, pid_t pid, char *out, size_t len)
{
	char path[96];
	snprintf(path, sizeof(path), "%s/%d/comm", m->backstop->k.proc, (int)pid);
	if (mgi_os_read_small(path, out, len) <= 0)
		snprintf(out, len, "?");
	out[strcspn(out, "\n")] = '\0';
}

uint64_t mgi_bs_rss(const mgi_manager_t *m, pid_t pid)
{
	mgi_proc_status_t st;

	if (mgi_proc_status_read(m->backstop->k.proc, pid, &st) != 0)
		return 0;
	return (st.rss_anon_kb + st.rss_file_kb + st.rss_shmem_kb) << 10;
}

/*
 * pid's stat, and whether it is on its way out: a zombie, or exiting
 * (PF_EXITING). Its agent's connection closes with its file table, early
 * in exit, while the process stays listed in its cgroup (a leader waits as
 * a zombie for its other threads): measured, the end of every
 * multi-threaded program (prog_stress) was reported as running without
 * the agent. A process gone counts as exiting.
 */
static bool exiting(const mgi_manager_t *m, pid_t pid, mgi_pid_stat_t *st)
{
	int rc = mgi_pid_stat_read(m->backstop->k.proc, pid, st);

	/* Not parsable: alive, and as old as the boot (so reported). */
	return rc != 0 ? rc != -EINVAL : mgi_pid_stat_exiting(st);
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
void mgi_bs_diagnose(const mgi_manager_t *m, pid_t pid, char *out, size_t len)
{
	const char *proc = m->backstop->k.proc;
	char path[512], cg[512];
	mgi_proc_status_t st;

	size_t bl = strlen(m->backstop->k.base);
	if (mgi_bs_pid_path(m, pid, cg, sizeof(cg)) == 0 && strncmp(cg, m->backstop->k.base, bl) == 0 &&
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

bool mgi_bs_connected(const mgi_manager_t *m, pid_t pid)
{
	for (unsigned k = 0; k < m->nconns; k++)
		if (m->conns[k].fd >= 0 && m->conns[k].slot >= 0 && m->conns[k].pid == pid)
			return true;
	return false;
}

bool mgi_bs_managed(const mgi_manager_t *m, pid_t pid)
{
	if (mgi_bs_connected(m, pid))
		return true;
	/* A slot without a connection is a restored group's process whose
	 * agent has yet to rejoin: managed for the first seconds after this
	 * manager's start only. One that has not rejoined by then will not
	 * (an image exec'ed while no manager ran gave up joining): it runs
	 * without the agent, and is reported and counted as such. */
	if (mgi_os_now_ns() - m->born_ns > REJOIN_GRACE_NS)
		return false;
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
void mgi_bs_scan(mgi_manager_t *m)
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
			mgi_pid_stat_t st;
			if (mgi_bs_managed(m, pids[i]) || exiting(m, pids[i], &st) ||
			    mgi_pid_age_ms(&st) < GRACE_MS || shares_managed_vm(m, g, pids[i]))
				continue;
			unmanaged++;
			char path[512], comm[32], why[256];
			if (mgi_bs_pid_path(m, pids[i], path, sizeof(path)) != 0 ||
			    mgi_bs_group_of_path(m, path) != g || reported(bs, pids[i]))
				continue;
			mgi_bs_comm(m, pids[i], comm, sizeof(comm));
			mgi_bs_diagnose(m, pids[i], why, sizeof(why));
			mgi_manager_log(m, "group '%s': pid %d (%s) runs without the agent: %s; only "
					   "its kernel cgroup bounds it", g ? gname(m, g) : "(root)",
					(int)pids[i], comm, why);
		}
		bs->g[g].unmanaged = unmanaged;
	}
}

/* test_kcgroup.c - the kernel cgroup layer (v1 and v2) on a fake tree of files, and its parsers. */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "kcgroup.h"
#include "kfile.h"

static char tmp[128];

static void put(const char *rel, const char *text)
{
	char path[512];
	snprintf(path, sizeof(path), "%s%s", tmp, rel);
	FILE *f = fopen(path, "w");
	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

/* The file's text ("" if missing), trailing newline dropped. */
static const char *get(const char *rel)
{
	static char buf[256];
	char path[512];
	snprintf(path, sizeof(path), "%s%s", tmp, rel);
	buf[0] = '\0';
	FILE *f = fopen(path, "r");
	if (f) {
		size_t n = fread(buf, 1, sizeof(buf) - 1, f);
		buf[n] = '\0';
		fclose(f);
	}
	buf[strcspn(buf, "\n")] = '\0';
	return buf;
}

static bool is_dir(const char *rel)
{
	char path[512];
	struct stat st;
	snprintf(path, sizeof(path), "%s%s", tmp, rel);
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static void fresh_tree(void)
{
	char cmd[256];
	if (tmp[0]) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
		if (system(cmd) != 0)
			fprintf(stderr, "cannot remove %s\n", tmp);
	}
	snprintf(tmp, sizeof(tmp), "/tmp/test_kcgroup.XXXXXX");
	if (!mkdtemp(tmp))
		abort();
}

static void keyed_files(void)
{
	static const char *const keys[] = {"total_cache", "total_shmem", "total_rss"};
	const char *v1 = "cache 10\nrss 20\nshmem 5\ntotal_cache 4096\ntotal_rss 8192\n"
			 "total_shmem 1024\ntotal_unevictable 0\n";
	uint64_t vals[3] = {0};
	uint32_t found = 0;

	CHECK_INT_EQ(mgi_kfile_keyed(v1, strlen(v1), keys, 3, vals, &found), 0);
	CHECK_EQ(found, 7);
	CHECK_EQ(vals[0], 4096);
	CHECK_EQ(vals[1], 1024);
	CHECK_EQ(vals[2], 8192);
	/* a key missing: its bit is clear, its value untouched */
	const char *ev = "low 0\nhigh 7\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n";
	static const char *const ev_keys[] = {"high", "max", "oom_kill", "absent"};
	uint64_t ev_vals[4] = {0, 0, 0, 99};
	CHECK_INT_EQ(mgi_kfile_keyed(ev, strlen(ev), ev_keys, 4, ev_vals, &found), 0);
	CHECK_EQ(found, 7);
	CHECK_EQ(ev_vals[0], 7);
	CHECK_EQ(ev_vals[1], 3);
	CHECK_EQ(ev_vals[2], 1);
	CHECK_EQ(ev_vals[3], 99);
	/* not the documented form: nothing written */
	const char *bad[] = {"high\n", "high x\n", " 1\n", "high 1 2\n", "high -1\n",
			     "high 99999999999999999999\n", "high \n"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ev_vals[0] = 5;
		CHECK_INT_EQ(mgi_kfile_keyed(bad[i], strlen(bad[i]), ev_keys, 4, ev_vals, &found),
			     -EINVAL);
		CHECK_EQ(ev_vals[0], 5);
	}
	/* the oom_control of v1 */
	static const char *const oom_keys[] = {"oom_kill_disable", "under_oom", "oom_kill"};
	const char *oc = "oom_kill_disable 1\nunder_oom 1\noom_kill 0\n";
	CHECK_INT_EQ(mgi_kfile_keyed(oc, strlen(oc), oom_keys, 3, vals, &found), 0);
	CHECK_EQ(vals[0], 1);
	CHECK_EQ(vals[1], 1);
	CHECK_EQ(vals[2], 0);
	/* not NUL-terminated: the length is what counts */
	const char cut[] = {'h', 'i', 'g', 'h', ' ', '4', '2'};
	CHECK_INT_EQ(mgi_kfile_keyed(cut, sizeof(cut), ev_keys, 4, ev_vals, &found), 0);
	CHECK_EQ(ev_vals[0], 42);
}

static void single_values(void)
{
	uint64_t v = 1;

	CHECK_INT_EQ(mgi_kfile_u64("123\n", 4, &v), 0);
	CHECK_EQ(v, 123);
	CHECK_INT_EQ(mgi_kfile_u64("max\n", 4, &v), 0);
	CHECK_EQ(v, UINT64_MAX);
	CHECK_INT_EQ(mgi_kfile_u64("9223372036854771712\n", 20, &v), 0);
	CHECK_EQ(v, 9223372036854771712ULL);
	v = 7;
	CHECK_INT_EQ(mgi_kfile_u64("12a\n", 4, &v), -EINVAL);
	CHECK_INT_EQ(mgi_kfile_u64("", 0, &v), -EINVAL);
	CHECK_INT_EQ(mgi_kfile_u64("-1", 2, &v), -EINVAL);
	CHECK_INT_EQ(mgi_kfile_u64("18446744073709551616", 20, &v), -EINVAL);
	CHECK_EQ(v, 7);
}

static void proc_cgroup_lines(void)
{
	const char *t = "9:name=systemd:/\n4:memory:/a/b:c\n3:cpu,cpuacct:/x\n0::/v2/path\n";
	char out[64];

	CHECK_INT_EQ(mgi_kfile_proc_cgroup(t, strlen(t), 1, out, sizeof(out)), 0);
	CHECK_STR_EQ(out, "/a/b:c");
	CHECK_INT_EQ(mgi_kfile_proc_cgroup(t, strlen(t), 2, out, sizeof(out)), 0);
	CHECK_STR_EQ(out, "/v2/path");
	const char *joined = "5:cpu,memory:/j\n";
	CHECK_INT_EQ(mgi_kfile_proc_cgroup(joined, strlen(joined), 1, out, sizeof(out)), 0);
	CHECK_STR_EQ(out, "/j");
	const char *none = "3:cpu:/x\n";
	CHECK_INT_EQ(mgi_kfile_proc_cgroup(none, strlen(none), 1, out, sizeof(out)), -ENOENT);
	CHECK_INT_EQ(mgi_kfile_proc_cgroup(t, strlen(t), 1, out, 4), -ENAMETOOLONG);
	const char *rel = "4:memory:a\n";
	CHECK_INT_EQ(mgi_kfile_proc_cgroup(rel, strlen(rel), 1, out, sizeof(out)), -EINVAL);
	/* "memoryx" is not "memory" */
	const char *near = "4:memoryx:/n\n";
	CHECK_INT_EQ(mgi_kfile_proc_cgroup(near, strlen(near), 1, out, sizeof(out)), -ENOENT);
}

static void mount_lines(void)
{
	char dir[64];
	const char *v1 = "cgroup /sys/fs/cgroup/memory cgroup rw,nosuid,relatime,memory 0 0\n";
	const char *cpu = "cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0\n";
	const char *v2 = "cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0\n";
	const char *esc = "cgroup /mnt/a\\040b cgroup rw,memory 0 0\n";

	CHECK_INT_EQ(mgi_kfile_mount_line(v1, strlen(v1), dir, sizeof(dir)), 1);
	CHECK_STR_EQ(dir, "/sys/fs/cgroup/memory");
	CHECK_INT_EQ(mgi_kfile_mount_line(cpu, strlen(cpu), dir, sizeof(dir)), 0);
	CHECK_INT_EQ(mgi_kfile_mount_line(v2, strlen(v2), dir, sizeof(dir)), 2);
	CHECK_STR_EQ(dir, "/sys/fs/cgroup/unified");
	CHECK_INT_EQ(mgi_kfile_mount_line(esc, strlen(esc), dir, sizeof(dir)), 1);
	CHECK_STR_EQ(dir, "/mnt/a b");
	CHECK_INT_EQ(mgi_kfile_mount_line("cgroup /x\n", 10, dir, sizeof(dir)), -EINVAL);
	const char *badesc = "cgroup /a\\09 cgroup memory 0 0\n";
	CHECK_INT_EQ(mgi_kfile_mount_line(badesc, strlen(badesc), dir, sizeof(dir)), -EINVAL);
	CHECK_INT_EQ(mgi_kfile_mount_line(v1, strlen(v1), dir, 8), -ENAMETOOLONG);
	CHECK(mgi_kfile_has_word("cpu io memory pids\n", 19, "memory"));
	CHECK(!mgi_kfile_has_word("cpu io memoryx\n", 15, "memory"));
}

static void probe_finds_the_memory_hierarchy(void)
{
	char mount[128], mounts[256];

	fresh_tree();
	snprintf(mounts, sizeof(mounts), "%s/mounts", tmp);
	put("/mounts", "proc /proc proc rw 0 0\ncgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\n"
		       "cgroup /sys/fs/cgroup/memory cgroup rw,memory 0 0\n");
	CHECK_INT_EQ(mgi_kcg_probe(mounts, mount, sizeof(mount)), 1);
	CHECK_STR_EQ(mount, "/sys/fs/cgroup/memory");
	/* v2 only where its controllers list memory */
	mkdir(strcat(strcpy(mount, tmp), "/unified"), 0755);
	char line[300];
	snprintf(line, sizeof(line), "cgroup2 %s/unified cgroup2 rw 0 0\n", tmp);
	put("/mounts", line);
	put("/unified/cgroup.controllers", "cpuset cpu io pids\n");
	CHECK_INT_EQ(mgi_kcg_probe(mounts, mount, sizeof(mount)), -ENOENT);
	put("/unified/cgroup.controllers", "cpuset cpu io memory pids\n");
	CHECK_INT_EQ(mgi_kcg_probe(mounts, mount, sizeof(mount)), 2);
	CHECK(strstr(mount, "/unified") != NULL);
}

static void v1_tree(void)
{
	mgi_kcg_t k;
	mgi_kcg_figures_t f;
	pid_t pids[8];
	char proc[160], out[128];

	fresh_tree();
	snprintf(proc, sizeof(proc), "%s/proc", tmp);
	CHECK_INT_EQ(mgi_kcg_open(&k, 1, tmp, "/sess/memgrp@1", proc), 0);
	CHECK(is_dir("/sess/memgrp@1"));
	CHECK_INT_EQ(mgi_kcg_open(&k, 1, tmp, "relative", proc), -EINVAL);
	CHECK_INT_EQ(mgi_kcg_open(&k, 1, tmp, "/sess/memgrp@1", proc), 0); /* again: fine */
	CHECK_INT_EQ(mgi_kcg_create(&k, "web"), 0);
	CHECK_INT_EQ(mgi_kcg_create(&k, "web/api"), 0);
	CHECK_INT_EQ(mgi_kcg_create(&k, "web"), 0); /* EEXIST is success */
	CHECK_INT_EQ(mgi_kcg_create(&k, "no/parent"), -ENOENT);
	CHECK(is_dir("/sess/memgrp@1/web/api"));
	CHECK_INT_EQ(mgi_kcg_set_limit(&k, "web", 88080384), 0);
	CHECK_STR_EQ(get("/sess/memgrp@1/web/memory.limit_in_bytes"), "88080384");
	CHECK_INT_EQ(mgi_kcg_set_limit(&k, "web", UINT64_MAX), 0);
	CHECK_STR_EQ(get("/sess/memgrp@1/web/memory.limit_in_bytes"), "-1");
	CHECK_INT_EQ(mgi_kcg_add_pid(&k, "web/api", 4242), 0);
	CHECK_STR_EQ(get("/sess/memgrp@1/web/api/cgroup.procs"), "4242");
	/* pids: the group's own, or its whole subtree */
	put("/sess/memgrp@1/web/cgroup.procs", "10\n11\n");
	put("/sess/memgrp@1/web/api/cgroup.procs", "12\n");
	CHECK_INT_EQ(mgi_kcg_pids(&k, "web", false, pids, 8), 2);
	CHECK_INT_EQ(mgi_kcg_pids(&k, "web", true, pids, 8), 3);
	CHECK_INT_EQ(mgi_kcg_pids(&k, "web", true, pids, 1), 3); /* counted past max */
	/* figures, as the kernel lays them out */
	put("/sess/memgrp@1/web/memory.usage_in_bytes", "1048576\n");
	put("/sess/memgrp@1/web/memory.max_usage_in_bytes", "2097152\n");
	put("/sess/memgrp@1/web/memory.limit_in_bytes", "9223372036854771712\n");
	put("/sess/memgrp@1/web/memory.failcnt", "3\n");
	put("/sess/memgrp@1/web/memory.stat", "cache 1\nrss 2\ntotal_cache 8192\ntotal_rss 4096\n"
					      "total_shmem 4096\n");
	put("/sess/memgrp@1/web/memory.oom_control", "oom_kill_disable 1\nunder_oom 1\noom_kill 2\n");
	CHECK_INT_EQ(mgi_kcg_read(&k, "web", &f), 0);
	CHECK_EQ(f.usage, 1048576);
	CHECK_EQ(f.max_usage, 2097152);
	CHECK_EQ(f.limit, UINT64_MAX);
	CHECK_EQ(f.failcnt, 3);
	CHECK_EQ(f.file, 8192);
	CHECK_EQ(f.shmem, 4096);
	CHECK_EQ(f.anon, 4096);
	CHECK(f.under_oom);
	CHECK_EQ(f.oom_kill, 2);
	put("/sess/memgrp@1/web/memory.stat", "total_cache x\n");
	CHECK_INT_EQ(mgi_kcg_read(&k, "web", &f), -EINVAL);
	CHECK_INT_EQ(mgi_kcg_kernel_killer(&k, "web", true), 0);
	CHECK_STR_EQ(get("/sess/memgrp@1/web/memory.oom_control"), "0");
	CHECK_INT_EQ(mgi_kcg_kernel_killer(&k, "web", false), 0);
	CHECK_STR_EQ(get("/sess/memgrp@1/web/memory.oom_control"), "1");
	/* the OOM watch: the kernel's killer off, and "<eventfd> <oom_control
	 * fd>" registered through cgroup.event_control */
	CHECK_INT_EQ(mgi_kcg_kernel_killer(&k, "web", true), 0);
	int efd = mgi_kcg_watch_oom(&k, "web");
	CHECK(efd >= 0);
	int a = -1, b = -1;
	CHECK_INT_EQ(sscanf(get("/sess/memgrp@1/web/cgroup.event_control"), "%d %d", &a, &b), 2);
	CHECK_INT_EQ(a, efd);
	CHECK(b >= 0 && b != efd);
	CHECK_STR_EQ(get("/sess/memgrp@1/web/memory.oom_control"), "1");
	close(efd);
	CHECK_INT_EQ(mgi_kcg_watch_oom(&k, "absent"), -ENOENT);
	/* a process's cgroup, from a fake /proc */
	mkdir(proc, 0755);
	char d[200];
	snprintf(d, sizeof(d), "%s/77", proc);
	mkdir(d, 0755);
	put("/proc/77/cgroup", "5:cpu:/\n4:memory:/sess/memgrp@1/web\n0::/\n");
	CHECK_INT_EQ(mgi_kcg_pid_path(1, proc, 77, out, sizeof(out)), 0);
	CHECK_STR_EQ(out, "/sess/memgrp@1/web");
	CHECK_INT_EQ(mgi_kcg_pid_path(1, proc, 78, out, sizeof(out)), -ENOENT);
}

static bool keep_web(void *arg, const char *group)
{
	(void)arg;
	return !strcmp(group, "web");
}

static void v1_clean_keeps_what_is_claimed(void)
{
	mgi_kcg_t k;

	fresh_tree();
	CHECK_INT_EQ(mgi_kcg_open(&k, 1, tmp, "/memgrp@2", "/proc"), 0);
	CHECK_INT_EQ(mgi_kcg_create(&k, "web"), 0);
	CHECK_INT_EQ(mgi_kcg_create(&k, "stale"), 0);
	CHECK_INT_EQ(mgi_kcg_create(&k, "stale/child"), 0);
	CHECK_INT_EQ(mgi_kcg_create(&k, "busy"), 0);
	put("/memgrp@2/busy/cgroup.procs", "1\n"); /* a file: rmdir fails, as with processes */
	CHECK_INT_EQ(mgi_kcg_clean(&k, keep_web, NULL), 1);
	CHECK(is_dir("/memgrp@2/web"));
	CHECK(!is_dir("/memgrp@2/stale"));
	CHECK(is_dir("/memgrp@2/busy"));
	CHECK_INT_EQ(mgi_kcg_remove(&k, "web"), 0);
	CHECK_INT_EQ(mgi_kcg_remove(&k, "web"), -ENOENT);
}

static void v2_tree(void)
{
	mgi_kcg_t k;
	mgi_kcg_figures_t f;
	pid_t pids[8];

	fresh_tree();
	CHECK_INT_EQ(mgi_kcg_open(&k, 2, tmp, "/sess/memgrp@3", "/proc"), 0);
	/* memory enabled from the mount down to base, processes in leaves */
	CHECK_STR_EQ(get("/cgroup.subtree_control"), "+memory");
	CHECK_STR_EQ(get("/sess/cgroup.subtree_control"), "+memory");
	CHECK_STR_EQ(get("/sess/memgrp@3/cgroup.subtree_control"), "+memory");
	CHECK(is_dir("/sess/memgrp@3/" MGI_KCG_PROCS_LEAF));
	CHECK_INT_EQ(mgi_kcg_create(&k, "web"), 0);
	CHECK(is_dir("/sess/memgrp@3/web/" MGI_KCG_PROCS_LEAF));
	CHECK_STR_EQ(get("/sess/memgrp@3/web/cgroup.subtree_control"), "+memory");
	/* already enabled: not written again */
	put("/sess/memgrp@3/web/cgroup.subtree_control", "cpu memory\n");
	CHECK_INT_EQ(mgi_kcg_create(&k, "web/api"), 0);
	CHECK_STR_EQ(get("/sess/memgrp@3/web/cgroup.subtree_control"), "cpu memory");
	/* high at the limit, max an eighth above */
	CHECK_INT_EQ(mgi_kcg_set_limit(&k, "web", 8 << 20), 0);
	CHECK_STR_EQ(get("/sess/memgrp@3/web/memory.high"), "8388608");
	CHECK_STR_EQ(get("/sess/memgrp@3/web/memory.max"), "9437184");
	CHECK_INT_EQ(mgi_kcg_set_limit(&k, "web", UINT64_MAX), 0);
	CHECK_STR_EQ(get("/sess/memgrp@3/web/memory.high"), "max");
	CHECK_STR_EQ(get("/sess/memgrp@3/web/memory.max"), "max");
	CHECK_INT_EQ(mgi_kcg_add_pid(&k, "web", 99), 0);
	CHECK_STR_EQ(get("/sess/memgrp@3/web/" MGI_KCG_PROCS_LEAF "/cgroup.procs"), "99");
	put("/sess/memgrp@3/web/api/" MGI_KCG_PROCS_LEAF "/cgroup.procs", "100\n101\n");
	CHECK_INT_EQ(mgi_kcg_pids(&k, "web", false, pids, 8), 1);
	CHECK_INT_EQ(mgi_kcg_pids(&k, "web", true, pids, 8), 3);
	put("/sess/memgrp@3/web/memory.current", "4096\n");
	put("/sess/memgrp@3/web/memory.high", "8388608\n");
	put("/sess/memgrp@3/web/memory.stat", "anon 100\nfile 200\nkernel 5\nshmem 50\n");
	put("/sess/memgrp@3/web/memory.events", "low 0\nhigh 4\nmax 2\noom 1\noom_kill 1\n");
	CHECK_INT_EQ(mgi_kcg_read(&k, "web", &f), 0);
	CHECK_EQ(f.usage, 4096);
	CHECK_EQ(f.limit, 8388608);
	CHECK_EQ(f.max_usage, 0); /* no memory.peak */
	CHECK_EQ(f.anon, 100);
	CHECK_EQ(f.file, 200);
	CHECK_EQ(f.shmem, 50);
	CHECK_EQ(f.high_events, 4);
	CHECK_EQ(f.failcnt, 2);
	CHECK_EQ(f.oom_kill, 1);
	put("/sess/memgrp@3/web/memory.peak", "8192\n");
	CHECK_INT_EQ(mgi_kcg_read(&k, "web", &f), 0);
	CHECK_EQ(f.max_usage, 8192);
	/* the OOM watch is memory.events itself (EPOLLPRI) */
	int fd = mgi_kcg_watch_oom(&k, "web");
	CHECK(fd >= 0);
	close(fd);
	CHECK_INT_EQ(mgi_kcg_kernel_killer(&k, "web", true), 0);
	/* removal takes the leaf too */
	CHECK_INT_EQ(mgi_kcg_remove(&k, "web/api"), -ENOTEMPTY); /* files in the fake tree */
}

/* The kernel backend's files: limits written only where the kernel has
 * the file, usage thresholds as cgroup.event_control lines (v1), none in
 * v2, and the figures it reports in memgrp's names. */
static void kernel_backend_files(void)
{
	mgi_kcg_t k;
	mgi_kcg_figures_t f;
	char proc[160];
	unsigned efd, ufd;
	unsigned long long at;

	fresh_tree();
	snprintf(proc, sizeof(proc), "%s/proc", tmp);
	CHECK_INT_EQ(mgi_kcg_open(&k, 1, tmp, "/sess/memgrp@2", proc), 0);
	CHECK_INT_EQ(mgi_kcg_create(&k, "k"), 0);
	/* a file the kernel does not have is not made up */
	CHECK_INT_EQ(mgi_kcg_set_file(&k, "k", "memory.memsw.limit_in_bytes", 1 << 20), -ENOENT);
	put("/sess/memgrp@2/k/memory.soft_limit_in_bytes", "");
	CHECK_INT_EQ(mgi_kcg_set_file(&k, "k", "memory.soft_limit_in_bytes", 33554432), 0);
	CHECK_STR_EQ(get("/sess/memgrp@2/k/memory.soft_limit_in_bytes"), "33554432");
	CHECK_INT_EQ(mgi_kcg_set_file(&k, "k", "memory.soft_limit_in_bytes", UINT64_MAX), 0);
	CHECK_STR_EQ(get("/sess/memgrp@2/k/memory.soft_limit_in_bytes"), "-1");
	/* usage: "EVENTFD FD BYTES" on the group's cgroup.event_control */
	put("/sess/memgrp@2/k/memory.usage_in_bytes", "0\n");
	int fd = mgi_kcg_watch_usage(&k, "k", false, 16777216);
	CHECK(fd >= 0);
	CHECK_INT_EQ(sscanf(get("/sess/memgrp@2/k/cgroup.event_control"), "%u %u %llu", &efd, &ufd,
			    &at), 3);
	CHECK_EQ(efd, (unsigned)fd);
	CHECK_EQ(at, 16777216);
	close(fd);
	/* memsw's usage: absent here, so no registration */
	CHECK_INT_EQ(mgi_kcg_watch_usage(&k, "k", true, 1 << 20), -ENOENT);
	/* figures beyond the backstop's: faults and swap */
	put("/sess/memgrp@2/k/memory.max_usage_in_bytes", "0\n");
	put("/sess/memgrp@2/k/memory.limit_in_bytes", "67108864\n");
	put("/sess/memgrp@2/k/memory.failcnt", "5\n");
	put("/sess/memgrp@2/k/memory.stat", "total_cache 0\ntotal_rss 4096\ntotal_pgfault 77\n"
					    "total_pgmajfault 2\ntotal_swap 8192\n");
	put("/sess/memgrp@2/k/memory.oom_control", "oom_kill_disable 1\nunder_oom 0\n");
	CHECK_INT_EQ(mgi_kcg_read(&k, "k", &f), 0);
	CHECK_EQ(f.pgfault, 77);
	CHECK_EQ(f.pgmajfault, 2);
	CHECK_EQ(f.swap, 8192);
	CHECK_EQ(f.limit, 67108864);
	/* v2: no usage thresholds */
	fresh_tree();
	put("/cgroup.subtree_control", "");
	CHECK_INT_EQ(mgi_kcg_open(&k, 2, tmp, "/sess/memgrp@3", proc), 0);
	CHECK_INT_EQ(mgi_kcg_create(&k, "k"), 0);
	CHECK_INT_EQ(mgi_kcg_watch_usage(&k, "k", false, 1 << 20), -EOPNOTSUPP);
	put("/sess/memgrp@3/k/memory.low", "0\n");
	CHECK_INT_EQ(mgi_kcg_set_file(&k, "k", "memory.low", UINT64_MAX), 0);
	CHECK_STR_EQ(get("/sess/memgrp@3/k/memory.low"), "max");
}

int main(int argc, char **argv)
{
	MGT_INIT(argc, argv);
	MGT_RUN(keyed_files);
	MGT_RUN(single_values);
	MGT_RUN(proc_cgroup_lines);
	MGT_RUN(mount_lines);
	MGT_RUN(probe_finds_the_memory_hierarchy);
	MGT_RUN(v1_tree);
	MGT_RUN(v1_clean_keeps_what_is_claimed);
	MGT_RUN(v2_tree);
	MGT_RUN(kernel_backend_files);
	if (tmp[0]) {
		char cmd[256];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
		if (system(cmd) != 0)
			fprintf(stderr, "cannot remove %s\n", tmp);
	}
	MGT_DONE();
}

/* kcgroup.c - kernel memory cgroups, v1 and v2, under a manager's directory (see kcgroup.h); cleaning in kcgroup_clean.c. */
#include "kcgroup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kfile.h"
#include "kcgroup_int.h"


static int read_text(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t got = 0;

	if (fd < 0)
		return -errno;
	while (got + 1 < size) {
		ssize_t n = read(fd, buf + got, size - 1 - got);
		if (n < 0) {
			int e = -errno;
			close(fd);
			return e;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	buf[got] = '\0';
	return (int)got;
}

/* O_CREAT for the fake trees of unit tests; cgroupfs files exist. */
static int write_text(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	size_t len = strlen(text);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, text, len);
	int e = n == (ssize_t)len ? 0 : n < 0 ? -errno : -EIO;
	if (close(fd) != 0 && e == 0)
		e = -errno;
	return e;
}

int mgi_kcg_path_of(const mgi_kcg_t *k, const char *group, bool procs, const char *file, char *out)
{
	int n = snprintf(out, PATH_LEN, "%s%s%s%s%s%s%s%s", k->mount, k->base, *group ? "/" : "",
			 group, procs && k->version == 2 ? "/" : "",
			 procs && k->version == 2 ? MGI_KCG_PROCS_LEAF : "", file ? "/" : "",
			 file ? file : "");
	return n > 0 && n < PATH_LEN ? 0 : -ENAMETOOLONG;
}

int mgi_kcg_probe(const char *mounts, char *mount, size_t len)
{
	char line[1024], dir[PATH_LEN], v2[PATH_LEN] = "";
	FILE *f = fopen(mounts, "re");

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		int kind = mgi_kfile_mount_line(line, strlen(line), dir, sizeof(dir));
		if (kind == 1) {
			fclose(f);
			if (strlen(dir) >= len)
				return -ENAMETOOLONG;
			strcpy(mount, dir);
			return 1;
		}
		if (kind == 2 && !v2[0])
			snprintf(v2, sizeof(v2), "%s", dir);
	}
	fclose(f);
	if (v2[0]) {
		char path[PATH_LEN + 32], buf[512];
		int n;
		snprintf(path, sizeof(path), "%s/cgroup.controllers", v2);
		if ((n = read_text(path, buf, sizeof(buf))) >= 0 &&
		    mgi_kfile_has_word(buf, (size_t)n, "memory")) {
			if (strlen(v2) >= len)
				return -ENAMETOOLONG;
			strcpy(mount, v2);
			return 2;
		}
	}
	return -ENOENT;
}

int mgi_kcg_pid_path(int version, const char *proc, pid_t pid, char *out, size_t len)
{
	char path[96], buf[4096];
	int n;

	snprintf(path, sizeof(path), "%s/%d/cgroup", proc, (int)pid);
	if ((n = read_text(path, buf, sizeof(buf))) < 0)
		return n;
	return mgi_kfile_proc_cgroup(buf, (size_t)n, version, out, len);
}

/* v2: a cgroup's children get the memory controller. */
static int enable_memory(const char *dir)
{
	char path[PATH_LEN + 32], buf[512];
	int n;

	snprintf(path, sizeof(path), "%s/cgroup.subtree_control", dir);
	if ((n = read_text(path, buf, sizeof(buf))) >= 0 && mgi_kfile_has_word(buf, (size_t)n, "memory"))
		return 0;
	return write_text(path, "+memory");
}

static int make_dir(const char *path)
{
	return mkdir(path, 0755) == 0 || errno == EEXIST ? 0 : -errno;
}

/* v2: a group's directory at path gets memory for its children, and its
 * processes go to a leaf below it (no process in an inner node). */
static int make_v2_leaf(const mgi_kcg_t *k, const char *group, char path[PATH_LEN])
{
	int rc;

	if ((rc = enable_memory(path)) != 0)
		return rc;
	if ((rc = mgi_kcg_path_of(k, group, true, NULL, path)) != 0)
		return rc;
	return make_dir(path);
}

int mgi_kcg_open(mgi_kcg_t *k, int version, const char *mount, const char *base,
		 const char *proc)
{
	char path[PATH_LEN];
	int rc;

	memset(k, 0, sizeof(*k));
	if ((version != 1 && version != 2) || base[0] != '/' || strstr(base, "/..") ||
	    strlen(mount) >= sizeof(k->mount) || strlen(base) >= sizeof(k->base) ||
	    strlen(proc) >= sizeof(k->proc))
		return -EINVAL;
	k->version = version;
	strcpy(k->mount, mount);
	strcpy(k->base, base);
	strcpy(k->proc, proc);
	/* Each level from the mount down: v2 enables memory for the next. */
	if ((size_t)snprintf(path, sizeof(path), "%s%s", mount, base) >= sizeof(path))
		return -ENAMETOOLONG;
	size_t root = strlen(mount);
	for (char *p = path + root + 1;; p++) {
		if (*p != '/' && *p)
			continue;
		char c = *p;
		*p = '\0';
		if (version == 2) {
			/* the parent of this level */
			char *slash = strrchr(path, '/');
			*slash = '\0';
			rc = enable_memory(path[0] ? path : "/");
			*slash = '/';
			if (rc != 0)
				return rc;
		}
		if ((rc = make_dir(path)) != 0)
			return rc;
		*p = c;
		if (!c)
			break;
	}
	return version == 2 ? make_v2_leaf(k, "", path) : 0;
}

int mgi_kcg_create(const mgi_kcg_t *k, const char *group)
{
	char path[PATH_LEN];
	int rc;

	if (k->version == 2) {
		/* The parent gets memory for its children (its own processes
		 * are in its leaf, so that is allowed). */
		char parent[PATH_LEN];
		if ((rc = mgi_kcg_path_of(k, group, false, NULL, parent)) != 0)
			return rc;
		*strrchr(parent, '/') = '\0';
		if ((rc = enable_memory(parent)) != 0)
			return rc;
	}
	if ((rc = mgi_kcg_path_of(k, group, false, NULL, path)) != 0 || (rc = make_dir(path)) != 0)
		return rc;
	return k->version == 2 ? make_v2_leaf(k, group, path) : 0;
}

int mgi_kcg_remove(const mgi_kcg_t *k, const char *group)
{
	char path[PATH_LEN];
	int rc;

	if (k->version == 2) {
		if ((rc = mgi_kcg_path_of(k, group, true, NULL, path)) != 0)
			return rc;
		if (rmdir(path) != 0 && errno != ENOENT)
			return -errno;
	}
	if ((rc = mgi_kcg_path_of(k, group, false, NULL, path)) != 0)
		return rc;
	return rmdir(path) == 0 ? 0 : -errno;
}

int mgi_kcg_set_limit(const mgi_kcg_t *k, const char *group, uint64_t bytes)
{
	char path[PATH_LEN], num[32];
	int rc;

	if (k->version == 1) {
		/* -1: none; v1 rounds down to pages itself */
		snprintf(num, sizeof(num), bytes == UINT64_MAX ? "-1" : "%llu", (unsigned long long)bytes);
		if ((rc = mgi_kcg_path_of(k, group, false, "memory.limit_in_bytes", path)) != 0)
			return rc;
		return write_text(path, num);
	}
	uint64_t max = bytes == UINT64_MAX || bytes > UINT64_MAX / 2 ? UINT64_MAX : bytes + bytes / 8;
	snprintf(num, sizeof(num), max == UINT64_MAX ? "max" : "%llu", (unsigned long long)max);
	if ((rc = mgi_kcg_path_of(k, group, false, "memory.max", path)) != 0 ||
	    (rc = write_text(path, num)) != 0)
		return rc;
	snprintf(num, sizeof(num), bytes == UINT64_MAX ? "max" : "%llu", (unsigned long long)bytes);
	if ((rc = mgi_kcg_path_of(k, group, false, "memory.high", path)) != 0)
		return rc;
	return write_text(path, num);
}

int mgi_kcg_add_pid(const mgi_kcg_t *k, const char *group, pid_t pid)
{
	char path[PATH_LEN], num[24];
	int rc;

	if ((rc = mgi_kcg_path_of(k, group, true, "cgroup.procs", path)) != 0)
		return rc;
	snprintf(num, sizeof(num), "%d", (int)pid);
	return write_text(path, num);
}

/* Adds the pids listed in dir/cgroup.procs, and with subtree those of every
 * directory below. */
static int collect(const char *dir, bool subtree, pid_t *pids, int max, int n)
{
	static char buf[1 << 16]; /* (the manager is single-threaded) */
	char path[PATH_LEN + 300];
	int len;

	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	if ((len = read_text(path, buf, sizeof(buf))) < 0) {
		if (!subtree)
			return len;
		len = 0; /* (a fake v2 tree has none above its leaves) */
		buf[0] = '\0';
	}
	for (char *p = buf, *end; *p; p = end) {
		long v = strtol(p, &end, 10);
		if (end == p)
			break;
		if (v > 0) {
			if (n < max)
				pids[n] = (pid_t)v;
			n++;
		}
	}
	if (!subtree)
		return n;
	DIR *d = opendir(dir);
	struct dirent *de;
	if (!d)
		return n;
	while ((de = readdir(d))) {
		if (de->d_type != DT_DIR || de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		int r = collect(path, true, pids, max, n);
		if (r >= 0)
			n = r;
	}
	closedir(d);
	return n;
}

int mgi_kcg_pids(const mgi_kcg_t *k, const char *group, bool subtree, pid_t *pids, int max)
{
	char path[PATH_LEN];
	int rc;

	/* v2: the group's own processes are in its leaf, which is also in
	 * its subtree. */
	if ((rc = mgi_kcg_path_of(k, group, !subtree, NULL, path)) != 0)
		return rc;
	return collect(path, subtree, pids, max, 0);
}

static int read_u64(const mgi_kcg_t *k, const char *group, const char *file, uint64_t *v)
{
	char path[PATH_LEN], buf[64];
	int rc, n;

	if ((rc = mgi_kcg_path_of(k, group, false, file, path)) != 0)
		return rc;
	if ((n = read_text(path, buf, sizeof(buf))) < 0)
		return n;
	return mgi_kfile_u64(buf, (size_t)n, v);
}

static int read_keyed(const mgi_kcg_t *k, const char *group, const char *file,
		      const char *const *keys, unsigned nkeys, uint64_t *vals)
{
	static char buf[1 << 14];
	char path[PATH_LEN];
	uint32_t found;
	int rc, n;

	if ((rc = mgi_kcg_path_of(k, group, false, file, path)) != 0)
		return rc;
	if ((n = read_text(path, buf, sizeof(buf))) < 0)
		return n;
	return mgi_kfile_keyed(buf, (size_t)n, keys, nkeys, vals, &found);
}

/* memory.stat's figures: keys name file, shmem, anon, pgfault, pgmajfault
 * and, if nkeys is 6, swap, in that order (v1 and v2 name them apart). */
static int read_stat(const mgi_kcg_t *k, const char *group, const char *const *keys,
		     unsigned nkeys, mgi_kcg_figures_t *f)
{
	uint64_t sv[6] = {0};
	int rc = read_keyed(k, group, "memory.stat", keys, nkeys, sv);

	if (rc != 0)
		return rc;
	f->file = sv[0];
	f->shmem = sv[1];
	f->anon = sv[2];
	f->pgfault = sv[3];
	f->pgmajfault = sv[4];
	if (nkeys > 5)
		f->swap = sv[5];
	return 0;
}

int mgi_kcg_read(const mgi_kcg_t *k, const char *group, mgi_kcg_figures_t *f)
{
	uint64_t v[4] = {0};
	int rc;

	memset(f, 0, sizeof(*f));
	if (k->version == 1) {
		static const char *const stat_keys[] = {"total_cache", "total_shmem", "total_rss",
							"total_pgfault", "total_pgmajfault",
							"total_swap"};
		static const char *const oom_keys[] = {"under_oom", "oom_kill"};
		if ((rc = read_u64(k, group, "memory.usage_in_bytes", &f->usage)) != 0 ||
		    (rc = read_u64(k, group, "memory.max_usage_in_bytes", &f->max_usage)) != 0 ||
		    (rc = read_u64(k, group, "memory.limit_in_bytes", &f->limit)) != 0 ||
		    (rc = read_u64(k, group, "memory.failcnt", &f->failcnt)) != 0)
			return rc;
		/* A charge refused at memory + swap (memsw: the kernel backend
		 * sets it to the limit plus the swap limit, so a group without
		 * swap is refused there first) is a refusal all the same.
		 * Absent without swap accounting. */
		uint64_t memsw_fail;
		if (read_u64(k, group, "memory.memsw.failcnt", &memsw_fail) == 0)
			f->failcnt += memsw_fail;
		/* v1 says "no limit" with the largest page-aligned long */
		if (f->limit >= (1ULL << 62))
			f->limit = UINT64_MAX;
		if ((rc = read_stat(k, group, stat_keys, 6, f)) != 0)
			return rc;
		if ((rc = read_keyed(k, group, "memory.oom_control", oom_keys, 2, v)) != 0)
			return rc;
		f->under_oom = v[0] != 0;
		f->oom_kill = v[1];
		return 0;
	}
	static const char *const stat_keys[] = {"file", "shmem", "anon", "pgfault", "pgmajfault"};
	static const char *const ev_keys[] = {"high", "max", "oom_kill"};
	if ((rc = read_u64(k, group, "memory.current", &f->usage)) != 0 ||
	    (rc = read_u64(k, group, "memory.high", &f->limit)) != 0)
		return rc;
	if (read_u64(k, group, "memory.peak", &f->max_usage) != 0)
		f->max_usage = 0; /* before Linux 5.19 */
	if ((rc = read_stat(k, group, stat_keys, 5, f)) != 0)
		return rc;
	if (read_u64(k, group, "memory.swap.current", &f->swap) != 0)
		f->swap = 0; /* no swap controller */
	if ((rc = read_keyed(k, group, "memory.events", ev_keys, 3, v)) != 0)
		return rc;
	f->high_events = v[0];
	f->failcnt = v[1];
	f->oom_kill = v[2];
	return 0;
}

int mgi_kcg_kernel_killer(const mgi_kcg_t *k, const char *group, bool on)
{
	char path[PATH_LEN];
	int rc;

	if (k->version == 2)
		return 0;
	if ((rc = mgi_kcg_path_of(k, group, false, "memory.oom_control", path)) != 0)
		return rc;
	return write_text(path, on ? "0" : "1");
}

/* A cgroup v1 event registration (cgroup.event_control) on the group's
 * file, with args (a threshold) or none: a new eventfd, or -errno. The
 * registration holds the cgroup, not the file's fd: it lasts until the
 * eventfd is closed (or the cgroup goes), the file is closed here. */
static int register_event(const mgi_kcg_t *k, const char *group, const char *file,
			  const char *args)
{
	char path[PATH_LEN], line[96];
	int rc, ffd, efd;

	if ((rc = mgi_kcg_path_of(k, group, false, file, path)) != 0)
		return rc;
	if ((ffd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -errno;
	if ((efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
		rc = -errno;
		close(ffd);
		return rc;
	}
	snprintf(line, sizeof(line), "%d %d%s%s", efd, ffd, args ? " " : "", args ? args : "");
	if ((rc = mgi_kcg_path_of(k, group, false, "cgroup.event_control", path)) == 0)
		rc = write_text(path, line);
	close(ffd);
	if (rc != 0) {
		close(efd);
		return rc;
	}
	return efd;
}

int mgi_kcg_watch_oom(const mgi_kcg_t *k, const char *group)
{
	char path[PATH_LEN];
	int rc, ofd;

	if (k->version == 2) {
		if ((rc = mgi_kcg_path_of(k, group, false, "memory.events", path)) != 0)
			return rc;
		ofd = open(path, O_RDONLY | O_CLOEXEC);
		return ofd >= 0 ? ofd : -errno;
	}
	if ((rc = mgi_kcg_kernel_killer(k, group, false)) != 0)
		return rc;
	return register_event(k, group, "memory.oom_control", NULL);
}

int mgi_kcg_get_file(const mgi_kcg_t *k, const char *group, const char *file, uint64_t *bytes)
{
	return read_u64(k, group, file, bytes);
}

int mgi_kcg_set_file(const mgi_kcg_t *k, const char *group, const char *file, uint64_t bytes)
{
	char path[PATH_LEN], num[32];
	int rc;

	if ((rc = mgi_kcg_path_of(k, group, false, file, path)) != 0)
		return rc;
	/* the file must be the kernel's: no O_CREAT here (a kernel without
	 * memsw accounting has no memory.memsw.*) */
	if (access(path, W_OK) != 0)
		return -errno;
	if (bytes == UINT64_MAX)
		snprintf(num, sizeof(num), "%s", k->version == 1 ? "-1" : "max");
	else
		snprintf(num, sizeof(num), "%llu", (unsigned long long)bytes);
	return write_text(path, num);
}

int mgi_kcg_v1_set_pair(const mgi_kcg_t *k, const char *group, bool set_limit, uint64_t limit,
			uint64_t memsw, const char **refused)
{
	static const char lim_f[] = "memory.limit_in_bytes", sw_f[] = "memory.memsw.limit_in_bytes";
	uint64_t old_limit, old_memsw;
	int rc;

	*refused = lim_f;
	if ((rc = mgi_kcg_get_file(k, group, lim_f, &old_limit)) != 0)
		return rc;
	*refused = sw_f;
	if ((rc = mgi_kcg_get_file(k, group, sw_f, &old_memsw)) != 0)
		return rc;
	bool grows = memsw >= old_memsw;
	if (grows && (rc = mgi_kcg_set_file(k, group, sw_f, memsw)) != 0)
		return rc;
	if (set_limit && (rc = mgi_kcg_set_limit(k, group, limit)) != 0) {
		if (grows)
			mgi_kcg_set_file(k, group, sw_f, old_memsw);
		*refused = lim_f;
		return rc;
	}
	if (!grows && (rc = mgi_kcg_set_file(k, group, sw_f, memsw)) != 0) {
		if (set_limit)
			mgi_kcg_set_limit(k, group, old_limit);
		return rc;
	}
	return 0;
}

int mgi_kcg_watch_usage(const mgi_kcg_t *k, const char *group, bool memsw, uint64_t bytes)
{
	char threshold[24];

	if (k->version == 2)
		return -EOPNOTSUPP;
	snprintf(threshold, sizeof(threshold), "%llu", (unsigned long long)bytes);
	return register_event(k, group, memsw ? "memory.memsw.usage_in_bytes" : "memory.usage_in_bytes",
			      threshold);
}

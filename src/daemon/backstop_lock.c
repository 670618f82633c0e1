/* backstop_lock.c - whose kernel cgroups are whose: a manager's lock while it lives, dead managers' locks pruned. */
#include "backstop.h"
#include "backstop_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/stat.h>

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

uint32_t mgi_bs_hash(const char *s)
{
	uint32_t h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return h;
}

int mgi_bs_lock_path(const char *name, char *out, size_t len)
{
	return (size_t)snprintf(out, len, "%s/%s.lock", LOCK_DIR, name) < len ? 0 : -ENAMETOOLONG;
}

/* Takes this manager's lock (before its directory exists). -errno if the
 * lock directory cannot be made (the sweep is then skipped). */
int mgi_bs_lock_take(const char *name)
{
	char path[256];
	int fd;

	mkdir("/run/memgrp", 0755);
	if (mkdir(LOCK_DIR, 0700) != 0 && errno != EEXIST)
		return -errno;
	if (mgi_bs_lock_path(name, path, sizeof(path)) != 0)
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

bool mgi_bs_manager_dead(void *arg, const char *name)
{
	char path[256];
	int fd;

	(void)arg;
	if (mgi_bs_lock_path(name, path, sizeof(path)) != 0)
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
void mgi_bs_prune_locks(const mgi_kcg_t *k, const char *own)
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

/* kcgroup_clean.c - a manager's kernel cgroups cleaned up: its own left over, a dead manager's swept. */
#include "kcgroup.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "kcgroup_int.h"

/* Depth first under dir (relative name rel, "" for base). */
static int clean_dir(const mgi_kcg_t *k, const char *rel, bool (*keep)(void *, const char *),
		     void *arg)
{
	char path[PATH_LEN], child[PATH_LEN];
	int left = 0, rc;

	if ((rc = mgi_kcg_path_of(k, rel, false, NULL, path)) != 0)
		return rc;
	DIR *d = opendir(path);
	struct dirent *de;
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(d))) {
		if (de->d_type != DT_DIR || de->d_name[0] == '.' ||
		    !strcmp(de->d_name, MGI_KCG_PROCS_LEAF))
			continue;
		if ((size_t)snprintf(child, sizeof(child), "%s%s%s", rel, *rel ? "/" : "",
				     de->d_name) >= sizeof(child))
			continue;
		int r = clean_dir(k, child, keep, arg);
		if (r > 0)
			left += r;
		if (keep && keep(arg, child))
			continue;
		if (r == 0 && mgi_kcg_remove(k, child) != 0)
			left++;
		else if (r > 0)
			left++;
	}
	closedir(d);
	return left;
}

int mgi_kcg_clean(const mgi_kcg_t *k, bool (*keep)(void *arg, const char *group), void *arg)
{
	return clean_dir(k, "", keep, arg);
}

/* clean_dir's keep for a dead manager's cgroups: its killer on, then
 * removed if it can be. */
static bool killer_on(void *arg, const char *group)
{
	mgi_kcg_kernel_killer(arg, group, true);
	return false;
}

int mgi_kcg_sweep(const mgi_kcg_t *k, bool (*dead)(void *arg, const char *name), void *arg)
{
	char parent[PATH_LEN], own[PATH_LEN];
	const char *slash = strrchr(k->base, '/');
	int left = 0;

	if (!slash || (size_t)snprintf(own, sizeof(own), "%s", slash + 1) >= sizeof(own) ||
	    (size_t)snprintf(parent, sizeof(parent), "%s%.*s", k->mount, (int)(slash - k->base),
			     k->base) >= sizeof(parent))
		return -ENAMETOOLONG;
	DIR *d = opendir(parent);
	struct dirent *de;
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		mgi_kcg_t other = *k;
		if (de->d_type != DT_DIR || strncmp(de->d_name, "memgrp@", 7) != 0 ||
		    !strcmp(de->d_name, own) || !dead(arg, de->d_name))
			continue;
		if ((size_t)snprintf(other.base, sizeof(other.base), "%.*s/%s", (int)(slash - k->base),
				     k->base, de->d_name) >= sizeof(other.base))
			continue;
		mgi_kcg_kernel_killer(&other, "", true);
		int r = clean_dir(&other, "", killer_on, &other);
		if (r == 0 && mgi_kcg_remove(&other, "") == 0)
			continue;
		left++;
	}
	closedir(d);
	return left;
}

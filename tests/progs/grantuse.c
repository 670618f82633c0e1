/* grantuse.c - a nested group's process that frees its memory and goes idle, or one that claims more usage than it holds (its own accounting part). */
#include <dirent.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "segment.h"

/*
 * Usage:
 *   prog_grantuse free MB FILE SECS
 *     touches MB, says "holding", waits for FILE (stat alone: waiting
 *     charges nothing), unmaps it all, says "freed", sleeps SECS idle
 *     (no manager traffic of its own).
 *   prog_grantuse claim MB CLAIM_MB FILE MORE_MB SECS
 *     touches MB, adds CLAIM_MB to its group's memory usage in the one
 *     accounting part it may write (its own group's), touches a page (its
 *     grant then must cover the claim: asked for), says "claimed", waits
 *     for FILE, touches MORE_MB, says "grew", holds it SECS.
 *   prog_grantuse usage STATE_DIR GROUP
 *     prints GROUP's memory usage in bytes, read from its accounting file
 *     in memgrpd's state directory: no request to the manager (which a
 *     request would wake).
 */

static void wait_file(const char *path)
{
	struct stat st;
	while (stat(path, &st) != 0)
		usleep(20000);
}

static unsigned char *touch(size_t mb, uint64_t seed)
{
	size_t len = mb << 20;
	unsigned char *p = mmap(NULL, len ? len : 4096, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		DIE("mmap failed");
	fill(p, len ? len : 4096, seed);
	return p;
}

/* The usage counter of the writable accounting mapping (its own group's;
 * an ancestor's is mapped read-only). */
static _Atomic uint64_t *own_usage(void)
{
	FILE *f = fopen("/proc/self/maps", "re");
	char line[512];
	_Atomic uint64_t *u = NULL;

	if (!f)
		DIE("cannot read /proc/self/maps");
	while (fgets(line, sizeof(line), f)) {
		unsigned long s, e, off;
		char perms[8];
		if (sscanf(line, "%lx-%lx %7s %lx", &s, &e, perms, &off) != 4 || perms[1] != 'w' ||
		    (!strstr(line, "memgrp-account") && !strstr(line, "/account-")) || off)
			continue;
		u = (_Atomic uint64_t *)(s + offsetof(mgi_segment_acct_t, memory.usage));
	}
	fclose(f);
	if (!u)
		DIE("no writable accounting part");
	return u;
}

static int print_usage(const char *dir, const char *group)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	if (!d)
		DIE("cannot open %s", dir);
	while ((de = readdir(d))) {
		char path[512], name[MGI_GROUP_NAME_MAX];
		uint64_t usage;
		if (strncmp(de->d_name, "segment-", 8) || strchr(de->d_name, '.'))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		ssize_t n = pread(fd, name, sizeof(name), offsetof(mgi_segment_ctl_t, group));
		close(fd);
		if (n != (ssize_t)sizeof(name) || strncmp(name, group, sizeof(name)))
			continue;
		snprintf(path, sizeof(path), "%s/account-%s", dir, de->d_name + 8);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || pread(fd, &usage, sizeof(usage), offsetof(mgi_segment_acct_t, memory.usage)) !=
				      (ssize_t)sizeof(usage))
			DIE("cannot read %s", path);
		close(fd);
		closedir(d);
		printf("%llu\n", (unsigned long long)usage * 4096);
		return 0;
	}
	DIE("no group '%s' in %s", group, dir);
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 4 && !strcmp(argv[1], "usage"))
		return print_usage(argv[2], argv[3]);
	if (argc == 5 && !strcmp(argv[1], "free")) {
		size_t mb = (size_t)atol(argv[2]);
		unsigned char *p = touch(mb, 3);
		printf("holding %zu MB\n", mb);
		wait_file(argv[3]);
		munmap(p, mb << 20);
		printf("freed\n");
		usleep((useconds_t)(atof(argv[4]) * 1e6));
		return 0;
	}
	if (argc == 7 && !strcmp(argv[1], "claim")) {
		size_t mb = (size_t)atol(argv[2]), claim = (size_t)atol(argv[3]);
		size_t more = (size_t)atol(argv[5]);
		unsigned char *p = touch(mb, 4);
		printf("holding %zu MB\n", mb);
		atomic_fetch_add(own_usage(), (uint64_t)claim << 8); /* pages of 4 KiB */
		touch(0, 5);
		printf("claimed %zu MB more\n", claim);
		wait_file(argv[4]);
		unsigned char *q = touch(more, 6);
		printf("grew by %zu MB\n", more);
		usleep((useconds_t)(atof(argv[6]) * 1e6));
		if (verify(p, mb << 20, 4) >= 0 || verify(q, more << 20, 6) >= 0)
			DIE("held memory changed");
		return 0;
	}
	DIE("usage: prog_grantuse free MB FILE SECS | claim MB CLAIM_MB FILE MORE_MB SECS | usage DIR GROUP");
}

/* dropper.c - drops root's privileges inside a running (managed) program, then allocates. */
#include <grp.h>
#include <linux/capability.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common.h"

/*
 * dropper UID GID MB SECONDS [keepcaps]: becomes UID/GID in this process
 * (no exec, so the agent that joined as root stays), then touches MB and
 * holds them SECONDS, verifies them and exits 0.
 * Plain: setgroups, setresgid, setresuid (su's and runuser's order).
 * keepcaps: setpriv's and libcap-ng's capng_change_id's order:
 * PR_SET_KEEPCAPS, setresuid, capset (effective = permitted), then
 * setresgid, which needs CAP_SETGID in every thread glibc signals for it.
 */
int main(int argc, char **argv)
{
	if (argc < 5)
		return fprintf(stderr, "usage: dropper UID GID MB SECONDS [keepcaps]\n"), 2;
	uid_t uid = (uid_t)atoi(argv[1]);
	gid_t gid = (gid_t)atoi(argv[2]);
	size_t len = (size_t)atol(argv[3]) << 20;
	double secs = atof(argv[4]);
	bool keepcaps = argc > 5 && !strcmp(argv[5], "keepcaps");

	if (keepcaps) {
		struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
		struct __user_cap_data_struct d[2];
		if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0 || setresuid(uid, uid, uid) != 0)
			DIE("keepcaps, setresuid");
		if (syscall(SYS_capget, &h, d) != 0)
			DIE("capget");
		d[0].effective = d[0].permitted;
		d[1].effective = d[1].permitted;
		if (syscall(SYS_capset, &h, d) != 0)
			DIE("capset");
		if (setgroups(0, NULL) != 0 || setresgid(gid, gid, gid) != 0)
			DIE("setgroups, setresgid");
		memset(d, 0, sizeof(d)); /* and no capabilities left */
		if (syscall(SYS_capset, &h, d) != 0)
			DIE("capset (drop)");
	} else if (setgroups(0, NULL) != 0 || setresgid(gid, gid, gid) != 0 ||
		   setresuid(uid, uid, uid) != 0) {
		DIE("setgroups, setresgid, setresuid");
	}
	printf("dropped to uid %u gid %u\n", (unsigned)getuid(), (unsigned)getgid());
	fflush(stdout);
	unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		DIE("mmap failed");
	fill(p, len, 5);
	printf("holding %zu MB\n", len >> 20);
	fflush(stdout);
	usleep((useconds_t)(secs * 1e6));
	if (verify(p, len, 5) >= 0)
		DIE("data changed");
	printf("verified\n");
	return 0;
}

/* escape.c - writes MB of memory the agent does not see (or before it sees it), one way per mode, for the kernel backstop's tests. */
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

/*
 * Modes: anon (private anonymous memory: the agent's, unless it is not
 * loaded), shared (MAP_SHARED|MAP_ANONYMOUS), memfd (memfd_create +
 * MAP_SHARED), shm (shm_open + MAP_SHARED), rawfork (a child forked with
 * the raw syscall, without the agent's handlers, writes a fresh private
 * mapping), populate (MAP_POPULATE: the kernel fills it inside mmap).
 * Prints "done MB" if it got through; the tests expect it killed first.
 */
static unsigned char *map_mode(const char *mode, size_t len)
{
	int fd = -1, flags = MAP_PRIVATE | MAP_ANONYMOUS;

	if (!strcmp(mode, "shared")) {
		flags = MAP_SHARED | MAP_ANONYMOUS;
	} else if (!strcmp(mode, "memfd")) {
		fd = memfd_create("escape", MFD_CLOEXEC);
	} else if (!strcmp(mode, "shm")) {
		char name[64];
		snprintf(name, sizeof(name), "/memgrp-escape-%d", (int)getpid());
		fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
		shm_unlink(name); /* gone with the process: nothing left behind */
	} else if (!strcmp(mode, "populate")) {
		flags |= MAP_POPULATE;
	} else if (strcmp(mode, "anon") != 0 && strcmp(mode, "rawfork") != 0) {
		DIE("unknown mode %s", mode);
	}
	if (fd >= 0 || strcmp(mode, "memfd") == 0 || strcmp(mode, "shm") == 0) {
		if (fd < 0 || ftruncate(fd, (off_t)len) != 0)
			DIE("%s: cannot make the file", mode);
		flags = MAP_SHARED;
	}
	unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, flags, fd, 0);
	if (p == MAP_FAILED)
		DIE("%s: mmap failed", mode);
	return p;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "anon";
	size_t len = (size_t)(argc > 2 ? atol(argv[2]) : 256) << 20;

	if (!strcmp(mode, "rawfork")) {
		long pid = syscall(SYS_fork);
		if (pid < 0)
			DIE("fork failed");
		if (pid == 0) {
			/* raw syscalls only: no agent of its own */
			unsigned char *p = (unsigned char *)syscall(SYS_mmap, NULL, len,
					PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			for (size_t i = 0; i < len; i += 4096)
				p[i] = 1;
			syscall(SYS_exit, 0);
		}
		int st;
		waitpid((pid_t)pid, &st, 0);
		if (WIFSIGNALED(st)) {
			printf("child killed by signal %d\n", WTERMSIG(st));
			return 3;
		}
		printf("done %zu\n", len >> 20);
		return 0;
	}
	unsigned char *p = map_mode(mode, len);
	fill(p, len, 7);
	printf("done %zu\n", len >> 20);
	return 0;
}

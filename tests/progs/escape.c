/* escape.c - writes MB of memory the agent does not see (or before it sees it), one way per mode, for the kernel backstop's tests. */
#include <dirent.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <stdint.h>
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
 * mapping), populate (MAP_POPULATE: the kernel fills it inside mmap),
 * sysmmap (a private mapping made with the raw mmap syscall: no wrapper
 * sees it), sysbrk (the heap grown with the raw brk syscall), filepriv (a
 * private mapping of a file, written: copy-on-write anonymous pages the
 * agent does not register), unreg (the agent's userfaultfds closed first,
 * then anon), uring (io_uring rings, whose pages the kernel allocates and
 * maps).
 * Prints "done MB" if it got through; the tests expect it killed first.
 */
/* Closes every userfaultfd the process holds (the agent's): what it
 * registered is then nobody's, as a program that tampers would make it. */
static int close_uffds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;
	struct dirent *e;

	if (!d)
		DIE("cannot list /proc/self/fd");
	while ((e = readdir(d))) {
		char path[300], target[64];
		snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
		ssize_t k = readlink(path, target, sizeof(target) - 1);
		if (k <= 0)
			continue;
		target[k] = 0;
		if (strstr(target, "userfaultfd") && close(atoi(e->d_name)) == 0)
			n++;
	}
	closedir(d);
	return n;
}

/* io_uring rings of the largest size until MB of them are mapped and
 * written: the kernel allocates them, no page fault of ours makes them. */
static int uring_fill(size_t len)
{
	size_t done = 0;
	int rings = 0;

	/* A first line now, while the group has room: the output file's page
	 * is then in the page cache, and the failure's line below lands in it
	 * at the kernel limit, where a new page for it could not be charged
	 * (seen: rc 1 and an empty output file). */
	fprintf(stderr, "uring: rings of 32768 entries until %zu MiB\n", len >> 20);
	while (done < len) {
		struct io_uring_params pr;
		memset(&pr, 0, sizeof(pr));
		int fd = (int)syscall(SYS_io_uring_setup, 32768, &pr);
		if (fd < 0)
			DIE("io_uring_setup failed after %d rings (%zu MiB)", rings, done >> 20);
		size_t sq = pr.sq_off.array + pr.sq_entries * sizeof(uint32_t);
		size_t cq = pr.cq_off.cqes + pr.cq_entries * sizeof(struct io_uring_cqe);
		size_t sqes = pr.sq_entries * sizeof(struct io_uring_sqe);
		unsigned char *a = mmap(NULL, sq, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd,
					IORING_OFF_SQ_RING);
		unsigned char *b = mmap(NULL, sqes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd,
					IORING_OFF_SQES);
		if (a == MAP_FAILED || b == MAP_FAILED)
			DIE("io_uring mmap failed");
		memset(b, 7, sqes);
		done += sq + (pr.features & IORING_FEAT_SINGLE_MMAP ? 0 : cq) + sqes;
		rings++;
	}
	return rings;
}

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
	} else if (!strcmp(mode, "sysmmap")) {
		void *p = (void *)syscall(SYS_mmap, NULL, len, PROT_READ | PROT_WRITE, flags, -1, 0);
		if (p == MAP_FAILED)
			DIE("sysmmap: mmap failed");
		return p;
	} else if (!strcmp(mode, "sysbrk")) {
		uintptr_t top = (uintptr_t)syscall(SYS_brk, 0);
		if ((uintptr_t)syscall(SYS_brk, top + len) < top + len)
			DIE("sysbrk: brk refused");
		return (unsigned char *)top;
	} else if (!strcmp(mode, "filepriv")) {
		char name[] = "/tmp/memgrp-escape-XXXXXX";
		fd = mkstemp(name);
		if (fd >= 0)
			unlink(name);
		if (fd < 0 || ftruncate(fd, (off_t)len) != 0)
			DIE("filepriv: cannot make the file");
		unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
		if (p == MAP_FAILED)
			DIE("filepriv: mmap failed");
		return p;
	} else if (!strcmp(mode, "unreg")) {
		printf("closed %d userfaultfds\n", close_uffds());
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
	if (!strcmp(mode, "uring")) {
		int rings = uring_fill(len);
		printf("done %zu (%d rings)\n", len >> 20, rings);
		return 0;
	}
	unsigned char *p = map_mode(mode, len);
	fill(p, len, 7);
	printf("done %zu\n", len >> 20);
	return 0;
}

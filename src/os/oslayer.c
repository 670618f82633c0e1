/* oslayer.c - the OS calls the agent, the manager and the CLI share: pidfds, /proc status, userfaultfd probe. */
#include "oslayer.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>


/* The one place for syscall numbers Debian 12's headers may lack
 * (x86_64 and every architecture using the generic table share them). */
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif
#ifndef SYS_process_mrelease
#define SYS_process_mrelease 448
#endif
/* Debian 12's uapi headers predate these (pitfall 6 of the design). */
#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW _IO(0xAA, 0x00)
#endif
#ifndef UFFD_FEATURE_MOVE
#define UFFD_FEATURE_MOVE (1ULL << 16)
#endif

int mgi_os_page_size_check(void)
{
	long ps = sysconf(_SC_PAGESIZE);
	return ps == (long)MGI_PAGE_SIZE ? 0 : -ENOTSUP;
}

uint64_t mgi_os_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

int mgi_pidfd_open(pid_t pid)
{
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);
	return fd >= 0 ? fd : -errno;
}

int mgi_pidfd_send_signal(int pidfd, int sig)
{
	return syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0) == 0 ? 0 : -errno;
}

int mgi_pidfd_mrelease(int pidfd)
{
	return syscall(SYS_process_mrelease, pidfd, 0) == 0 ? 0 : -errno;
}

/* Writes "PROC/PID/NAME" into out without stdio (signal-safe). */
static int proc_path(const char *proc, pid_t pid, const char *name, char *out, size_t len)
{
	char digits[16];
	size_t pl = strlen(proc), nl = strlen(name), nd = 0;
	unsigned v = (unsigned)pid;

	if (pid <= 0)
		return -EINVAL;
	do
		digits[nd++] = (char)('0' + v % 10);
	while ((v /= 10) && nd < sizeof(digits));
	if (pl + 1 + nd + 1 + nl + 1 > len)
		return -ENAMETOOLONG;
	memcpy(out, proc, pl);
	out[pl++] = '/';
	while (nd)
		out[pl++] = digits[--nd];
	out[pl++] = '/';
	memcpy(out + pl, name, nl + 1);
	return 0;
}

/* Reads PROC/PID/NAME into buf, up to size bytes (a short read can stop
 * anywhere: read until the buffer or the file ends). Returns the length,
 * or -errno. Signal-safe. */
static ssize_t proc_read(const char *proc, pid_t pid, const char *name, char *buf, size_t size)
{
	char path[256];
	size_t got = 0;
	ssize_t n;
	int fd, rc;

	if ((rc = proc_path(proc ? proc : "/proc", pid, name, path, sizeof(path))) != 0)
		return rc;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -errno;
	while (got < size && (n = read(fd, buf + got, size - got)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			close(fd);
			return rc;
		}
		got += (size_t)n;
	}
	close(fd);
	return (ssize_t)got;
}

int mgi_proc_status_read(const char *proc, pid_t pid, mgi_proc_status_t *out)
{
	char buf[4096];
	ssize_t got = proc_read(proc, pid, "status", buf, sizeof(buf));

	return got < 0 ? (int)got : mgi_proc_status_parse(buf, (size_t)got, out);
}

int mgi_proc_smaps_read(const char *proc, pid_t pid, mgi_smaps_t *out)
{
	char path[256], buf[16384];
	size_t have = 0;
	ssize_t n;
	int fd, rc;
	bool skipping = false; /* the rest of a line cut at a chunk's end */

	mgi_smaps_init(out);
	if ((rc = proc_path(proc ? proc : "/proc", pid, "smaps", path, sizeof(path))) != 0)
		return rc;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -errno;
	for (;;) {
		n = read(fd, buf + have, sizeof(buf) - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			close(fd);
			return rc;
		}
		have += (size_t)n;
		char *p = buf, *end = buf + have, *nl;
		while ((nl = memchr(p, '\n', (size_t)(end - p)))) {
			if (!skipping)
				mgi_smaps_line(out, p, (size_t)(nl - p));
			skipping = false;
			p = nl + 1;
		}
		if (n == 0 || (p == buf && have == sizeof(buf))) {
			/* the end, or a line longer than the buffer: its start */
			if (p < end && !skipping)
				mgi_smaps_line(out, p, (size_t)(end - p));
			skipping = n != 0;
			p = end;
		}
		have = (size_t)(end - p);
		memmove(buf, p, have);
		if (n == 0)
			break;
	}
	close(fd);
	mgi_smaps_end(out);
	return 0;
}

int mgi_pid_stat_read(const char *proc, pid_t pid, mgi_pid_stat_t *out)
{
	char buf[1024];
	ssize_t got = proc_read(proc, pid, "stat", buf, sizeof(buf));

	return got < 0 ? (int)got : mgi_pid_stat_parse(buf, (size_t)got, out);
}

uint64_t mgi_pid_age_ms(const mgi_pid_stat_t *st)
{
	struct timespec ts;
	long tck = sysconf(_SC_CLK_TCK);

	/* starttime counts from boot in clock ticks; CLOCK_BOOTTIME is the
	 * same clock (suspend included), without reading /proc/uptime. */
	if (tck <= 0 || clock_gettime(CLOCK_BOOTTIME, &ts) != 0)
		return UINT64_MAX;
	uint64_t now_ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	uint64_t start_ms = st->starttime / (uint64_t)tck * 1000 +
			    st->starttime % (uint64_t)tck * 1000 / (uint64_t)tck;
	return now_ms > start_ms ? now_ms - start_ms : 0;
}

/* Reclaim evicts with MOVE, so a kernel without it (before 6.8) is refused
 * rather than half-working. FORK keeps a forked child's registration, so
 * that its pages still held by the agent are copied in before anything
 * reads them (see src/agent/fork.c). */
#define FEATURES (UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_EVENT_UNMAP | UFFD_FEATURE_EVENT_REMAP | \
		  UFFD_FEATURE_EVENT_FORK | UFFD_FEATURE_MOVE)

static int lent_dev = -1;

void mgi_uffd_lend(int devfd)
{
	if (lent_dev >= 0 && lent_dev != devfd)
		close(lent_dev);
	lent_dev = devfd;
}

static int open_uffd_fd(void)
{
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	int dev;

	if (fd >= 0)
		return fd;
	if (lent_dev >= 0) {
		fd = ioctl(lent_dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
		if (fd >= 0)
			return fd;
	}
	/* Without the sysctl or CAP_SYS_PTRACE, /dev/userfaultfd may still
	 * give a full (kernel-fault capable) descriptor to its group. */
	dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	if (dev < 0)
		return -EPERM;
	fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
	close(dev);
	return fd >= 0 ? fd : -errno;
}

static int negotiate(int fd, uint64_t features)
{
	struct uffdio_api api = {.api = UFFD_API, .features = features};
	return ioctl(fd, UFFDIO_API, &api) == 0 ? 0 : -errno;
}

int mgi_uffd_open(bool *fork_events, int (*broker)(int fd, uint64_t features), char *why,
		  size_t whylen)
{
	uint64_t features = FEATURES;
	int fd = open_uffd_fd(), rc;

	if (fork_events)
		*fork_events = false;
	if (mgi_os_page_size_check() != 0) {
		if (fd >= 0)
			close(fd);
		snprintf(why, whylen, "memgrp counts %lu-byte pages; this kernel's page is %ld bytes",
			 MGI_PAGE_SIZE, sysconf(_SC_PAGESIZE));
		return -ENOTSUP;
	}
	if (fd < 0) {
		snprintf(why, whylen,
			 "userfaultfd is not permitted for this process (%s)%s: run as root, "
			 "grant CAP_SYS_PTRACE, give access to /dev/userfaultfd, or set "
			 "vm.unprivileged_userfaultfd=1",
			 strerror(-fd), lent_dev >= 0 ? "" : " and the manager lent it none");
		return fd;
	}
	rc = negotiate(fd, features);
	if (rc == -EPERM && (features & UFFD_FEATURE_EVENT_FORK)) {
		/* EVENT_FORK needs CAP_SYS_PTRACE: go on without it (the
		 * caller then keeps no page out of the process, see src/agent/fork.c).
		 * A failed UFFDIO_API may leave the fd unusable: a new one. */
		close(fd);
		fd = open_uffd_fd();
		if (fd < 0)
			return fd;
		if (broker && broker(fd, features) == 0) {
			if (fork_events)
				*fork_events = true;
			return fd;
		}
		close(fd); /* (the broker may have failed half-way) */
		fd = open_uffd_fd();
		if (fd < 0)
			return fd;
		features &= ~(uint64_t)UFFD_FEATURE_EVENT_FORK;
		rc = negotiate(fd, features);
	}
	if (rc != 0) {
		snprintf(why, whylen,
			 "this kernel's userfaultfd lacks what memgrp needs (the remove, "
			 "unmap and remap events and UFFDIO_MOVE): %s; Linux 6.8 or later "
			 "is required",
			 strerror(-rc));
		close(fd);
		return rc;
	}
	if (fork_events)
		*fork_events = (features & UFFD_FEATURE_EVENT_FORK) != 0;
	return fd;
}

int mgi_os_elf_static(const char *path)
{
	Elf64_Ehdr eh;
	Elf64_Phdr ph;
	int fd = open(path, O_RDONLY | O_CLOEXEC), found = 0;

	if (fd < 0)
		return -errno;
	if (pread(fd, &eh, sizeof(eh), 0) != sizeof(eh) || memcmp(eh.e_ident, ELFMAG, SELFMAG) ||
	    eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_phentsize != sizeof(ph)) {
		close(fd);
		return -ENOEXEC;
	}
	for (unsigned i = 0; i < eh.e_phnum && i < 256 && !found; i++)
		if (pread(fd, &ph, sizeof(ph), (off_t)(eh.e_phoff + i * sizeof(ph))) == sizeof(ph) &&
		    ph.p_type == PT_INTERP)
			found = 1;
	close(fd);
	return !found;
}

bool mgi_os_fd_is(int fd, const char *kind)
{
	char path[32], target[64], want[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, target, sizeof(target) - 1);
	if (n < 0)
		return false;
	target[n] = '\0';
	snprintf(want, sizeof(want), "anon_inode:[%s]", kind);
	return strcmp(target, want) == 0;
}

int mgi_os_reopen(int fd, int flags)
{
	char path[32];
	int r;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	r = open(path, flags | O_CLOEXEC);
	return r >= 0 ? r : -errno;
}

int mgi_os_read_small(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return (int)n;
}

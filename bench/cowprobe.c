/* Measures the kernel facts a copy-on-write frame charged once builds on: pagemap's exclusive bit after fork, uffd-wp on shared pages, and the cost of write-protecting. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096UL
#define PM_PRESENT (1ULL << 63)
#define PM_EXCLUSIVE (1ULL << 56)
#define PM_UFFD_WP (1ULL << 57)

static size_t npages = 16384; /* 64 MiB; COWPROBE_MB overrides */

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* Counts present, exclusive and uffd-wp pages of [p, p + n pages). */
static void count(const char *who, char *p, size_t n)
{
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	uint64_t *pm = malloc(n * 8), present = 0, excl = 0, wp = 0;
	double t0 = now_us();

	if (fd < 0 || !pm || pread(fd, pm, n * 8, (off_t)((uintptr_t)p / PAGE * 8)) != (ssize_t)(n * 8)) {
		perror("pagemap");
		exit(1);
	}
	double t1 = now_us();
	for (size_t i = 0; i < n; i++) {
		present += !!(pm[i] & PM_PRESENT);
		excl += (pm[i] & PM_PRESENT) && (pm[i] & PM_EXCLUSIVE);
		wp += !!(pm[i] & PM_UFFD_WP);
	}
	printf("%-44s present %6lu exclusive %6lu uffd-wp %6lu (pagemap read %.0f us)\n", who,
	       (unsigned long)present, (unsigned long)excl, (unsigned long)wp, t1 - t0);
	free(pm);
	close(fd);
}

static int uffd_open(void)
{
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	struct uffdio_api api = {.api = UFFD_API, .features = UFFD_FEATURE_PAGEFAULT_FLAG_WP};
	if (fd < 0 || ioctl(fd, UFFDIO_API, &api) != 0) {
		perror("userfaultfd");
		exit(1);
	}
	return fd;
}

static int wprotect(int fd, char *p, size_t len, bool on)
{
	struct uffdio_writeprotect w = {.range = {(uintptr_t)p, len},
					.mode = on ? UFFDIO_WRITEPROTECT_MODE_WP : 0};
	return ioctl(fd, UFFDIO_WRITEPROTECT, &w) == 0 ? 0 : -errno;
}

struct server { int fd; char *base; size_t n; unsigned faults, wpfaults; };

/* Answers write-protect faults by un-protecting the page (mode 0 wakes the thread). */
static void *serve(void *arg)
{
	struct server *s = arg;
	struct uffd_msg m;
	for (;;) {
		struct pollfd p = {.fd = s->fd, .events = POLLIN};
		if (poll(&p, 1, 2000) <= 0)
			return NULL;
		if (read(s->fd, &m, sizeof(m)) != sizeof(m) || m.event != UFFD_EVENT_PAGEFAULT)
			continue;
		s->faults++;
		if (m.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP) {
			s->wpfaults++;
			wprotect(s->fd, (char *)(uintptr_t)(m.arg.pagefault.address & ~(PAGE - 1)), PAGE, false);
		}
		if (s->wpfaults == s->n)
			return NULL;
	}
}

int main(void)
{
	const char *mb = getenv("COWPROBE_MB");

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (mb)
		npages = strtoul(mb, NULL, 10) * 256;
	size_t len = npages * PAGE;
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int pipe1[2], pipe2[2];
	char c;

	if (p == MAP_FAILED || pipe(pipe1) || pipe(pipe2))
		return 1;
	madvise(p, len, MADV_NOHUGEPAGE);
	for (size_t i = 0; i < npages; i++)
		p[i * PAGE] = (char)i;
	printf("%zu MiB written, 4 KiB pages\n", len >> 20);
	count("parent before fork", p, npages);
	pid_t pid = fork();
	if (pid == 0) {
		/* 1. what the child sees at its start */
		count("child after fork", p, npages);
		/* 2. the child writes a quarter itself: those become its own */
		for (size_t i = 0; i < npages / 4; i++)
			p[i * PAGE] = 1;
		count("child after writing the 1st quarter", p, npages);
		/* 3. register (MISSING|WP) and write-protect the rest: its cost */
		int fd = uffd_open();
		struct uffdio_register r = {.range = {(uintptr_t)p, len},
					    .mode = UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP};
		double t0 = now_us();
		if (ioctl(fd, UFFDIO_REGISTER, &r) != 0) {
			perror("register wp");
			_exit(1);
		}
		double t1 = now_us();
		int rc = wprotect(fd, p + len / 4, len - len / 4, true);
		double t2 = now_us();
		printf("child: register %.0f us; write-protect %zu MiB: %d in %.0f us (%.1f us/MiB)\n", t1 - t0,
		       (len - len / 4) >> 20, rc, t2 - t1, (t2 - t1) / ((len - len / 4) >> 20));
		count("child after write-protecting 3/4", p, npages);
		write(pipe1[1], "x", 1); /* the parent writes the 2nd quarter now */
		read(pipe2[0], &c, 1);
		count("child after the parent wrote the 2nd quarter", p, npages);
		/* 4. the child writes the 3rd quarter: each a WP fault */
		struct server s = {.fd = fd, .base = p, .n = npages / 4};
		pthread_t t;
		pthread_create(&t, NULL, serve, &s);
		t0 = now_us();
		for (size_t i = npages / 2; i < 3 * npages / 4; i++)
			p[i * PAGE] = 2;
		t1 = now_us();
		pthread_join(t, NULL);
		printf("child wrote the 3rd quarter: %u faults, %u wp, %.1f us a page\n", s.faults,
		       s.wpfaults, (t1 - t0) / (npages / 4));
		count("child after writing the 3rd quarter", p, npages);
		unsigned bad = 0;
		for (size_t i = 0; i < npages; i++) {
			char want = i < npages / 4 ? 1 : i < npages / 2 ? (char)i : i < 3 * npages / 4 ? 2 : (char)i;
			bad += p[i * PAGE] != want;
		}
		write(pipe1[1], "y", 1);
		printf("child: %u pages wrong\n", bad);
		_exit(bad != 0);
	}
	read(pipe1[0], &c, 1);
	for (size_t i = npages / 4; i < npages / 2; i++)
		p[i * PAGE] = (char)i; /* same byte: a write all the same */
	count("parent after writing the 2nd quarter", p, npages);
	write(pipe2[1], "x", 1);
	read(pipe1[0], &c, 1);
	count("parent at the end", p, npages);
	unsigned bad = 0;
	for (size_t i = 0; i < npages; i++)
		bad += p[i * PAGE] != (char)i;
	int st;
	waitpid(pid, &st, 0);
	printf("parent: %u pages wrong; child exit %d\n", bad, WEXITSTATUS(st));
	return bad || WEXITSTATUS(st);
}

/* ownuffd.c - a program with a userfaultfd of its own: it registers memory the agent manages, some of it evicted, and serves its faults. */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common.h"

/*
 * Usage: prog_ownuffd MB PUSH_MB HOLD_S. Writes a pattern over MB MiB, then
 * over PUSH_MB more (under a limit between the two, the agent evicts most
 * of the first range to make room), unmaps the second, registers the first
 * with its own userfaultfd (which must succeed: the agent hands it over,
 * restoring what it had evicted), checks every byte, drops 16 pages and
 * reads them back through its own fault handler (a second pattern), then
 * holds the range HOLD_S seconds (for the test to compare usage and RSS).
 */
#define PAGE 4096UL
#define DROPPED 16

static int uffd;
static unsigned char *mem;
static size_t len;

static void *serve(void *arg)
{
	static unsigned char page[PAGE] __attribute__((aligned(4096)));
	unsigned served = 0;

	(void)arg;
	while (served < DROPPED) {
		struct pollfd p = {.fd = uffd, .events = POLLIN};
		struct uffd_msg m;
		if (poll(&p, 1, 10000) != 1)
			DIE("no fault reached the program's own userfaultfd in 10 s");
		if (read(uffd, &m, sizeof(m)) != sizeof(m) || m.event != UFFD_EVENT_PAGEFAULT)
			continue;
		uintptr_t at = (uintptr_t)m.arg.pagefault.address & ~(PAGE - 1);
		fill(page, PAGE, 0xBEEF ^ (at - (uintptr_t)mem));
		struct uffdio_copy c = {.dst = at, .src = (uintptr_t)page, .len = PAGE};
		if (ioctl(uffd, UFFDIO_COPY, &c) != 0 && errno != EEXIST)
			DIE("UFFDIO_COPY: %s", strerror(errno));
		served++;
	}
	return NULL;
}

int main(int argc, char **argv)
{
	len = (size_t)(argc > 1 ? atoi(argv[1]) : 16) << 20;
	size_t push = (size_t)(argc > 2 ? atoi(argv[2]) : 48) << 20;
	unsigned hold = argc > 3 ? (unsigned)atoi(argv[3]) : 0;
	mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	unsigned char *other = mmap(NULL, push, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED || other == MAP_FAILED)
		DIE("mmap: %s", strerror(errno));
	fill(mem, len, 42);
	/* twice: the second pass finds the second range in use, the first
	 * one cold (what the agent evicts first) */
	fill(other, push, 43);
	fill(other, push, 44);
	munmap(other, push);

	uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (uffd < 0)
		DIE("userfaultfd: %s", strerror(errno));
	struct uffdio_api api = {.api = UFFD_API};
	if (ioctl(uffd, UFFDIO_API, &api) != 0)
		DIE("UFFDIO_API: %s", strerror(errno));
	struct uffdio_register reg = {.range = {(uintptr_t)mem, len}, .mode = UFFDIO_REGISTER_MODE_MISSING};
	if (ioctl(uffd, UFFDIO_REGISTER, &reg) != 0)
		DIE("UFFDIO_REGISTER of our own memory: %s", strerror(errno));
	long bad = verify(mem, len, 42);
	if (bad >= 0)
		DIE("byte %ld wrong after the hand-over", bad);

	/* Pages dropped now fault to our handler, not the agent's. */
	pthread_t t;
	pthread_create(&t, NULL, serve, NULL);
	for (unsigned i = 0; i < DROPPED; i++) {
		size_t off = (len / DROPPED) * i;
		madvise(mem + off, PAGE, MADV_DONTNEED);
		unsigned char want[PAGE];
		fill(want, PAGE, 0xBEEF ^ off);
		if (memcmp(mem + off, want, PAGE) != 0)
			DIE("page at offset %zu not the one our handler gave", off);
	}
	pthread_join(t, NULL);
	printf("ownuffd ok: %zu MiB registered, %u faults served by our handler\n", len >> 20,
	       (unsigned)DROPPED);
	fflush(stdout);
	sleep(hold);
	return 0;
}

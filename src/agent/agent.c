/* agent.c - the agent's start-up: manager connection, userfaultfd, handler thread, fork. */
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "account.h"
#include "agent.h"
#include "options.h"
#include "thp.h"
#include "victim.h"
#include "os.h"
#include "proto.h"
#include "size.h"
#include "trace.h"

/*
 * Loaded with LD_PRELOAD by `memgrp run` (and inherited by children through
 * the environment). Start-up, in the constructor, before main():
 *   1. connect to the manager (MEMGRP_SOCKET), say HELLO, receive a slot
 *      and the group's segment (a memfd) and map it;
 *   2. open a userfaultfd, reserve the arena, start the handler thread on
 *      a stack of its own; the handler registers the address space's
 *      anonymous regions and charges the pages already present;
 *   3. from then on faults are charged and resolved by the handler, and
 *      new memory is caught by interpose.c.
 * fork: with UFFD_EVENT_FORK the child keeps our registration on a uffd the
 * kernel hands to our handler, which lets the child keep its copy of our
 * store (or, when that copy may be torn, copies into the child every page
 * it holds evicted) and then lets go (reclaim.c). The child, in an atfork
 * handler, waits for that and starts over with steps 1-2: new slot, new
 * userfaultfd, new handler, a fresh scan that charges what the child has
 * and marks what its kept store holds as evicted.
 */

struct mgi_agent mgi_agent = {.uffd = -1, .conn = -1, .wakefd = -1, .mapsfd = -1, .learn_rd = -1,
			      .learn_wr = -1, .slot = -1, .release_rd = -1, .release_wr = -1,
			      .done_rd = -1, .done_wr = -1};

void mgi_agent_log(const char *fmt, ...)
{
	char line[512];
	int n = snprintf(line, sizeof(line), "memgrp[%d]: ", (int)getpid());
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	strcat(line, "\n");
	mgi_write_str(STDERR_FILENO, line);
}

bool mgi_agent_excluded(uintptr_t start, uintptr_t end)
{
	if (start < mgi_agent.arena.end && end > mgi_agent.arena.base)
		return true;
	for (unsigned i = 0; i < mgi_agent.nown; i++)
		if (start < mgi_agent.own[i].end && end > mgi_agent.own[i].start)
			return true;
	for (unsigned i = 0; i < mgi_agent.nelf; i++)
		if (start < mgi_agent.elf[i].end && end > mgi_agent.elf[i].start)
			return true;
	return false;
}

/* Objects whose code the fault handler runs: their bss (anonymous pages
 * right after their data) must never be registered, or the handler could
 * fault on memory only it can resolve. Every other object's bss (a
 * program's static arrays) is application memory and is managed. */
static bool handler_uses(const char *path)
{
	static const char *const names[] = {
		"libc.so", "ld-linux", "libmemgrp-agent", /* the handler's own code */
		"liblz4", "libzstd", /* the store's codecs, run by the handler */
		"libasan", "libubsan", "libtsan", "libclang_rt", /* sanitizer builds */
	};
	const char *base = strrchr(path, '/');

	base = base ? base + 1 : path;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strstr(base, names[i]))
			return true;
	return false;
}

/* Extents of the objects the handler uses, from their PT_LOAD segments. */
static int collect_elf(struct dl_phdr_info *info, size_t size, void *arg)
{
	uintptr_t lo = UINTPTR_MAX, hi = 0;

	(void)size;
	(void)arg;
	if (!info->dlpi_name || !handler_uses(info->dlpi_name))
		return 0;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_LOAD)
			continue;
		uintptr_t s = info->dlpi_addr + ph->p_vaddr, e = s + ph->p_memsz;
		if (s < lo)
			lo = s;
		if (e > hi)
			hi = e;
	}
	if (hi > lo && mgi_agent.nelf < MGI_ELF_RANGES_MAX) {
		mgi_agent.elf[mgi_agent.nelf].start = lo & ~(MGI_PAGE_SIZE - 1);
		mgi_agent.elf[mgi_agent.nelf].end = (hi + MGI_PAGE_SIZE - 1) & ~(MGI_PAGE_SIZE - 1);
		mgi_agent.nelf++;
	}
	return 0;
}

#if defined(__x86_64__)
#define MGI_R_GLOB_DAT R_X86_64_GLOB_DAT
#elif defined(__aarch64__)
#define MGI_R_GLOB_DAT R_AARCH64_GLOB_DAT
#endif

/* A dynamic-section address: glibc rebases some entries in place, others
 * stay relative to the object's load address. */
static uintptr_t dyn_addr(const struct dl_phdr_info *info, ElfW(Addr) p)
{
	return p < info->dlpi_addr ? info->dlpi_addr + p : p;
}

/*
 * Data the handler's objects reach through their GOT may live outside
 * them: a program linked against a shared runtime gets copy relocations,
 * so ASan's __asan_option_detect_stack_use_after_return (read in every
 * instrumented function's prologue) or libc's environ sit in the
 * executable's bss, which is application memory and gets registered. Were
 * such a page evicted, the handler would fault on a page only it can
 * bring back. Every writable GLOB_DAT target of the handler's objects is
 * excluded, page by page (the symbol's size when the object spans more).
 */
static int exclude_got_targets(struct dl_phdr_info *info, size_t size, void *arg)
{
#ifdef MGI_R_GLOB_DAT
	const ElfW(Dyn) *dyn = NULL;
	const ElfW(Rela) *rela = NULL;
	const ElfW(Sym) *symtab = NULL;
	size_t relasz = 0;

	(void)size;
	(void)arg;
	if (!info->dlpi_name || !handler_uses(info->dlpi_name))
		return 0;
	for (int i = 0; i < info->dlpi_phnum; i++)
		if (info->dlpi_phdr[i].p_type == PT_DYNAMIC)
			dyn = (const ElfW(Dyn) *)(info->dlpi_addr + info->dlpi_phdr[i].p_vaddr);
	for (; dyn && dyn->d_tag != DT_NULL; dyn++) {
		if (dyn->d_tag == DT_RELA)
			rela = (const ElfW(Rela) *)dyn_addr(info, dyn->d_un.d_ptr);
		else if (dyn->d_tag == DT_RELASZ)
			relasz = dyn->d_un.d_val;
		else if (dyn->d_tag == DT_SYMTAB)
			symtab = (const ElfW(Sym) *)dyn_addr(info, dyn->d_un.d_ptr);
	}
	if (!rela || !symtab)
		return 0;
	for (size_t i = 0; i < relasz / sizeof(*rela); i++) {
		if (ELF64_R_TYPE(rela[i].r_info) != MGI_R_GLOB_DAT)
			continue;
		uintptr_t target = *(const uintptr_t *)(info->dlpi_addr + rela[i].r_offset);
		size_t len = symtab[ELF64_R_SYM(rela[i].r_info)].st_size;
		mgi_vma_t v;

		if (!target || mgi_agent_excluded(target, target + 1) ||
		    mgi_vma_query(mgi_agent.mapsfd, target, &v) != 0 || v.start > target ||
		    !(v.flags & MGI_VMA_WRITE))
			continue;
		if (mgi_agent.nelf >= MGI_ELF_RANGES_MAX)
			break;
		mgi_agent.elf[mgi_agent.nelf].start = target & ~(MGI_PAGE_SIZE - 1);
		mgi_agent.elf[mgi_agent.nelf].end =
			(target + (len ? len : 1) + MGI_PAGE_SIZE - 1) & ~(MGI_PAGE_SIZE - 1);
		mgi_agent.nelf++;
	}
#else
	(void)info;
	(void)size;
	(void)arg;
#endif
	return 0;
}

/* The handler's polling window at most (handler.c, wait_for_work):
 * MEMGRP_POLL_US, 50 us by default, 0 to never poll (options.c). Never on
 * one CPU: polling there only delays whoever else would run. */

static uint64_t poll_window_ns(void)
{
	uint64_t us = mgi_env_uint(MGI_ENV_POLL_US);
	cpu_set_t cpus;

	if (sched_getaffinity(0, sizeof(cpus), &cpus) == 0 && CPU_COUNT(&cpus) < 2)
		return 0;
	return (uint64_t)us * 1000;
}

/*
 * The starting thread's control block (struct pthread, with its static TLS
 * and rseq area) lives in an anonymous mapping of ld.so's, beside the
 * loaded objects (or, in a forked child, at the top of that thread's
 * stack). The handler's libc touches it, and so does the kernel on every
 * return to user space (rseq): were it evicted, the handler would wait on
 * itself. Excluded like the objects' bss: the VMA holding pthread_self().
 */
static void exclude_own_tcb(void)
{
	uintptr_t self = (uintptr_t)pthread_self();
	mgi_vma_t v;

	if (mgi_vma_query(mgi_agent.mapsfd, self, &v) != 0 || v.start > self ||
	    mgi_agent.nelf >= MGI_ELF_RANGES_MAX)
		return;
	/* a thread's stack mapping can be large: keep only its top, where
	 * the control block and static TLS are */
	if (v.end - v.start > (256UL << 10) && self - v.start > (128UL << 10))
		v.start = (self - (128UL << 10)) & ~(MGI_PAGE_SIZE - 1);
	mgi_agent.elf[mgi_agent.nelf].start = v.start;
	mgi_agent.elf[mgi_agent.nelf].end = v.end;
	mgi_agent.nelf++;
}

mgi_segment_t *mgi_agent_map_segment(int ctlfd, int acctfd)
{
	struct stat sc, sa;
	char *m;
	int fl = fcntl(acctfd, F_GETFL);
	/* An ancestor's accounting part comes read-only (grant.h): mapped
	 * so, no write through it is possible. */
	int acct_prot = fl >= 0 && (fl & O_ACCMODE) == O_RDWR ? PROT_READ | PROT_WRITE : PROT_READ;

	if (fstat(ctlfd, &sc) != 0 || (size_t)sc.st_size != MGI_SEGMENT_CTL_BYTES ||
	    fstat(acctfd, &sa) != 0 || (size_t)sa.st_size != MGI_SEGMENT_ACCT_BYTES)
		return NULL;
	/* One reservation, the two parts mapped over it: a single pointer
	 * reaches both. The control part only readable: the manager's fd is
	 * read-only, so no mapping of it here could ever be written. */
	m = mgi_raw_mmap(NULL, sizeof(mgi_segment_t), PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return NULL;
	if (mgi_raw_mmap(m, MGI_SEGMENT_CTL_BYTES, PROT_READ, MAP_SHARED | MAP_FIXED, ctlfd, 0) ==
		    MAP_FAILED ||
	    mgi_raw_mmap(m + MGI_SEGMENT_CTL_BYTES, MGI_SEGMENT_ACCT_BYTES, acct_prot,
			 MAP_SHARED | MAP_FIXED, acctfd, 0) == MAP_FAILED ||
	    !mgi_segment_valid(m, sizeof(mgi_segment_t))) {
		mgi_raw_munmap(m, sizeof(mgi_segment_t));
		return NULL;
	}
	return (mgi_segment_t *)m;
}

/*
 * Connects to the manager at path, says hello (passing the fds in `pass`,
 * if any) and receives the answer: a WELCOME with the group's segment fds
 * and the manager's wake eventfd last, into fds/nfds. Waits at most
 * timeout_ms for it (-1: as long as it takes). Returns the connection, or
 * -errno: -EPROTO for a refusal (the manager's words in why) or a garbled
 * answer.
 */
static int say_hello(const char *path, const mgi_msg_t *hello, const int *pass, unsigned npass,
		     int timeout_ms, mgi_msg_t *reply, int *fds, unsigned *nfds, char *why,
		     size_t whylen)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char cbuf[CMSG_SPACE(sizeof(int) * MGI_AGENT_FDS_MAX)], err[96];
	char buf[sizeof(mgi_msg_t)];
	struct iovec iov = {.iov_base = (void *)hello, .iov_len = hello->hdr.len};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	struct cmsghdr *c;
	ssize_t n;
	int fd, type, e;

	*nfds = 0;
	why[0] = '\0';
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		goto fail;
	if (npass) {
		memset(cbuf, 0, sizeof(cbuf));
		mh.msg_control = cbuf;
		mh.msg_controllen = CMSG_SPACE(npass * sizeof(int));
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(npass * sizeof(int));
		memcpy(CMSG_DATA(c), pass, npass * sizeof(int));
	}
	if (sendmsg(fd, &mh, MSG_NOSIGNAL) != (ssize_t)hello->hdr.len) {
		/* A manager that refused the connection said why before
		 * closing it: print that rather than "broken pipe". */
		mgi_msg_t no;
		int saved = errno;
		ssize_t r = recv(fd, &no, sizeof(no), MSG_DONTWAIT);
		if (r > 0 && mgi_msg_parse(&no, (size_t)r, reply, err, sizeof(err)) == MGI_MSG_REPLY) {
			snprintf(why, whylen, "the manager refused: %s", reply->reply.message);
			errno = EPROTO;
		} else {
			errno = saved;
		}
		goto fail;
	}
	if (timeout_ms >= 0) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int rc;
		do
			rc = poll(&p, 1, timeout_ms);
		while (rc < 0 && errno == EINTR);
		if (rc == 0)
			errno = ETIMEDOUT;
		if (rc <= 0)
			goto fail;
	}
	iov = (struct iovec){.iov_base = buf, .iov_len = sizeof(buf)};
	mh = (struct msghdr){.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf)};
	do
		n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		goto fail;
	if (n == 0) {
		errno = ECONNRESET; /* closed without a word */
		goto fail;
	}
	for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t j = 0; j < k; j++) {
			int got;
			memcpy(&got, CMSG_DATA(c) + j * sizeof(int), sizeof(int));
			if (*nfds < MGI_AGENT_FDS_MAX)
				fds[(*nfds)++] = got;
			else
				close(got);
		}
	}
	type = mgi_msg_parse(buf, (size_t)n, reply, err, sizeof(err));
	if (type == MGI_MSG_REPLY) {
		snprintf(why, whylen, "the manager refused: %s", reply->reply.message);
		errno = EPROTO;
		goto fail;
	}
	if (type == MGI_MSG_WELCOME && (reply->welcome.flags & MGI_WELCOME_UFFD_DEV) && *nfds > 3) {
		/* the last fd: /dev/userfaultfd, lent by the manager */
		mgi_uffd_lend(fds[--*nfds]);
	}
	if (type != MGI_MSG_WELCOME || *nfds != 2 * reply->welcome.nsegments + 1 || *nfds < 3) {
		snprintf(why, whylen, "the manager sent a bad welcome: %s",
			 type != MGI_MSG_WELCOME ? err : "wrong number of segments");
		errno = EPROTO;
		goto fail;
	}
	return fd;
fail:
	e = errno ? errno : EPROTO;
	for (unsigned i = 0; i < *nfds; i++)
		close(fds[i]);
	*nfds = 0;
	close(fd);
	return -e;
}

/* Takes a WELCOME's connection, slot and wake eventfd (the last of fds;
 * the segment fds before it are closed: the process has its own). */
static void take_welcome(int conn, const mgi_msg_t *reply, int *fds, unsigned nfds)
{
	for (unsigned i = 0; i + 1 < nfds; i++)
		if (fds[i] >= 0) /* -1: kept by join_group */
			close(fds[i]);
	/* Replaced in place (a forked child's copy of its parent's, or that of
	 * a manager before a restart): another thread may be writing to it as
	 * it changes, and must never meet a closed or reused number. */
	if (mgi_agent.wakefd >= 0 && dup3(fds[nfds - 1], mgi_agent.wakefd, O_CLOEXEC) >= 0)
		close(fds[nfds - 1]);
	else
		mgi_agent.wakefd = fds[nfds - 1];
	if (mgi_agent.conn >= 0)
		close(mgi_agent.conn);
	mgi_agent.conn = conn;
	mgi_agent.slot = reply->welcome.slot;
	mgi_agent.me = &mgi_agent.seg->acct.procs[mgi_agent.slot];
}

/* The manager does UFFDIO_API on our new userfaultfd (we may not turn on
 * fork events ourselves: see dispatch.c on_uffd_features). Only while
 * starting: the handler thread does not run yet, so the answer on our
 * connection is ours to read. Returns 0 or -errno. */
static int features_by_manager(int fd, uint64_t features)
{
	char cbuf[CMSG_SPACE(sizeof(int))];
	mgi_msg_t m, r, got;
	struct iovec iov = {.iov_base = &m, .iov_len = 0};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			    .msg_controllen = sizeof(cbuf)};
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	struct pollfd p = {.fd = mgi_agent.conn, .events = POLLIN};
	char err[96];
	ssize_t n;

	if (mgi_agent.conn < 0 || features >> 32)
		return -EINVAL;
	mgi_msg_init(&m, MGI_MSG_UFFD_FEATURES);
	m.unreg.id = (uint32_t)features;
	iov.iov_len = m.hdr.len;
	memset(cbuf, 0, sizeof(cbuf));
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	if (sendmsg(mgi_agent.conn, &mh, MSG_NOSIGNAL) != (ssize_t)m.hdr.len)
		return -errno;
	if (poll(&p, 1, 2000) != 1)
		return -ETIMEDOUT;
	n = recv(mgi_agent.conn, &got, sizeof(got), 0);
	if (n <= 0 || mgi_msg_parse(&got, (size_t)n, &r, err, sizeof(err)) != MGI_MSG_REPLY)
		return -EPROTO;
	return r.reply.status;
}

/* Connects, says HELLO naming the group ($MEMGRP_GROUP, else the manager's
 * default), receives WELCOME with the segments of the group and of its
 * ancestors and maps them (unless already mapped, as in a forked child,
 * which stays in its parent's group). Returns 0 or -errno. */
/* MEMGRP_OOM_PRIORITY (memgrp run --oom-priority): the process's rank
 * under --oom-policy priority, told to the manager once joined. The
 * manager does not answer on an agent's connection. A bad value is
 * logged and not sent. */
static void send_oom_priority(void)
{
	const char *v = mgi_env_str(MGI_ENV_OOM_PRIORITY);
	char *end;
	mgi_msg_t m;

	if (!v || !*v)
		return;
	errno = 0;
	long p = strtol(v, &end, 10);
	if (errno || *end || p < MGI_OOM_PRIORITY_MIN || p > MGI_OOM_PRIORITY_MAX) {
		mgi_agent_log("MEMGRP_OOM_PRIORITY '%s': not a number from -1000 to 1000: ignored", v);
		return;
	}
	mgi_msg_init(&m, MGI_MSG_OOM_PRIORITY);
	m.oom_priority.pid = 0;
	m.oom_priority.priority = (int32_t)p;
	send(mgi_agent.conn, &m, m.hdr.len, MSG_DONTWAIT | MSG_NOSIGNAL);
}

static int join_group(const char *path)
{
	const char *group = mgi_env_str(MGI_ENV_GROUP);
	mgi_msg_t hello, reply;
	int fds[MGI_AGENT_FDS_MAX], conn;
	unsigned nfds;
	char why[256];

	mgi_msg_init(&hello, MGI_MSG_HELLO);
	hello.hello.pid = mgi_agent.pid;
	hello.hello.slot = -1;
	if (mgi_agent.seg) /* a forked child: its parent's group, whatever the env says */
		group = mgi_agent.group;
	if (group && strlen(group) < sizeof(hello.hello.group))
		strcpy(hello.hello.group, group);
	conn = say_hello(path, &hello, NULL, 0, -1, &reply, fds, &nfds, why, sizeof(why));
	if (conn < 0) {
		if (why[0])
			mgi_agent_log("%s", why);
		return conn;
	}
	if (!mgi_agent.seg) {
		for (unsigned i = 0; 2 * i + 1 < nfds; i++) {
			mgi_agent.anc[i] = mgi_agent_map_segment(fds[2 * i], fds[2 * i + 1]);
			if (!mgi_agent.anc[i]) {
				for (unsigned j = 0; j < nfds; j++)
					close(fds[j]);
				close(conn);
				return -EPROTO;
			}
		}
		/* Kept, not closed: handed back if the manager restarts. */
		for (unsigned i = 0; i + 1 < nfds; i++) {
			mgi_agent.segfd[i] = fds[i];
			fds[i] = -1;
		}
		mgi_agent.nsegs = (nfds - 1) / 2;
		mgi_agent.seg = mgi_agent.anc[0];
		memcpy(mgi_agent.group, reply.welcome.group, sizeof(mgi_agent.group));
	}
	take_welcome(conn, &reply, fds, nfds);
	mgi_account_use_segments();
	send_oom_priority();
	return 0;
}

int mgi_agent_rejoin(void)
{
	mgi_msg_t hello, reply;
	int fds[MGI_AGENT_FDS_MAX], conn;
	unsigned nfds;
	char why[256];

	if (mgi_agent.rejoin_refused || !mgi_agent.seg || mgi_agent.slot < 0 ||
	    !mgi_agent.sockpath[0])
		return -EPERM;
	mgi_msg_init(&hello, MGI_MSG_HELLO);
	hello.hello.pid = mgi_agent.pid;
	hello.hello.slot = mgi_agent.slot;
	memcpy(hello.hello.group, mgi_agent.group, sizeof(hello.hello.group));
	conn = say_hello(mgi_agent.sockpath, &hello, mgi_agent.segfd, 2 * mgi_agent.nsegs, 500, &reply,
			 fds, &nfds, why, sizeof(why));
	if (conn < 0) {
		if (conn == -EPROTO) {
			/* A manager answered and said no (or garbled): asking
			 * again would get the same. */
			mgi_agent.rejoin_refused = true;
			mgi_agent_log("cannot rejoin the manager at %s: %s; going on with the "
				      "last limits", mgi_agent.sockpath, why);
		}
		return conn;
	}
	take_welcome(conn, &reply, fds, nfds);
	mgi_agent.manager_gone = false;
	mgi_agent_log("rejoined the manager at %s (group '%s')", mgi_agent.sockpath,
		      mgi_agent.group);
	return 0;
}

typedef struct {
	void *(*fn)(void *);
	void *arg;
	sem_t up;
} thread_start_t;

void *mgi_thread_trampoline(void *p)
{
	thread_start_t *ts = p;
	void *(*fn)(void *) = ts->fn;
	void *arg = ts->arg;

	/* No alternate signal stack: glibc runs its SIGSETXID handler (every
	 * set*id call of the application) on one, and a sanitizer's runtime
	 * gives each new thread one in memory the handler registers: the
	 * handler thread then faulted there, on itself, and the process hung
	 * (measured under ASan: any setresuid, even to the same ids). Raw:
	 * the runtime intercepts sigaltstack. */
	stack_t none = {.ss_flags = SS_DISABLE};
	syscall(SYS_sigaltstack, &none, NULL);
	mgi_creds_agent_thread();
	sem_post(&ts->up); /* ts lives on the creator's stack: not used after this */
	return fn(arg);
}

/* Starts an agent thread on a stack from the arena, with every signal
 * blocked (signals are for the application's threads), and returns only
 * once it runs our code. A new thread first runs library code, and a
 * sanitizer's runtime allocates there under its allocator's locks: had
 * the application forked meanwhile, the child would inherit those locks
 * held and its own agent threads would wait on them forever (seen under
 * ASan: `sh -c "prog &"` forks right after start). Waiting also keeps the
 * handler's scan from registering the heap while another agent thread
 * may still allocate from it. */
_Atomic unsigned mgi_agent_threads;
const pthread_attr_t *_Atomic mgi_agent_attr;

int mgi_start_thread(pthread_t *t, void *stack, size_t size, void *(*fn)(void *), void *arg)
{
	thread_start_t ts = {.fn = fn, .arg = arg};
	pthread_attr_t attr;
	sigset_t all, old;
	int rc;

	if (sem_init(&ts.up, 0, 0) != 0)
		return -errno;
	pthread_attr_init(&attr);
	pthread_attr_setstack(&attr, stack, size);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	atomic_store(&mgi_agent_attr, &attr);
	rc = pthread_create(t, &attr, mgi_thread_trampoline, &ts);
	atomic_store(&mgi_agent_attr, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (rc == 0) {
		atomic_fetch_add(&mgi_agent_threads, 1);
		while (sem_wait(&ts.up) != 0 && errno == EINTR)
			;
	}
	sem_destroy(&ts.up);
	return -rc;
}

static int start_handler(void)
{
	int rc;

	if (sem_init(&mgi_agent.ready, 0, 0) != 0)
		return -errno;
	rc = mgi_start_thread(&mgi_agent.handler, mgi_agent.stack, MGI_HANDLER_STACK,
			      mgi_handler_main,
			      (void *)(uintptr_t)mgi_env_choice(MGI_ENV_HANDLER_SCHED));
	if (rc != 0)
		return rc;
	while (sem_wait(&mgi_agent.ready) != 0 && errno == EINTR)
		;
	return mgi_agent.init_error;
}

/* A forked child's uffd, handed over by its parent's agent (reclaim.c): its
 * address space is registered on it already. */
static int handed_uffd = -1;

/*
 * A start that costs nothing (issue 17, part 2). Most processes a shell or
 * a build runs are small and short: for them the userfaultfd, three
 * threads and the walk that registers every region cost more than their
 * whole run (measured in docs/benchmarks.md, "Process start"), and a
 * process with a second thread takes glibc's multi-threaded paths for
 * ever. So a process first only joins: every private anonymous writable
 * region it has is charged at its size (an upper bound of what it can
 * hold there: a page the kernel faults in without us is already paid for),
 * all or nothing, within MEMGRP_START_ALLOWANCE (4 MiB by default; 0:
 * never). Nothing is registered and no thread runs. Memory it adds is
 * seen where interpose.c sees it (mmap, brk, mprotect, the malloc
 * family's blocks) and charged at its size the same way; a new thread,
 * a region that does not fit in the allowance or a charge the group
 * refuses start the agent for good (mgi_agent_start_now): the charge at
 * size is given back and the ordinary start follows (userfaultfd, threads,
 * a scan that registers everything and charges what is present). So the
 * limit holds from the first page: every byte the process can touch is
 * charged before it can touch it. The one exception is the main thread's
 * stack growing past the extent it had at start (no call to see it): that
 * growth is bounded by the kernel backstop as all memory the agent does
 * not see (docs/design.md, "Kernel backstop").
 */
#define LAZY_DEFAULT_BYTES (4UL << 20)

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* Whether pages more charged at size leave every level of the path (and a
 * nested group's grant) at most half full. Charged at size, a process
 * holds more than it uses (its heap's and stack's untouched pages): many
 * small processes in a group near its limit would crowd out the memory
 * in use (measured: 100 `sleep`s under -m 32M, each charged 636 KiB at
 * size against 150 KiB present, and the group killed them at its limit).
 * Past half, processes start as before, charged for what they hold. */
static bool lazy_room(uint64_t pages)
{
	const mgi_counter_path_t *path = &mgi_agent.path;

	for (unsigned i = 0; i < path->depth; i++)
		if (mgi_counter_read(path->level[i]) + pages > mgi_counter_read_max(path->limit[i]) / 2)
			return false;
	if (path->grant && path->depth &&
	    mgi_counter_read(path->level[0]) + pages >
		    atomic_load_explicit(path->grant, memory_order_relaxed) / 2)
		return false;
	return true;
}

/* Pages of [s, e) not charged yet; charges them and records the range.
 * False (nothing changed) when they do not fit or the group refuses. */
static bool lazy_cover(uintptr_t s, uintptr_t e)
{
	uint64_t add = (e - s) / MGI_PAGE_SIZE;

	for (unsigned i = 0; i < mgi_agent.nlazy; i++) {
		const mgi_range_t *r = &mgi_agent.lazy_known[i];
		uintptr_t lo = s > r->start ? s : r->start, hi = e < r->end ? e : r->end;
		if (lo < hi)
			add -= (hi - lo) / MGI_PAGE_SIZE;
	}
	if (!add)
		return true;
	if (mgi_agent.lazy_pages + add > mgi_agent.lazy_cap_pages ||
	    mgi_agent.nlazy >= MGI_LAZY_RANGES_MAX || !lazy_room(add) || !mgi_charge(add, NULL))
		return false;
	mgi_agent.lazy_pages += add;
	/* kept disjoint: the ranges [s, e) meets or touches merge into it */
	for (unsigned i = 0; i < mgi_agent.nlazy;) {
		mgi_range_t *r = &mgi_agent.lazy_known[i];
		if (r->start <= e && s <= r->end) {
			s = s < r->start ? s : r->start;
			e = e > r->end ? e : r->end;
			*r = mgi_agent.lazy_known[--mgi_agent.nlazy];
		} else {
			i++;
		}
	}
	mgi_agent.lazy_known[mgi_agent.nlazy++] = (mgi_range_t){s, e};
	return true;
}

/* Charges the regions the process has at start, at their size: true if
 * they all fit (the process then runs in its deferred start). */
static bool start_lazy(void)
{
	const char *v = mgi_env_str(MGI_ENV_START_ALLOWANCE);
	uint64_t bytes = LAZY_DEFAULT_BYTES;
	uintptr_t addr = 0;
	char err[128];
	mgi_vma_t vma;

	if (v && mgi_size_parse(v, &bytes, err, sizeof(err)) != 0) {
		mgi_agent_log("MEMGRP_START_ALLOWANCE=%s: %s; using 4M", v, err);
		bytes = LAZY_DEFAULT_BYTES;
	}
	mgi_agent.lazy_cap_pages = bytes / MGI_PAGE_SIZE;
	mgi_agent.lazy_pages = 0;
	mgi_agent.nlazy = 0;
	if (!mgi_agent.lazy_cap_pages)
		return false;
	/* The same regions as the full start's scan (handler.c), without
	 * the bss of the objects the handler runs: not the application's,
	 * and not counted by the full start either. */
	mgi_agent.nelf = 0;
	dl_iterate_phdr(collect_elf, NULL);
	while (mgi_vma_query(mgi_agent.mapsfd, addr, &vma) == 0 && vma.end > addr) {
		addr = vma.end;
		if (!mgi_vma_is_anon_private(&vma) || !(vma.flags & MGI_VMA_WRITE) ||
		    vma.end - vma.start > MGI_REGION_MAX_BYTES || mgi_agent_excluded(vma.start, vma.end))
			continue;
		if (vma.name[0] == '[' && strcmp(vma.name, "[heap]") != 0 &&
		    strcmp(vma.name, "[stack]") != 0)
			continue;
		if (!lazy_cover(vma.start, vma.end)) {
			mgi_uncharge(mgi_agent.lazy_pages);
			mgi_agent.lazy_pages = 0;
			mgi_agent.nlazy = 0;
			return false;
		}
	}
	mgi_agent.lazy = true;
	return true;
}

static void start_full(void);

void mgi_agent_lazy_grow(uintptr_t start, uintptr_t end)
{
	if (!mgi_agent.lazy || start >= end || end - start > MGI_REGION_MAX_BYTES ||
	    lazy_cover(start, end))
		return;
	mgi_agent_start_now();
}

void mgi_agent_start_now(void)
{
	if (!mgi_agent.lazy)
		return;
	/* Given back first, then the scan charges what is present: for
	 * those few hundred microseconds the process holds pages the group
	 * does not count, rather than counting them twice (a spurious
	 * reclaim, or a refusal, at the limit). */
	mgi_agent.lazy = false;
	mgi_uncharge(mgi_agent.lazy_pages);
	mgi_agent.lazy_pages = 0;
	mgi_agent.nlazy = 0;
	/* The program may have closed the userfaultfd opened at start (one
	 * that tampers: tests/test_backstop.sh 'unreg'): then it goes on
	 * joined but unmanaged, bounded by the backstop, as when it closes
	 * the userfaultfd of a handler that runs. */
	char fdpath[32], target[32];
	ssize_t n;
	snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%d", mgi_agent.uffd);
	n = readlink(fdpath, target, sizeof(target) - 1);
	if (n <= 0 || (target[n] = '\0', !strstr(target, "userfaultfd"))) {
		mgi_agent_log("the userfaultfd opened at start is gone: this process is not managed");
		return;
	}
	start_full();
}

static void agent_start(void)
{
	const char *sock = mgi_env_str(MGI_ENV_SOCKET);
	char why[256];
	int rc;

	mgi_agent.pid = getpid();
	mgi_agent.lazy = false;
	if (!sock) {
		mgi_agent_log("MEMGRP_SOCKET is not set: this process is not managed "
			      "(start it with `memgrp run`)");
		return;
	}
	if (strlen(sock) < sizeof(mgi_agent.sockpath))
		strcpy(mgi_agent.sockpath, sock);
	rc = join_group(sock);
	if (rc != 0) {
		mgi_agent_log("cannot join the group's manager at %s (%s): this process is "
			      "not managed", sock, strerror(-rc));
		return;
	}
	mgi_agent.mapsfd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	bool handed = handed_uffd >= 0;
	if (handed) {
		mgi_agent.uffd = handed_uffd; /* negotiated by our parent: the same features */
		handed_uffd = -1;
	} else {
		/* Opened now even when its use is deferred: the process may
		 * drop its privileges before it needs one (measured:
		 * tests/test_security.sh 'mixed', a process that setuid()s to
		 * a user and then grows was left unmanaged). Two system calls
		 * as root. */
		mgi_agent.uffd = mgi_uffd_open(&mgi_agent.fork_events, features_by_manager, why,
					       sizeof(why));
	}
	if (mgi_agent.mapsfd < 0 || mgi_agent.uffd < 0) {
		mgi_agent_log("%s: this process is not managed",
			      mgi_agent.uffd < 0 ? why : "cannot open /proc/self/maps");
		close(mgi_agent.conn);
		mgi_agent.conn = -1;
		return;
	}
	/* A child that kept its parent's store has evicted pages registered
	 * on the handed uffd: only the full start's handler can serve them
	 * (and stop the early fault server). */
	if (!handed && start_lazy())
		return;
	start_full();
}

/* The rest of the start: arena, threads, the scan. */
static void start_full(void)
{
	int pipefd[2], rc;
	if (mgi_arena_init(&mgi_agent.arena, MGI_ARENA_BYTES) != 0)
		goto nomem;
	mgi_registry_init(&mgi_agent.reg,
			  (mgi_allocator_t){(void *(*)(void *, size_t))mgi_arena_alloc,
					    (void (*)(void *, void *, size_t))mgi_arena_free,
					    &mgi_agent.arena});
	mgi_agent.zeros = mgi_arena_alloc(&mgi_agent.arena, MGI_FAULT_AROUND_MAX * MGI_PAGE_SIZE);
	mgi_agent.stack = mgi_arena_alloc(&mgi_agent.arena, MGI_HANDLER_STACK);
	mgi_agent.watch_stack = mgi_arena_alloc(&mgi_agent.arena, MGI_WATCHDOG_STACK);
	void *watch_buf = mgi_arena_alloc(&mgi_agent.arena, 4096);
	if (!mgi_agent.zeros || !mgi_agent.stack || !mgi_agent.watch_stack || !watch_buf)
		goto nomem;
	unsigned inject = mgi_env_choice(MGI_ENV_INJECT);
	mgi_agent.drop_one_fault = inject == 1;  /* drop-fault */
	mgi_agent.stall_handler_once = inject == 3; /* stall-handler */
	mgi_agent.misreport_moves = inject == 2; /* move-misreport */
	mgi_agent.poll_max_ns = poll_window_ns();
	if (pipe2(pipefd, O_NONBLOCK | O_CLOEXEC) != 0)
		goto nomem;
	mgi_agent.learn_rd = pipefd[0];
	mgi_agent.learn_wr = pipefd[1];
	mgi_agent.nelf = 0;
	dl_iterate_phdr(collect_elf, NULL);
	dl_iterate_phdr(exclude_got_targets, NULL);
	exclude_own_tcb();
	if (mgi_request_init() != 0 || mgi_handover_init() != 0 || mgi_est_init() != 0)
		goto nomem;
	mgi_trace_init();
	mgi_reclaim_init(); /* before the scan: its ranges are the agent's own */
	mgi_handler_guards_reset();
	/* The watchdog, like the releaser, starts before the handler's scan
	 * registers anything: its thread start-up (library code) could
	 * otherwise fault on managed memory at the limit, and in a forked
	 * child we wait for it (measured under ASan: children stuck there,
	 * the group killed at its limit). It idles until `active`. */
	if (mgi_start_thread(&mgi_agent.watchdog, mgi_agent.watch_stack, MGI_WATCHDOG_STACK,
			     mgi_watchdog_main, watch_buf) != 0)
		mgi_agent_log("cannot start the watchdog: lost faults would go unnoticed");
	mgi_thp_init(); /* its worker, like the watchdog, before the scan */
	rc = start_handler();
	if (rc != 0) {
		mgi_agent_log("cannot start the fault handler: %s", strerror(-rc));
		goto fail;
	}
	mgi_creds_init();
	atomic_store_explicit(&mgi_agent.active, true, memory_order_release);
	return;
nomem:
	mgi_agent_log("out of memory while starting: this process is not managed");
fail:
	/* Closing the connection tells the manager to release our slot. */
	if (mgi_agent.conn >= 0)
		close(mgi_agent.conn);
	mgi_agent.conn = -1;
}


/* In the child of a fork: everything the parent's handler owned is a stale
 * copy (and may have been mid-update), so start over from scratch. */
static void child_after_fork(void)
{
	if (mgi_agent.lazy) {
		/* The parent was in its deferred start: nothing of the agent
		 * runs, so nothing is stale but the connection and slot, which
		 * are the parent's: the child joins on its own (and starts
		 * deferred again if it fits). Decided on the parent's state:
		 * the agent_start below may make this child deferred too. */
		mgi_agent.lazy = false;
		close_fd(&mgi_agent.conn);
		close_fd(&mgi_agent.mapsfd);
		close_fd(&mgi_agent.uffd); /* the parent's: ours is opened anew */
		agent_start();
		return;
	}
	if (!atomic_load(&mgi_agent.active))
		return;
	atomic_store(&mgi_agent.active, false);
	/* A sibling's userfaultfd our parent's handler held as we forked is
	 * not ours to keep (reclaim.c). */
	mgi_reclaim_close_inflight();
	/* First: wait until our parent's agent has let go of our memory,
	 * keep its store if we may, and drop its other reclaim ranges (this
	 * also resets the eviction clock unless the store is kept: its
	 * stamps are on the parent's clock). */
	handed_uffd = mgi_reclaim_child_start();
	close_fd(&mgi_agent.uffd);
	close_fd(&mgi_agent.conn);
	close_fd(&mgi_agent.learn_rd);
	close_fd(&mgi_agent.learn_wr);
	close_fd(&mgi_agent.mapsfd);
	/* The parent's arena (registry, handler stack) is of no use here;
	 * nothing in it is registered in the child. */
	mgi_arena_destroy(&mgi_agent.arena);
	memset(&mgi_agent.reg, 0, sizeof(mgi_agent.reg));
	mgi_agent.untracked_bytes = 0;
	mgi_agent.init_error = 0;
	mgi_agent.parked = 0;
	mgi_agent.manager_gone = false;
	mgi_agent.reclaim_asked_ns = 0;
	atomic_store(&mgi_agent_threads, 0); /* the parent's: not here */
	agent_start();
}

static void fork_prepare(void)
{
	if (atomic_load(&mgi_agent.active))
		mgi_reclaim_fork_prepare();
}

static void fork_parent(void)
{
	if (atomic_load(&mgi_agent.active))
		mgi_reclaim_fork_parent();
}

__attribute__((constructor)) static void mgi_agent_init(void)
{
	/* Resolve the allocator's next definitions before any thread exists. */
	free(malloc(1));
	/* glibc's MALLOC_PERTURB_ makes malloc write whole blocks before they
	 * reach us, i.e. before the mapping under them is registered: memory
	 * the limit could not stop. Accounting beats that debugging aid. */
	mallopt(M_PERTURB, 0);
	agent_start();
	pthread_atfork(fork_prepare, fork_parent, child_after_fork);
}

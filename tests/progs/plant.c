/* plant.c - a hostile client: joins a group, plants a pid in a slot it was not given, asks for an OOM kill. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "counter.h"
#include "proto.h"
#include "segment.h"

/*
 * plant SOCK GROUP PID: says HELLO for GROUP (a top-level group) itself,
 * maps the segment the WELCOME hands over, tries to get its control part
 * writable to put PID (a process that never joined) in a slot (refused:
 * the manager alone writes it), gives a free slot a huge charge in the
 * accounting part, fills the group's counter to its limit and sends
 * OOM_REQ. A manager that signals only what it saw join kills no one but
 * this process (the only one it knows).
 * Prints "planted" once done, then waits to be killed or 5 s.
 */
int main(int argc, char **argv)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char buf[sizeof(mgi_msg_t)], cbuf[CMSG_SPACE(2 * (MGI_DEPTH_MAX + 1) * sizeof(int))], err[128];
	struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf)};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			    .msg_controllen = sizeof(cbuf)};
	mgi_msg_t m, w;
	int fd, fds[2] = {-1, -1};

	if (argc != 4)
		return fprintf(stderr, "usage: plant SOCK GROUP PID\n"), 2;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", argv[1]);
	fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		return perror("connect"), 1;
	mgi_msg_init(&m, MGI_MSG_HELLO);
	m.hello.pid = getpid();
	m.hello.slot = -1;
	snprintf(m.hello.group, sizeof(m.hello.group), "%s", argv[2]);
	if (send(fd, &m, m.hdr.len, 0) != (ssize_t)m.hdr.len)
		return perror("send"), 1;
	ssize_t n = recvmsg(fd, &mh, 0);
	if (n <= 0 || mgi_msg_parse(buf, (size_t)n, &w, err, sizeof(err)) != MGI_MSG_WELCOME)
		return fprintf(stderr, "plant: no welcome (%s)\n", n > 0 ? err : "closed"), 1;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c && fds[0] < 0; c = CMSG_NXTHDR(&mh, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
			memcpy(fds, CMSG_DATA(c), 2 * sizeof(int)); /* the group's control, accounting */
	/* The pid goes in the control part, which the manager alone writes:
	 * a writable mapping of it must be refused. */
	if (mmap(NULL, MGI_SEGMENT_CTL_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fds[0], 0) !=
	    MAP_FAILED)
		return fprintf(stderr, "plant: the control part could be mapped writable\n"), 1;
	char *seg_mem = mmap(NULL, sizeof(mgi_segment_t), PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (seg_mem == MAP_FAILED ||
	    mmap(seg_mem, MGI_SEGMENT_CTL_BYTES, PROT_READ, MAP_SHARED | MAP_FIXED, fds[0], 0) ==
		    MAP_FAILED ||
	    mmap(seg_mem + MGI_SEGMENT_CTL_BYTES, MGI_SEGMENT_ACCT_BYTES, PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_FIXED, fds[1], 0) == MAP_FAILED)
		return perror("mmap"), 1;
	mgi_segment_t *seg = (mgi_segment_t *)seg_mem;
	(void)atoi(argv[3]); /* the pid it would plant, had it a way */
	/* What it can write: a free slot's figures, made huge, and the
	 * group's usage, filled to its limit. */
	for (int s = 0; s < MGI_PROCS_MAX; s++)
		if (s != w.welcome.slot && atomic_load(&seg->ctl.procs[s].pid) == 0) {
			atomic_store(&seg->acct.procs[s].charged, 1ULL << 30);
			break;
		}
	mgi_counter_path_t path = mgi_segment_path(seg);
	mgi_counter_try_charge_upto(&path, mgi_counter_margin(&seg->acct.memory, &seg->ctl.memory),
				    NULL);
	printf("planted\n"); /* before asking: the answer may be our death */
	fflush(stdout);
	mgi_msg_init(&m, MGI_MSG_OOM_REQ);
	m.oom_req.pid = getpid();
	m.oom_req.level = 0;
	if (send(fd, &m, m.hdr.len, 0) != (ssize_t)m.hdr.len)
		return perror("send"), 1;
	sleep(5);
	return 0;
}

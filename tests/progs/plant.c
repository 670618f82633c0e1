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
 * maps the segment the WELCOME hands over, writes PID (a process that
 * never joined) into a free slot with a huge charge, fills the group's counter to its limit and sends OOM_REQ. A
 * manager that trusts the segment kills PID; one that signals only what it
 * saw join does not (it may kill this process: the only one it knows).
 * Prints "planted" once done, then waits to be killed or 5 s.
 */
int main(int argc, char **argv)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char buf[sizeof(mgi_msg_t)], cbuf[CMSG_SPACE((MGI_DEPTH_MAX + 1) * sizeof(int))], err[128];
	struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf)};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			    .msg_controllen = sizeof(cbuf)};
	mgi_msg_t m, w;
	int fd, segfd = -1;

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
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c && segfd < 0; c = CMSG_NXTHDR(&mh, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
			memcpy(&segfd, CMSG_DATA(c), sizeof(int));
	mgi_segment_t *seg = mmap(NULL, sizeof(*seg), PROT_READ | PROT_WRITE, MAP_SHARED, segfd, 0);
	if (seg == MAP_FAILED)
		return perror("mmap"), 1;
	int32_t victim = atoi(argv[3]);
	for (int s = 0; s < MGI_PROCS_MAX; s++) {
		int32_t none = 0;
		if (s != w.welcome.slot && atomic_compare_exchange_strong(&seg->procs[s].pid, &none, victim)) {
			atomic_store(&seg->procs[s].charged, 1ULL << 30);
			memcpy(seg->procs[s].comm, "planted", 8);
			break;
		}
	}
	mgi_counter_path_t path = mgi_segment_path(seg);
	mgi_counter_try_charge_upto(&path, mgi_counter_margin(&seg->memory), NULL);
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

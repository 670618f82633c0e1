/* lazyfork.c - a deferred process's fork: the child takes a spare slot and runs without waiting for the manager. */
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent.h"
#include "proto.h"
#include "start.h"

/*
 * A forked child of a process in its deferred start used to join on its
 * own (connect, HELLO, wait for WELCOME) before it ran: on a busy host
 * most of a fork's cost was that wait for the manager to be scheduled
 * (docs/benchmarks.md, "Process start"). Now the deferred process keeps a
 * spare slot the manager gave it in advance (asked for with SPARE, sent
 * back without being waited for). The child inherits the group's segments
 * (MAP_SHARED) and the parent's table of what it charged at size; it takes
 * the spare, charges that table into it, and sends FORKED on its parent's
 * connection with a socket of its own (the manager's end of its
 * connection from then on): one sendmsg, no answer awaited. The manager
 * binds the slot to the child's pid (the kernel's word on it: the socket's
 * SO_PEERCRED), watches its exit and gives the parent a new spare
 * (src/daemon/spare.c). A fork before the new spare came, or a FORKED the
 * kernel refuses (the manager shut the parent's connection: its process
 * exited), falls back to the ordinary join.
 *
 * Nobody reads a deferred process's connection, so the spare is picked up
 * here at fork (atfork prepare) from what is queued. It is asked for at
 * the first fork (whose child joins the ordinary way), not at the start:
 * most processes never fork (a sleep, a compiler), and a spare held by
 * each would take a slot from the group for nothing (measured:
 * tests/test_backstop.sh 'crowd', 512 sleeps, never reached 512
 * processes).
 */

static int spare = -1;       /* ours, as the manager said (SPARE) */
static int child_spare = -1; /* taken at fork: the child's to use (inherited on purpose) */
static bool asked;           /* this process asked for spares */

static void send_spare(int slot)
{
	mgi_msg_t m;

	if (mgi_join.conn < 0)
		return;
	mgi_msg_init(&m, MGI_MSG_SPARE);
	m.spare.slot = slot;
	send(mgi_join.conn, &m, m.hdr.len, MSG_DONTWAIT | MSG_NOSIGNAL);
}

/* The SPAREs queued on our connection; stops at anything else (a MOVE or
 * an EVICT stays for the handler, if the process starts one). */
static void take_spares(void)
{
	mgi_msg_t buf, msg;
	char err[96];
	ssize_t n;

	while (mgi_join.conn >= 0 &&
	       (n = recv(mgi_join.conn, &buf, sizeof(buf), MSG_DONTWAIT | MSG_PEEK)) > 0) {
		if (mgi_msg_parse(&buf, (size_t)n, &msg, err, sizeof(err)) != MGI_MSG_SPARE)
			return;
		if (recv(mgi_join.conn, &buf, sizeof(buf), MSG_DONTWAIT) != n)
			return;
		if (msg.spare.slot < 0)
			continue;
		if (spare >= 0 && spare != msg.spare.slot)
			send_spare(spare); /* one is enough */
		spare = msg.spare.slot;
	}
}

void mgi_lazyfork_prepare(void)
{
	if (!asked) {
		asked = true;
		send_spare(-1);
	}
	take_spares();
	child_spare = spare;
	spare = -1; /* the child's now (lost if the fork fails: released at our exit) */
}

void mgi_lazyfork_give_back(int slot)
{
	if (slot < 0) {
		take_spares();
		slot = spare;
		spare = -1;
	}
	if (slot >= 0)
		send_spare(slot);
}

int mgi_lazyfork_child(void)
{
	int s = child_spare, sv[2], e;
	char cbuf[CMSG_SPACE(sizeof(int))];
	mgi_msg_t m;
	struct iovec iov = {.iov_base = &m, .iov_len = 0};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			    .msg_controllen = sizeof(cbuf)};
	struct cmsghdr *c;

	child_spare = -1;
	spare = -1;
	asked = false; /* a new process: it asks at its own first fork */
	if (s < 0 || mgi_join.conn < 0 || !mgi_join.seg)
		return -ENOENT;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
		return -errno;
	mgi_msg_init(&m, MGI_MSG_FORKED);
	m.spare.slot = s;
	m.spare.pid = (int32_t)getpid();
	iov.iov_len = m.hdr.len;
	memset(cbuf, 0, sizeof(cbuf));
	c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &sv[1], sizeof(int));
	/* Not waited for: a full queue (a manager far behind) is a reason
	 * to join the ordinary way, not to block the program. */
	e = sendmsg(mgi_join.conn, &mh, MSG_DONTWAIT | MSG_NOSIGNAL) == (ssize_t)m.hdr.len ? 0
											      : errno;
	close(sv[1]);
	if (e) {
		close(sv[0]);
		return -e;
	}
	close(mgi_join.conn); /* the parent's */
	mgi_join.conn = sv[0];
	mgi_join.pid = getpid();
	mgi_join.slot = s;
	mgi_join.me = &mgi_join.seg->acct.procs[s];
	return 0;
}

/* move.c - the manager's requests to an agent: MOVE (`memgrp attach`) and EVICT. */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "account.h"
#include "agent.h"
#include "start.h"
#include "grant.h"
#include "os.h"
#include "proto.h"
#include "size.h"

/*
 * An EVICT answer that could not be sent. Measured (test_vrange "backstop"):
 * a group waiting at its kernel limit cannot charge the socket buffer of a
 * message, send fails with ENOBUFS, and the manager, not knowing what was
 * freed, would wait out its 2 s before asking anyone else, each time. The
 * slot and the wake eventfd need no new kernel memory.
 */
static void answer_in_slot(uint64_t freed)
{
	mgi_proc_slot_t *me = mgi_join.me;

	if (!me)
		return;
	atomic_store_explicit(&me->evict_freed, freed, memory_order_relaxed);
	atomic_fetch_add_explicit(&me->evict_answers, 1, memory_order_release);
	mgi_account_wake(1); /* the wake eventfd, as for a crossing */
}

/*
 * The manager sends MOVE with the new group's segments (its own, then its
 * ancestors') and a slot it claimed there. The handler thread does the move,
 * so no fault is charged half-way: it is the only thread that charges.
 *
 * The pages stay charged in the ancestors the two groups share; below them
 * the charge is taken on the new side first (refused if it does not fit:
 * the process stays where it was) and only then dropped on the old side, by
 * releasing the old slot. A reader may see the pages on both sides for that
 * moment, never on neither. The old segments stay mapped: they are small,
 * and nothing is left that could fault on them.
 */

static void answer(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void answer(int status, const char *fmt, ...)
{
	mgi_msg_t r;
	va_list ap;

	va_start(ap, fmt);
	mgi_msg_reply_vfmt(&r, status, fmt, ap);
	va_end(ap);
	send(mgi_join.conn, &r, r.hdr.len, MSG_DONTWAIT | MSG_NOSIGNAL);
}

/* fds: two a level (control part, accounting part), nfds levels. On
 * success they are kept (set to -1 in fds): a restarted manager is handed
 * them back. */
static void move_to(const mgi_msg_welcome_t *w, int *fds, unsigned nfds)
{
	mgi_segment_t *segs[MGI_DEPTH_MAX];
	unsigned mapped = 0, refused;
	uint64_t pages = atomic_load(&mgi_join.me->charged);
	uint64_t swapped = atomic_load(&mgi_join.me->swapped);
	char held[16], usage[16], max[16];
	bool swap;

	for (; mapped < nfds; mapped++) {
		segs[mapped] = mgi_agent_map_segment(fds[2 * mapped], fds[2 * mapped + 1]);
		if (!segs[mapped]) {
			answer(-EPROTO, "pid %d could not map the segments of group '%s'",
			       (int)mgi_join.pid, w->group);
			goto unmap;
		}
	}
	/* Its pages (and its evicted pages: the new side's swap) leave its
	 * group's own counter and join the new one's (within the grant the
	 * manager gave it for them when the group is nested); ancestors count
	 * them through grants, which the manager moves (grant.h). */
	if (mgi_account_move_charge(segs[0], nfds, &refused, &swap) != 0) {
		mgi_counter_path_t to = mgi_account_path_of(segs[0], nfds);
		if (swap)
			to = mgi_segment_swap_path(&to);
		const mgi_counter_t *c = to.level[refused];
		mgi_size_format((swap ? swapped : pages) * MGI_PAGE_SIZE, held, sizeof(held));
		mgi_size_format(mgi_counter_read(c) * MGI_PAGE_SIZE, usage, sizeof(usage));
		mgi_size_format(mgi_counter_read_max(to.limit[refused]) * MGI_PAGE_SIZE, max, sizeof(max));
		if (swap)
			answer(-ENOMEM, "pid %d has %s evicted, more swap than group '%s' can take "
					"(swap %s, max %s)",
			       (int)mgi_join.pid, held, segs[refused]->ctl.group, usage, max);
		else
			answer(-ENOMEM, "pid %d holds %s, more than group '%s' can take (usage %s, max %s)",
			       (int)mgi_join.pid, held, segs[refused]->ctl.group, usage, max);
		goto unmap;
	}
	mgi_proc_slot_t *me = &segs[0]->acct.procs[w->slot];
	atomic_store(&me->pgfault, atomic_load(&mgi_join.me->pgfault));
	atomic_store(&me->tracked_bytes, atomic_load(&mgi_join.me->tracked_bytes));
	atomic_store(&me->untracked_bytes, atomic_load(&mgi_join.me->untracked_bytes));
	unsigned crossed = mgi_account_move_release(me);

	memcpy(mgi_join.anc, segs, nfds * sizeof(segs[0]));
	for (unsigned i = 0; i < 2 * mgi_join.nsegs; i++)
		if (mgi_join.segfd[i] >= 0)
			close(mgi_join.segfd[i]);
	for (unsigned i = 0; i < 2 * nfds; i++) {
		mgi_join.segfd[i] = fds[i];
		fds[i] = -1;
	}
	mgi_join.nsegs = nfds;
	mgi_join.seg = segs[0];
	mgi_join.slot = w->slot;
	mgi_join.me = me;
	memcpy(mgi_join.group, w->group, sizeof(mgi_join.group));
	mgi_account_moved(crossed);
	mgi_evict_publish();
	mgi_size_format(pages * MGI_PAGE_SIZE, held, sizeof(held));
	answer(0, "pid %d moved to group '%s' with %s", (int)mgi_join.pid, w->group, held);
	return;
unmap:
	for (unsigned i = 0; i < mapped; i++)
		mgi_raw_munmap(segs[i], sizeof(mgi_segment_t));
}

bool mgi_agent_on_manager_message(void)
{
	char buf[sizeof(mgi_msg_t)], cbuf[CMSG_SPACE(sizeof(int) * MGI_AGENT_FDS_MAX)], err[96];
	struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf)};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			    .msg_controllen = sizeof(cbuf)};
	int fds[MGI_AGENT_FDS_MAX];
	unsigned nfds = 0;
	mgi_msg_t msg;
	ssize_t n = recvmsg(mgi_join.conn, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);

	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
		return false; /* the manager is gone; the process goes on as it is */
	if (n < 0)
		return true;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t j = 0; j < k && nfds < MGI_AGENT_FDS_MAX; j++)
			memcpy(&fds[nfds++], CMSG_DATA(c) + j * sizeof(int), sizeof(int));
	}
	switch (mgi_msg_parse(buf, (size_t)n, &msg, err, sizeof(err))) {
	case MGI_MSG_MOVE:
		/* The segments (two fds each), then the manager's eventfd,
		 * which we have. */
		if (nfds == 2 * msg.welcome.nsegments + 1)
			move_to(&msg.welcome, fds, msg.welcome.nsegments);
		else
			answer(-EPROTO, "MOVE came with %u fds, not %u", nfds,
			       2 * msg.welcome.nsegments + 1);
		break;
	case MGI_MSG_EVICT: {
		/* The manager found this process the coldest of a group that
		 * needs room (or above its high limit); or, with 0 pages, its
		 * group is under reclaim and it should show which of its pages
		 * are cold: staged, with no answer. */
		mgi_msg_t r;
		uint64_t asked = msg.evict.pages;
		if (!asked) {
			if (mgi_evict_allowed(0))
				mgi_evict_age();
			break;
		}
		mgi_msg_init(&r, MGI_MSG_EVICTED);
		r.evict.pages = asked;
		/* Volatile pages first (vrange.c: no swap needed), then, in
		 * estimate mode, fast regions' estimate. */
		r.evict.freed = mgi_vrange_purge(asked);
		if (r.evict.freed < asked)
			r.evict.freed += mgi_est_give(asked - r.evict.freed);
		if (r.evict.freed < asked && mgi_evict_allowed(0))
			r.evict.freed += mgi_evict(asked - r.evict.freed);
		if (send(mgi_join.conn, &r, r.hdr.len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0 &&
		    errno != EPIPE && errno != ECONNRESET)
			answer_in_slot(r.evict.freed);
		break;
	}
	case MGI_MSG_GRANTED:
		mgi_account_granted(&msg.grant);
		break;
	case MGI_MSG_SPARE: /* asked for in a deferred start that has ended */
		if (msg.spare.slot >= 0)
			mgi_lazyfork_give_back(msg.spare.slot);
		break;
	default:
		break;
	}
	for (unsigned i = 0; i < nfds; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	return true;
}

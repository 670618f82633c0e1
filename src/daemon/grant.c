/* grant.c - the manager's side of the grant scheme: GRANT requests, take-back, grants for moves. */
#include <errno.h>
#include <stdio.h>
#include <sys/socket.h>
#include <time.h>

#include "grant.h"
#include "oslayer.h"
#include "grantd.h"
#include "size.h"
#include "tree.h"

/*
 * A nested group's agents charge their own counter within its grant; the
 * ancestors' counters are the manager's to charge (src/core/grant.h, and
 * docs/design.md "Trust and permissions"). What an agent asks is bounded by
 * the message (MGI_GRANT_ASK_MAX) and what is given by the ancestors'
 * limits; a group that asks and does not use is taken back from on the
 * tick and whenever an ancestor refuses, before anything is reclaimed. So
 * a group that lies about its usage holds at most its grant of its
 * ancestors' room.
 */

#define TICK_NS (1000ULL * 1000 * 1000)

/* Takes back, from every nested group under top (top included when
 * nested), what it holds beyond its usage and keep: deepest first.
 * Returns the pages returned to top's level (and those below it). */
static uint64_t take_back_under(mgi_manager_t *m, int top, bool swap, uint64_t keep)
{
	mgi_tree_t *t = &m->tree;
	uint64_t back = 0;

	for (unsigned depth = MGI_DEPTH_MAX; depth >= 2; depth--)
		for (int g = 1; g < MGI_GROUPS_MAX; g++) {
			mgi_group_node_t *n = &t->node[g];
			if (!n->used || n->parent <= 0 || mgi_group_depth(n->name) != depth ||
			    (top > 0 && !mgi_tree_is_under(t, g, top)))
				continue;
			back += mgi_grant_take_back_from(n->seg, t->node[n->parent].seg, swap, keep);
		}
	return back;
}

static void answer(struct mgi_conn *c, uint32_t swap, uint64_t pages, uint32_t refused)
{
	mgi_msg_t a;

	mgi_msg_init(&a, MGI_MSG_GRANTED);
	a.grant.swap = swap;
	a.grant.pages = pages;
	a.grant.refused = refused;
	send(c->fd, &a, a.hdr.len, MSG_NOSIGNAL | MSG_DONTWAIT);
}

void mgi_grant_on_request(mgi_manager_t *m, struct mgi_conn *c, const mgi_msg_grant_t *r)
{
	mgi_segment_t *chain[MGI_DEPTH_MAX];
	unsigned n, failed = 0;
	uint64_t given;
	bool swap = r->swap != 0;

	if (c->slot < 0 || c->group < 0 || r->pid != c->pid)
		return; /* not a joined agent's own request: no answer */
	n = mgi_tree_grant_chain(&m->tree, c->group, chain);
	if (n < 2) {
		mgi_manager_log(m, "group '%s': pid %d asked for a grant; a top-level group has "
				   "none (ignored)", m->tree.node[c->group].name, (int)c->pid);
		return;
	}
	given = mgi_grant_give_chain(chain, n, swap, r->pages, &failed);
	if (!given && failed < n) {
		/* Room held unused below the refusing ancestor goes back
		 * first (a sibling's batch), then one more try. */
		int top = c->group;
		for (unsigned l = 0; l < failed; l++)
			top = m->tree.node[top].parent;
		if (take_back_under(m, top, swap, 0))
			given = mgi_grant_give_chain(chain, n, swap, r->pages, &failed);
	}
	mgi_notify_after_uncharge(m, m->tree.node[c->group].parent);
	answer(c, r->swap, given, given ? 0 : failed);
}

void mgi_grant_tick(mgi_manager_t *m)
{
	static uint64_t last;
	uint64_t now = mgi_os_now_ns();

	if (now - last < TICK_NS)
		return;
	last = now;
	if (take_back_under(m, 0, false, MGI_GRANT_BATCH) + take_back_under(m, 0, true, MGI_GRANT_BATCH))
		mgi_notify_after_uncharge(m, 0);
}

void mgi_grant_after_release(mgi_manager_t *m, int g)
{
	mgi_tree_t *t = &m->tree;
	bool any = false;

	/* Up the chain: a child's return may leave its parent's grant unused. */
	for (; g > 0 && t->node[g].parent > 0; g = t->node[g].parent)
		any |= mgi_grant_take_back_from(t->node[g].seg, t->node[t->node[g].parent].seg, false, 0) +
			       mgi_grant_take_back_from(t->node[g].seg, t->node[t->node[g].parent].seg,
							true, 0) > 0;
	if (any)
		mgi_notify_after_uncharge(m, g);
}

void mgi_grant_for_evict(mgi_manager_t *m, int g, uint64_t pages)
{
	mgi_segment_t *chain[MGI_DEPTH_MAX];
	unsigned n = mgi_tree_grant_chain(&m->tree, g, chain);

	if (n < 2)
		return;
	uint64_t used = mgi_counter_read(&chain[0]->acct.swap);
	uint64_t granted = atomic_load(&chain[0]->ctl.swap_granted);
	uint64_t room = granted > used ? granted - used : 0;
	if (room < pages)
		mgi_grant_give_chain(chain, n, true, pages - room, NULL);
}

int mgi_grant_for_move(mgi_manager_t *m, int g, uint64_t pages, uint64_t swapped, char *why,
		       size_t whylen)
{
	mgi_segment_t *chain[MGI_DEPTH_MAX];
	unsigned n = mgi_tree_grant_chain(&m->tree, g, chain), failed = 0;
	char held[16];

	if (n < 2)
		return 0; /* a top-level group: its limit decides, in the agent */
	for (int s = 0; s < 2; s++) {
		uint64_t want = s ? swapped : pages;
		if (!want)
			continue;
		if (!mgi_grant_give_chain(chain, n, s, want, &failed)) {
			int top = g;
			for (unsigned l = 0; l < failed && top > 0; l++)
				top = m->tree.node[top].parent;
			if (!take_back_under(m, top, s, 0) ||
			    !mgi_grant_give_chain(chain, n, s, want, &failed)) {
				mgi_size_format(want * MGI_PAGE_SIZE, held, sizeof(held));
				snprintf(why, whylen, "%s of %s is more than group '%s' can take", held,
					 s ? "swap" : "memory", chain[failed < n ? failed : 0]->ctl.group);
				return -ENOMEM;
			}
		}
	}
	return 0;
}

/* notify.c - registrations (thresholds, pressure levels, OOM) and their eventfds. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "manager.h"
#include "oslayer.h"
#include "page.h"

/*
 * Crossings are counted where they happen: an agent (or the manager, when
 * it uncharges a process that exited) runs the group's threshold check and
 * adds one to the listener's `pending` in the segment. Delivery moves those
 * counts to the eventfds: a count never overflows and nothing is dropped,
 * so the eventfd's value is the number of crossings since the client last
 * read it (no rate limiting).
 *
 * Pressure levels: a group's pressure is how close its usage is to its own
 * hard limit: low from 75 %, medium from 90 %,
 * critical from 98 % (a charge refused by the limit always passes that).
 * Each is an upward-only threshold placed at that fraction of the limit;
 * in hierarchy mode one is placed in the group and in each of its
 * descendants (against their own limits), in local mode in the group only.
 * A group without a limit has no pressure. (memcg's levels follow its
 * reclaim's scan/reclaim ratio; these come earlier, before reclaim.)
 */

static const unsigned pressure_pct[] = {75, 90, 98};

/* The manager's own registration: an upward threshold at the "ask
 * watermark" (90 % of each limited group's limit, placed like a pressure
 * level in hierarchy mode from the root) that starts a cooperative episode
 * while the group still has room, so that cooperating applications are
 * asked while none of their threads is blocked at the limit. Measured
 * reason: a CPython thread that faults at the limit holds the GIL, and the
 * process's cooperator thread could not answer within 1 s. */
#define REG_ASK_ID UINT32_MAX
#define REG_KIND_ASK 100
/* And one just above each group's high limit (memory.high): crossing it upward
 * starts background reclaim down to it (reclaim.c). */
#define REG_HIGH_ID (UINT32_MAX - 1)
#define REG_KIND_HIGH 101

static struct mgi_reg *find_reg(mgi_manager_t *m, uint32_t id)
{
	for (int i = 0; i < MGI_REGS_MAX; i++)
		if (m->regs[i].id == id)
			return &m->regs[i];
	return NULL;
}

static int reg_index(const mgi_manager_t *m, const struct mgi_reg *r)
{
	return (int)(r - m->regs);
}

/* A free listener slot of group g for registration ri, or -1. */
static int take_listener(mgi_manager_t *m, int g, int ri, bool up_only)
{
	for (int l = 0; l < MGI_LISTENERS_MAX; l++) {
		if (m->listener_reg[g][l] >= 0)
			continue;
		m->listener_reg[g][l] = (int16_t)ri;
		atomic_store(&m->tree.node[g].seg->acct.pending[l], 0);
		atomic_store(&m->tree.node[g].seg->ctl.up_only[l], up_only);
		return l;
	}
	return -1;
}

/* Removes registration ri's thresholds and listener slots everywhere. */
static void release_listeners(mgi_manager_t *m, int ri)
{
	mgi_kbackend_release(m, ri);
	for (int g = 0; g < MGI_GROUPS_MAX; g++) {
		if (!m->tree.node[g].used)
			continue;
		mgi_segment_t *seg = m->tree.node[g].seg;
		for (int l = 0; l < MGI_LISTENERS_MAX; l++) {
			if (m->listener_reg[g][l] != ri)
				continue;
			uint64_t usage = mgi_counter_read(&seg->acct.memory);
			for (int c = 0; c < 2; c++)
				mgi_threshold_unregister(&seg->ctl.thresholds[c].set,
							 &seg->acct.thresholds[c], (uint64_t)l, usage);
			m->listener_reg[g][l] = -1;
		}
	}
}

/* Places a pressure registration's thresholds in its group (and, in
 * hierarchy mode, its descendants). Groups without a limit get none. */
static int place_pressure(mgi_manager_t *m, int ri)
{
	struct mgi_reg *r = &m->regs[ri];

	for (int g = 0; g < MGI_GROUPS_MAX; g++) {
		if (!m->tree.node[g].used)
			continue;
		if (g != r->group && !(r->mode == MGI_PRESSURE_HIERARCHY &&
				       mgi_tree_is_under(&m->tree, g, r->group)))
			continue;
		mgi_segment_t *seg = m->tree.node[g].seg;
		uint64_t max = mgi_counter_read_max(&seg->ctl.memory), at;
		if (r->kind == REG_KIND_HIGH) {
			/* One page past the limit: a threshold crossing counts
			 * usage == threshold as crossed, while reclaim starts
			 * only above high. At high itself, usage landing on it
			 * exactly used up the crossing with nothing to evict,
			 * and the rise after it crossed nothing: measured, a
			 * holder stayed at 48 MiB above a 32 MiB high. */
			at = atomic_load(&seg->ctl.memory.high);
			if (at >= MGI_PAGES_UNLIMITED || at >= max)
				continue;
			at++;
		} else {
			if (max >= MGI_PAGES_UNLIMITED)
				continue;
			at = max * pressure_pct[r->level] / 100;
		}
		if (mgi_kbackend_is(m, g)) {
			/* the kernel's threshold; no high limit here (v1 has none) */
			if (r->kind != REG_KIND_HIGH &&
			    mgi_kbackend_arm(m, ri, g, false, (at ? at : 1) * MGI_PAGE_SIZE, true) != 0)
				return -ENOSPC;
			continue;
		}
		int l = take_listener(m, g, ri, true);
		if (l < 0)
			return -ENOSPC;
		if (mgi_threshold_register(&seg->ctl.thresholds[MGI_WATCH_MEMORY].set,
					   &seg->acct.thresholds[MGI_WATCH_MEMORY], at ? at : 1,
					   (uint64_t)l, mgi_counter_read(&seg->acct.memory)) != 0)
			return -ENOSPC;
	}
	return 0;
}

/* Cooperators are counted in their group and each ancestor's segment. */
static void count_cooperator(mgi_manager_t *m, int group, int delta)
{
	for (int g = group; g >= 0; g = m->tree.node[g].parent)
		if (m->tree.node[g].used)
			atomic_fetch_add(&m->tree.node[g].seg->ctl.cooperators, (uint32_t)delta);
}

int mgi_notify_register(mgi_manager_t *m, unsigned ci, int group,
			const mgi_msg_register_t *rq, int efd, char *why, size_t whylen)
{
	int ri, rc = 0;

	for (ri = 0; ri < MGI_REGS_MAX && m->regs[ri].id; ri++)
		;
	if (ri == MGI_REGS_MAX) {
		snprintf(why, whylen, "this manager holds %d registrations, its most", MGI_REGS_MAX);
		return -ENOSPC;
	}
	struct mgi_reg *r = &m->regs[ri];
	*r = (struct mgi_reg){.conn = (int)ci, .efd = efd, .group = group, .kind = rq->kind,
			      .counter = rq->counter, .level = rq->level, .mode = rq->mode,
			      .threshold = rq->threshold};
	if (++m->next_id == 0)
		m->next_id = 1;
	r->id = m->next_id;
	if (r->kind == MGI_REG_THRESHOLD && mgi_kbackend_is(m, group)) {
		/* the kernel's own threshold, in bytes (it checks page counts) */
		if ((rc = mgi_kbackend_arm(m, ri, group, r->counter == MGI_WATCH_MEMSW, r->threshold,
					   false)) != 0) {
			snprintf(why, whylen, "group '%s' (kernel backend): cannot arm the kernel's "
					      "threshold: %s", m->tree.node[group].name, strerror(-rc));
			r->id = 0;
			r->efd = -1;
			return rc;
		}
	} else if (r->kind == MGI_REG_THRESHOLD) {
		mgi_segment_t *seg = m->tree.node[group].seg;
		uint64_t pages = (r->threshold + MGI_PAGE_SIZE - 1) / MGI_PAGE_SIZE;
		int l = take_listener(m, group, ri, false);
		if (l < 0 || mgi_threshold_register(&seg->ctl.thresholds[r->counter].set,
						    &seg->acct.thresholds[r->counter], pages,
						    (uint64_t)l, mgi_counter_read(&seg->acct.memory)) != 0)
			rc = -ENOSPC;
	} else if (r->kind == MGI_REG_PRESSURE) {
		rc = place_pressure(m, ri);
	} else if (r->kind == MGI_REG_COOPERATE) {
		count_cooperator(m, group, +1);
	}
	if (rc != 0) {
		snprintf(why, whylen, "group '%s' has no room for more thresholds (%d per counter, "
				      "%d listeners)", m->tree.node[group].name, MGI_THRESHOLDS_MAX,
			 MGI_LISTENERS_MAX);
		release_listeners(m, ri);
		r->id = 0;
		r->efd = -1;
		return rc; /* the caller still owns efd */
	}
	return (int)r->id;
}

static void free_reg(mgi_manager_t *m, struct mgi_reg *r)
{
	int ri = reg_index(m, r);

	if (r->kind == MGI_REG_COOPERATE) {
		mgi_coop_answered(m, ri); /* if it was being waited on */
		count_cooperator(m, r->group, -1);
	}
	release_listeners(m, ri);
	close(r->efd);
	r->id = 0;
	r->efd = -1;
}

int mgi_notify_unregister(mgi_manager_t *m, unsigned ci, uint32_t id)
{
	struct mgi_reg *r = find_reg(m, id);

	if (!r || r->conn != (int)ci)
		return -ENOENT; /* only its own client may end a registration */
	free_reg(m, r);
	return 0;
}

void mgi_notify_drop_conn(mgi_manager_t *m, unsigned ci)
{
	for (int i = 0; i < MGI_REGS_MAX; i++)
		if (m->regs[i].id && m->regs[i].conn == (int)ci)
			free_reg(m, &m->regs[i]);
}

/* Adds n to a registration's eventfd (never blocking: the client owns the
 * count); a registration whose eventfd cannot take it is dropped, said in
 * the log. */
static void signal_reg(mgi_manager_t *m, struct mgi_reg *r, uint64_t n)
{
	int rc = mgi_manager_efd_add(r->efd, n);

	if (rc == 0)
		return;
	mgi_manager_log(m, "registration %u (pid %d): its eventfd cannot take %llu more (%s): "
			   "dropped", r->id, r->conn >= 0 ? (int)m->conns[r->conn].peer_pid : -1,
			(unsigned long long)n, rc == -EAGAIN ? "its count is near 2^64" : strerror(-rc));
	free_reg(m, r);
}

void mgi_notify_drop_group(mgi_manager_t *m, int group, int parent)
{
	for (int i = 0; i < MGI_REGS_MAX; i++) {
		struct mgi_reg *r = &m->regs[i];
		if (!r->id || r->group != group)
			continue;
		mgi_manager_efd_add(r->efd, 1); /* as memcg does on rmdir */
		if (r->kind == MGI_REG_COOPERATE) {
			/* the group is gone: its ancestors lose the count */
			mgi_coop_answered(m, i);
			count_cooperator(m, parent, -1);
			r->kind = MGI_REG_OOM; /* counted out already */
		}
		free_reg(m, r);
	}
	for (int l = 0; l < MGI_LISTENERS_MAX; l++)
		m->listener_reg[group][l] = -1; /* hierarchy pressure slots there */
}

/* The manager's own watermarks (ask, high) are not events for clients:
 * what they mean for the group is escalate.c's to decide. */
static void report(mgi_manager_t *m, int g, enum mgi_pressure_why why)
{
	mgi_escalate(m, g, &(mgi_pressure_t){.why = why, .req_group = -1, .req_slot = -1});
}

/* After group n's pending crossings were taken: the time the earliest was
 * noted by an agent goes with them, and if a listener was signalled, now
 * minus it is a notification's latency. The processes' word: a time ahead
 * of now, or none, is not counted; a noted crossing whose registration
 * went before delivery stays until the next and lengthens that one. */
static void count_latency(mgi_group_node_t *n, bool signalled)
{
	uint64_t at = atomic_exchange(&n->seg->acct.crossed_ns, 0), now = mgi_os_now_ns();

	/* (crossings for the manager's own watermarks are not notifications) */
	if (!signalled || !at || at > now)
		return;
	n->notify_hist[mgi_segment_us_bucket(now - at)]++;
	n->notify_ns += now - at;
}

void mgi_notify_deliver(mgi_manager_t *m)
{
	for (int g = 0; g < MGI_GROUPS_MAX; g++) {
		if (!m->tree.node[g].used)
			continue;
		mgi_segment_t *seg = m->tree.node[g].seg;
		bool consumed = false, signalled = false;
		for (int l = 0; l < MGI_LISTENERS_MAX; l++) {
			int ri = m->listener_reg[g][l];
			if (ri < 0 || atomic_load_explicit(&seg->acct.pending[l],
							   memory_order_relaxed) == 0)
				continue;
			/* The processes' word: bounded (mgi_tree_audit reports
			 * a count beyond MGI_PENDING_MAX as tampering). */
			uint64_t n = atomic_exchange(&seg->acct.pending[l], 0);
			if (n > MGI_PENDING_MAX)
				n = 1;
			consumed = true;
			if (n && m->regs[ri].kind == REG_KIND_ASK)
				report(m, g, MGI_WHY_ASK);
			else if (n && m->regs[ri].kind == REG_KIND_HIGH)
				report(m, g, MGI_WHY_HIGH);
			else if (n && m->regs[ri].id) {
				signal_reg(m, &m->regs[ri], n);
				signalled = true;
			}
		}
		if (consumed)
			count_latency(&m->tree.node[g], signalled);
	}
}

void mgi_notify_kernel_crossing(mgi_manager_t *m, int ri, int group, uint64_t n)
{
	struct mgi_reg *r = &m->regs[ri];

	if (!r->id || !n)
		return;
	if (r->kind == REG_KIND_ASK)
		report(m, group, MGI_WHY_ASK);
	else if (r->kind != REG_KIND_HIGH)
		signal_reg(m, r, n);
}

void mgi_notify_after_uncharge(mgi_manager_t *m, int group)
{
	unsigned n = 0;

	for (int g = group; g >= 0; g = m->tree.node[g].parent)
		n += mgi_segment_check_thresholds(m->tree.node[g].seg);
	if (n)
		mgi_notify_deliver(m);
}

/* A registration on group R hears of an OOM kill in group G (G's limit was
 * hit) when R is G or under it (memcg v1's rule: those are the processes
 * the kill is for) and also when G is under R (a kill within R's subtree). */
void mgi_notify_oom(mgi_manager_t *m, int group)
{
	for (int i = 0; i < MGI_REGS_MAX; i++) {
		struct mgi_reg *r = &m->regs[i];
		if (r->id && r->kind == MGI_REG_OOM &&
		    (mgi_tree_is_under(&m->tree, r->group, group) ||
		     mgi_tree_is_under(&m->tree, group, r->group)))
			signal_reg(m, &m->regs[i], 1);
	}
}

void mgi_notify_ladder(mgi_manager_t *m, int group)
{
	for (int i = 0; i < MGI_REGS_MAX; i++) {
		struct mgi_reg *r = &m->regs[i];
		if (r->id && r->kind == MGI_REG_LADDER &&
		    (mgi_tree_is_under(&m->tree, r->group, group) ||
		     mgi_tree_is_under(&m->tree, group, r->group)))
			signal_reg(m, &m->regs[i], 1);
	}
}

void mgi_notify_resync(mgi_manager_t *m)
{
	for (int i = 0; i < MGI_REGS_MAX; i++) {
		if (!m->regs[i].id || (m->regs[i].kind != MGI_REG_PRESSURE &&
					m->regs[i].kind != REG_KIND_ASK && m->regs[i].kind != REG_KIND_HIGH))
			continue;
		release_listeners(m, i);
		place_pressure(m, i); /* full: fewer places, said at registration */
	}
}

void mgi_notify_init(mgi_manager_t *m)
{
	struct mgi_reg *r = &m->regs[MGI_REGS_MAX - 1];

	*r = (struct mgi_reg){.id = REG_ASK_ID, .conn = -1, .efd = -1, .group = 0,
			      .kind = REG_KIND_ASK, .level = MGI_PRESSURE_MEDIUM,
			      .mode = MGI_PRESSURE_HIERARCHY};
	place_pressure(m, MGI_REGS_MAX - 1);
	r = &m->regs[MGI_REGS_MAX - 2];
	*r = (struct mgi_reg){.id = REG_HIGH_ID, .conn = -1, .efd = -1, .group = 0,
			      .kind = REG_KIND_HIGH, .mode = MGI_PRESSURE_HIERARCHY};
	place_pressure(m, MGI_REGS_MAX - 2);
}

uint64_t mgi_notify_cooperators(const mgi_manager_t *m, int g)
{
	uint64_t n = 0;

	for (int r = 0; r < MGI_REGS_MAX; r++)
		if (m->regs[r].id && m->regs[r].group == g && m->regs[r].kind == MGI_REG_COOPERATE)
			n++;
	return n;
}

/* grant.c - the manager's side of the grant scheme: GRANT requests, take-back, grants for moves. */
#include <errno.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "grant.h"
#include "oslayer.h"
#include "grantd.h"
#include "oomkill.h"
#include "oslayer.h"
#include "procstatus.h"
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
/* How often claims are judged again at most (grant.h: the evidence). */
#define JUDGE_NS (100ULL * 1000 * 1000)
/* The tick's timer in the manager's poll set (beside conn.h's tags, the
 * backstop's 3 << 32 and the kernel backend's 5 << 32). */
#define TAG_GRANT_TIMER (9ULL << 32)

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

/* How long a claim judged by its processes' mappings must stand before
 * its group is punished for it: an estimate-mode agent forgets a fast
 * region glibc unmapped behind its back at its next once-a-second check,
 * and until then charges what the kernel no longer shows. */
#define MAPS_GRACE_NS (2500ULL * 1000 * 1000)

/* What the manager can verify of a nested group's usage (pages). */
struct evidence {
	uint64_t mem;   /* of its memory usage */
	uint64_t memsw; /* of its memory and swap usage together */
	unsigned nprocs;
	bool by_maps;   /* some process's memory figure is its mappings' */
};

static uint64_t min64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/*
 * A nested group's claim against what the manager can verify (grant.h,
 * mgi_grant_claim_exceeds), per process in its slots (the slots' pids are
 * the manager's word), plus the grants of its groups below (the manager
 * charged them itself):
 * - a process that joined this manager fresh while the group counted
 *   exactly charges its resident pages: its memory is the kernel's
 *   RssAnon + RssShmem (/proc/PID/status);
 * - any other (an estimate-mode process, whose fast regions are charged
 *   at their mapped size, which no RSS shows; one that rejoined after a
 *   restart or moved in, which may have started in estimate mode): what
 *   its mappings allow (/proc/PID/smaps, procstatus.h mgi_smaps_t: the
 *   resident pages of registered regions, the whole size of unregistered
 *   ones the kernel commits);
 * - memory and swap together, for every process when the group claims
 *   swap of its own (evicted pages lie in registered regions, not
 *   resident): its mappings' bound (memsw_kb), never below its memory.
 * A slot whose process is gone (it exited, its release is under way, or it
 * exited while no manager ran) counts as its figures say, clamped to the
 * usage.
 */
static void evidence_of(mgi_manager_t *m, int g, struct evidence *ev)
{
	mgi_tree_t *t = &m->tree;
	mgi_segment_t *seg = t->node[g].seg;
	uint64_t child_swap = 0, swap = mgi_counter_read(&seg->acct.swap);

	*ev = (struct evidence){0};
	for (int c = 1; c < MGI_GROUPS_MAX; c++)
		if (t->node[c].used && t->node[c].parent == g) {
			uint64_t gr = atomic_load(&t->node[c].seg->ctl.granted);
			uint64_t sw = atomic_load(&t->node[c].seg->ctl.swap_granted);
			ev->mem += gr;
			ev->memsw += gr + sw;
			child_swap += sw;
		}
	/* swap of its own processes claimed: their mappings are read */
	bool own_swap = swap > child_swap;
	for (int sl = 0; sl < MGI_PROCS_MAX; sl++) {
		int32_t pid = atomic_load(&seg->ctl.procs[sl].pid);
		mgi_proc_status_t st;
		mgi_smaps_t sm;
		bool exact = false;
		if (pid <= 0)
			continue;
		ev->nprocs++;
		for (unsigned k = 0; k < m->nconns; k++) {
			const struct mgi_conn *c = &m->conns[k];
			if (c->fd >= 0 && c->group == g && c->slot == sl && c->pid == pid) {
				exact = c->exact;
				break;
			}
		}
		uint64_t charged = mgi_segment_slot_charged(seg, sl);
		uint64_t swapped = min64(atomic_load(&seg->acct.procs[sl].swapped), swap);
		if (mgi_proc_status_read(NULL, pid, &st) != 0) {
			ev->mem += charged;
			ev->memsw += charged + swapped;
			continue;
		}
		uint64_t rss = mgi_proc_status_charged_pages(&st, MGI_PAGE_SIZE);
		mgi_pid_stat_t ps;
		if (rss < charged && mgi_pid_stat_read(NULL, pid, &ps) == 0 && mgi_pid_stat_exiting(&ps)) {
			/* on its way out (killed: its memory released
			 * before its slot): as a gone process */
			ev->mem += charged;
			ev->memsw += charged + swapped;
			continue;
		}
		if (exact && !own_swap) {
			ev->mem += rss;
			ev->memsw += rss;
			continue;
		}
		if (mgi_proc_smaps_read(NULL, pid, &sm) != 0) {
			/* gone between the two reads */
			ev->mem += exact ? rss : charged;
			ev->memsw += (exact ? rss : charged) + swapped;
			continue;
		}
		uint64_t mem = exact ? rss : sm.mem_kb / (MGI_PAGE_SIZE >> 10);
		uint64_t memsw = sm.memsw_kb / (MGI_PAGE_SIZE >> 10);
		ev->mem += mem;
		ev->memsw += memsw > mem ? memsw : mem;
		ev->by_maps |= !exact;
	}
}

/*
 * Judges nested group g's claims, memory and swap: believed, nothing
 * happens (a group found lying before is believed again, and said so);
 * beyond the evidence, its grant is cut to the evidence and the slack, and
 * the group is reported (once per finding: tamper_reports). A swap claim
 * is judged against the memory and swap its mappings allow, less the
 * memory usage believed. cut[0] and cut[1]: the memory and swap pages
 * cut. Returns whether the memory claim stands against the evidence (the
 * group is suspect).
 */
static bool judge(mgi_manager_t *m, int g, uint64_t cut[2])
{
	mgi_tree_t *t = &m->tree;
	mgi_group_node_t *n = &t->node[g];
	struct evidence ev;
	uint64_t usage, swap;

	cut[0] = cut[1] = 0;
	if (!n->used || n->parent <= 0)
		return false;
	/* A group refused asks again every few ms while its fault waits:
	 * its /proc figures are read again at most every JUDGE_NS. */
	uint64_t now = mgi_os_now_ns();
	if ((n->grant_suspect || n->swap_suspect) && now - n->judged_ns < JUDGE_NS)
		return n->grant_suspect;
	n->judged_ns = now;
	evidence_of(m, g, &ev);
	usage = mgi_counter_read(&n->seg->acct.memory);
	swap = mgi_counter_read(&n->seg->acct.swap);

	uint64_t cap = ev.mem + mgi_grant_claim_slack(ev.mem, ev.nprocs);
	if (!mgi_grant_claim_exceeds(usage, ev.mem, ev.nprocs)) {
		if (n->grant_suspect)
			mgi_manager_log(m, "group '%s': its usage (%llu KiB) is believed again", n->name,
					(unsigned long long)usage * MGI_PAGE_KIB);
		n->grant_suspect = false;
	} else {
		cut[0] = mgi_grant_cut_to(n->seg, t->node[n->parent].seg, false, cap);
		if (!n->grant_suspect) {
			n->grant_suspect = true;
			n->suspect_by_maps = ev.by_maps;
			n->suspect_since_ns = now;
			n->tamper_reports++;
			mgi_manager_log(m, "group '%s': its accounting was tampered with: it claims %llu "
					   "KiB in use, its %u process(es) hold %llu KiB%s with its groups' "
					   "grants; its grant is cut to %llu KiB (%llu KiB back to '%s') and its "
					   "requests are refused while the claim stands",
					n->name, (unsigned long long)usage * MGI_PAGE_KIB, ev.nprocs,
					(unsigned long long)ev.mem * MGI_PAGE_KIB, ev.by_maps ? " at most (their mappings)" : "",
					(unsigned long long)cap * MGI_PAGE_KIB, (unsigned long long)cut[0] * MGI_PAGE_KIB,
					t->node[n->parent].name);
		}
	}

	/* Swap: memory and swap together within what the mappings allow;
	 * the memory believed (at most its evidence) is taken first. */
	uint64_t swcap = ev.memsw + mgi_grant_claim_slack(ev.memsw, ev.nprocs);
	swcap -= min64(min64(usage, cap), swcap);
	if (swap <= swcap) {
		if (n->swap_suspect)
			mgi_manager_log(m, "group '%s': its swap usage (%llu KiB) is believed again",
					n->name, (unsigned long long)swap * MGI_PAGE_KIB);
		n->swap_suspect = false;
	} else {
		cut[1] = mgi_grant_cut_to(n->seg, t->node[n->parent].seg, true, swcap);
		if (!n->swap_suspect) {
			n->swap_suspect = true;
			n->tamper_reports++;
			mgi_manager_log(m, "group '%s': its accounting was tampered with: it claims %llu "
					   "KiB of swap, its %u process(es) map room for %llu KiB of memory "
					   "and swap with its groups' grants, %llu KiB of it memory in use; its "
					   "swap grant is cut to %llu KiB (%llu KiB back to '%s') and its swap "
					   "requests are refused while the claim stands",
					n->name, (unsigned long long)swap * MGI_PAGE_KIB, ev.nprocs,
					(unsigned long long)ev.memsw * MGI_PAGE_KIB,
					(unsigned long long)min64(usage, cap) * MGI_PAGE_KIB, (unsigned long long)swcap * MGI_PAGE_KIB,
					(unsigned long long)cut[1] * MGI_PAGE_KIB, t->node[n->parent].name);
		}
	}
	return n->grant_suspect;
}

/* Judges every nested group under top (top included when nested),
 * deepest first (a child's grant is its parent's evidence). Returns the
 * pages cut (of swap grants when swap). */
static uint64_t judge_under(mgi_manager_t *m, int top, bool swap)
{
	static uint64_t last;
	mgi_tree_t *t = &m->tree;
	uint64_t all = 0, cut[2], now = mgi_os_now_ns();

	/* Every refused request of a full parent comes here (each waiting
	 * fault asks again every few ms): the processes' /proc figures are
	 * read at most every JUDGE_NS. A group cut meanwhile is refused
	 * without them. */
	if (now - last < JUDGE_NS)
		return 0;
	last = now;

	for (unsigned depth = MGI_DEPTH_MAX; depth >= 2; depth--)
		for (int g = 1; g < MGI_GROUPS_MAX; g++) {
			mgi_group_node_t *n = &t->node[g];
			if (!n->used || n->parent <= 0 || mgi_group_depth(n->name) != depth ||
			    !mgi_tree_is_under(t, g, top))
				continue;
			judge(m, g, cut);
			all += cut[swap];
		}
	return all;
}

/* The first level of a grant chain (0: the group) whose group's claim
 * (memory, or swap) still stands against the evidence, or -1. Only groups
 * found lying before are judged again here: the /proc reads are for them
 * alone. */
static int suspect_level(mgi_manager_t *m, int g, unsigned n, bool swap)
{
	uint64_t cut[2];

	for (unsigned l = 0; l + 1 < n && g > 0; l++, g = m->tree.node[g].parent) {
		mgi_group_node_t *node = &m->tree.node[g];
		if (!(swap ? node->swap_suspect : node->grant_suspect))
			continue;
		bool mem = judge(m, g, cut);
		if (swap ? node->swap_suspect : mem)
			return (int)l;
	}
	return -1;
}

static bool still_suspect(mgi_manager_t *m, int g)
{
	return m->tree.node[g].used && m->tree.node[g].grant_suspect;
}

static unsigned punish_conn[MGI_MANAGER_CONNS_MAX];
static mgi_victim_t punish_cand[MGI_MANAGER_CONNS_MAX];
static int punish_pidfd[MGI_MANAGER_CONNS_MAX];

static void describe_punished(mgi_manager_t *m, size_t i, char *comm, size_t commlen, char *about,
			      size_t aboutlen)
{
	const struct mgi_conn *v = &m->conns[punish_conn[i]];

	snprintf(comm, commlen, "%.*s", MGI_COMM_MAX - 1,
		 m->tree.node[v->group].seg->ctl.procs[v->slot].comm);
	snprintf(about, aboutlen, " (RssAnon + RssShmem)");
}

/*
 * A group whose claim stands asks for more: by its own figure it is past
 * anything it may be given, so it is out of memory, as a group past its
 * limit is: the OOM kill among its own processes (those that joined this
 * manager, sized by the kernel's figures, not their slots), one at a
 * time. Nobody outside the group is chosen.
 */
static void punish(mgi_manager_t *m, int g)
{
	mgi_segment_t *seg = m->tree.node[g].seg;
	char state[96], claim[16];
	size_t n = 0;

	if (mgi_oom_kill_pending(m, g))
		return;
	for (unsigned k = 0; k < m->nconns; k++) {
		struct mgi_conn *c = &m->conns[k];
		mgi_proc_status_t st;
		if (c->fd < 0 || c->slot < 0 || c->pidfd < 0 || c->group != g)
			continue;
		punish_conn[n] = k;
		punish_pidfd[n] = c->pidfd;
		punish_cand[n++] = (mgi_victim_t){
			.pid = c->pid, .group = g,
			.pages = mgi_proc_status_read(NULL, c->pid, &st) == 0
					 ? mgi_proc_status_charged_pages(&st, MGI_PAGE_SIZE)
					 : 0};
	}
	mgi_size_format(mgi_counter_read(&seg->acct.memory) * MGI_PAGE_SIZE, claim, sizeof(claim));
	snprintf(state, sizeof(state), "(it claims %s in use, more than its processes hold)", claim);
	const mgi_oom_kill_t kill = {
		.target = g,
		.state = state,
		.policy = {.total_pages = 0, .min_pages = 0},
		.mark = &seg->ctl.oom_victim,
		.needed = still_suspect,
		.describe = describe_punished,
	};
	mgi_oom_kill(m, &kill, punish_cand, punish_pidfd, n);
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
	/* A group (or an ancestor below the top) whose claim the manager
	 * does not believe gets no more: by its own figure it is past its
	 * grant for good, and its room is not taken from its siblings. */
	int liar = suspect_level(m, c->group, n, swap);
	if (liar < 0) {
		given = mgi_grant_give_chain(chain, n, swap, r->pages, &failed);
		if (!given && failed < n) {
			/* Room held unused below the refusing ancestor goes
			 * back first (a sibling's batch), then one more try;
			 * then what groups there hold beyond the evidence of
			 * their claims, then a last try. */
			int top = c->group;
			for (unsigned l = 0; l < failed; l++)
				top = m->tree.node[top].parent;
			if (take_back_under(m, top, swap, 0))
				given = mgi_grant_give_chain(chain, n, swap, r->pages, &failed);
			if (!given && judge_under(m, top, swap) &&
			    (liar = suspect_level(m, c->group, n, swap)) < 0)
				given = mgi_grant_give_chain(chain, n, swap, r->pages, &failed);
		}
	}
	if (liar >= 0) {
		int g = c->group;
		for (int l = 0; l < liar; l++)
			g = m->tree.node[g].parent;
		given = 0;
		failed = (unsigned)liar;
		/* A swap claim: refused (its evictions fail), nobody killed.
		 * A memory claim judged by mappings waits out the grace
		 * unanswered (the agent asks again in a few ms); then the
		 * group pays. */
		const mgi_group_node_t *node = &m->tree.node[g];
		if (!swap && node->suspect_by_maps &&
		    mgi_os_now_ns() - node->suspect_since_ns < MAPS_GRACE_NS) {
			mgi_notify_after_uncharge(m, m->tree.node[c->group].parent);
			return;
		}
		if (!swap)
			punish(m, g);
	}
	mgi_notify_after_uncharge(m, m->tree.node[c->group].parent);
	answer(c, r->swap, given, given ? 0 : failed);
}

/* Whether a nested group holds grant beyond its usage: what the tick may
 * have to take back once the group's processes free memory (they uncharge
 * their own counter and tell nobody). */
static bool any_unused_grant(const mgi_manager_t *m)
{
	for (int g = 1; g < MGI_GROUPS_MAX; g++) {
		const mgi_group_node_t *n = &m->tree.node[g];
		if (!n->used || n->parent <= 0)
			continue;
		if (atomic_load(&n->seg->ctl.granted) > mgi_counter_read(&n->seg->acct.memory) ||
		    atomic_load(&n->seg->ctl.swap_granted) > mgi_counter_read(&n->seg->acct.swap))
			return true;
	}
	return false;
}

/* Arms (a tick a second) or stops the tick's timer; made at first use. */
static void set_timer(mgi_manager_t *m, bool on)
{
	struct itimerspec its = {0};

	if (m->grant_timerfd < 0) {
		if (!on)
			return;
		m->grant_timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
		if (m->grant_timerfd < 0)
			return; /* the tick runs when the manager wakes, as before */
		if (mgi_manager_watch(m, m->grant_timerfd, TAG_GRANT_TIMER) != 0) {
			close(m->grant_timerfd);
			m->grant_timerfd = -1;
			return;
		}
	}
	if (on) {
		its.it_value.tv_sec = 1;
		its.it_interval.tv_sec = 1;
	}
	if (timerfd_settime(m->grant_timerfd, 0, &its, NULL) == 0)
		m->grant_timer_on = on;
}

bool mgi_grant_event(mgi_manager_t *m, uint64_t tag)
{
	uint64_t v;

	if (tag != TAG_GRANT_TIMER)
		return false;
	if (read(m->grant_timerfd, &v, sizeof(v)) < 0) {
		/* EAGAIN: read already; the tick follows in mgi_manager_poll */
	}
	return true;
}

void mgi_grant_tick(mgi_manager_t *m)
{
	static uint64_t last;
	uint64_t now = mgi_os_now_ns();

	/* (a tenth early: the timer's tick is not held back by one that
	 * other traffic ran a moment before) */
	if (now - last >= TICK_NS - TICK_NS / 10) {
		last = now;
		if (take_back_under(m, 0, false, MGI_GRANT_BATCH) +
		    take_back_under(m, 0, true, MGI_GRANT_BATCH))
			mgi_notify_after_uncharge(m, 0);
	}
	/* An idle manager wakes once a second only while some grant could
	 * come back. */
	bool want = any_unused_grant(m);
	if (want != m->grant_timer_on)
		set_timer(m, want);
}

void mgi_grant_after_release(mgi_manager_t *m, int g)
{
	mgi_tree_t *t = &m->tree;
	bool any = false;

	/* A group found lying lost a process (the liar, killed, often): its
	 * usage (memory, and swap when that claim stood) is recounted from
	 * what its processes' slots say and its groups' grants (the
	 * manager's own), and its claim goes with it; the next refusal
	 * judges it again. */
	if (g > 0 && (t->node[g].grant_suspect || t->node[g].swap_suspect)) {
		mgi_segment_t *seg = t->node[g].seg;
		for (int s = 0; s < 2; s++) {
			if (!(s ? t->node[g].swap_suspect : t->node[g].grant_suspect))
				continue;
			mgi_counter_t *ctr = s ? &seg->acct.swap : &seg->acct.memory;
			uint64_t trusted = 0, usage = mgi_counter_read(ctr);
			for (int sl = 0; sl < MGI_PROCS_MAX; sl++)
				if (atomic_load(&seg->ctl.procs[sl].pid) > 0)
					trusted += s ? min64(atomic_load(&seg->acct.procs[sl].swapped), usage)
						     : mgi_segment_slot_charged(seg, sl);
			for (int c = 1; c < MGI_GROUPS_MAX; c++)
				if (t->node[c].used && t->node[c].parent == g)
					trusted += atomic_load(s ? &t->node[c].seg->ctl.swap_granted
								 : &t->node[c].seg->ctl.granted);
			if (usage > trusted) {
				atomic_fetch_sub(&ctr->usage, usage - trusted);
				mgi_manager_log(m, "group '%s' lost a process while its claim stood: its %s"
						   "usage is recounted from its processes and its groups' "
						   "grants, %llu KiB (%llu KiB claimed)", t->node[g].name,
						s ? "swap " : "", (unsigned long long)trusted * MGI_PAGE_KIB,
						(unsigned long long)usage * MGI_PAGE_KIB);
			}
		}
		t->node[g].grant_suspect = t->node[g].swap_suspect = false;
	}
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
	unsigned n = mgi_tree_grant_chain(&m->tree, g, chain), failed = 0;

	/* a group whose swap claim stands gets no swap grant */
	if (n < 2 || m->tree.node[g].swap_suspect)
		return;
	uint64_t used = mgi_counter_read(&chain[0]->acct.swap);
	uint64_t granted = atomic_load(&chain[0]->ctl.swap_granted);
	uint64_t room = granted > used ? granted - used : 0;
	if (room >= pages || mgi_grant_give_chain(chain, n, true, pages - room, &failed))
		return;
	/* refused: unused swap grants under the refusing ancestor back, then
	 * swap claims there judged, as for a GRANT */
	int top = g;
	for (unsigned l = 0; l < failed && top > 0; l++)
		top = m->tree.node[top].parent;
	if (take_back_under(m, top, true, 0) &&
	    mgi_grant_give_chain(chain, n, true, pages - room, NULL))
		return;
	if (judge_under(m, top, true) && !m->tree.node[g].swap_suspect)
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
			/* unused grants back, then claims judged (memory) */
			bool back = take_back_under(m, top, s, 0) > 0;
			if ((!back || !mgi_grant_give_chain(chain, n, s, want, &failed)) &&
			    (!judge_under(m, top, s) ||
			     !mgi_grant_give_chain(chain, n, s, want, &failed))) {
				mgi_size_format(want * MGI_PAGE_SIZE, held, sizeof(held));
				snprintf(why, whylen, "%s of %s is more than group '%s' can take", held,
					 s ? "swap" : "memory", chain[failed < n ? failed : 0]->ctl.group);
				return -ENOMEM;
			}
		}
	}
	return 0;
}

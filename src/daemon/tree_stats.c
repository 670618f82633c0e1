/* tree_stats.c - a group's figures over its subtree: the STAT reply, the largest process. */
#include "tree.h"

#include <stdio.h>
#include <string.h>

/* The groups whose figures add up in anc's: its subtree, except for the
 * root, whose counter is charged by its own processes only (no path
 * includes it, to keep a shared cache line out of every fault). */
static bool counted_in(const mgi_tree_t *t, int idx, int anc)
{
	return anc == 0 ? idx == 0 : mgi_tree_is_under(t, idx, anc);
}


void mgi_tree_stats(const mgi_tree_t *t, int idx, mgi_stats_t *out)
{
	const mgi_segment_t *seg = t->node[idx].seg;

	memset(out, 0, sizeof(*out));
	out->usage = mgi_counter_read(&seg->acct.memory) * MGI_PAGE_SIZE;
	out->max_usage = atomic_load(&seg->acct.memory.watermark) * MGI_PAGE_SIZE;
	out->limit = mgi_counter_read_max(&seg->ctl.memory) * MGI_PAGE_SIZE;
	out->failcnt = atomic_load(&seg->acct.memory.failcnt);
	out->high = atomic_load(&seg->ctl.memory.high) * MGI_PAGE_SIZE;
	out->low = atomic_load(&seg->ctl.memory.low) * MGI_PAGE_SIZE;
	out->soft = atomic_load(&seg->ctl.memory.soft) * MGI_PAGE_SIZE;
	out->swappiness = atomic_load(&seg->ctl.swappiness);
	out->mode = atomic_load(&seg->ctl.mode);
	out->estimate = out->usage;
	out->swap_usage = mgi_counter_read(&seg->acct.swap) * MGI_PAGE_SIZE;
	out->swap_max_usage = atomic_load(&seg->acct.swap.watermark) * MGI_PAGE_SIZE;
	out->swap_limit = mgi_counter_read_max(&seg->ctl.swap) * MGI_PAGE_SIZE;
	out->memsw_usage = out->usage + out->swap_usage;
	out->under_oom = atomic_load(&seg->ctl.under_oom);
	out->thp_share = atomic_load(&seg->ctl.thp_share);
	for (int g = 0; g < MGI_GROUPS_MAX; g++) {
		if (!t->node[g].used || !counted_in(t, g, idx))
			continue;
		const mgi_segment_t *s = t->node[g].seg;
		out->pgfault += atomic_load(&s->acct.pgfault);
		out->oom_kill += atomic_load(&s->ctl.oom_kill);
		out->oom_pauses += atomic_load(&s->ctl.oom_pauses);
		out->oom_none += atomic_load(&s->ctl.oom_none);
		out->ladder_coop += atomic_load(&s->ctl.ladder_coop);
		out->ladder_coop_enough += atomic_load(&s->ctl.ladder_coop_enough);
		out->ladder_evict += atomic_load(&s->ctl.ladder_evict);
		out->ladder_evict_empty += atomic_load(&s->ctl.ladder_evict_empty);
		out->ladder_purge += atomic_load(&s->ctl.ladder_purge);
		out->oom_handler_asked += atomic_load(&s->ctl.oomh_asked);
		out->oom_handler_kill += atomic_load(&s->ctl.oomh_kill);
		out->oom_handler_raise += atomic_load(&s->ctl.oomh_raise);
		out->oom_handler_resume += atomic_load(&s->ctl.oomh_resume);
		out->oom_handler_fallback += atomic_load(&s->ctl.oomh_fallback);
		out->tamper_reports += t->node[g].tamper_reports;
		out->coop_requests += atomic_load(&s->ctl.coop_requests);
		out->coop_freed += atomic_load(&s->ctl.coop_freed) * MGI_PAGE_SIZE;
		out->pswpout += atomic_load(&s->acct.pswpout);
		out->pswpin += atomic_load(&s->acct.pswpin);
		out->pgmajfault += atomic_load(&s->acct.pgmajfault);
		out->pgdeactivate += atomic_load(&s->acct.pgdeactivate);
		out->pgactivate += atomic_load(&s->acct.pgactivate);
		out->refault += atomic_load(&s->acct.refault);
		out->workingset_activate += atomic_load(&s->acct.workingset_activate);
		out->written_back_pages += atomic_load(&s->acct.written_back);
		out->vrange_purged_pages += atomic_load(&s->acct.vrange_purged_pages);
		out->mode_switches += atomic_load(&s->acct.mode_switches);
		out->thp_promotions += atomic_load(&s->acct.thp_promotions);
		out->thp_demotions += atomic_load(&s->acct.thp_demotions);
		out->thp_fill_bytes += atomic_load(&s->acct.thp_fill_pages) * MGI_PAGE_SIZE;
		out->mode_switch_avg_us += atomic_load(&s->acct.mode_switch_ns); /* a sum, until below */
		for (int b = 0; b < MGI_RECLAIM_BUCKETS; b++)
			out->reclaim_hist[b] += atomic_load(&s->acct.reclaim_hist[b]);
		for (int b = 0; b < MGI_RECLAIM_BUCKETS; b++)
			out->restore_hist[b] += atomic_load(&s->acct.restore_hist[b]);
		out->restore_ns += atomic_load(&s->acct.restore_ns);
		for (int b = 0; b < MGI_RECLAIM_BUCKETS; b++)
			out->notify_hist[b] += t->node[g].notify_hist[b];
		out->notify_ns += t->node[g].notify_ns;
		for (int i = 0; i < MGI_PROCS_MAX; i++) {
			const mgi_proc_slot_t *sl = &s->acct.procs[i];
			if (atomic_load(&s->ctl.procs[i].pid) <= 0)
				continue;
			out->nr_processes++;
			out->tracked_bytes += atomic_load(&sl->tracked_bytes);
			out->untracked_bytes += atomic_load(&sl->untracked_bytes);
			out->staged_bytes += atomic_load(&sl->staged) * MGI_PAGE_SIZE;
			out->stored_pages += atomic_load(&sl->swapped);
			out->compressed_bytes += atomic_load(&sl->stored_bytes);
			out->swap_file_bytes += atomic_load(&sl->file_bytes);
			out->same_filled_pages += atomic_load(&sl->same_filled);
			out->mapped += atomic_load(&sl->est_mapped) * MGI_PAGE_SIZE;
			out->resident += atomic_load(&sl->est_resident) * MGI_PAGE_SIZE;
			out->slow_regions += atomic_load(&sl->est_slow);
			out->fast_regions += atomic_load(&sl->est_fast);
			out->vrange_bytes += atomic_load(&sl->vrange_pages) * MGI_PAGE_SIZE;
			out->thp_huge_pages += atomic_load(&sl->thp_huge_pages);
		}
	}
	out->mode_switch_avg_us = out->mode_switches
					  ? out->mode_switch_avg_us / out->mode_switches / 1000
					  : 0;
	/* The root's counters are its own processes' only (see counted_in);
	 * its swap counter likewise. */
	mgi_stats_stall_quantiles(out);
}

void mgi_tree_stat_msg(const mgi_tree_t *t, int idx, mgi_msg_t *out)
{
	mgi_msg_stat_t *r = &out->stat;

	mgi_msg_init(out, MGI_MSG_STAT);
	mgi_tree_stats(t, idx, &r->figures);
	snprintf(r->group, sizeof(r->group), "%s", t->node[idx].name);
	for (int g = 0; g < MGI_GROUPS_MAX; g++) {
		if (!t->node[g].used || !counted_in(t, g, idx))
			continue;
		const mgi_segment_t *seg = t->node[g].seg;
		for (int i = 0; i < MGI_PROCS_MAX && r->nprocs < MGI_STAT_PROCS_MAX; i++) {
			const mgi_proc_slot_t *sl = &seg->acct.procs[i];
			int32_t pid = atomic_load(&seg->ctl.procs[i].pid);
			if (pid <= 0)
				continue;
			mgi_proc_stat_t *p = &r->procs[r->nprocs++];
			p->pid = pid;
			p->charged = mgi_segment_slot_charged(seg, i) * MGI_PAGE_SIZE;
			p->pgfault = atomic_load(&sl->pgfault);
			memcpy(p->comm, seg->ctl.procs[i].comm, sizeof(p->comm));
			p->comm[sizeof(p->comm) - 1] = '\0';
		}
	}
}

bool mgi_tree_largest(const mgi_tree_t *t, int idx, int *group, int *slot)
{
	uint64_t most = 0;

	for (int g = 0; g < MGI_GROUPS_MAX; g++) {
		if (!t->node[g].used || !mgi_tree_is_under(t, g, idx))
			continue;
		int s = mgi_segment_largest(t->node[g].seg);
		uint64_t c = s >= 0 ? mgi_segment_slot_charged(t->node[g].seg, s) : 0;
		if (c > most) {
			most = c;
			*group = g;
			*slot = s;
		}
	}
	return most > 0;
}

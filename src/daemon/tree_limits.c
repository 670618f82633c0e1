/* tree_limits.c - a group's limits, OOM and huge-page settings written from SET/CREATE (regexes checked first). */
#include "tree.h"

#include <errno.h>
#include <regex.h>
#include <stdio.h>
#include <string.h>

#include "size.h"
#include "tree_int.h"

/* Compiles an OOM regex as the kill will (extended, no submatches):
 * 0, or -EINVAL with regerror's words in why. */
static int regex_ok(const char *what, const char *re, char *why, size_t whylen)
{
	regex_t rx;
	int rc = *re ? regcomp(&rx, re, REG_EXTENDED | REG_NOSUB) : 0;
	char msg[96];

	if (rc == 0) {
		if (*re)
			regfree(&rx);
		return 0;
	}
	regerror(rc, &rx, msg, sizeof(msg));
	snprintf(why, whylen, "--oom-%s '%s': %s", what, re, msg);
	return -EINVAL;
}

int mgi_tree_check_oom(const mgi_msg_set_t *set, char *why, size_t whylen)
{
	int rc = 0;

	/* what mgi_msg_parse checks, again: the embedded manager's limits and
	 * the unit tests come without it */
	if ((set->oom_set & ~MGI_OOM_SET_ALL) ||
	    !memchr(set->oom_prefer, '\0', sizeof(set->oom_prefer)) ||
	    !memchr(set->oom_avoid, '\0', sizeof(set->oom_avoid))) {
		snprintf(why, whylen, "OOM settings: unknown flags or an unterminated regex");
		return -EINVAL;
	}

	if ((set->thp_set & ~MGI_THP_SET_ALL) ||
	    ((set->thp_set & MGI_THP_SET_MODE) && set->thp_mode > MGI_THP_ALWAYS) ||
	    ((set->thp_set & MGI_THP_SET_THRESHOLD) && (set->thp_threshold < 1 || set->thp_threshold > 100)) ||
	    ((set->thp_set & MGI_THP_SET_RATE) && set->thp_rate > MGI_THP_RATE_MAX) ||
	    ((set->thp_set & MGI_THP_SET_WEIGHT) && (set->thp_weight < 1 || set->thp_weight > 10000))) {
		snprintf(why, whylen, "huge pages: mode never, ingens or always; threshold 1 to 100; "
				      "rate at most %u; weight 1 to 10000", MGI_THP_RATE_MAX);
		return -EINVAL;
	}
	if (set->oom_set & MGI_OOM_SET_PREFER)
		rc = regex_ok("prefer", set->oom_prefer, why, whylen);
	if (rc == 0 && (set->oom_set & MGI_OOM_SET_AVOID))
		rc = regex_ok("avoid", set->oom_avoid, why, whylen);
	return rc;
}

/* Writes the OOM settings SET/CREATE names (oom_set): mgi_msg_parse
 * checked the ranges, mgi_tree_set_limits the regexes' syntax first. */
static int set_oom(mgi_segment_t *seg, const mgi_msg_set_t *set)
{
	mgi_segment_ctl_t *c = &seg->ctl;

	if (set->oom_set & MGI_OOM_SET_POLICY)
		c->oom_policy = set->oom_policy;
	if (set->oom_set & MGI_OOM_SET_SCOPE)
		c->oom_scope = set->oom_scope;
	if (set->oom_set & MGI_OOM_SET_SIGNAL) {
		c->oom_signal = set->oom_signal;
		c->oom_grace_ms = set->oom_grace_ms;
	}
	if (set->oom_set & MGI_OOM_SET_PREFER)
		memcpy(c->oom_prefer, set->oom_prefer, sizeof(c->oom_prefer));
	if (set->oom_set & MGI_OOM_SET_AVOID)
		memcpy(c->oom_avoid, set->oom_avoid, sizeof(c->oom_avoid));
	if (set->oom_set & MGI_OOM_SET_DISABLE)
		c->oom_kill_disable = set->oom_kill_disable ? 1 : 0;
	if (set->oom_set & MGI_OOM_SET_PREKILL) {
		memcpy(c->oom_prekill, set->oom_prekill, sizeof(c->oom_prekill));
		c->oom_prekill[sizeof(c->oom_prekill) - 1] = '\0';
		c->oom_prekill_timeout_ms = set->oom_prekill_timeout_ms;
	}
	if (set->oom_set & MGI_OOM_SET_HANDLER)
		c->oom_handler_timeout_ms = set->oom_handler_timeout_ms;
	if (set->oom_set & MGI_OOM_SET_RESERVE)
		c->oom_reserve_pages = (set->oom_reserve + MGI_PAGE_SIZE - 1) / MGI_PAGE_SIZE;
	c->oom_set |= set->oom_set;
	return 0;
}

/* The huge-page settings SET/CREATE names (thp_set), this group's own. */
static void set_thp(mgi_segment_t *seg, const mgi_msg_set_t *set)
{
	mgi_segment_ctl_t *c = &seg->ctl;

	if (set->thp_set & MGI_THP_SET_MODE)
		atomic_store(&c->thp_mode, set->thp_mode);
	if (set->thp_set & MGI_THP_SET_THRESHOLD)
		atomic_store(&c->thp_threshold, set->thp_threshold);
	if (set->thp_set & MGI_THP_SET_RATE)
		atomic_store(&c->thp_rate, set->thp_rate);
	if (set->thp_set & MGI_THP_SET_WEIGHT)
		c->thp_weight = set->thp_weight;
	c->thp_set |= set->thp_set;
}

void mgi_tree_thp_inherit(mgi_tree_t *t)
{
	static const uint32_t defaults[3] = {MGI_THP_NEVER, MGI_THP_THRESHOLD_DEFAULT,
					     MGI_THP_RATE_DEFAULT};

	for (int g = 0; g < MGI_GROUPS_MAX; g++) {
		if (!t->node[g].used)
			continue;
		mgi_segment_ctl_t *c = &t->node[g].seg->ctl;
		_Atomic uint32_t *mine[3] = {&c->thp_mode, &c->thp_threshold, &c->thp_rate};
		for (unsigned k = 0; k < 3; k++) {
			if (c->thp_set & (1u << k))
				continue;
			uint32_t v = defaults[k];
			for (int a = t->node[g].parent; a >= 0; a = t->node[a].parent) {
				const mgi_segment_ctl_t *ac = &t->node[a].seg->ctl;
				if (ac->thp_set & (1u << k)) {
					v = atomic_load(k == 0 ? &ac->thp_mode
							       : k == 1 ? &ac->thp_threshold : &ac->thp_rate);
					break;
				}
			}
			atomic_store(mine[k], v);
		}
	}
}

int mgi_tree_set_limits(mgi_tree_t *t, int idx, const mgi_msg_set_t *set, char *why,
			size_t whylen)
{
	mgi_segment_t *seg = t->node[idx].seg;
	char usage[16];
	int rc;

	/* a bad regex refuses the whole request, before anything changed */
	if ((rc = mgi_tree_check_oom(set, why, whylen)) != 0)
		return rc;
	if (set->memory_max != MGI_SET_KEEP &&
	    mgi_counter_set_max(&seg->acct.memory, &seg->ctl.memory,
				mgi_tree_pages(set->memory_max)) != 0) {
		mgi_size_format(mgi_counter_read(&seg->acct.memory) * MGI_PAGE_SIZE, usage, sizeof(usage));
		snprintf(why, whylen,
			 "the group uses %s, more than the new limit: lower its usage first "
			 "(a --memory-high at the new value has it evicted down to there, "
			 "if it may swap)", usage);
		return -EBUSY;
	}
	if (set->memory_high != MGI_SET_KEEP)
		mgi_counter_set_high(&seg->ctl.memory, mgi_tree_pages(set->memory_high));
	if (set->memory_low != MGI_SET_KEEP)
		mgi_counter_set_low(&seg->ctl.memory, set->memory_low == MGI_SET_UNLIMITED
							? MGI_PAGES_UNLIMITED
							: set->memory_low / MGI_PAGE_SIZE);
	if (set->memory_soft != MGI_SET_KEEP)
		mgi_counter_set_soft(&seg->ctl.memory, mgi_tree_pages(set->memory_soft));
	/* Below the swap usage, a new limit only stops new evictions. */
	if (set->swap_max != MGI_SET_KEEP)
		atomic_store(&seg->ctl.swap.max, mgi_tree_pages(set->swap_max));
	if (set->swappiness != MGI_SET_KEEP)
		atomic_store(&seg->ctl.swappiness, (uint32_t)set->swappiness);
	if (set->mode != MGI_SET_KEEP)
		atomic_store(&seg->ctl.mode, (uint32_t)set->mode);
	set_thp(seg, set);
	mgi_tree_thp_inherit(t);
	return set_oom(seg, set);
}

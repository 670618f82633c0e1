/* victim.c - the one OOM victim choice: prefer/avoid tiers, then the group's policy (largest by default), ties to the youngest. */
#include "victim.h"

#include <errno.h>
#include <string.h>

static const char *const policy_names[] = {"largest", "newest", "oldest", "priority", "growth"};

const char *mgi_oom_policy_name(unsigned policy)
{
	return policy <= MGI_OOM_POLICY_MAX ? policy_names[policy] : "?";
}

int mgi_oom_policy_parse(const char *name)
{
	for (unsigned i = 0; name && i <= MGI_OOM_POLICY_MAX; i++)
		if (strcmp(name, policy_names[i]) == 0)
			return (int)i;
	return -EINVAL;
}

static int clamp_adj(int adj)
{
	if (adj < MGI_VICTIM_ADJ_MIN)
		return MGI_VICTIM_ADJ_MIN;
	return adj > MGI_VICTIM_ADJ_MAX ? MGI_VICTIM_ADJ_MAX : adj;
}

uint64_t mgi_victim_score(const mgi_victim_t *v, const mgi_victim_policy_t *policy)
{
	int adj = clamp_adj(v->adj);

	if (v->protected_ || v->tried || adj == MGI_VICTIM_ADJ_MIN || v->pages < policy->min_pages)
		return 0;
	/* What memory.low protects is not what a kill would win back from
	 * the group's point of view: the size ranked is the rest. */
	uint64_t pages = v->pages - (v->low_pages < v->pages ? v->low_pages : v->pages);
	/* total_pages / 1000 first: no overflow for any adj (a thousandth
	 * of the total is the kernel's unit of adj too). 1 + ...: 0 is left
	 * to say "not eligible", and a candidate holding nothing is still one. */
	uint64_t unit = policy->total_pages / 1000, bonus = unit * (uint64_t)(adj < 0 ? -adj : adj);
	if (adj < 0)
		return 1 + (pages > bonus ? pages - bonus : 0);
	return pages >= UINT64_MAX - 1 - bonus ? UINT64_MAX : 1 + pages + bonus;
}

static int tier(const mgi_victim_t *v)
{
	return v->prefer ? 2 : v->avoid ? 0 : 1;
}

/* The policy's own key: > 0 when a ranks before b, < 0 after, 0 a tie. */
static int by_policy(const mgi_victim_t *a, const mgi_victim_t *b, unsigned policy)
{
	switch (policy) {
	case MGI_OOM_NEWEST:
		/* an unknown age (0) is not taken for the newest */
		if (!a->age_ms != !b->age_ms)
			return a->age_ms ? 1 : -1;
		return a->age_ms < b->age_ms ? 1 : a->age_ms > b->age_ms ? -1 : 0;
	case MGI_OOM_OLDEST:
		return a->age_ms > b->age_ms ? 1 : a->age_ms < b->age_ms ? -1 : 0;
	case MGI_OOM_PRIORITY:
		return a->priority > b->priority ? 1 : a->priority < b->priority ? -1 : 0;
	case MGI_OOM_GROWTH:
		return a->growth > b->growth ? 1 : a->growth < b->growth ? -1 : 0;
	default:
		return 0; /* largest: the score decides */
	}
}

/* Whether candidate a (score sa) ranks before b (score sb); a later index
 * never wins a full tie. */
static bool ranks_before(const mgi_victim_t *a, uint64_t sa, const mgi_victim_t *b, uint64_t sb,
			 unsigned policy)
{
	if (tier(a) != tier(b))
		return tier(a) > tier(b);
	int k = by_policy(a, b, policy);
	if (k)
		return k > 0;
	if (sa != sb)
		return sa > sb;
	return a->age_ms < b->age_ms;
}

static const char *policy_reason(unsigned policy)
{
	switch (policy) {
	case MGI_OOM_NEWEST: return "the newest (--oom-policy newest)";
	case MGI_OOM_OLDEST: return "the oldest (--oom-policy oldest)";
	case MGI_OOM_PRIORITY: return "the highest --oom-priority (--oom-policy priority)";
	case MGI_OOM_GROWTH: return "the fastest growing (--oom-policy growth)";
	default: return "the largest";
	}
}

int mgi_victim_choose(const mgi_victim_t *cand, size_t n, const mgi_victim_policy_t *policy,
		      const char **reason)
{
	size_t protected_ = 0, tried = 0, small = 0;
	uint64_t best_score = 0;
	int best = -1;
	bool preferred = false, others = false, rivals = false;

	for (size_t i = 0; i < n; i++) {
		const mgi_victim_t *v = &cand[i];
		uint64_t s = mgi_victim_score(v, policy);
		if (!s) {
			if (v->tried)
				tried++;
			else if (v->protected_ || clamp_adj(v->adj) == MGI_VICTIM_ADJ_MIN)
				protected_++;
			else
				small++;
			continue;
		}
		if (best >= 0 && !ranks_before(v, s, &cand[best], best_score, policy->policy))
			continue;
		best = (int)i;
		best_score = s;
	}
	if (best >= 0) {
		const mgi_victim_t *b = &cand[best];
		for (size_t i = 0; i < n; i++) {
			if (!mgi_victim_score(&cand[i], policy))
				continue;
			/* another tier was passed over: a regex decided, unless
			 * the chosen one had rivals in its own tier */
			others = others || tier(&cand[i]) != tier(b);
			rivals = rivals || ((size_t)best != i && tier(&cand[i]) == tier(b));
			/* Was the preference (adj) decisive? The largest by pages alone. */
			preferred = preferred || (tier(&cand[i]) == tier(b) && cand[i].pages > b->pages);
		}
	}
	if (reason) {
		if (best >= 0 && others && cand[best].prefer)
			*reason = "its command line matches --oom-prefer";
		else if (best >= 0 && others && !rivals)
			*reason = "every other candidate's command line matches --oom-avoid";
		else if (best >= 0 && policy->policy != MGI_OOM_LARGEST && policy->policy <= MGI_OOM_POLICY_MAX)
			*reason = policy_reason(policy->policy);
		else if (best >= 0)
			*reason = preferred ? "the highest score once oom_score_adj is counted"
					    : "the largest";
		else if (!n)
			*reason = "no candidates";
		else if (protected_ == n)
			*reason = "every candidate is protected";
		else if (tried == n)
			*reason = "every candidate's kill failed";
		else if (small == n)
			*reason = "no candidate holds enough to be worth a kill";
		else
			*reason = "every candidate is protected, already tried or holds too little";
	}
	return best;
}

void mgi_victim_group_init(mgi_victim_t *acc, int group)
{
	*acc = (mgi_victim_t){.group = group, .priority = MGI_OOM_PRIORITY_MIN, .protected_ = true,
			      .avoid = true};
}

void mgi_victim_group_add(mgi_victim_t *acc, const mgi_victim_t *member,
			  const mgi_victim_policy_t *policy)
{
	/* saturating sums: figures come from hostile slots, clamped by the
	 * caller, but a sum of many must not wrap either */
	acc->pages = acc->pages > UINT64_MAX - member->pages ? UINT64_MAX : acc->pages + member->pages;
	acc->low_pages = acc->low_pages > UINT64_MAX - member->low_pages ? UINT64_MAX
									  : acc->low_pages + member->low_pages;
	acc->growth = acc->growth > UINT64_MAX - member->growth ? UINT64_MAX : acc->growth + member->growth;
	if (member->age_ms > acc->age_ms)
		acc->age_ms = member->age_ms;
	mgi_victim_policy_t any = *policy;
	any.min_pages = 0; /* a group's members are judged by the group's size */
	if (!mgi_victim_score(member, &any))
		return;
	acc->protected_ = false;
	if (member->priority > acc->priority)
		acc->priority = member->priority;
	acc->prefer = acc->prefer || member->prefer;
	acc->avoid = acc->avoid && member->avoid;
}

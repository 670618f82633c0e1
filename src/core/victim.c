/* victim.c - the one OOM victim choice: largest score (pages + preference), ties to the youngest. */
#include "victim.h"

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
	/* total_pages / 1000 first: no overflow for any adj (a thousandth
	 * of the total is the kernel's unit of adj too). 1 + ...: 0 is left
	 * to say "not eligible", and a candidate holding nothing is still one. */
	uint64_t unit = policy->total_pages / 1000, bonus = unit * (uint64_t)(adj < 0 ? -adj : adj);
	if (adj < 0)
		return 1 + (v->pages > bonus ? v->pages - bonus : 0);
	return v->pages >= UINT64_MAX - 1 - bonus ? UINT64_MAX : 1 + v->pages + bonus;
}

int mgi_victim_choose(const mgi_victim_t *cand, size_t n, const mgi_victim_policy_t *policy,
		      const char **reason)
{
	size_t protected_ = 0, tried = 0, small = 0;
	uint64_t best_score = 0;
	int best = -1;
	bool preferred = false;

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
		if (best >= 0 && (s < best_score || (s == best_score && v->age_ms >= cand[best].age_ms)))
			continue;
		best = (int)i;
		best_score = s;
	}
	if (best >= 0) {
		/* Was the preference decisive? The largest by pages alone. */
		for (size_t i = 0; i < n && !preferred; i++)
			preferred = mgi_victim_score(&cand[i], policy) && cand[i].pages > cand[best].pages;
	}
	if (reason) {
		if (best >= 0)
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

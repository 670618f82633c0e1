/* thpshare.c - huge pages shared fairly among groups (Ingens' share with an idle penalty) and /proc/buddyinfo's free order-9 blocks (pure). */
#include "thpshare.h"

#include <errno.h>
#include <string.h>

#define SHARES_MAX 256u /* the manager's groups at most (MGI_GROUPS_MAX) */

/* Skips spaces and tabs from *p up to end. */
static void skip_blank(const char **p, const char *end)
{
	while (*p < end && (**p == ' ' || **p == '\t'))
		(*p)++;
}

/* A decimal number at *p (at least one digit, no overflow): 0, or -1. */
static int number(const char **p, const char *end, uint64_t *v)
{
	const char *s = *p;

	*v = 0;
	while (*p < end && **p >= '0' && **p <= '9') {
		uint64_t d = (uint64_t)(**p - '0');
		if (*v > (UINT64_MAX - d) / 10)
			return -1;
		*v = *v * 10 + d;
		(*p)++;
	}
	return *p > s ? 0 : -1;
}

/* One line [p, end): "Node N, zone NAME c0 c1 ...": adds its free order-9
 * blocks to out. 0, or -1. */
static int buddy_line(const char *p, const char *end, mgi_buddy_t *out)
{
	uint64_t node, c, blocks = 0;
	unsigned order = 0;

	if (end - p < 5 || memcmp(p, "Node ", 5) != 0)
		return -1;
	p += 5;
	if (number(&p, end, &node) != 0 || node >= MGI_BUDDY_NODES_MAX || p >= end || *p != ',')
		return -1;
	p++;
	skip_blank(&p, end);
	if (end - p < 5 || memcmp(p, "zone ", 5) != 0)
		return -1;
	p += 5;
	skip_blank(&p, end);
	const char *name = p;
	while (p < end && *p != ' ' && *p != '\t')
		p++;
	if (p == name)
		return -1;
	for (;;) {
		skip_blank(&p, end);
		if (p == end)
			break;
		if (order >= MGI_BUDDY_ORDERS_MAX || number(&p, end, &c) != 0)
			return -1;
		if (order >= MGI_HUGE_ORDER) {
			unsigned shift = order - MGI_HUGE_ORDER;
			if (c > (UINT64_MAX >> shift) || blocks > UINT64_MAX - (c << shift))
				return -1;
			blocks += c << shift;
		}
		order++;
	}
	if (order == 0 || out->huge_free > UINT64_MAX - blocks)
		return -1;
	out->huge_free += blocks;
	out->node_huge_free[node] += blocks;
	if (node + 1 > out->nodes)
		out->nodes = (uint32_t)node + 1;
	return 0;
}

int mgi_buddyinfo_parse(const char *text, size_t len, mgi_buddy_t *out)
{
	const char *p = text, *end = text + len;
	unsigned lines = 0;

	memset(out, 0, sizeof(*out));
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *eol = nl ? nl : end;
		if (eol > p) {
			if (buddy_line(p, eol, out) != 0)
				goto bad;
			lines++;
		}
		p = nl ? nl + 1 : end;
	}
	if (lines)
		return 0;
bad:
	memset(out, 0, sizeof(*out));
	return -EINVAL;
}

/* A sibling's weight over Waldspurger's idle cost f + k (1 - f), f the
 * active fraction of `huge` (1 with none), k = 100 / (100 - tax). */
static double adjusted(uint32_t weight, uint64_t huge, uint64_t idle, unsigned tax_pct)
{
	double w = weight ? weight : 1;
	if (w > MGI_THP_WEIGHT_MAX)
		w = MGI_THP_WEIGHT_MAX;
	if (!huge)
		return w;
	double f = 1.0 - (double)(idle < huge ? idle : huge) / (double)huge;
	double k = 100.0 / (double)(100 - tax_pct);
	return w / (f + k * (1.0 - f));
}

/* The parents that make a tree: an index out of range, the group itself
 * or a cycle make a top-level group. depth[] from them. */
static void tree_of(const mgi_thp_group_in_t *in, unsigned n, int *parent, unsigned *depth)
{
	for (unsigned i = 0; i < n; i++)
		parent[i] = in[i].parent >= 0 && (unsigned)in[i].parent < n && (unsigned)in[i].parent != i
				    ? in[i].parent : -1;
	for (unsigned i = 0; i < n; i++) {
		unsigned d = 0;
		for (int a = parent[i]; a >= 0 && d <= n; a = parent[a])
			d++;
		if (d > n)
			parent[i] = -1; /* a cycle above it */
	}
	for (unsigned i = 0; i < n; i++) {
		depth[i] = 0;
		for (int a = parent[i]; a >= 0; a = parent[a])
			depth[i]++;
	}
}

int mgi_thp_shares(const mgi_thp_group_in_t *in, unsigned n, uint64_t total, bool scarce,
		   unsigned tax_pct, mgi_thp_group_out_t *out)
{
	int parent[SHARES_MAX];
	unsigned depth[SHARES_MAX], maxd = 0;
	uint64_t sub_huge[SHARES_MAX], sub_idle[SHARES_MAX];
	double sub_adj[SHARES_MAX], self_adj[SHARES_MAX], denom[SHARES_MAX], share[SHARES_MAX];
	double top = 0;
	bool waiting = false;

	if (n > SHARES_MAX || tax_pct > 99)
		return -EINVAL;
	tree_of(in, n, parent, depth);
	for (unsigned i = 0; i < n; i++) {
		uint64_t idle = in[i].idle < in[i].huge ? in[i].idle : in[i].huge;
		sub_huge[i] = 0;
		sub_idle[i] = 0;
		for (int a = (int)i; a >= 0; a = parent[a]) {
			sub_huge[a] += in[i].huge;
			sub_idle[a] += idle;
		}
		if (depth[i] > maxd)
			maxd = depth[i];
	}
	for (unsigned i = 0; i < n; i++) {
		sub_adj[i] = adjusted(in[i].weight, sub_huge[i], sub_idle[i], tax_pct);
		self_adj[i] = adjusted(in[i].weight, in[i].huge, in[i].idle, tax_pct);
		denom[i] = self_adj[i];
	}
	for (unsigned i = 0; i < n; i++) {
		if (parent[i] < 0)
			top += sub_adj[i];
		else
			denom[parent[i]] += sub_adj[i];
	}
	/* Down the tree, a level at a time: a parent's share before its children's. */
	for (unsigned d = 0; d <= maxd; d++)
		for (unsigned i = 0; i < n; i++) {
			if (depth[i] != d)
				continue;
			share[i] = parent[i] < 0 ? (double)total * sub_adj[i] / top
						 : share[parent[i]] * sub_adj[i] / denom[parent[i]];
			out[i].share = (uint64_t)share[i];
			out[i].own = (uint64_t)(share[i] * self_adj[i] / denom[i]);
		}
	for (unsigned i = 0; i < n; i++)
		waiting |= in[i].wants && in[i].huge < out[i].own;
	for (unsigned i = 0; i < n; i++) {
		out[i].stop = scarce && in[i].huge >= out[i].own;
		out[i].demote = scarce && waiting && in[i].huge > out[i].own;
	}
	return 0;
}

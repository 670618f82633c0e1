/* thpshare.h - huge pages shared fairly among groups (Ingens' share with an idle penalty) and /proc/buddyinfo's free order-9 blocks (pure). */
#ifndef MGI_CORE_THPSHARE_H
#define MGI_CORE_THPSHARE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Order of a huge page (2 MiB of 4 KiB pages). */
#define MGI_HUGE_ORDER 9
#define MGI_BUDDY_NODES_MAX 64
#define MGI_BUDDY_ORDERS_MAX 16

/* What /proc/buddyinfo says free: order-9 blocks (a free block of order
 * k >= 9 counts 2^(k-9)), in all and per NUMA node. */
typedef struct mgi_buddy {
	uint64_t huge_free;
	uint64_t node_huge_free[MGI_BUDDY_NODES_MAX];
	uint32_t nodes; /* highest node number seen + 1 */
} mgi_buddy_t;

/*
 * Parses /proc/buddyinfo's text (len bytes, no NUL needed): lines
 * "Node N, zone NAME c0 c1 ... ck" (k + 1 <= MGI_BUDDY_ORDERS_MAX counts).
 * Returns 0, or -EINVAL (no line, a malformed one, a node number of
 * MGI_BUDDY_NODES_MAX or more, a count that overflows): then *out is
 * zeroed.
 */
int mgi_buddyinfo_parse(const char *text, size_t len, mgi_buddy_t *out);

/* One group, as the manager sees it (indexes into the same array). */
typedef struct mgi_thp_group_in {
	int parent;      /* index of its parent in the array; -1: top level */
	uint32_t weight; /* --thp-weight, 1..MGI_THP_WEIGHT_MAX (0 taken as 1) */
	uint64_t huge;   /* huge pages its own processes hold now */
	uint64_t idle;   /* of those, idle (no access seen lately); <= huge */
	bool wants;      /* its processes have blocks waiting to be promoted */
} mgi_thp_group_in_t;

typedef struct mgi_thp_group_out {
	uint64_t share;  /* huge pages its subtree is entitled to */
	uint64_t own;    /* of share: its own processes' part */
	bool stop;       /* promote no more (scarce, and at or over `own`) */
	bool demote;     /* split its coldest huge page (over `own` while another waits under its own) */
} mgi_thp_group_out_t;

#define MGI_THP_WEIGHT_MAX 10000
#define MGI_THP_WEIGHT_DEFAULT 100
#define MGI_THP_IDLE_TAX_DEFAULT 50 /* percent: ESX's and Ingens' default */

/*
 * Shares `total` huge pages (those held plus those the host could give:
 * the caller's sum) among n groups (n <= 256), down the hierarchy: the top
 * level's groups share `total`; a group's share is split among its
 * children and its own processes (who count as one more child, with the
 * group's weight). Each sibling's part is proportional to its weight
 * divided by Waldspurger's idle cost f + k (1 - f): f the active fraction
 * of the huge pages in its subtree (1 with none), k = 1 / (1 - tax) with
 * tax in 0..99 percent. With `scarce` set, a group whose own processes hold
 * their part (own) or more stops promoting; one above it demotes when
 * another group waits below its own part. Without `scarce` nothing stops.
 * A group whose parent index is out of range or makes a cycle is treated
 * as top-level. Returns -EINVAL for n too large or a bad tax, else 0.
 */
int mgi_thp_shares(const mgi_thp_group_in_t *in, unsigned n, uint64_t total, bool scarce,
		   unsigned tax_pct, mgi_thp_group_out_t *out);

#endif

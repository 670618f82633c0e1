/* test_tree.c - the manager's group tree: creation, removal, paths, subtree figures. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "harness.h"
#include "tree.h"
#include "victim.h"

#define PAGE 4096ULL
#define UNLIMITED MGI_SET_UNLIMITED

static mgi_tree_t t;
static bool t_live;
static char why[256];

/* A fresh tree for each case (the previous case's is destroyed even if it
 * failed half-way). */
static int fresh(void)
{
	if (t_live)
		mgi_tree_destroy(&t);
	t_live = false;
	int rc = mgi_tree_init(&t, 16);
	t_live = rc == 0;
	return rc;
}

/* Creates a group that must be creatable; returns its index or -1. */
static int make(const char *name, uint64_t memory_max)
{
	why[0] = '\0';
	int rc = mgi_tree_create(&t, name, memory_max, why, sizeof(why));
	if (rc <= 0) {
		fprintf(stderr, "  create '%s': %d %s\n", name, rc, why);
		return -1;
	}
	return rc;
}

static mgi_segment_t *seg_of(int idx)
{
	return t.node[idx].seg;
}

/* Claims a slot for pid in a group's segment and charges what it holds,
 * as its agent would: the group's path, then the slot (the manager
 * believes a slot no further than the group's usage). */
static int proc_in(int idx, int32_t pid, uint64_t charged_pages)
{
	int s = mgi_segment_claim(seg_of(idx), pid);
	if (s >= 0) {
		mgi_counter_path_t p = mgi_tree_path(&t, idx);
		mgi_counter_charge(&p, charged_pages);
		atomic_store(&seg_of(idx)->acct.procs[s].charged, charged_pages);
	}
	return s;
}

/* SET with only a hard limit, as `memgrp set GROUP -m SIZE` sends. */
static int set_max(int g, uint64_t bytes)
{
	mgi_msg_set_t set;
	memset(&set, 0, sizeof(set));
	set.memory_max = bytes;
	set.memory_high = set.memory_low = set.memory_soft = MGI_SET_KEEP;
	set.swap_max = set.swappiness = MGI_SET_KEEP;
	return mgi_tree_set_limits(&t, g, &set, why, sizeof(why));
}

/* The OOM settings SET names: stored as given, each flag alone; a bad
 * regex or unknown flag refuses the whole request before anything
 * changes. */
static void oom_settings_are_checked_then_stored(void)
{
	mgi_msg_set_t set;

	CHECK_INT_EQ(fresh(), 0);
	int web = make("web", 64 * PAGE);
	CHECK(web > 0);
	memset(&set, 0, sizeof(set));
	set.memory_max = 32 * PAGE;
	set.memory_high = set.memory_low = set.memory_soft = MGI_SET_KEEP;
	set.swap_max = set.swappiness = set.mode = set.backend = MGI_SET_KEEP;
	set.oom_set = MGI_OOM_SET_PREFER;
	strcpy(set.oom_prefer, "(unclosed");
	CHECK_INT_EQ(mgi_tree_set_limits(&t, web, &set, why, sizeof(why)), -EINVAL);
	CHECK_MSG(strstr(why, "--oom-prefer '(unclosed'") != NULL, "why: %s", why);
	CHECK_EQ(mgi_counter_read_max(&seg_of(web)->ctl.memory), 64); /* unchanged */
	CHECK_INT_EQ((int)seg_of(web)->ctl.oom_set, 0);
	set.oom_set = 1u << 9;
	CHECK_INT_EQ(mgi_tree_set_limits(&t, web, &set, why, sizeof(why)), -EINVAL);
	set.oom_set = MGI_OOM_SET_POLICY | MGI_OOM_SET_AVOID;
	set.oom_policy = MGI_OOM_NEWEST;
	strcpy(set.oom_avoid, "^postgres");
	CHECK_INT_EQ(mgi_tree_set_limits(&t, web, &set, why, sizeof(why)), 0);
	const mgi_segment_ctl_t *c = &seg_of(web)->ctl;
	CHECK_INT_EQ((int)c->oom_set, MGI_OOM_SET_POLICY | MGI_OOM_SET_AVOID);
	CHECK_INT_EQ((int)c->oom_policy, MGI_OOM_NEWEST);
	CHECK_STR_EQ(c->oom_avoid, "^postgres");
	CHECK_STR_EQ(c->oom_prefer, ""); /* not named: not taken from the request */
	CHECK_EQ(mgi_counter_read_max(&c->memory), 32);
	/* a later SET naming the scope alone keeps the policy */
	set.oom_set = MGI_OOM_SET_SCOPE;
	set.oom_scope = MGI_OOM_SCOPE_GROUP;
	set.oom_policy = MGI_OOM_LARGEST;
	CHECK_INT_EQ(mgi_tree_set_limits(&t, web, &set, why, sizeof(why)), 0);
	CHECK_INT_EQ((int)c->oom_policy, MGI_OOM_NEWEST);
	CHECK_INT_EQ((int)c->oom_scope, MGI_OOM_SCOPE_GROUP);
	CHECK_INT_EQ((int)c->oom_set, MGI_OOM_SET_POLICY | MGI_OOM_SET_AVOID | MGI_OOM_SET_SCOPE);
}

static void init_makes_the_root(void)
{
	CHECK_INT_EQ(fresh(), 0);
	CHECK_INT_EQ(mgi_tree_find(&t, ""), 0);
	CHECK(t.node[0].used);
	CHECK_STR_EQ(t.node[0].name, "");
	CHECK_INT_EQ(t.node[0].parent, -1);
	CHECK_EQ(t.node[0].children, 0);
	CHECK(t.node[0].segfd >= 0);
	CHECK(t.node[0].seg != NULL);
	CHECK(mgi_segment_valid(t.node[0].seg, sizeof(mgi_segment_t)));
	CHECK_STR_EQ(t.node[0].seg->ctl.group, "");
	CHECK_EQ(atomic_load(&t.node[0].seg->ctl.fault_around), 16);
	CHECK_EQ(t.fault_around, 16);
	/* Only the root. */
	for (int i = 1; i < MGI_GROUPS_MAX; i++)
		CHECK(!t.node[i].used);
	CHECK_INT_EQ(mgi_tree_find(&t, "web"), -1);
	mgi_stats_t st;
	mgi_tree_stats(&t, 0, &st);
	CHECK_EQ(st.usage, 0);
	CHECK_EQ(st.nr_processes, 0);
	CHECK_EQ(st.limit, MGI_PAGES_UNLIMITED * PAGE);
}

static void create_needs_the_parent(void)
{
	CHECK_INT_EQ(fresh(), 0);
	CHECK_INT_EQ(mgi_tree_create(&t, "web/api", UNLIMITED, why, sizeof(why)), -ENOENT);
	CHECK_MSG(strstr(why, "create the parent first") != NULL, "why: %s", why);
	CHECK_MSG(strstr(why, "'web'") != NULL, "why: %s", why);
	CHECK_INT_EQ(mgi_tree_find(&t, "web/api"), -1);

	int web = make("web", UNLIMITED);
	CHECK(web > 0);
	CHECK_INT_EQ(mgi_tree_find(&t, "web"), web);
	int api = make("web/api", UNLIMITED);
	CHECK(api > 0 && api != web);
	CHECK_INT_EQ(mgi_tree_find(&t, "web/api"), api);
	CHECK_INT_EQ(t.node[api].parent, web);
	CHECK_INT_EQ(t.node[web].parent, 0);
	CHECK_EQ(t.node[0].children, 1);
	CHECK_EQ(t.node[web].children, 1);
	CHECK_EQ(t.node[api].children, 0);
	CHECK_STR_EQ(t.node[api].name, "web/api");
	CHECK_STR_EQ(seg_of(api)->ctl.group, "web/api");
	CHECK(mgi_segment_valid(seg_of(api), sizeof(mgi_segment_t)));
	CHECK(t.node[api].segfd >= 0 && t.node[api].segfd != t.node[web].segfd);
	/* Deeper than the parent that exists: still refused. */
	CHECK_INT_EQ(mgi_tree_create(&t, "web/db/x", UNLIMITED, why, sizeof(why)), -ENOENT);
	CHECK_MSG(strstr(why, "create the parent first") != NULL, "why: %s", why);
}

static void create_refuses_duplicates_and_bad_names(void)
{
	CHECK_INT_EQ(fresh(), 0);
	int web = make("web", UNLIMITED);
	CHECK(web > 0);
	CHECK_INT_EQ(mgi_tree_create(&t, "web", UNLIMITED, why, sizeof(why)), -EEXIST);
	CHECK_MSG(strstr(why, "exists") != NULL, "why: %s", why);
	CHECK_EQ(t.node[0].children, 1); /* nothing half-made */

	static const char *const bad[] = {"", "/web", "web/", "web//api", ".web", "web api",
					  "web/*", "a/b/c/d/e/f/g/h/i"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why[0] = '\0';
		CHECK_MSG(mgi_tree_create(&t, bad[i], UNLIMITED, why, sizeof(why)) == -EINVAL,
			  "'%s' not refused as invalid", bad[i]);
		CHECK_MSG(why[0] != '\0', "'%s': no reason given", bad[i]);
	}
	CHECK_INT_EQ(mgi_tree_create(&t, "", UNLIMITED, why, sizeof(why)), -EINVAL);
	CHECK_STR_EQ(why, "empty group name");
	int used = 0;
	for (int i = 0; i < MGI_GROUPS_MAX; i++)
		used += t.node[i].used;
	CHECK_INT_EQ(used, 2);
}

static void create_applies_the_limit(void)
{
	CHECK_INT_EQ(fresh(), 0);
	int a = make("limited", 64 * PAGE);
	int b = make("unlimited", UNLIMITED);
	int c = make("keep", MGI_SET_KEEP); /* CREATE's "left unlimited" */
	int d = make("odd", 10 * PAGE + 100); /* rounded down to whole pages */
	CHECK(a > 0 && b > 0 && c > 0 && d > 0);
	CHECK_EQ(mgi_counter_read_max(&seg_of(a)->ctl.memory), 64);
	CHECK_EQ(mgi_counter_read_max(&seg_of(b)->ctl.memory), MGI_PAGES_UNLIMITED);
	CHECK_EQ(mgi_counter_read_max(&seg_of(c)->ctl.memory), MGI_PAGES_UNLIMITED);
	CHECK_EQ(mgi_counter_read_max(&seg_of(d)->ctl.memory), 10);
	mgi_stats_t st;
	mgi_tree_stats(&t, a, &st);
	CHECK_EQ(st.limit, 64 * PAGE);
}

static void paths(void)
{
	CHECK_INT_EQ(fresh(), 0);
	int web = make("web", UNLIMITED);
	int api = make("web/api", UNLIMITED);
	CHECK(web > 0 && api > 0);

	mgi_counter_path_t p = mgi_tree_path(&t, api);
	CHECK_EQ(p.depth, 2);
	CHECK(p.level[0] == &seg_of(api)->acct.memory);
	CHECK(p.level[1] == &seg_of(web)->acct.memory);

	p = mgi_tree_path(&t, web);
	CHECK_EQ(p.depth, 1);
	CHECK(p.level[0] == &seg_of(web)->acct.memory);

	/* The root's path is its own counter; no other path includes it. */
	p = mgi_tree_path(&t, 0);
	CHECK_EQ(p.depth, 1);
	CHECK(p.level[0] == &seg_of(0)->acct.memory);
}

static void deepest_path(void)
{
	static const char *const chain[] = {"a", "a/b", "a/b/c", "a/b/c/d", "a/b/c/d/e",
					    "a/b/c/d/e/f", "a/b/c/d/e/f/g", "a/b/c/d/e/f/g/h"};
	int idx[MGI_DEPTH_MAX];

	CHECK_INT_EQ(fresh(), 0);
	for (int i = 0; i < MGI_DEPTH_MAX; i++)
		CHECK((idx[i] = make(chain[i], UNLIMITED)) > 0);
	CHECK_INT_EQ(mgi_tree_create(&t, "a/b/c/d/e/f/g/h/i", UNLIMITED, why, sizeof(why)),
		     -EINVAL);
	mgi_counter_path_t p = mgi_tree_path(&t, idx[MGI_DEPTH_MAX - 1]);
	CHECK_EQ(p.depth, MGI_DEPTH_MAX);
	for (int l = 0; l < MGI_DEPTH_MAX; l++)
		CHECK(p.level[l] == &seg_of(idx[MGI_DEPTH_MAX - 1 - l])->acct.memory);
	int fds[2 * MGI_DEPTH_MAX];
	CHECK_EQ(mgi_tree_segment_fds(&t, idx[MGI_DEPTH_MAX - 1], fds), MGI_DEPTH_MAX);
	for (int l = 0; l < MGI_DEPTH_MAX; l++)
		CHECK_INT_EQ(fds[2 * l], t.node[idx[MGI_DEPTH_MAX - 1 - l]].rofd);
}

/* A charge along web/api's path shows in web's usage, not in web/db's nor
 * the root's. */
static void charges_are_hierarchical(void)
{
	CHECK_INT_EQ(fresh(), 0);
	int web = make("web", UNLIMITED);
	int api = make("web/api", UNLIMITED);
	int db = make("web/db", UNLIMITED);
	CHECK(web > 0 && api > 0 && db > 0);

	mgi_counter_path_t p = mgi_tree_path(&t, api);
	CHECK(mgi_counter_try_charge(&p, 10, NULL));
	mgi_stats_t st;
	mgi_tree_stats(&t, web, &st);
	CHECK_EQ(st.usage, 10 * PAGE);
	CHECK_EQ(st.max_usage, 10 * PAGE);
	mgi_tree_stats(&t, api, &st);
	CHECK_EQ(st.usage, 10 * PAGE);
	mgi_tree_stats(&t, db, &st);
	CHECK_EQ(st.usage, 0);
	mgi_tree_stats(&t, 0, &st);
	CHECK_EQ(st.usage, 0);

	/* web's own processes add to web only. */
	mgi_counter_path_t pw = mgi_tree_path(&t, web);
	CHECK(mgi_counter_try_charge(&pw, 5, NULL));
	mgi_tree_stats(&t, web, &st);
	CHECK_EQ(st.usage, 15 * PAGE);
	mgi_tree_stats(&t, api, &st);
	CHECK_EQ(st.usage, 10 * PAGE);

	/* web's limit refuses a charge of web/db at level 1. */
	CHECK_INT_EQ(set_max(web, 20 * PAGE), 0);
	mgi_counter_path_t pd = mgi_tree_path(&t, db);
	unsigned failed = 99;
	CHECK(!mgi_counter_try_charge(&pd, 6, &failed));
	CHECK_EQ(failed, 1);
	CHECK(mgi_counter_try_charge(&pd, 5, NULL));
	mgi_tree_stats(&t, web, &st);
	CHECK_EQ(st.usage, 20 * PAGE);
	CHECK_EQ(st.failcnt, 1);
	CHECK_EQ(st.limit, 20 * PAGE);
	mgi_tree_stats(&t, db, &st);
	CHECK_EQ(st.usage, 5 * PAGE);
	CHECK_EQ(st.failcnt, 0);
}

/* The other limits: stored where reclaim reads them, shown in the stats;
 * swap is off for a top-level group until asked, bounded by the ancestors'
 * for a nested one; released processes take their swap with them. */
static void limits_swap_and_stats(void)
{
	mgi_msg_set_t set;
	mgi_stats_t st;

	CHECK_INT_EQ(fresh(), 0);
	int web = make("web", UNLIMITED);
	int api = make("web/api", UNLIMITED);
	CHECK(web > 0 && api > 0);
	CHECK_EQ(mgi_counter_read_max(&seg_of(web)->ctl.swap), 0);
	CHECK_EQ(mgi_counter_read_max(&seg_of(api)->ctl.swap), MGI_PAGES_UNLIMITED);
	CHECK_EQ(atomic_load(&seg_of(api)->ctl.swappiness), MGI_SWAPPINESS_DEFAULT);

	memset(&set, 0xff, sizeof(set)); /* all MGI_SET_KEEP */
	set.oom_set = 0; /* the OOM settings are named by flags, not KEEP */
	memset(&set.oom_policy, 0, sizeof(set) - offsetof(mgi_msg_set_t, oom_policy));
	set.memory_high = 64 * PAGE;
	set.memory_low = 16 * PAGE;
	set.memory_soft = 32 * PAGE;
	set.swap_max = 128 * PAGE;
	set.swappiness = 0;
	CHECK_INT_EQ(mgi_tree_set_limits(&t, web, &set, why, sizeof(why)), 0);
	mgi_tree_stats(&t, web, &st);
	CHECK_EQ(st.high, 64 * PAGE);
	CHECK_EQ(st.low, 16 * PAGE);
	CHECK_EQ(st.soft, 32 * PAGE);
	CHECK_EQ(st.swap_limit, 128 * PAGE);
	CHECK_EQ(st.swappiness, 0);
	CHECK_EQ(st.limit, (uint64_t)MGI_PAGES_UNLIMITED * PAGE); /* kept */

	/* A process of web/api with 10 pages in memory and 6 in its store. */
	mgi_segment_t *seg = seg_of(api);
	int slot = mgi_segment_claim(seg, 4242);
	CHECK(slot >= 0);
	mgi_counter_path_t p = mgi_tree_path(&t, api), sp = mgi_segment_swap_path(&p);
	CHECK(mgi_counter_try_charge(&p, 10, NULL));
	CHECK(mgi_counter_try_charge(&sp, 6, NULL));
	atomic_store(&seg->acct.procs[slot].charged, 10);
	atomic_store(&seg->acct.procs[slot].swapped, 6);
	atomic_store(&seg->acct.procs[slot].staged, 2);
	atomic_store(&seg->acct.pswpout, 9);
	atomic_store(&seg->acct.pswpin, 3);
	mgi_segment_count_stall(seg, 700);   /* < 1 us */
	mgi_segment_count_stall(seg, 1500000); /* 1.5 ms: < 2048 us */
	mgi_tree_stats(&t, web, &st);
	CHECK_EQ(st.usage, 10 * PAGE);
	CHECK_EQ(st.swap_usage, 6 * PAGE);
	CHECK_EQ(st.memsw_usage, 16 * PAGE);
	CHECK_EQ(st.stored_pages, 6);
	CHECK_EQ(st.staged_bytes, 2 * PAGE);
	CHECK_EQ(st.pswpout, 9);
	CHECK_EQ(st.pswpin, 3);
	CHECK_EQ(st.reclaim_stalls, 2);
	CHECK_EQ(st.reclaim_stall_p50_us, 1);
	CHECK_EQ(st.reclaim_stall_p99_us, 2048);
	/* web's swap limit refuses what passes it (the agent then cannot
	 * evict: it is full). */
	CHECK(!mgi_counter_try_charge(&sp, 123, NULL));
	/* The process exits: memory and swap go with it, up the path. */
	CHECK_INT_EQ(mgi_segment_release(seg, slot, 4242, &p), 10);
	mgi_tree_stats(&t, web, &st);
	CHECK_EQ(st.usage, 0);
	CHECK_EQ(st.swap_usage, 0);
	CHECK_EQ(st.staged_bytes, 0);
	CHECK_EQ(st.pswpout, 9); /* counts stay */
}

static void set_max_refuses_below_usage(void)
{
	CHECK_INT_EQ(fresh(), 0);
	int web = make("web", UNLIMITED);
	int api = make("web/api", UNLIMITED);
	CHECK(web > 0 && api > 0);
	mgi_counter_path_t p = mgi_tree_path(&t, api);
	CHECK(mgi_counter_try_charge(&p, 10, NULL));

	why[0] = '\0';
	CHECK_INT_EQ(set_max(web, 9 * PAGE), -EBUSY);
	CHECK_MSG(strstr(why, "more than the new limit") != NULL, "why: %s", why);
	CHECK_MSG(strstr(why, "uses 40K,") != NULL, "why: %s", why);
	CHECK_EQ(mgi_counter_read_max(&seg_of(web)->ctl.memory), MGI_PAGES_UNLIMITED);
	/* The child's own counter holds the same usage. */
	CHECK_INT_EQ(set_max(api, 1 * PAGE), -EBUSY);

	/* Down to the usage exactly, up again, unchanged, then unlimited. */
	CHECK_INT_EQ(set_max(web, 10 * PAGE), 0);
	CHECK_EQ(mgi_counter_read_max(&seg_of(web)->ctl.memory), 10);
	CHECK_INT_EQ(set_max(web, 1 << 20), 0);
	CHECK_EQ(mgi_counter_read_max(&seg_of(web)->ctl.memory), 256);
	CHECK_INT_EQ(set_max(web, MGI_SET_KEEP), 0);
	CHECK_EQ(mgi_counter_read_max(&seg_of(web)->ctl.memory), 256);
	CHECK_INT_EQ(set_max(web, MGI_SET_UNLIMITED), 0);
	CHECK_EQ(mgi_counter_read_max(&seg_of(web)->ctl.memory), MGI_PAGES_UNLIMITED);
	/* Once the usage is gone, a low limit is fine. */
	CHECK(mgi_counter_uncharge(&p, 10));
	CHECK_INT_EQ(set_max(web, 1 * PAGE), 0);
}

static void remove_refuses_root_parents_and_busy_groups(void)
{
	CHECK_INT_EQ(fresh(), 0);
	int web = make("web", UNLIMITED);
	int api = make("web/api", UNLIMITED);
	CHECK(web > 0 && api > 0);

	CHECK_INT_EQ(mgi_tree_remove(&t, 0, why, sizeof(why)), -EPERM);
	CHECK_MSG(strstr(why, "root") != NULL, "why: %s", why);
	CHECK(t.node[0].used);

	CHECK_INT_EQ(mgi_tree_remove(&t, web, why, sizeof(why)), -EBUSY);
	CHECK_MSG(strstr(why, "child group") != NULL, "why: %s", why);
	CHECK_INT_EQ(mgi_tree_find(&t, "web"), web);

	int32_t pid = (int32_t)getpid();
	int slot = mgi_segment_claim(seg_of(api), pid);
	CHECK(slot >= 0);
	CHECK_INT_EQ(mgi_tree_remove(&t, api, why, sizeof(why)), -EBUSY);
	CHECK_MSG(strstr(why, "process") != NULL, "why: %s", why);
	CHECK_INT_EQ(mgi_tree_find(&t, "web/api"), api);

	mgi_counter_path_t p = mgi_tree_path(&t, api);
	CHECK_INT_EQ(mgi_segment_release(seg_of(api), slot, pid, &p), 0);
	CHECK_INT_EQ(mgi_tree_remove(&t, api, why, sizeof(why)), 0);
	CHECK_INT_EQ(mgi_tree_find(&t, "web/api"), -1);
	CHECK(!t.node[api].used);
	CHECK(t.node[api].seg == NULL);
	CHECK_INT_EQ(t.node[api].segfd, -1);
	CHECK_EQ(t.node[web].children, 0);

	/* Now web goes too, and the root keeps no children. */
	CHECK_INT_EQ(mgi_tree_remove(&t, web, why, sizeof(why)), 0);
	CHECK_INT_EQ(mgi_tree_find(&t, "web"), -1);
	CHECK_EQ(t.node[0].children, 0);
	/* Removed for good: its children need it again. */
	CHECK_INT_EQ(mgi_tree_create(&t, "web/api", UNLIMITED, why, sizeof(why)), -ENOENT);
	/* A name can be used again, and the freed node with it. */
	CHECK((web = make("web", UNLIMITED)) > 0);
	CHECK(mgi_segment_valid(seg_of(web), sizeof(mgi_segment_t)));
	CHECK_EQ(mgi_segment_nr_procs(seg_of(web)), 0);
}

static void largest_searches_the_subtree(void)
{
	int g = -7, s = -7;

	CHECK_INT_EQ(fresh(), 0);
	CHECK(!mgi_tree_largest(&t, 0, &g, &s)); /* nothing at all */
	CHECK_INT_EQ(g, -7);
	int web = make("web", UNLIMITED);
	int api = make("web/api", UNLIMITED);
	int db = make("web/db", UNLIMITED);
	int batch = make("batch", UNLIMITED);
	CHECK(web > 0 && api > 0 && db > 0 && batch > 0);

	/* Processes, but none holds a page yet. */
	CHECK(proc_in(api, 100, 0) >= 0);
	CHECK(!mgi_tree_largest(&t, web, &g, &s));
	CHECK(!mgi_tree_largest(&t, 0, &g, &s));

	int a2 = proc_in(api, 101, 30);
	int d1 = proc_in(db, 200, 10);
	int d2 = proc_in(db, 201, 50);
	int b1 = proc_in(batch, 300, 80);
	CHECK(a2 >= 0 && d1 >= 0 && d2 >= 0 && b1 >= 0);

	CHECK(mgi_tree_largest(&t, web, &g, &s));
	CHECK_INT_EQ(g, db);
	CHECK_INT_EQ(s, d2);
	CHECK(mgi_tree_largest(&t, api, &g, &s));
	CHECK_INT_EQ(g, api);
	CHECK_INT_EQ(s, a2);
	CHECK(mgi_tree_largest(&t, 0, &g, &s)); /* the whole tree */
	CHECK_INT_EQ(g, batch);
	CHECK_INT_EQ(s, b1);

	/* web's own processes are candidates too. */
	int w1 = proc_in(web, 400, 51);
	CHECK(w1 >= 0);
	CHECK(mgi_tree_largest(&t, web, &g, &s));
	CHECK_INT_EQ(g, web);
	CHECK_INT_EQ(s, w1);

	/* A released slot no longer counts. */
	mgi_counter_path_t p = mgi_tree_path(&t, web);
	mgi_counter_charge(&p, 51); /* what the slot holds, so release balances */
	CHECK_INT_EQ(mgi_segment_release(seg_of(web), w1, 400, &p), 51);
	CHECK(mgi_tree_largest(&t, web, &g, &s));
	CHECK_INT_EQ(g, db);
	CHECK_INT_EQ(s, d2);

	/* A group with no charged process under it. */
	int empty = make("web/empty", UNLIMITED);
	CHECK(empty > 0);
	g = s = -7;
	CHECK(!mgi_tree_largest(&t, empty, &g, &s));
	CHECK_INT_EQ(g, -7);
	CHECK_INT_EQ(s, -7);
}

static void stats_sum_the_subtree(void)
{
	CHECK_INT_EQ(fresh(), 0);
	int web = make("web", UNLIMITED);
	int api = make("web/api", UNLIMITED);
	int db = make("web/db", UNLIMITED);
	int batch = make("batch", UNLIMITED);
	CHECK(web > 0 && api > 0 && db > 0 && batch > 0);

	CHECK(proc_in(0, 10, 0) >= 0);   /* the root's own */
	CHECK(proc_in(web, 20, 0) >= 0); /* web's own */
	CHECK(proc_in(api, 30, 0) >= 0);
	int a = proc_in(api, 31, 0);
	CHECK(a >= 0);
	CHECK(proc_in(db, 40, 0) >= 0);
	CHECK(proc_in(batch, 50, 0) >= 0);
	atomic_store(&seg_of(api)->acct.procs[a].tracked_bytes, 1000);
	atomic_store(&seg_of(api)->acct.procs[a].untracked_bytes, 7);
	atomic_store(&seg_of(api)->acct.pgfault, 5);
	atomic_store(&seg_of(db)->acct.pgfault, 6);
	atomic_store(&seg_of(batch)->acct.pgfault, 100);
	atomic_store(&seg_of(db)->ctl.oom_kill, 2);

	mgi_stats_t st;
	mgi_tree_stats(&t, web, &st);
	CHECK_EQ(st.nr_processes, 4);
	CHECK_EQ(st.pgfault, 11);
	CHECK_EQ(st.oom_kill, 2);
	CHECK_EQ(st.tracked_bytes, 1000);
	CHECK_EQ(st.untracked_bytes, 7);
	mgi_tree_stats(&t, api, &st);
	CHECK_EQ(st.nr_processes, 2);
	CHECK_EQ(st.pgfault, 5);
	CHECK_EQ(st.oom_kill, 0);
	mgi_tree_stats(&t, db, &st);
	CHECK_EQ(st.nr_processes, 1);
	mgi_tree_stats(&t, batch, &st);
	CHECK_EQ(st.nr_processes, 1);
	CHECK_EQ(st.pgfault, 100);
	/* The root's figures are its own processes' only. */
	mgi_tree_stats(&t, 0, &st);
	CHECK_EQ(st.nr_processes, 1);
	CHECK_EQ(st.pgfault, 0);
}

static void stat_msg_lists_the_subtree(void)
{
	static mgi_msg_t m;

	CHECK_INT_EQ(fresh(), 0);
	int web = make("web", UNLIMITED);
	int api = make("web/api", UNLIMITED);
	int batch = make("batch", UNLIMITED);
	CHECK(web > 0 && api > 0 && batch > 0);
	int a = proc_in(api, 30, 3);
	CHECK(a >= 0);
	memcpy(seg_of(api)->ctl.procs[a].comm, "api-server", 11);
	CHECK(proc_in(web, 20, 2) >= 0);
	CHECK(proc_in(batch, 50, 9) >= 0);

	mgi_tree_stat_msg(&t, web, &m);
	CHECK_EQ(m.hdr.type, MGI_MSG_STAT);
	CHECK_EQ(m.hdr.len, sizeof(mgi_msg_stat_t));
	CHECK_STR_EQ(m.stat.group, "web");
	CHECK_EQ(m.stat.nprocs, 2);
	CHECK_EQ(m.stat.figures.nr_processes, 2);
	bool seen_api = false;
	for (uint32_t i = 0; i < m.stat.nprocs; i++) {
		CHECK(m.stat.procs[i].pid == 20 || m.stat.procs[i].pid == 30);
		if (m.stat.procs[i].pid == 30) {
			seen_api = true;
			CHECK_EQ(m.stat.procs[i].charged, 3 * PAGE);
			CHECK_STR_EQ(m.stat.procs[i].comm, "api-server");
		}
	}
	CHECK(seen_api);
	/* What the manager sends parses on the other side. */
	static mgi_msg_t back;
	char err[96];
	CHECK_INT_EQ(mgi_msg_parse(&m, m.hdr.len, &back, err, sizeof(err)), MGI_MSG_STAT);
}

/* The segments' fds come in path order: own group first, then each
 * ancestor's; each maps the segment of that group. */
static void segment_fds_in_path_order(void)
{
	CHECK_INT_EQ(fresh(), 0);
	int web = make("web", UNLIMITED);
	int api = make("web/api", UNLIMITED);
	int v1 = make("web/api/v1", UNLIMITED);
	CHECK(web > 0 && api > 0 && v1 > 0);

	int fds[2 * MGI_DEPTH_MAX];
	memset(fds, 0xff, sizeof(fds));
	CHECK_EQ(mgi_tree_segment_fds(&t, v1, fds), 3);
	CHECK_INT_EQ(fds[1], t.node[v1].acctfd);
	CHECK_INT_EQ(fds[3], t.node[api].acctfd);
	CHECK_INT_EQ(fds[5], t.node[web].acctfd);
	CHECK_INT_EQ(fds[6], -1); /* nothing written past the depth */
	CHECK_EQ(mgi_tree_segment_fds(&t, v1, fds), mgi_tree_path(&t, v1).depth);

	/* Each level: the control part read-only (an agent can map it to read,
	 * never to write), then the accounting part. */
	static const char *const want[] = {"web/api/v1", "web/api", "web"};
	for (int l = 0; l < 3; l++) {
		CHECK_INT_EQ(fcntl(fds[2 * l], F_GETFL) & O_ACCMODE, O_RDONLY);
		CHECK(mmap(NULL, MGI_SEGMENT_CTL_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED,
			   fds[2 * l], 0) == MAP_FAILED);
		CHECK_INT_EQ(errno, EACCES);
		mgi_segment_ctl_t *c = mmap(NULL, MGI_SEGMENT_CTL_BYTES, PROT_READ, MAP_SHARED,
					    fds[2 * l], 0);
		CHECK(c != MAP_FAILED);
		CHECK(mprotect(c, MGI_SEGMENT_CTL_BYTES, PROT_READ | PROT_WRITE) != 0);
		bool ok = c->magic == MGI_SEGMENT_MAGIC && strcmp(c->group, want[l]) == 0;
		munmap(c, MGI_SEGMENT_CTL_BYTES);
		CHECK_MSG(ok, "fd %d (level %d) does not map %s", fds[2 * l], l, want[l]);
	}

	CHECK_EQ(mgi_tree_segment_fds(&t, web, fds), 1);
	CHECK_INT_EQ(fds[0], t.node[web].rofd);
	CHECK_INT_EQ(fds[1], t.node[web].acctfd);
	CHECK_EQ(mgi_tree_segment_fds(&t, 0, fds), 1);
	CHECK_INT_EQ(fds[0], t.node[0].rofd);
}

static void is_under(void)
{
	CHECK_INT_EQ(fresh(), 0);
	int web = make("web", UNLIMITED);
	int api = make("web/api", UNLIMITED);
	int we = make("we", UNLIMITED);
	CHECK(web > 0 && api > 0 && we > 0);
	CHECK(mgi_tree_is_under(&t, api, web));
	CHECK(mgi_tree_is_under(&t, api, 0));
	CHECK(mgi_tree_is_under(&t, web, web));
	CHECK(mgi_tree_is_under(&t, 0, 0));
	CHECK(!mgi_tree_is_under(&t, api, we));
	CHECK(!mgi_tree_is_under(&t, web, api));
	CHECK(!mgi_tree_is_under(&t, 0, web));
}

static void full_tree(void)
{
	struct rlimit rl;
	char name[32];

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < MGI_GROUPS_MAX + 32)
		SKIP("needs %d open files, the limit is %llu", MGI_GROUPS_MAX + 32,
		     (unsigned long long)rl.rlim_cur);
	CHECK_INT_EQ(fresh(), 0);
	int web = make("web", UNLIMITED);
	CHECK(web > 0);
	for (int i = 1; i < MGI_GROUPS_MAX - 1; i++) {
		snprintf(name, sizeof(name), "web/g%d", i);
		CHECK(make(name, UNLIMITED) > 0);
	}
	for (int i = 0; i < MGI_GROUPS_MAX; i++)
		CHECK(t.node[i].used);
	CHECK_EQ(t.node[web].children, MGI_GROUPS_MAX - 2);
	CHECK_INT_EQ(mgi_tree_create(&t, "more", UNLIMITED, why, sizeof(why)), -ENOSPC);
	CHECK_MSG(strstr(why, "255") != NULL, "why: %s", why);
	CHECK_INT_EQ(mgi_tree_find(&t, "more"), -1);
	CHECK_EQ(t.node[0].children, 1);
	/* The checks before the count still come first. */
	CHECK_INT_EQ(mgi_tree_create(&t, "web", UNLIMITED, why, sizeof(why)), -EEXIST);
	CHECK_INT_EQ(mgi_tree_create(&t, "x/y", UNLIMITED, why, sizeof(why)), -ENOENT);

	/* One removed makes room for one. */
	int g7 = mgi_tree_find(&t, "web/g7");
	CHECK(g7 > 0);
	CHECK_INT_EQ(mgi_tree_remove(&t, g7, why, sizeof(why)), 0);
	CHECK_INT_EQ(mgi_tree_create(&t, "more", UNLIMITED, why, sizeof(why)), g7);
	CHECK_INT_EQ(mgi_tree_create(&t, "more2", UNLIMITED, why, sizeof(why)), -ENOSPC);
}

static bool fcntl_closed(int fd)
{
	return fcntl(fd, F_GETFD) == -1 && errno == EBADF;
}

static void destroy_closes_everything(void)
{
	CHECK_INT_EQ(fresh(), 0);
	int web = make("web", UNLIMITED);
	CHECK(web > 0);
	int fd0 = t.node[0].segfd, fdw = t.node[web].segfd;
	mgi_tree_destroy(&t);
	t_live = false;
	CHECK(fcntl_closed(fd0));
	CHECK(fcntl_closed(fdw));
	for (int i = 0; i < MGI_GROUPS_MAX; i++)
		CHECK(!t.node[i].used && t.node[i].seg == NULL && t.node[i].segfd == -1);
}

static char said[512];
static char state_dir[64]; /* removed in main() too, if a case stopped half-way */

static void collect(void *arg, const char *msg)
{
	(void)arg;
	snprintf(said, sizeof(said), "%s", msg);
}

static void remove_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	if (d) {
		while ((de = readdir(d)))
			if (de->d_name[0] != '.')
				unlinkat(dirfd(d), de->d_name, 0);
		closedir(d);
	}
	rmdir(dir);
}

/* A process truncates its group's accounting file (a state file, not
 * sealed): the manager's read of it is patched over with zeros instead of
 * killing it (SIGBUS), and the next audit restores the file and reports. */
static void a_truncated_state_file_is_survived(void)
{
	char *dir = state_dir;
	snprintf(state_dir, sizeof(state_dir), "/tmp/memgrp-test-tree-XXXXXX");
	CHECK(mkdtemp(dir) != NULL);
	CHECK_INT_EQ(fresh(), 0);
	int rc = mgi_tree_use_dir(&t, dir, collect, NULL, why, sizeof(why));
	int web = rc == 0 ? make("web", 64 << 20) : -1;
	int db = web > 0 ? make("db", 64 << 20) : -1;
	CHECK_MSG(web > 0 && db > 0, "use_dir %d (%s), web %d, db %d", rc, why, web, db);
	CHECK(proc_in(web, 4242, 10) >= 0);
	CHECK(proc_in(db, 4343, 7) >= 0);
	int fd = t.node[web].acctfd;
	CHECK_INT_EQ(ftruncate(fd, 0), 0);
	/* Reads of the cut pages: zeros, and the manager lives. */
	CHECK_EQ(mgi_counter_read(&seg_of(web)->acct.memory), 0);
	CHECK_EQ(atomic_load(&seg_of(web)->acct.procs[0].charged), 0);
	said[0] = '\0';
	CHECK_EQ(mgi_tree_audit(&t, collect, NULL), 1);
	CHECK_MSG(strstr(said, "group 'web': its accounting was tampered with: its accounting file "
			       "was truncated to 0 bytes"),
		  "said: %s", said);
	struct stat st;
	CHECK_INT_EQ(fstat(fd, &st), 0);
	CHECK_EQ(st.st_size, MGI_SEGMENT_ACCT_BYTES);
	/* The file is mapped again, not the patch: a write reaches it. */
	atomic_store(&seg_of(web)->acct.memory.usage, 5);
	uint64_t in_file = 0;
	CHECK_EQ(pread(fd, &in_file, sizeof(in_file), 0), sizeof(in_file));
	CHECK_EQ(in_file, 5);
	/* The other group is untouched; a second truncation is reported
	 * again (each is a new act). */
	CHECK_EQ(mgi_counter_read(&seg_of(db)->acct.memory), 7);
	CHECK_INT_EQ(ftruncate(fd, 4096), 0);
	CHECK_EQ(atomic_load(&seg_of(web)->acct.procs[0].charged), 0);
	CHECK_EQ(mgi_counter_read(&seg_of(web)->acct.memory), 5); /* in the first page, kept */
	CHECK_EQ(mgi_tree_audit(&t, collect, NULL), 1);
	CHECK_MSG(strstr(said, "truncated to 4096 bytes"), "said: %s", said);
	/* Grown instead (no SIGBUS, but a restart would find a file of the
	 * wrong size): cut back at the restart, the group restored. */
	CHECK_INT_EQ(ftruncate(fd, 1 << 20), 0);
	mgi_tree_destroy(&t);
	t_live = false;
	CHECK_INT_EQ(fresh(), 0);
	said[0] = '\0';
	CHECK_INT_EQ(mgi_tree_use_dir(&t, dir, collect, NULL, why, sizeof(why)), 0);
	web = mgi_tree_find(&t, "web");
	CHECK_MSG(web > 0, "said: %s", said);
	CHECK_EQ(mgi_counter_read(&seg_of(web)->acct.memory), 5);
	CHECK_INT_EQ(fstat(t.node[web].acctfd, &st), 0);
	CHECK_EQ(st.st_size, MGI_SEGMENT_ACCT_BYTES);
	mgi_tree_destroy(&t);
	t_live = false;
	remove_dir(dir);
	state_dir[0] = '\0';
}

static char said_all[2048];

static void collect_all(void *arg, const char *msg)
{
	size_t n = strlen(said_all);
	(void)arg;
	snprintf(said_all + n, sizeof(said_all) - n, "%s\n", msg);
}

/* A restored nested group's grant above its parent's usage (which counts
 * every grant given below it) is no grant a manager gave: clamped to it,
 * and said. */
static void a_restored_grant_is_clamped_to_the_parent(void)
{
	char *dir = state_dir;
	snprintf(state_dir, sizeof(state_dir), "/tmp/memgrp-test-tree-XXXXXX");
	CHECK(mkdtemp(dir) != NULL);
	CHECK_INT_EQ(fresh(), 0);
	CHECK_INT_EQ(mgi_tree_use_dir(&t, dir, collect, NULL, why, sizeof(why)), 0);
	int web = make("web", 64 << 20), api = make("web/api", 64 << 20), db = make("web/db", 64 << 20);
	CHECK(web > 0 && api > 0 && db > 0);
	atomic_store(&seg_of(web)->acct.memory.usage, 40);
	atomic_store(&seg_of(web)->acct.swap.usage, 2);
	atomic_store(&seg_of(api)->ctl.granted, 90);
	atomic_store(&seg_of(api)->ctl.swap_granted, 3);
	atomic_store(&seg_of(db)->ctl.granted, 30);
	mgi_tree_destroy(&t);
	t_live = false;
	CHECK_INT_EQ(fresh(), 0);
	said_all[0] = '\0';
	CHECK_INT_EQ(mgi_tree_use_dir(&t, dir, collect_all, NULL, why, sizeof(why)), 0);
	api = mgi_tree_find(&t, "web/api");
	db = mgi_tree_find(&t, "web/db");
	CHECK_MSG(api > 0 && db > 0, "said: %s", said_all);
	CHECK_EQ(atomic_load(&seg_of(api)->ctl.granted), 40);
	CHECK_EQ(atomic_load(&seg_of(api)->ctl.swap_granted), 2);
	CHECK_EQ(atomic_load(&seg_of(db)->ctl.granted), 30); /* within: kept */
	CHECK_MSG(strstr(said_all, "group 'web/api': granted 90 pages, more than its parent 'web' "
				   "uses (40); clamped to it"),
		  "said: %s", said_all);
	CHECK_MSG(!strstr(said_all, "group 'web/db': granted"), "said: %s", said_all);
	mgi_tree_destroy(&t);
	t_live = false;
	remove_dir(dir);
	state_dir[0] = '\0';
}

/* A child's state file set aside at the restart: its grant is not
 * returned (its figures are not trusted), so its parent's usage is
 * recounted from the surviving children's grants and its own slots. */
static void a_set_aside_childs_grant_leaves_the_parent(void)
{
	char *dir = state_dir, path[512];
	snprintf(state_dir, sizeof(state_dir), "/tmp/memgrp-test-tree-XXXXXX");
	CHECK(mkdtemp(dir) != NULL);
	CHECK_INT_EQ(fresh(), 0);
	CHECK_INT_EQ(mgi_tree_use_dir(&t, dir, collect, NULL, why, sizeof(why)), 0);
	int web = make("web", 64 << 20), api = make("web/api", 64 << 20), db = make("web/db", 64 << 20);
	int shop = make("shop", 64 << 20);
	CHECK(web > 0 && api > 0 && db > 0 && shop > 0);
	atomic_store(&seg_of(web)->acct.memory.usage, 100);
	atomic_store(&seg_of(api)->ctl.granted, 60);
	atomic_store(&seg_of(db)->ctl.granted, 40);
	atomic_store(&seg_of(shop)->acct.memory.usage, 70); /* written; no process holds it */
	snprintf(path, sizeof(path), "%s/%s", dir, t.node[db].file);
	mgi_tree_destroy(&t);
	t_live = false;
	int fd = open(path, O_WRONLY);
	CHECK(fd >= 0);
	CHECK(pwrite(fd, "garbage!", 8, 0) == 8); /* the magic */
	close(fd);
	CHECK_INT_EQ(fresh(), 0);
	said_all[0] = '\0';
	CHECK_INT_EQ(mgi_tree_use_dir(&t, dir, collect_all, NULL, why, sizeof(why)), 0);
	web = mgi_tree_find(&t, "web");
	shop = mgi_tree_find(&t, "shop");
	CHECK_MSG(web > 0 && mgi_tree_find(&t, "web/api") > 0 && mgi_tree_find(&t, "web/db") < 0,
		  "said: %s", said_all);
	CHECK_EQ(mgi_counter_read(&seg_of(web)->acct.memory), 60);
	CHECK_MSG(strstr(said_all, "group 'web': memory usage 400 KiB, but its processes hold 0 KiB "
				   "and its groups below 240 KiB of grant"),
		  "said: %s", said_all);
	/* no process: recounted to nothing (no window to allow) */
	CHECK_EQ(mgi_counter_read(&seg_of(shop)->acct.memory), 0);
	CHECK_MSG(!strstr(said_all, "group 'web/api': memory usage"), "said: %s", said_all);
	mgi_tree_destroy(&t);
	t_live = false;
	remove_dir(dir);
	state_dir[0] = '\0';
}

int main(int argc, char **argv)
{
	MGT_INIT(argc, argv);
	MGT_RUN(init_makes_the_root);
	MGT_RUN(oom_settings_are_checked_then_stored);
	MGT_RUN(create_needs_the_parent);
	MGT_RUN(create_refuses_duplicates_and_bad_names);
	MGT_RUN(create_applies_the_limit);
	MGT_RUN(paths);
	MGT_RUN(deepest_path);
	MGT_RUN(charges_are_hierarchical);
	MGT_RUN(set_max_refuses_below_usage);
	MGT_RUN(limits_swap_and_stats);
	MGT_RUN(remove_refuses_root_parents_and_busy_groups);
	MGT_RUN(largest_searches_the_subtree);
	MGT_RUN(stats_sum_the_subtree);
	MGT_RUN(stat_msg_lists_the_subtree);
	MGT_RUN(segment_fds_in_path_order);
	MGT_RUN(is_under);
	MGT_RUN(full_tree);
	MGT_RUN(destroy_closes_everything);
	MGT_RUN(a_truncated_state_file_is_survived);
	MGT_RUN(a_restored_grant_is_clamped_to_the_parent);
	MGT_RUN(a_set_aside_childs_grant_leaves_the_parent);
	if (t_live)
		mgi_tree_destroy(&t);
	if (state_dir[0])
		remove_dir(state_dir);
	MGT_DONE();
}

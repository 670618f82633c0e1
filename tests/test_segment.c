/* test_segment.c - the shared segment's process slots: claim, release once, victim. */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "harness.h"
#include "segment.h"
#include "victim.h"

static mgi_segment_t seg;

static void claim_release_uncharges(void)
{
	mgi_segment_init(&seg, "g", 16);
	mgi_counter_path_t p = mgi_segment_path(&seg);
	int a = mgi_segment_claim(&seg, 100), b = mgi_segment_claim(&seg, 200);
	CHECK(a >= 0 && b >= 0 && a != b);
	CHECK(mgi_counter_try_charge(&p, 30, NULL));
	atomic_store(&seg.acct.procs[a].charged, 30);
	CHECK(mgi_counter_try_charge(&p, 50, NULL));
	atomic_store(&seg.acct.procs[b].charged, 50);
	CHECK_EQ(mgi_segment_nr_procs(&seg), 2);
	CHECK_INT_EQ(mgi_segment_largest(&seg), b);
	CHECK_INT_EQ(mgi_segment_release(&seg, b, 999, &p), -ESRCH); /* not its pid */
	CHECK_INT_EQ(mgi_segment_release(&seg, b, 200, &p), 50);
	CHECK_INT_EQ(mgi_segment_release(&seg, b, 200, &p), -ESRCH); /* only once */
	CHECK_EQ(mgi_counter_read(&seg.acct.memory), 30);
	CHECK_INT_EQ(mgi_segment_largest(&seg), a);
	CHECK_EQ(mgi_segment_nr_procs(&seg), 1);
	/* The freed slot starts from zero for its next owner. */
	int c = mgi_segment_claim(&seg, 300);
	CHECK_EQ(atomic_load(&seg.acct.procs[c].charged), 0);
}

/* A spare slot: claimed with no pid, charged by the child that takes it
 * before the manager binds it, bound once; an unbound spare released with
 * what was charged there. Neither counts as a process until bound. */
static void spare_bind_and_release(void)
{
	mgi_segment_init(&seg, "g", 16);
	mgi_counter_path_t p = mgi_segment_path(&seg);
	int s = mgi_segment_claim(&seg, MGI_SLOT_SPARE), t = mgi_segment_claim(&seg, MGI_SLOT_SPARE);
	CHECK(s >= 0 && t >= 0 && s != t);
	CHECK_EQ(mgi_segment_nr_procs(&seg), 0);
	CHECK(mgi_counter_try_charge(&p, 12, NULL));
	atomic_store(&seg.acct.procs[s].charged, 12); /* the child's first charge */
	CHECK_INT_EQ(mgi_segment_bind_spare(&seg, s, 1), -ESRCH); /* no process is pid 1's child */
	CHECK_INT_EQ(mgi_segment_bind_spare(&seg, s, 4321), 0);
	CHECK_INT_EQ(mgi_segment_bind_spare(&seg, s, 4322), -ESRCH); /* once */
	CHECK_EQ(atomic_load(&seg.acct.procs[s].charged), 12);    /* kept */
	CHECK_EQ(mgi_segment_nr_procs(&seg), 1);
	CHECK_INT_EQ(mgi_segment_release(&seg, s, MGI_SLOT_SPARE, &p), -ESRCH); /* bound now */
	CHECK(mgi_counter_try_charge(&p, 5, NULL));
	atomic_store(&seg.acct.procs[t].charged, 5);
	CHECK_INT_EQ(mgi_segment_release(&seg, t, MGI_SLOT_SPARE, &p), 5);
	CHECK_INT_EQ(mgi_segment_release(&seg, t, MGI_SLOT_SPARE, &p), -ESRCH);
	CHECK_INT_EQ(mgi_segment_bind_spare(&seg, t, 4323), -ESRCH); /* released: not a spare */
	CHECK_EQ(mgi_counter_read(&seg.acct.memory), 12);
	CHECK_INT_EQ(mgi_segment_release(&seg, s, 4321, &p), 12);
	CHECK_EQ(mgi_counter_read(&seg.acct.memory), 0);
}

/* Coldest first: staged pages untouched longest, else the largest; a slot
 * holding nothing is never chosen. */
static void coldest_ranking(void)
{
	mgi_segment_init(&seg, "g", 16);
	CHECK_INT_EQ(mgi_segment_coldest(&seg), -1);
	int a = mgi_segment_claim(&seg, 100), b = mgi_segment_claim(&seg, 200);
	int c = mgi_segment_claim(&seg, 300);
	atomic_store(&seg.acct.procs[a].charged, 10);
	atomic_store(&seg.acct.procs[b].charged, 50);
	CHECK_INT_EQ(mgi_segment_coldest(&seg), b); /* nothing staged: the largest */
	atomic_store(&seg.acct.procs[a].staged, 4);
	atomic_store(&seg.acct.procs[a].staged_since_ns, 5000);
	CHECK_INT_EQ(mgi_segment_coldest(&seg), a); /* staged beats unstaged */
	atomic_store(&seg.acct.procs[c].charged, 5);
	atomic_store(&seg.acct.procs[c].staged, 1);
	atomic_store(&seg.acct.procs[c].staged_since_ns, 1000); /* untouched longer */
	CHECK_INT_EQ(mgi_segment_coldest(&seg), c);
	CHECK(mgi_proc_colder(&seg.acct.procs[c], &seg.acct.procs[a]));
	CHECK(!mgi_proc_colder(&seg.acct.procs[a], &seg.acct.procs[c]));
	atomic_store(&seg.acct.procs[c].charged, 0); /* nothing left to take */
	CHECK_INT_EQ(mgi_segment_coldest(&seg), a);
	CHECK(!mgi_proc_colder(&seg.acct.procs[c], &seg.acct.procs[b]));
}

/* A process's swap goes with it, up the swap path beside the memory one. */
static void release_uncharges_swap(void)
{
	static mgi_segment_t parent;
	mgi_segment_init(&seg, "g/c", 16);
	mgi_segment_init(&parent, "g", 16);
	mgi_counter_path_t p = mgi_segment_path(&seg);
	mgi_segment_path_add(&p, &parent);
	mgi_counter_path_t sp = mgi_segment_swap_path(&p);
	CHECK(sp.level[0] == &seg.acct.swap && sp.level[1] == &parent.acct.swap);
	int a = mgi_segment_claim(&seg, 100);
	CHECK(mgi_counter_try_charge(&p, 8, NULL));
	CHECK(mgi_counter_try_charge(&sp, 5, NULL));
	atomic_store(&seg.acct.procs[a].charged, 8);
	atomic_store(&seg.acct.procs[a].swapped, 5);
	atomic_store(&seg.acct.procs[a].staged, 2);
	CHECK_INT_EQ(mgi_segment_release(&seg, a, 100, &p), 8);
	CHECK_EQ(mgi_counter_read(&parent.acct.memory), 0);
	CHECK_EQ(mgi_counter_read(&seg.acct.swap), 0);
	CHECK_EQ(mgi_counter_read(&parent.acct.swap), 0);
	CHECK_EQ(atomic_load(&seg.acct.procs[a].staged), 0);
}

/* Bucket i counts stalls under 2^i us; the last takes the rest. */
static void stall_histogram(void)
{
	mgi_segment_init(&seg, "g", 16);
	mgi_segment_count_stall(&seg, 0);           /* < 1 us */
	mgi_segment_count_stall(&seg, 999);         /* < 1 us */
	mgi_segment_count_stall(&seg, 1000);        /* 1 us: < 2 us */
	mgi_segment_count_stall(&seg, 3000000);     /* 3 ms: < 4096 us */
	mgi_segment_count_stall(&seg, 100ULL << 40); /* huge: the last bucket */
	CHECK_EQ(atomic_load(&seg.acct.reclaim_hist[0]), 2);
	CHECK_EQ(atomic_load(&seg.acct.reclaim_hist[1]), 1);
	CHECK_EQ(atomic_load(&seg.acct.reclaim_hist[12]), 1);
	CHECK_EQ(atomic_load(&seg.acct.reclaim_hist[MGI_RECLAIM_BUCKETS - 1]), 1);
	/* restores: the same buckets, and their sum */
	mgi_segment_count_restore(&seg, 999);
	mgi_segment_count_restore(&seg, 20000); /* 20 us: < 32 us */
	CHECK_EQ(atomic_load(&seg.acct.restore_hist[0]), 1);
	CHECK_EQ(atomic_load(&seg.acct.restore_hist[5]), 1);
	CHECK_EQ(atomic_load(&seg.acct.restore_ns), 20999);
	/* a crossing's time: the earliest waiting one stays */
	mgi_segment_note_crossing(&seg, 5000);
	mgi_segment_note_crossing(&seg, 9000);
	CHECK_EQ(atomic_load(&seg.acct.crossed_ns), 5000);
	mgi_segment_forget_manager(&seg);
	CHECK_EQ(atomic_load(&seg.acct.crossed_ns), 0);
	CHECK_EQ(atomic_load(&seg.acct.reclaim_hist[0]), 2);
}

static void releasing_clears_the_oom_victim(void)
{
	mgi_segment_init(&seg, "g", 16);
	mgi_counter_path_t p = mgi_segment_path(&seg);
	int a = mgi_segment_claim(&seg, 100);
	atomic_store(&seg.ctl.oom_victim, 100);
	CHECK_INT_EQ(mgi_segment_release(&seg, a, 100, &p), 0);
	CHECK_EQ(atomic_load(&seg.ctl.oom_victim), 0);
}

static void full_and_invalid(void)
{
	mgi_segment_init(&seg, "a-very-long-group-name", 1000);
	mgi_counter_path_t p = mgi_segment_path(&seg);
	CHECK_EQ(atomic_load(&seg.ctl.fault_around), MGI_FAULT_AROUND_MAX);
	CHECK(mgi_segment_valid(&seg, sizeof(seg)));
	CHECK(!mgi_segment_valid(&seg, sizeof(seg) - 1));
	for (int i = 0; i < MGI_PROCS_MAX; i++)
		CHECK(mgi_segment_claim(&seg, i + 1) >= 0);
	CHECK_INT_EQ(mgi_segment_claim(&seg, 5000), -ENOSPC);
	CHECK_INT_EQ(mgi_segment_release(&seg, -1, 1, &p), -ESRCH);
	CHECK_INT_EQ(mgi_segment_release(&seg, MGI_PROCS_MAX, 1, &p), -ESRCH);
	seg.ctl.magic ^= 1;
	CHECK(!mgi_segment_valid(&seg, sizeof(seg)));
}

/* A nested group's slot gives its pages back to every ancestor on the path. */
static mgi_segment_t parent_seg;

static void release_uncharges_the_whole_path(void)
{
	mgi_segment_init(&parent_seg, "web", 16);
	mgi_segment_init(&seg, "web/api", 16);
	mgi_counter_path_t p = mgi_segment_path(&seg);
	mgi_segment_path_add(&p, &parent_seg);
	int a = mgi_segment_claim(&seg, 100);
	CHECK(mgi_counter_try_charge(&p, 40, NULL));
	atomic_store(&seg.acct.procs[a].charged, 40);
	mgi_counter_path_t pp = mgi_segment_path(&parent_seg);
	mgi_counter_charge(&pp, 5); /* the parent's own processes */
	CHECK_EQ(mgi_counter_read(&parent_seg.acct.memory), 45);
	CHECK_INT_EQ(mgi_segment_release(&seg, a, 100, &p), 40);
	CHECK_EQ(mgi_counter_read(&seg.acct.memory), 0);
	CHECK_EQ(mgi_counter_read(&parent_seg.acct.memory), 5);
}

/* Two releasers of one dead process's slot (the manager's exit watch and
 * its connection closing): exactly one succeeds, and what it held is
 * uncharged exactly once. */
static _Atomic long released_total;
static _Atomic int start_flag;

static void *releaser(void *arg)
{
	int slot = (int)(intptr_t)arg;
	while (!atomic_load(&start_flag))
		;
	mgi_counter_path_t p = mgi_segment_path(&seg);
	long r = mgi_segment_release(&seg, slot, 4242, &p);
	if (r > 0)
		atomic_fetch_add(&released_total, r);
	return NULL;
}

static void concurrent_release_happens_once(void)
{
	for (int round = 0; round < 2000; round++) {
		mgi_segment_init(&seg, "g", 16);
		mgi_counter_path_t p = mgi_segment_path(&seg);
		int s = mgi_segment_claim(&seg, 4242);
		mgi_counter_charge(&p, 77);
		atomic_store(&seg.acct.procs[s].charged, 77);
		atomic_store(&released_total, 0);
		atomic_store(&start_flag, 0);
		pthread_t t[2];
		for (int i = 0; i < 2; i++)
			pthread_create(&t[i], NULL, releaser, (void *)(intptr_t)s);
		atomic_store(&start_flag, 1);
		for (int i = 0; i < 2; i++)
			pthread_join(t[i], NULL);
		CHECK_EQ(atomic_load(&released_total), 77);
		CHECK_EQ(mgi_counter_read(&seg.acct.memory), 0);
		CHECK_EQ(atomic_load(&seg.ctl.procs[s].pid), 0);
	}
}

/* mgi_segment_check: a segment as a restarted manager finds it. */
static void check_accepts_a_valid_segment(void)
{
	char why[200] = "";
	mgi_segment_init(&seg, "web/api", 16);
	mgi_counter_path_t p = mgi_segment_path(&seg);
	int a = mgi_segment_claim(&seg, 4242);
	seg.ctl.procs[a].oom_priority = -1000; /* --oom-priority kept for a restart */
	mgi_counter_charge(&p, 30);
	atomic_store(&seg.acct.procs[a].charged, 30);
	mgi_threshold_register(&seg.ctl.thresholds[0].set, &seg.acct.thresholds[0], 10, 3, 30);
	mgi_threshold_register(&seg.ctl.thresholds[0].set, &seg.acct.thresholds[0], 50, 4, 30);
	CHECK_INT_EQ(mgi_segment_check(&seg, sizeof(seg), why, sizeof(why)), 0);
	/* OOM settings as `memgrp set --oom-*` leaves them pass */
	seg.ctl.oom_set = MGI_OOM_SET_ALL;
	seg.ctl.oom_policy = MGI_OOM_POLICY_MAX;
	seg.ctl.oom_scope = MGI_OOM_SCOPE_GROUP;
	seg.ctl.oom_signal = 15;
	seg.ctl.oom_grace_ms = MGI_OOM_GRACE_MAX_MS;
	strcpy(seg.ctl.oom_prefer, "^(stress|batch)");
	seg.ctl.oom_kill_disable = 1;
	atomic_store(&seg.ctl.under_oom, 1);
	strcpy(seg.ctl.oom_prekill, "/usr/local/bin/dump-heap --fast");
	seg.ctl.oom_prekill_timeout_ms = MGI_OOM_PREKILL_TIMEOUT_MAX_MS;
	seg.ctl.oom_handler_timeout_ms = MGI_OOM_HANDLER_TIMEOUT_MAX_MS;
	seg.ctl.oom_reserve_pages = 4096;
	atomic_store(&seg.ctl.oom_handling, 1);
	atomic_store(&seg.ctl.oom_handler_pid, 4242);
	CHECK_INT_EQ(mgi_segment_check(&seg, sizeof(seg), why, sizeof(why)), 0);
	CHECK_INT_EQ(mgi_segment_check(&seg, sizeof(seg) - 1, why, sizeof(why)), -EINVAL);
	CHECK_MSG(strstr(why, "bytes") != NULL, "why: %s", why);
}

/* Damage number k of check_names_the_first_problem; returns what the
 * refusal must say, or NULL past the last. */
static const char *damage(int k)
{
	switch (k) {
	case 0:
		seg.ctl.magic = 1;
		return "not a memgrp segment";
	case 1:
		seg.ctl.version = MGI_SEGMENT_VERSION - 1;
		return "segment version";
	case 2:
		strcpy(seg.ctl.group, "a//b");
		return "bad group name";
	case 3:
		memset(seg.ctl.group, 'x', sizeof(seg.ctl.group));
		return "not terminated";
	case 4:
		atomic_store(&seg.ctl.memory.max, UINT64_MAX);
		return "memory max limit";
	case 5:
		atomic_store(&seg.ctl.memory.max, 0);
		return "memory limit 0";
	case 6:
		atomic_store(&seg.ctl.swap.high, MGI_PAGES_UNLIMITED + 1);
		return "swap high limit";
	case 7:
		atomic_store(&seg.ctl.swappiness, 101);
		return "swappiness";
	case 8:
		atomic_store(&seg.ctl.mode, 7);
		return "mode";
	case 9:
		atomic_store(&seg.ctl.fault_around, 0);
		return "fault-around";
	case 10:
		atomic_store(&seg.ctl.thresholds[0].set.size, UINT32_MAX);
		return "holds 4294967295 thresholds";
	case 11:
		atomic_store(&seg.ctl.thresholds[1].set.size, 2);
		atomic_store(&seg.ctl.thresholds[1].set.entries[0].threshold, 9);
		return "not sorted";
	case 12:
		atomic_store(&seg.ctl.thresholds[1].set.size, 1);
		atomic_store(&seg.ctl.thresholds[1].set.entries[0].listener, MGI_LISTENERS_MAX);
		return "names listener";
	case 13:
		atomic_store(&seg.acct.thresholds[0].state, 1000);
		return "position 1000";
	case 14:
		atomic_store(&seg.acct.pending[5], UINT64_MAX);
		return "crossings pending";
	case 15:
		atomic_store(&seg.acct.memory.usage, (uint64_t)-5788214932561581428LL);
		return "memory usage";
	case 16:
		atomic_store(&seg.ctl.procs[7].pid, 1);
		return "names pid 1";
	case 17:
		atomic_store(&seg.ctl.procs[7].pid, -7);
		return "names pid -7";
	case 18:
		atomic_store(&seg.ctl.procs[7].pid, MGI_PID_MAX);
		return "names pid";
	case 19:
		atomic_store(&seg.ctl.procs[9].pid, 4242);
		return "holds slots";
	case 20:
		atomic_store(&seg.acct.procs[11].charged, 5);
		return "free slot 11";
	case 21:
		atomic_store(&seg.acct.procs[0].charged, 31 + 64);
		return "the group uses 30";
	case 22:
		atomic_store(&seg.ctl.granted, MGI_PAGES_UNLIMITED + 1);
		return "beyond any limit";
	case 23:
		atomic_store(&seg.ctl.swap_granted, UINT64_MAX);
		return "beyond any limit";
	case 24:
		strcpy(seg.ctl.group, "web");
		atomic_store(&seg.ctl.granted, 1);
		return "a top-level group holds a grant";
	case 25:
		seg.ctl.oom_set = MGI_OOM_SET_ALL + 1;
		return "OOM settings flags";
	case 26:
		seg.ctl.oom_policy = 5;
		return "OOM policy 5";
	case 27:
		seg.ctl.oom_scope = 2;
		return "OOM kill scope 2";
	case 28:
		seg.ctl.oom_signal = 1; /* SIGHUP */
		return "OOM signal 1";
	case 29:
		seg.ctl.oom_grace_ms = MGI_OOM_GRACE_MAX_MS + 1;
		return "OOM grace";
	case 30:
		memset(seg.ctl.oom_avoid, 'a', sizeof(seg.ctl.oom_avoid));
		return "OOM regex is not terminated";
	case 31:
		seg.ctl.oom_kill_disable = 2;
		return "OOM kill disable 2";
	case 32:
		atomic_store(&seg.ctl.under_oom, 7);
		return "under_oom 7";
	case 33:
		memset(seg.ctl.oom_prekill, 'x', sizeof(seg.ctl.oom_prekill));
		return "pre-kill command is not terminated";
	case 34:
		seg.ctl.oom_prekill_timeout_ms = MGI_OOM_PREKILL_TIMEOUT_MAX_MS + 1;
		return "OOM pre-kill timeout";
	case 35: {
		int a = mgi_segment_claim(&seg, 5151);
		seg.ctl.procs[a].oom_priority = 1001;
		return "has OOM priority 1001";
	}
	case 36:
		seg.ctl.oom_handler_timeout_ms = MGI_OOM_HANDLER_TIMEOUT_MAX_MS + 1;
		return "OOM handler timeout";
	case 37:
		seg.ctl.oom_reserve_pages = MGI_PAGES_UNLIMITED + 1;
		return "OOM reserve";
	case 38:
		atomic_store(&seg.ctl.oom_handling, 2);
		return "oom_handling 2";
	default:
		return NULL;
	}
}

/* Each corruption is refused, naming the first problem. */
static void check_names_the_first_problem(void)
{
	const char *want;

	for (int k = 0; (check_accepts_a_valid_segment(), want = damage(k)) != NULL; k++) {
		char why[200] = "";
		int rc = mgi_segment_check(&seg, sizeof(seg), why, sizeof(why));
		CHECK_MSG(rc == -EINVAL && strstr(why, want) != NULL, "case %d: rc %d, why '%s', want '%s'",
			  k, rc, why, want);
	}
}

/* A nested group's grant is within its parent's usage (which counts it);
 * a grant of a plausible size passes mgi_segment_check. */
static void check_grant_against_the_parent(void)
{
	static mgi_segment_t parent;
	char why[200] = "";

	check_accepts_a_valid_segment();
	mgi_segment_init(&parent, "web", 16);
	mgi_counter_path_t pp = mgi_segment_path(&parent), ps = mgi_segment_swap_path(&pp);
	mgi_counter_charge(&pp, 100);
	mgi_counter_charge(&ps, 7);
	atomic_store(&seg.ctl.granted, 100);
	atomic_store(&seg.ctl.swap_granted, 7);
	CHECK_INT_EQ(mgi_segment_check(&seg, sizeof(seg), why, sizeof(why)), 0);
	CHECK_INT_EQ(mgi_segment_check_grant(&parent, &seg, why, sizeof(why)), 0);
	atomic_store(&seg.ctl.granted, 101);
	CHECK_INT_EQ(mgi_segment_check_grant(&parent, &seg, why, sizeof(why)), -EINVAL);
	CHECK_MSG(strstr(why, "granted 101 pages") && strstr(why, "'web' uses (100)"), "why: %s", why);
	atomic_store(&seg.ctl.granted, 100);
	atomic_store(&seg.ctl.swap_granted, 8);
	CHECK_INT_EQ(mgi_segment_check_grant(&parent, &seg, why, sizeof(why)), -EINVAL);
	CHECK_MSG(strstr(why, "pages of swap") != NULL, "why: %s", why);
}

/* What a process wrote into its accounting part is clamped where the
 * manager uses it, and reported. */
static void audit_clamps_and_reports(void)
{
	char why[200];
	mgi_segment_init(&seg, "g", 16);
	mgi_counter_path_t p = mgi_segment_path(&seg);
	int a = mgi_segment_claim(&seg, 100), b = mgi_segment_claim(&seg, 200);
	mgi_counter_charge(&p, 40);
	atomic_store(&seg.acct.procs[a].charged, 30);
	atomic_store(&seg.acct.procs[b].charged, 10);
	mgi_threshold_register(&seg.ctl.thresholds[0].set, &seg.acct.thresholds[0], 50, 1, 40);
	CHECK_EQ(mgi_segment_audit(&seg, 64, why, sizeof(why)), 0); /* honest: nothing */

	atomic_store(&seg.acct.memory.usage, UINT64_MAX - 3);
	unsigned bits = mgi_segment_audit(&seg, 64, why, sizeof(why));
	CHECK_EQ(bits, MGI_TAMPER_USAGE);
	CHECK_MSG(strstr(why, "memory usage") != NULL, "why: %s", why);
	CHECK_EQ(mgi_counter_read(&seg.acct.memory), 40); /* what the slots hold */

	atomic_store(&seg.acct.pending[9], UINT64_MAX);
	atomic_store(&seg.acct.thresholds[0].state, 77);
	atomic_store(&seg.acct.procs[300].charged, 12);
	atomic_store(&seg.acct.procs[a].charged, 1000);
	bits = mgi_segment_audit(&seg, 64, why, sizeof(why));
	CHECK_EQ(bits, MGI_TAMPER_PENDING | MGI_TAMPER_POSITION | MGI_TAMPER_FREE_SLOT |
			       MGI_TAMPER_SLOTS);
	CHECK_EQ(atomic_load(&seg.acct.pending[9]), 0);
	CHECK_EQ((uint32_t)atomic_load(&seg.acct.thresholds[0].state), 0); /* 40 < 50 */
	CHECK_EQ(atomic_load(&seg.acct.procs[300].charged), 0);
	/* The inflated slot is believed no further than the group's usage:
	 * as a victim's size, and when it is released. */
	CHECK_EQ(mgi_segment_slot_charged(&seg, a), 40);
	CHECK_INT_EQ(mgi_segment_largest(&seg), a);
	CHECK_INT_EQ(mgi_segment_release(&seg, a, 100, &p), 40);
	CHECK_EQ(mgi_counter_read(&seg.acct.memory), 0);
}

/* A nested group's process cannot uncharge its ancestors of more than its
 * own group holds, whatever its slot says. */
static void release_takes_no_more_than_the_group_holds(void)
{
	mgi_segment_init(&parent_seg, "web", 16);
	mgi_segment_init(&seg, "web/api", 16);
	mgi_counter_path_t p = mgi_segment_path(&seg);
	mgi_segment_path_add(&p, &parent_seg);
	mgi_counter_path_t pp = mgi_segment_path(&parent_seg);
	int a = mgi_segment_claim(&seg, 100);
	mgi_counter_charge(&p, 10);
	mgi_counter_charge(&pp, 500); /* web/db's and web's own */
	atomic_store(&seg.acct.procs[a].charged, UINT64_MAX / 2);
	atomic_store(&seg.acct.procs[a].swapped, UINT64_MAX / 2);
	CHECK_INT_EQ(mgi_segment_release(&seg, a, 100, &p), 10);
	CHECK_EQ(mgi_counter_read(&parent_seg.acct.memory), 500);
	CHECK_EQ(mgi_counter_read(&parent_seg.acct.swap), 0);
}

/* The crossing check of an agent or the manager over a position and
 * pending counts a process scribbled: in bounds (ASan), no hang. */
static void checks_over_a_scribbled_position(void)
{
	uint64_t s = mgt_seed();
	mgi_segment_init(&seg, "g", 16);
	for (uint64_t l = 0; l < 5; l++)
		mgi_threshold_register(&seg.ctl.thresholds[l % 2].set, &seg.acct.thresholds[l % 2],
				       10 * l, l, 0);
	for (int round = 0; round < 3000; round++) {
		uint64_t junk = mgt_below(&s, 1ULL << 32) << 32 | mgt_below(&s, 1ULL << 32);
		if (mgt_below(&s, 8))
			junk &= ~(1ULL << 32);
		atomic_store(&seg.acct.thresholds[round % 2].state, junk);
		atomic_store(&seg.acct.memory.usage, mgt_below(&s, 100));
		mgi_segment_check_thresholds(&seg);
	}
	for (int l = 5; l < MGI_LISTENERS_MAX; l++)
		CHECK_EQ(atomic_load(&seg.acct.pending[l]), 0); /* only registered ones */
}

int main(int argc, char **argv)
{
	MGT_INIT(argc, argv);
	MGT_RUN(claim_release_uncharges);
	MGT_RUN(spare_bind_and_release);
	MGT_RUN(releasing_clears_the_oom_victim);
	MGT_RUN(coldest_ranking);
	MGT_RUN(release_uncharges_swap);
	MGT_RUN(stall_histogram);
	MGT_RUN(full_and_invalid);
	MGT_RUN(release_uncharges_the_whole_path);
	MGT_RUN(concurrent_release_happens_once);
	MGT_RUN(check_accepts_a_valid_segment);
	MGT_RUN(check_names_the_first_problem);
	MGT_RUN(check_grant_against_the_parent);
	MGT_RUN(audit_clamps_and_reports);
	MGT_RUN(release_takes_no_more_than_the_group_holds);
	MGT_RUN(checks_over_a_scribbled_position);
	MGT_DONE();
}

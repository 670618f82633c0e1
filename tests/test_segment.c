/* test_segment.c - the shared segment's process slots: claim, release once, victim. */
#include <errno.h>
#include <pthread.h>

#include "harness.h"
#include "segment.h"

static mgi_segment_t seg;

static void claim_release_uncharges(void)
{
	mgi_segment_init(&seg, "g", 16);
	mgi_counter_path_t p = mgi_segment_path(&seg);
	int a = mgi_segment_claim(&seg, 100), b = mgi_segment_claim(&seg, 200);
	CHECK(a >= 0 && b >= 0 && a != b);
	CHECK(mgi_counter_try_charge(&p, 30, NULL));
	atomic_store(&seg.procs[a].charged, 30);
	CHECK(mgi_counter_try_charge(&p, 50, NULL));
	atomic_store(&seg.procs[b].charged, 50);
	CHECK_EQ(mgi_segment_nr_procs(&seg), 2);
	CHECK_INT_EQ(mgi_segment_largest(&seg), b);
	CHECK_INT_EQ(mgi_segment_release(&seg, b, 999, &p), -ESRCH); /* not its pid */
	CHECK_INT_EQ(mgi_segment_release(&seg, b, 200, &p), 50);
	CHECK_INT_EQ(mgi_segment_release(&seg, b, 200, &p), -ESRCH); /* only once */
	CHECK_EQ(mgi_counter_read(&seg.memory), 30);
	CHECK_INT_EQ(mgi_segment_largest(&seg), a);
	CHECK_EQ(mgi_segment_nr_procs(&seg), 1);
	/* The freed slot starts from zero for its next owner. */
	int c = mgi_segment_claim(&seg, 300);
	CHECK_EQ(atomic_load(&seg.procs[c].charged), 0);
}

/* Coldest first: staged pages untouched longest, else the largest; a slot
 * holding nothing is never chosen. */
static void coldest_ranking(void)
{
	mgi_segment_init(&seg, "g", 16);
	CHECK_INT_EQ(mgi_segment_coldest(&seg), -1);
	int a = mgi_segment_claim(&seg, 100), b = mgi_segment_claim(&seg, 200);
	int c = mgi_segment_claim(&seg, 300);
	atomic_store(&seg.procs[a].charged, 10);
	atomic_store(&seg.procs[b].charged, 50);
	CHECK_INT_EQ(mgi_segment_coldest(&seg), b); /* nothing staged: the largest */
	atomic_store(&seg.procs[a].staged, 4);
	atomic_store(&seg.procs[a].staged_since_ns, 5000);
	CHECK_INT_EQ(mgi_segment_coldest(&seg), a); /* staged beats unstaged */
	atomic_store(&seg.procs[c].charged, 5);
	atomic_store(&seg.procs[c].staged, 1);
	atomic_store(&seg.procs[c].staged_since_ns, 1000); /* untouched longer */
	CHECK_INT_EQ(mgi_segment_coldest(&seg), c);
	CHECK(mgi_proc_colder(&seg.procs[c], &seg.procs[a]));
	CHECK(!mgi_proc_colder(&seg.procs[a], &seg.procs[c]));
	atomic_store(&seg.procs[c].charged, 0); /* nothing left to take */
	CHECK_INT_EQ(mgi_segment_coldest(&seg), a);
	CHECK(!mgi_proc_colder(&seg.procs[c], &seg.procs[b]));
}

/* A process's swap goes with it, up the swap path beside the memory one. */
static void release_uncharges_swap(void)
{
	static mgi_segment_t parent;
	mgi_segment_init(&seg, "g/c", 16);
	mgi_segment_init(&parent, "g", 16);
	mgi_counter_path_t p = {.level = {&seg.memory, &parent.memory}, .depth = 2};
	mgi_counter_path_t sp = mgi_segment_swap_path(&p);
	CHECK(sp.level[0] == &seg.swap && sp.level[1] == &parent.swap);
	int a = mgi_segment_claim(&seg, 100);
	CHECK(mgi_counter_try_charge(&p, 8, NULL));
	CHECK(mgi_counter_try_charge(&sp, 5, NULL));
	atomic_store(&seg.procs[a].charged, 8);
	atomic_store(&seg.procs[a].swapped, 5);
	atomic_store(&seg.procs[a].staged, 2);
	CHECK_INT_EQ(mgi_segment_release(&seg, a, 100, &p), 8);
	CHECK_EQ(mgi_counter_read(&parent.memory), 0);
	CHECK_EQ(mgi_counter_read(&seg.swap), 0);
	CHECK_EQ(mgi_counter_read(&parent.swap), 0);
	CHECK_EQ(atomic_load(&seg.procs[a].staged), 0);
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
	CHECK_EQ(atomic_load(&seg.reclaim_hist[0]), 2);
	CHECK_EQ(atomic_load(&seg.reclaim_hist[1]), 1);
	CHECK_EQ(atomic_load(&seg.reclaim_hist[12]), 1);
	CHECK_EQ(atomic_load(&seg.reclaim_hist[MGI_RECLAIM_BUCKETS - 1]), 1);
}

static void releasing_clears_the_oom_victim(void)
{
	mgi_segment_init(&seg, "g", 16);
	mgi_counter_path_t p = mgi_segment_path(&seg);
	int a = mgi_segment_claim(&seg, 100);
	atomic_store(&seg.oom_victim, 100);
	CHECK_INT_EQ(mgi_segment_release(&seg, a, 100, &p), 0);
	CHECK_EQ(atomic_load(&seg.oom_victim), 0);
}

static void full_and_invalid(void)
{
	mgi_segment_init(&seg, "a-very-long-group-name", 1000);
	mgi_counter_path_t p = mgi_segment_path(&seg);
	CHECK_EQ(atomic_load(&seg.fault_around), MGI_FAULT_AROUND_MAX);
	CHECK(mgi_segment_valid(&seg, sizeof(seg)));
	CHECK(!mgi_segment_valid(&seg, sizeof(seg) - 1));
	for (int i = 0; i < MGI_PROCS_MAX; i++)
		CHECK(mgi_segment_claim(&seg, i + 1) >= 0);
	CHECK_INT_EQ(mgi_segment_claim(&seg, 5000), -ENOSPC);
	CHECK_INT_EQ(mgi_segment_release(&seg, -1, 1, &p), -ESRCH);
	CHECK_INT_EQ(mgi_segment_release(&seg, MGI_PROCS_MAX, 1, &p), -ESRCH);
	seg.magic ^= 1;
	CHECK(!mgi_segment_valid(&seg, sizeof(seg)));
}

/* The manager and an agent may both try to release a dead process's slot:
 * exactly one succeeds, and what it held is uncharged exactly once. */
/* A nested group's slot gives its pages back to every ancestor on the path. */
static mgi_segment_t parent_seg;

static void release_uncharges_the_whole_path(void)
{
	mgi_segment_init(&parent_seg, "web", 16);
	mgi_segment_init(&seg, "web/api", 16);
	mgi_counter_path_t p = {.level = {&seg.memory, &parent_seg.memory}, .depth = 2};
	int a = mgi_segment_claim(&seg, 100);
	CHECK(mgi_counter_try_charge(&p, 40, NULL));
	atomic_store(&seg.procs[a].charged, 40);
	mgi_counter_path_t pp = mgi_segment_path(&parent_seg);
	mgi_counter_charge(&pp, 5); /* the parent's own processes */
	CHECK_EQ(mgi_counter_read(&parent_seg.memory), 45);
	CHECK_INT_EQ(mgi_segment_release(&seg, a, 100, &p), 40);
	CHECK_EQ(mgi_counter_read(&seg.memory), 0);
	CHECK_EQ(mgi_counter_read(&parent_seg.memory), 5);
}

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
		atomic_store(&seg.procs[s].charged, 77);
		atomic_store(&released_total, 0);
		atomic_store(&start_flag, 0);
		pthread_t t[2];
		for (int i = 0; i < 2; i++)
			pthread_create(&t[i], NULL, releaser, (void *)(intptr_t)s);
		atomic_store(&start_flag, 1);
		for (int i = 0; i < 2; i++)
			pthread_join(t[i], NULL);
		CHECK_EQ(atomic_load(&released_total), 77);
		CHECK_EQ(mgi_counter_read(&seg.memory), 0);
		CHECK_EQ(atomic_load(&seg.procs[s].pid), 0);
	}
}

int main(int argc, char **argv)
{
	MGT_INIT(argc, argv);
	MGT_RUN(claim_release_uncharges);
	MGT_RUN(releasing_clears_the_oom_victim);
	MGT_RUN(coldest_ranking);
	MGT_RUN(release_uncharges_swap);
	MGT_RUN(stall_histogram);
	MGT_RUN(full_and_invalid);
	MGT_RUN(release_uncharges_the_whole_path);
	MGT_RUN(concurrent_release_happens_once);
	MGT_DONE();
}

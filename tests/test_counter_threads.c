/* test_counter_threads.c - concurrent try_charge/uncharge: no lost update, no overshoot. */
#include <pthread.h>
#include <sched.h>

#include "counter.h"
#include "grant.h"
#include "harness.h"
#include "threshold.h"

#define ITERATIONS 400000
#define LIMIT 64

struct shared {
	mgi_counter_t leaf, mid, top;
	mgi_limits_t leaf_l, mid_l, top_l; /* apart, as in a segment */
	mgi_counter_path_t path;
	/* Pages that successful charges hold right now, as the threads see
	 * them; never above LIMIT if no charge overshoots. */
	_Atomic uint64_t held, worst_held, successes;
	mgi_threshold_set_t *thresholds;
	mgi_threshold_pos_t pos;
	_Atomic uint64_t ups, downs;
};

static void on_cross(void *arg, const mgi_threshold_event_t *ev)
{
	struct shared *sh = arg;
	atomic_fetch_add(ev->up ? &sh->ups : &sh->downs, 1);
}

static void *limited_worker(void *arg)
{
	struct shared *sh = arg;
	uint64_t s = (uint64_t)pthread_self() | 1, mine = 0;

	for (int i = 0; i < ITERATIONS; i++) {
		uint64_t n = 1 + mgt_below(&s, 4);
		/* Each thread alone can reach the limit (so it is hit however
		 * the threads are scheduled), and together they contend. */
		if (mine < LIMIT - 2 && mgt_below(&s, 2)) {
			if (mgi_counter_try_charge(&sh->path, n, NULL)) {
				uint64_t now = atomic_fetch_add(&sh->held, n) + n;
				uint64_t worst = atomic_load(&sh->worst_held);
				while (now > worst &&
				       !atomic_compare_exchange_weak(&sh->worst_held, &worst, now))
					;
				mine += n;
				atomic_fetch_add(&sh->successes, 1);
			}
		} else if (mine) {
			n = n > mine ? mine : n;
			/* Release our claim first, then the charge, so that
			 * held never runs behind the counter. */
			atomic_fetch_sub(&sh->held, n);
			mgi_counter_uncharge(&sh->path, n);
			mine -= n;
		}
	}
	atomic_fetch_sub(&sh->held, mine);
	mgi_counter_uncharge(&sh->path, mine);
	return NULL;
}

static void two_threads_hold_the_limit(void)
{
	struct shared sh = {0};
	pthread_t t[2];

	mgi_counter_init(&sh.leaf);
	mgi_counter_init(&sh.mid);
	mgi_counter_init(&sh.top);
	mgi_counter_limits_init(&sh.leaf_l);
	mgi_counter_limits_init(&sh.mid_l);
	mgi_counter_limits_init(&sh.top_l);
	mgi_counter_set_max(&sh.mid, &sh.mid_l, LIMIT);
	sh.path = (mgi_counter_path_t){.level = {&sh.leaf, &sh.mid, &sh.top},
				       .limit = {&sh.leaf_l, &sh.mid_l, &sh.top_l}, .depth = 3};
	for (int i = 0; i < 2; i++)
		CHECK(pthread_create(&t[i], NULL, limited_worker, &sh) == 0);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);

	printf("     %llu successful charges, peak held %llu of %d\n",
	       (unsigned long long)atomic_load(&sh.successes),
	       (unsigned long long)atomic_load(&sh.worst_held), LIMIT);
	CHECK_EQ(mgi_counter_read(&sh.leaf), 0); /* no lost update */
	CHECK_EQ(mgi_counter_read(&sh.mid), 0);
	CHECK_EQ(mgi_counter_read(&sh.top), 0);
	CHECK_LE(atomic_load(&sh.worst_held), LIMIT); /* no overshoot */
	CHECK_LE(atomic_load(&sh.mid.watermark), LIMIT);
	CHECK_GE(atomic_load(&sh.successes), ITERATIONS / 4);
	CHECK_GE(atomic_load(&sh.mid.failcnt), 1); /* the limit was reached */
}

static void *unlimited_worker(void *arg)
{
	struct shared *sh = arg;
	for (int i = 0; i < ITERATIONS; i++) {
		if (!mgi_counter_try_charge(&sh->path, 1, NULL))
			abort();
		if (i % 3 == 0) {
			mgi_counter_uncharge(&sh->path, 1);
		}
		uint64_t u = mgi_counter_read(&sh->leaf);
		mgi_threshold_check_live(sh->thresholds, &sh->pos, u, &sh->leaf.usage, on_cross, sh);
	}
	return NULL;
}

static void two_threads_lose_no_update(void)
{
	struct shared sh = {0};
	pthread_t t[2];

	mgi_counter_init(&sh.leaf);
	mgi_counter_init(&sh.top);
	mgi_counter_limits_init(&sh.leaf_l);
	mgi_counter_limits_init(&sh.top_l);
	sh.path = (mgi_counter_path_t){.level = {&sh.leaf, &sh.top},
				       .limit = {&sh.leaf_l, &sh.top_l}, .depth = 2};
	sh.thresholds = malloc(mgi_threshold_set_bytes(4));
	mgi_threshold_set_init(sh.thresholds, 4);
	mgi_threshold_pos_init(&sh.pos);
	mgi_threshold_register(sh.thresholds, &sh.pos, 1000, 1, 0);
	mgi_threshold_register(sh.thresholds, &sh.pos, 200000, 2, 0);
	for (int i = 0; i < 2; i++)
		CHECK(pthread_create(&t[i], NULL, unlimited_worker, &sh) == 0);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);

	uint64_t want = 2 * (ITERATIONS - (ITERATIONS + 2) / 3);
	CHECK_EQ(mgi_counter_read(&sh.leaf), want);
	CHECK_EQ(mgi_counter_read(&sh.top), want);
	/* The peak may include each thread's last in-flight page. */
	CHECK_GE(atomic_load(&sh.top.watermark), want);
	CHECK_LE(atomic_load(&sh.top.watermark), want + 2);
	/* Usage rose monotonically past both thresholds (to ~533k): each
	 * reported up at least once, and every down has a matching up. */
	uint64_t ups = atomic_load(&sh.ups), downs = atomic_load(&sh.downs);
	CHECK_GE(ups, 2);
	CHECK_EQ(ups - downs, 2);
	/* The index ended consistent with the final usage. */
	CHECK(mgi_threshold_in_band(sh.thresholds, &sh.pos, mgi_counter_read(&sh.leaf)));
	free(sh.thresholds);
}

/* The grant scheme under contention: two agent threads of web/api charge
 * api's counter against its grant and ask for more when refused; the
 * manager's thread gives grants and takes back what is unused, as on its
 * tick. web's usage (what the manager charged) must never fall below what
 * the agents' successful charges hold. */
struct granted_family {
	mgi_counter_t api, web;
	mgi_limits_t api_l, web_l;
	_Atomic uint64_t granted, want, held, violations, asks, stop;
	mgi_counter_path_t own, anc;
};

static void *grant_agent(void *arg)
{
	struct granted_family *f = arg;
	uint64_t s = (uint64_t)pthread_self() | 1, mine = 0;
	unsigned failed;

	for (int i = 0; i < ITERATIONS / 4; i++) {
		uint64_t n = 1 + mgt_below(&s, 8);
		if (mine < 200 && mgt_below(&s, 2)) {
			if (mgi_counter_try_charge(&f->own, n, &failed)) {
				atomic_fetch_add(&f->held, n);
				mine += n;
				/* What this thread holds stays in api until it
				 * uncharges it, and the grant (web) never falls
				 * below api's usage: web >= api >= mine at any
				 * instant. (The sum of both threads' holdings,
				 * read before web, is no bound: the other thread
				 * may uncharge between the two reads, and a
				 * take-back follow it; TSan's pace showed it.) */
				if (mine > mgi_counter_read(&f->web))
					atomic_fetch_add(&f->violations, 1);
			} else if (failed == MGI_LEVEL_GRANT) {
				/* As a fault waits for the manager's answer
				 * (bounded: the manager may have stopped). */
				atomic_store(&f->want, n);
				atomic_fetch_add(&f->asks, 1);
				for (int k = 0; k < 1000 && atomic_load(&f->want); k++)
					sched_yield();
			}
		} else if (mine) {
			n = n > mine ? mine : n;
			atomic_fetch_sub(&f->held, n);
			mgi_counter_uncharge(&f->own, n);
			mine -= n;
		}
	}
	atomic_fetch_sub(&f->held, mine);
	mgi_counter_uncharge(&f->own, mine);
	return NULL;
}

static void *grant_manager(void *arg)
{
	struct granted_family *f = arg;
	uint64_t s = 7;

	while (!atomic_load(&f->stop)) {
		uint64_t want = atomic_exchange(&f->want, 0);
		if (want)
			mgi_grant_give(&f->anc, &f->granted, want, NULL);
		/* Often everything unused (as on a refusal): the race with
		 * charges in flight is what is tested. */
		mgi_grant_take_back(&f->anc, &f->granted, &f->api, mgt_below(&s, 4));
		if (mgi_counter_read(&f->web) != atomic_load(&f->granted))
			atomic_fetch_add(&f->violations, 1);
	}
	return NULL;
}

static void grant_holds_under_concurrent_take_back(void)
{
	struct granted_family f = {0};
	pthread_t t[3];

	mgi_counter_init(&f.api);
	mgi_counter_init(&f.web);
	mgi_counter_limits_init(&f.api_l);
	mgi_counter_limits_init(&f.web_l);
	mgi_counter_set_max(&f.web, &f.web_l, 300);
	f.own = (mgi_counter_path_t){.level = {&f.api}, .limit = {&f.api_l}, .depth = 1,
				     .grant = &f.granted};
	f.anc = (mgi_counter_path_t){.level = {&f.web}, .limit = {&f.web_l}, .depth = 1};
	CHECK(pthread_create(&t[2], NULL, grant_manager, &f) == 0);
	for (int i = 0; i < 2; i++)
		CHECK(pthread_create(&t[i], NULL, grant_agent, &f) == 0);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	atomic_store(&f.stop, 1);
	pthread_join(t[2], NULL);

	printf("     %llu grant requests, web's peak %llu of 300\n",
	       (unsigned long long)atomic_load(&f.asks),
	       (unsigned long long)atomic_load(&f.web.watermark));
	CHECK_EQ(atomic_load(&f.violations), 0);
	CHECK_GE(atomic_load(&f.asks), 1); /* the grant was reached */
	CHECK_EQ(mgi_counter_read(&f.api), 0);
	CHECK_EQ(mgi_counter_read(&f.web), atomic_load(&f.granted));
	CHECK_LE(atomic_load(&f.web.watermark), 300);
	mgi_grant_take_back(&f.anc, &f.granted, &f.api, 0);
	CHECK_EQ(mgi_counter_read(&f.web), 0);
	CHECK_EQ(atomic_load(&f.granted), 0);
}

int main(int argc, char **argv)
{
	MGT_INIT(argc, argv);
	MGT_RUN(two_threads_hold_the_limit);
	MGT_RUN(two_threads_lose_no_update);
	MGT_RUN(grant_holds_under_concurrent_take_back);
	MGT_DONE();
}

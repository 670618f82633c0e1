/* test_grant.c - the grant scheme's arithmetic on literals: charges within a grant, batches, giving and taking back. */
#include "counter.h"
#include "grant.h"
#include "segment.h"
#include "harness.h"

/* web (max 100) above web/api: api's agents charge api's counter against
 * its grant; the manager charges web. */
struct family {
	mgi_counter_t api, web;
	mgi_limits_t api_l, web_l;
	_Atomic uint64_t granted;
	mgi_counter_path_t own; /* what api's agents charge */
	mgi_counter_path_t anc; /* what the manager charges for api */
};

static void family_init(struct family *f, uint64_t web_max)
{
	mgi_counter_init(&f->api);
	mgi_counter_init(&f->web);
	mgi_counter_limits_init(&f->api_l);
	mgi_counter_limits_init(&f->web_l);
	mgi_counter_set_max(&f->web, &f->web_l, web_max);
	atomic_init(&f->granted, 0);
	f->own = (mgi_counter_path_t){.level = {&f->api}, .limit = {&f->api_l}, .depth = 1,
				      .grant = &f->granted};
	f->anc = (mgi_counter_path_t){.level = {&f->web}, .limit = {&f->web_l}, .depth = 1};
}

static void a_charge_stays_within_its_grant(void)
{
	struct family f;
	unsigned failed = 99;

	family_init(&f, 100);
	/* No grant yet: the first charge asks. No failcnt: not a limit. */
	CHECK(!mgi_counter_try_charge(&f.own, 1, &failed));
	CHECK_EQ(failed, MGI_LEVEL_GRANT);
	CHECK_EQ(mgi_counter_read(&f.api), 0);
	CHECK_EQ(atomic_load(&f.api.failcnt), 0);
	atomic_store(&f.granted, 10);
	CHECK(mgi_counter_try_charge(&f.own, 10, &failed));
	CHECK_EQ(mgi_counter_read(&f.api), 10);
	CHECK_EQ(mgi_counter_read(&f.web), 0); /* the agent never touched web */
	CHECK(!mgi_counter_try_charge(&f.own, 1, &failed));
	CHECK_EQ(failed, MGI_LEVEL_GRANT);
	CHECK_EQ(mgi_counter_read(&f.api), 10);
	/* The group's own limit still comes first. */
	mgi_counter_set_max(&f.api, &f.api_l, 12);
	atomic_store(&f.granted, 50);
	CHECK(!mgi_counter_try_charge(&f.own, 5, &failed));
	CHECK_EQ(failed, 0);
	CHECK_EQ(atomic_load(&f.api.failcnt), 1);
	/* The margin counts the grant; charge_upto takes what fits. */
	mgi_counter_set_max(&f.api, &f.api_l, MGI_PAGES_UNLIMITED);
	atomic_store(&f.granted, 14);
	CHECK_EQ(mgi_counter_path_margin(&f.own), 4);
	CHECK_EQ(mgi_counter_try_charge_upto(&f.own, 9, &failed), 4);
	CHECK_EQ(mgi_counter_read(&f.api), 14);
	CHECK_EQ(mgi_counter_try_charge_upto(&f.own, 9, &failed), 0);
	CHECK_EQ(failed, MGI_LEVEL_GRANT);
}

static void batch_shrinks_near_the_limit(void)
{
	CHECK_EQ(mgi_grant_batch(1, 1000000), 1 + MGI_GRANT_BATCH);
	CHECK_EQ(mgi_grant_batch(64, MGI_PAGES_UNLIMITED), 64 + MGI_GRANT_BATCH);
	/* 100 left, 20 asked: a quarter of the 80 beyond. */
	CHECK_EQ(mgi_grant_batch(20, 100), 40);
	CHECK_EQ(mgi_grant_batch(20, 23), 20);  /* 3 / 4: nothing beyond */
	CHECK_EQ(mgi_grant_batch(20, 20), 20);
	CHECK_EQ(mgi_grant_batch(20, 5), 20);   /* refused by the limit, as asked */
	CHECK_EQ(mgi_grant_batch(0, 100), 25);
}

static void give_charges_the_ancestors(void)
{
	struct family f;
	unsigned failed = 99;

	family_init(&f, 100);
	/* 100 free: 8 and a quarter of the 92 beyond (23). */
	CHECK_EQ(mgi_grant_give(&f.anc, &f.granted, 8, &failed), 31);
	CHECK_EQ(atomic_load(&f.granted), 31);
	CHECK_EQ(mgi_counter_read(&f.web), 31);
	/* web's own process takes 60: 9 left. */
	CHECK(mgi_counter_try_charge(&f.anc, 60, NULL));
	CHECK_EQ(mgi_grant_give(&f.anc, &f.granted, 8, &failed), 8);
	CHECK_EQ(atomic_load(&f.granted), 39);
	CHECK_EQ(mgi_counter_read(&f.web), 99);
	/* Refused: the ancestor is named, nothing granted. */
	CHECK_EQ(mgi_grant_give(&f.anc, &f.granted, 2, &failed), 0);
	CHECK_EQ(failed, 0);
	CHECK_EQ(atomic_load(&f.granted), 39);
	CHECK_EQ(mgi_counter_read(&f.web), 99);
	CHECK_EQ(mgi_grant_give(&f.anc, &f.granted, 0, &failed), 0);
	/* Two levels: the grandparent refuses, its index is reported. */
	mgi_counter_t top;
	mgi_limits_t top_l;
	mgi_counter_init(&top);
	mgi_counter_limits_init(&top_l);
	mgi_counter_set_max(&top, &top_l, 100);
	mgi_counter_path_t two = {.level = {&f.web, &top}, .limit = {&f.web_l, &top_l}, .depth = 2};
	mgi_counter_set_max(&f.web, &f.web_l, 1000);
	CHECK_EQ(mgi_grant_give(&two, &f.granted, 101, &failed), 0);
	CHECK_EQ(failed, 1);
	CHECK_EQ(mgi_counter_read(&f.web), 99);
	CHECK_EQ(mgi_grant_give(&two, &f.granted, 100, &failed), 100);
	CHECK_EQ(mgi_counter_read(&top), 100);
}

static void take_back_keeps_usage_and_a_batch(void)
{
	struct family f;

	family_init(&f, 1000);
	CHECK_EQ(mgi_grant_give(&f.anc, &f.granted, 200, NULL), 200 + MGI_GRANT_BATCH);
	CHECK(mgi_counter_try_charge(&f.own, 150, NULL));
	/* 264 granted, 150 used: 50 kept beyond the usage, 64 returned. */
	CHECK_EQ(mgi_grant_take_back(&f.anc, &f.granted, &f.api, 50), 64);
	CHECK_EQ(atomic_load(&f.granted), 200);
	CHECK_EQ(mgi_counter_read(&f.web), 200);
	CHECK_EQ(mgi_grant_take_back(&f.anc, &f.granted, &f.api, 50), 0);
	/* On a refusal at the ancestor: everything unused. */
	CHECK_EQ(mgi_grant_take_back(&f.anc, &f.granted, &f.api, 0), 50);
	CHECK_EQ(mgi_counter_read(&f.web), 150);
	CHECK(!mgi_counter_try_charge(&f.own, 1, NULL));
	/* A group whose processes wrote its usage to 0 loses its grant:
	 * only its own charges are refused after that. */
	atomic_store(&f.api.usage, 0);
	CHECK_EQ(mgi_grant_take_back(&f.anc, &f.granted, &f.api, 0), 150);
	CHECK_EQ(mgi_counter_read(&f.web), 0);
	/* One that wrote it sky-high keeps what it has and gets no more. */
	atomic_store(&f.api.usage, MGI_PAGES_UNLIMITED);
	CHECK_EQ(mgi_grant_give(&f.anc, &f.granted, 10, NULL), 10 + MGI_GRANT_BATCH);
	CHECK_EQ(mgi_grant_take_back(&f.anc, &f.granted, &f.api, 0), 0);
	CHECK_EQ(mgi_counter_read(&f.web), 10 + MGI_GRANT_BATCH);
	/* Set aside, or removed: the whole grant goes back. */
	CHECK_EQ(mgi_grant_return_all(&f.anc, &f.granted), 10 + MGI_GRANT_BATCH);
	CHECK_EQ(atomic_load(&f.granted), 0);
	CHECK_EQ(mgi_counter_read(&f.web), 0);
	CHECK_EQ(mgi_grant_return_all(&f.anc, &f.granted), 0);
}

static void excess_on_literals(void)
{
	CHECK_EQ(mgi_grant_excess(10, 100, 64), 26);
	CHECK_EQ(mgi_grant_excess(10, 74, 64), 0);
	CHECK_EQ(mgi_grant_excess(10, 75, 64), 1);
	CHECK_EQ(mgi_grant_excess(100, 100, 0), 0);
	CHECK_EQ(mgi_grant_excess(101, 100, 0), 0); /* a lie: nothing back */
	CHECK_EQ(mgi_grant_excess(0, 100, 0), 100);
}

/* Two siblings under a parent of 100: one holds a large unused grant; the
 * other, refused, gets room once the unused part is taken back (the
 * manager's order on a refusal: return what is unused, then reclaim). */
static void a_sibling_gets_room_from_an_unused_grant(void)
{
	struct family a, b;

	family_init(&a, 100);
	b = a; /* b's own counter, its grant; the parent is a's web */
	mgi_counter_init(&b.api);
	atomic_init(&b.granted, 0);
	b.own.level[0] = &b.api;
	b.own.limit[0] = &b.api_l;
	b.own.grant = &b.granted;
	b.anc = a.anc;
	CHECK_EQ(mgi_grant_give(&a.anc, &a.granted, 80, NULL), 85); /* 80 + 20 / 4 */
	CHECK(mgi_counter_try_charge(&a.own, 10, NULL));
	unsigned failed = 99;
	CHECK_EQ(mgi_grant_give(&b.anc, &b.granted, 30, &failed), 0);
	CHECK_EQ(failed, 0);
	CHECK_EQ(mgi_grant_take_back(&a.anc, &a.granted, &a.api, 0), 75);
	CHECK_EQ(mgi_grant_give(&b.anc, &b.granted, 30, &failed), 30 + 15); /* 60 beyond / 4 */
	CHECK_EQ(mgi_counter_read(&a.web), 10 + 45);
}

/* Three levels as segments: web (max 200), web/api, web/api/x. x's grant
 * is charged to api within api's grant, which is raised from web when
 * short: each counter stays within its own grant, and web counts api's
 * grant (x's included) once. */
static mgi_segment_t web, api, x;

static void chain_init(void)
{
	mgi_segment_init(&web, "web", 16);
	mgi_segment_init(&api, "web/api", 16);
	mgi_segment_init(&x, "web/api/x", 16);
	mgi_counter_set_max(&web.acct.memory, &web.ctl.memory, 200);
	mgi_counter_set_max(&web.acct.swap, &web.ctl.swap, 10);
}

static void a_chain_grants_level_by_level(void)
{
	mgi_segment_t *chain[] = {&x, &api, &web};
	unsigned failed = 99;

	chain_init();
	/* x asks 10: the chain's room is web's 200, so 10 and a batch (64 at
	 * most, a quarter of the 190 beyond: 47). api's grant is short of it,
	 * so web first gives api 57 and a quarter of the 143 beyond (35). */
	CHECK_EQ(mgi_grant_give_chain(chain, 3, false, 10, &failed), 57);
	CHECK_EQ(atomic_load(&x.ctl.granted), 57);
	CHECK_EQ(mgi_counter_read(&api.acct.memory), 57);
	CHECK_EQ(atomic_load(&api.ctl.granted), 92);
	CHECK_EQ(mgi_counter_read(&web.acct.memory), 92);
	/* x's agents charge within x's grant, touching nothing above. */
	mgi_counter_path_t own = mgi_grant_path(&x, false);
	CHECK(mgi_counter_try_charge(&own, 57, NULL));
	CHECK(!mgi_counter_try_charge(&own, 1, &failed));
	CHECK_EQ(failed, MGI_LEVEL_GRANT);
	CHECK_EQ(mgi_counter_read(&api.acct.memory), 57);
	/* web's own processes take 100: 8 left. x asks 50: api's grant is
	 * raised by what web has (8), not enough for 50; x is given what
	 * fits (8) within api's grant. */
	mgi_counter_path_t webp = mgi_segment_path(&web);
	CHECK(mgi_counter_try_charge(&webp, 100, NULL));
	CHECK_EQ(mgi_grant_give_chain(chain, 3, false, 50, &failed), 8);
	CHECK_EQ(atomic_load(&x.ctl.granted), 65);
	CHECK_EQ(mgi_counter_read(&api.acct.memory), 65);
	CHECK_EQ(atomic_load(&api.ctl.granted), 100);
	CHECK_EQ(mgi_counter_read(&web.acct.memory), 200);
	/* web full: x asks 40, api's grant is short by 5, web refuses it
	 * (level 2); nothing moved. */
	CHECK_EQ(mgi_grant_give_chain(chain, 3, false, 40, &failed), 0);
	CHECK_EQ(failed, 2);
	CHECK_EQ(atomic_load(&x.ctl.granted), 65);
	CHECK_EQ(atomic_load(&api.ctl.granted), 100);
	CHECK_EQ(mgi_counter_read(&api.acct.memory), 65);
	CHECK_EQ(mgi_counter_read(&web.acct.memory), 200);
	/* api's limit comes before its grant: refused at level 1. */
	CHECK_EQ(mgi_counter_set_max(&api.acct.memory, &api.ctl.memory, 70), 0);
	CHECK_EQ(mgi_grant_give_chain(chain, 3, false, 10, &failed), 0);
	CHECK_EQ(failed, 1);
	CHECK_EQ(mgi_grant_give_chain(chain, 3, false, 3, &failed), 3);
	CHECK_EQ(mgi_counter_read(&api.acct.memory), 68);
	/* Taking back goes one level: api's unused grant (100 - 68) to web. */
	CHECK_EQ(mgi_grant_take_back_from(&api, &web, false, 0), 32);
	CHECK_EQ(mgi_counter_read(&web.acct.memory), 168);
	/* x exits (its usage leaves its counter): its grant back to api,
	 * then api's to web, which holds its own 100. */
	mgi_counter_uncharge(&own, 57);
	CHECK_EQ(mgi_grant_return_to(&x, &api, false), 68);
	CHECK_EQ(mgi_counter_read(&api.acct.memory), 0);
	CHECK_EQ(mgi_grant_take_back_from(&api, &web, false, 0), 68);
	CHECK_EQ(mgi_counter_read(&web.acct.memory), 100);
	/* Swap has its own grant and limit (web's 10): 11 asked, 10 fit. */
	CHECK_EQ(mgi_grant_give_chain(chain, 3, true, 11, &failed), 10);
	CHECK_EQ(atomic_load(&api.ctl.swap_granted), 10);
	CHECK_EQ(mgi_counter_read(&web.acct.swap), 10);
	CHECK_EQ(mgi_grant_give_chain(chain, 3, true, 4, &failed), 0);
	CHECK_EQ(failed, 2);
	CHECK_EQ(mgi_counter_read(&web.acct.memory), 100);
}

/* A group claiming more than its evidence: what it holds of its grant
 * beyond the evidence and the slack goes back, whatever its usage says. */
static void a_claim_beyond_the_evidence_is_cut(void)
{
	struct family f;
	unsigned failed = 0;

	family_init(&f, 1000);
	/* slack: a batch, two windows per process, a sixteenth */
	CHECK_EQ(mgi_grant_claim_slack(0, 0), MGI_GRANT_BATCH);
	CHECK_EQ(mgi_grant_claim_slack(1600, 2), MGI_GRANT_BATCH + 4 * MGI_FAULT_AROUND_MAX + 100);
	CHECK(!mgi_grant_claim_exceeds(1600 + MGI_GRANT_BATCH + 4 * MGI_FAULT_AROUND_MAX + 100, 1600, 2));
	CHECK(mgi_grant_claim_exceeds(1600 + MGI_GRANT_BATCH + 4 * MGI_FAULT_AROUND_MAX + 101, 1600, 2));
	/* api holds 600 and a batch of web's 1000 by its grant, and claims
	 * all of it */
	CHECK_EQ(mgi_grant_give(&f.anc, &f.granted, 600, &failed), 600 + MGI_GRANT_BATCH);
	atomic_store(&f.api.usage, 600 + MGI_GRANT_BATCH);
	CHECK_EQ(mgi_grant_take_back(&f.anc, &f.granted, &f.api, 0), 0); /* its word: nothing back */
	/* the evidence says 100: cut to it (and a slack of 36) */
	CHECK_EQ(mgi_grant_cut(&f.anc, &f.granted, 136), 600 + MGI_GRANT_BATCH - 136);
	CHECK_EQ(atomic_load(&f.granted), 136);
	CHECK_EQ(mgi_counter_read(&f.web), 136);
	/* its own charges are refused by its grant; a sibling finds the room */
	CHECK(!mgi_counter_try_charge(&f.own, 1, &failed));
	CHECK_EQ(failed, MGI_LEVEL_GRANT);
	CHECK_EQ(mgi_counter_path_margin(&f.anc), 864);
	/* a cut above the grant changes nothing */
	CHECK_EQ(mgi_grant_cut(&f.anc, &f.granted, 500), 0);
	CHECK_EQ(atomic_load(&f.granted), 136);
	CHECK_EQ(mgi_counter_read(&f.web), 136);
}

int main(int argc, char **argv)
{
	MGT_INIT(argc, argv);
	MGT_RUN(a_charge_stays_within_its_grant);
	MGT_RUN(batch_shrinks_near_the_limit);
	MGT_RUN(give_charges_the_ancestors);
	MGT_RUN(take_back_keeps_usage_and_a_batch);
	MGT_RUN(excess_on_literals);
	MGT_RUN(a_sibling_gets_room_from_an_unused_grant);
	MGT_RUN(a_chain_grants_level_by_level);
	MGT_RUN(a_claim_beyond_the_evidence_is_cut);
	MGT_DONE();
}

/* test_promtext.c - the Prometheus text renderer and the listen address parser (src/core/promtext.c). */
#include "harness.h"
#include "page.h"
#include "counter.h"
#include "promtext.h"

#include <arpa/inet.h>
#include <errno.h>
#include <sys/socket.h>

#define UNLIMITED ((uint64_t)MGI_PAGES_UNLIMITED * MGI_PAGE_SIZE)

/* A plain reader of the text format, as strict as the format: comment
 * lines are "# HELP name text" or "# TYPE name type"; a sample is
 * name{group="v"[,le="b"]} value. It returns the value of `want` (a whole
 * "name{labels}"), and checks every family's HELP and TYPE come once,
 * before its samples, with the samples of one family together. */
struct reader {
	char families[64][64];
	int nfam;
	char why[600];
};

static bool family_seen(struct reader *r, const char *name)
{
	for (int i = 0; i < r->nfam; i++)
		if (!strcmp(r->families[i], name))
			return true;
	return false;
}

static bool read_text(struct reader *r, const char *text, const char *want, char *value, size_t vlen)
{
	char line[512], current[64] = "", base[64];
	const char *p = text;
	bool found = false;

	r->nfam = 0;
	while (*p) {
		const char *nl = strchr(p, '\n');
		if (!nl) {
			snprintf(r->why, sizeof(r->why), "text does not end with a newline");
			return false;
		}
		size_t n = (size_t)(nl - p);
		if (n >= sizeof(line)) {
			snprintf(r->why, sizeof(r->why), "line too long");
			return false;
		}
		memcpy(line, p, n);
		line[n] = '\0';
		p = nl + 1;
		if (!strncmp(line, "# HELP ", 7)) {
			if (sscanf(line + 7, "%63s", base) != 1 || family_seen(r, base)) {
				snprintf(r->why, sizeof(r->why), "HELP twice or bad: %s", line);
				return false;
			}
			snprintf(r->families[r->nfam++], 64, "%s", base);
			snprintf(current, sizeof(current), "%s", base);
			continue;
		}
		if (!strncmp(line, "# TYPE ", 7)) {
			char type[32];
			if (sscanf(line + 7, "%63s %31s", base, type) != 2 || strcmp(base, current) != 0 ||
			    (strcmp(type, "gauge") && strcmp(type, "counter") && strcmp(type, "histogram"))) {
				snprintf(r->why, sizeof(r->why), "bad TYPE: %s", line);
				return false;
			}
			size_t bl = strlen(base);
			if (!strcmp(type, "counter") && (bl < 6 || strcmp(base + bl - 6, "_total"))) {
				snprintf(r->why, sizeof(r->why), "a counter without _total: %s", base);
				return false;
			}
			continue;
		}
		char *brace = strchr(line, '{'), *close = strstr(line, "} ");
		if (!brace || !close || strncmp(brace, "{group=\"", 8) != 0 || close[-1] != '"' ||
		    strncmp(line, current, strlen(current)) != 0) {
			snprintf(r->why, sizeof(r->why), "bad sample or out of its family: %s", line);
			return false;
		}
		close[1] = '\0'; /* line: name{labels} */
		if (!strcmp(line, want)) {
			snprintf(value, vlen, "%s", close + 2);
			found = true;
		}
	}
	if (!found)
		snprintf(r->why, sizeof(r->why), "%s not found", want);
	return found;
}

static mgi_stats_t sample_stats(uint64_t seed)
{
	mgi_stats_t s;
	memset(&s, 0, sizeof(s));
	s.usage = 1000 * seed + 4096;
	s.max_usage = s.usage + 8192;
	s.limit = UNLIMITED;
	s.high = UNLIMITED;
	s.soft = UNLIMITED;
	s.swap_limit = 64 << 20;
	s.pgfault = 77 + seed;
	s.oom_kill = seed;
	s.nr_processes = 3;
	s.vrange_bytes = 8192 * seed;
	s.vrange_purged_pages = 5 + seed;
	s.ladder_purge = 9 + seed;
	return s;
}

static void every_group_every_family(void)
{
	mgi_stats_t a = sample_stats(1), b = sample_stats(2);
	b.limit = 32 << 20;
	b.cooperators = 2;
	mgi_prom_group_t g[] = {{.name = "", .st = &a}, {.name = "web/api", .st = &b}};
	static char buf[1 << 16];
	char v[64];
	struct reader r;

	size_t n = mgi_prom_render(g, 2, buf, sizeof(buf));
	CHECK_EQ(n, strlen(buf));
	CHECK_MSG(read_text(&r, buf, "memgrp_usage_bytes{group=\"web/api\"}", v, sizeof(v)), "%s", r.why);
	CHECK_STR_EQ(v, "6096");
	CHECK_MSG(read_text(&r, buf, "memgrp_usage_bytes{group=\"/\"}", v, sizeof(v)), "%s", r.why);
	CHECK_STR_EQ(v, "5096");
	CHECK(read_text(&r, buf, "memgrp_limit_bytes{group=\"/\"}", v, sizeof(v)));
	CHECK_STR_EQ(v, "+Inf");
	CHECK(read_text(&r, buf, "memgrp_limit_bytes{group=\"web/api\"}", v, sizeof(v)));
	CHECK_STR_EQ(v, "33554432");
	CHECK(read_text(&r, buf, "memgrp_swap_limit_bytes{group=\"web/api\"}", v, sizeof(v)));
	CHECK_STR_EQ(v, "67108864");
	CHECK(read_text(&r, buf, "memgrp_oom_kills_total{group=\"web/api\"}", v, sizeof(v)));
	CHECK_STR_EQ(v, "2");
	CHECK(read_text(&r, buf, "memgrp_page_faults_total{group=\"/\"}", v, sizeof(v)));
	CHECK_STR_EQ(v, "78");
	CHECK(read_text(&r, buf, "memgrp_cooperators{group=\"web/api\"}", v, sizeof(v)));
	CHECK_STR_EQ(v, "2");
	CHECK(read_text(&r, buf, "memgrp_vrange_bytes{group=\"web/api\"}", v, sizeof(v)));
	CHECK_STR_EQ(v, "16384");
	CHECK(read_text(&r, buf, "memgrp_vrange_purged_pages_total{group=\"/\"}", v, sizeof(v)));
	CHECK_STR_EQ(v, "6");
	CHECK(read_text(&r, buf, "memgrp_ladder_purge_total{group=\"web/api\"}", v, sizeof(v)));
	CHECK_STR_EQ(v, "11");
	CHECK(read_text(&r, buf, "memgrp_processes{group=\"web/api\"}", v, sizeof(v)));
	CHECK_STR_EQ(v, "3");
	/* every family has both groups */
	for (int i = 0; i < r.nfam; i++) {
		char want[128];
		snprintf(want, sizeof(want), "%s{group=\"web/api\"}", r.families[i]);
		if (!strcmp(r.families[i], "memgrp_reclaim_stall_seconds") ||
		    !strcmp(r.families[i], "memgrp_restore_fault_seconds") ||
		    !strcmp(r.families[i], "memgrp_notification_latency_seconds"))
			snprintf(want, sizeof(want), "%s_count{group=\"web/api\"}", r.families[i]);
		CHECK_MSG(read_text(&r, buf, want, v, sizeof(v)), "%s", r.why);
	}
	CHECK_GE(r.nfam, 20);
}

static void histogram_is_cumulative(void)
{
	mgi_stats_t s = sample_stats(0);
	mgi_prom_group_t g = {.name = "g", .st = &s};
	static char buf[1 << 16];
	char v[64];
	struct reader r;

	s.reclaim_hist[0] = 1;  /* < 1 us */
	s.reclaim_hist[3] = 5;  /* < 8 us */
	s.reclaim_hist[MGI_RECLAIM_BUCKETS - 1] = 2; /* the rest */
	mgi_prom_render(&g, 1, buf, sizeof(buf));
	CHECK(read_text(&r, buf, "memgrp_reclaim_stall_seconds_bucket{group=\"g\",le=\"1e-06\"}", v, sizeof(v)));
	CHECK_STR_EQ(v, "1");
	CHECK(read_text(&r, buf, "memgrp_reclaim_stall_seconds_bucket{group=\"g\",le=\"4e-06\"}", v, sizeof(v)));
	CHECK_STR_EQ(v, "1");
	CHECK(read_text(&r, buf, "memgrp_reclaim_stall_seconds_bucket{group=\"g\",le=\"8e-06\"}", v, sizeof(v)));
	CHECK_STR_EQ(v, "6");
	CHECK(read_text(&r, buf, "memgrp_reclaim_stall_seconds_bucket{group=\"g\",le=\"4.194304\"}", v, sizeof(v)));
	CHECK_STR_EQ(v, "6");
	CHECK(read_text(&r, buf, "memgrp_reclaim_stall_seconds_bucket{group=\"g\",le=\"+Inf\"}", v, sizeof(v)));
	CHECK_STR_EQ(v, "8");
	CHECK(read_text(&r, buf, "memgrp_reclaim_stall_seconds_count{group=\"g\"}", v, sizeof(v)));
	CHECK_STR_EQ(v, "8");
	CHECK(!read_text(&r, buf, "memgrp_reclaim_stall_seconds_sum{group=\"g\"}", v, sizeof(v)));
}

/* The restores of evicted pages: the same buckets, and a _sum in seconds. */
static void restore_histogram_has_a_sum(void)
{
	mgi_stats_t s = sample_stats(0);
	mgi_prom_group_t g = {.name = "g", .st = &s};
	static char buf[1 << 16];
	char v[64];
	struct reader r;

	memset(s.restore_hist, 0, sizeof(s.restore_hist));
	s.restore_hist[4] = 3;  /* < 16 us */
	s.restore_hist[6] = 1;  /* < 64 us */
	s.restore_ns = 75000;   /* 3 x 15 us + 30 us */
	mgi_prom_render(&g, 1, buf, sizeof(buf));
	CHECK_MSG(read_text(&r, buf, "memgrp_restore_fault_seconds_bucket{group=\"g\",le=\"8e-06\"}", v,
			    sizeof(v)), "%s", r.why);
	CHECK_STR_EQ(v, "0");
	CHECK(read_text(&r, buf, "memgrp_restore_fault_seconds_bucket{group=\"g\",le=\"1.6e-05\"}", v, sizeof(v)));
	CHECK_STR_EQ(v, "3");
	CHECK(read_text(&r, buf, "memgrp_restore_fault_seconds_bucket{group=\"g\",le=\"+Inf\"}", v, sizeof(v)));
	CHECK_STR_EQ(v, "4");
	CHECK(read_text(&r, buf, "memgrp_restore_fault_seconds_count{group=\"g\"}", v, sizeof(v)));
	CHECK_STR_EQ(v, "4");
	CHECK(read_text(&r, buf, "memgrp_restore_fault_seconds_sum{group=\"g\"}", v, sizeof(v)));
	CHECK_STR_EQ(v, "7.5e-05");
	/* notifications: the same shape */
	s.notify_hist[10] = 2; /* < 1024 us */
	s.notify_ns = 1500000;
	mgi_prom_render(&g, 1, buf, sizeof(buf));
	CHECK(read_text(&r, buf, "memgrp_notification_latency_seconds_bucket{group=\"g\",le=\"0.000512\"}", v,
			sizeof(v)));
	CHECK_STR_EQ(v, "0");
	CHECK(read_text(&r, buf, "memgrp_notification_latency_seconds_bucket{group=\"g\",le=\"0.001024\"}", v,
			sizeof(v)));
	CHECK_STR_EQ(v, "2");
	CHECK(read_text(&r, buf, "memgrp_notification_latency_seconds_sum{group=\"g\"}", v, sizeof(v)));
	CHECK_STR_EQ(v, "0.0015");
	CHECK(read_text(&r, buf, "memgrp_notification_latency_seconds_count{group=\"g\"}", v, sizeof(v)));
	CHECK_STR_EQ(v, "2");
}

static void labels_are_escaped(void)
{
	mgi_stats_t s = sample_stats(0);
	mgi_prom_group_t g = {.name = "a\"b\\c\nd", .st = &s};
	static char buf[1 << 16];
	char v[64];
	struct reader r;

	mgi_prom_render(&g, 1, buf, sizeof(buf));
	CHECK_MSG(read_text(&r, buf, "memgrp_usage_bytes{group=\"a\\\"b\\\\c\\nd\"}", v, sizeof(v)), "%s", r.why);
}

static void short_buffers_say_what_the_whole_needs(void)
{
	mgi_stats_t s = sample_stats(3);
	mgi_prom_group_t g[] = {{.name = "x", .st = &s}, {.name = "x/y", .st = &s}};
	static char full[1 << 16], part[1 << 16];

	size_t n = mgi_prom_render(g, 2, full, sizeof(full));
	CHECK_EQ(mgi_prom_render(g, 2, NULL, 0), n);
	for (size_t len = 1; len < n + 2; len += 97) {
		memset(part, 'Z', sizeof(part));
		CHECK_EQ(mgi_prom_render(g, 2, part, len), n);
		CHECK_EQ(strlen(part), len - 1 < n ? len - 1 : n);
		CHECK(!memcmp(part, full, strlen(part)));
		CHECK(part[len] == 'Z');
	}
	/* no groups: the families' headers alone */
	CHECK_EQ(mgi_prom_render(g, 0, full, sizeof(full)), strlen(full));
	CHECK(!strchr(full, '{'));
}

static void pressure_levels(void)
{
	uint64_t lim = 100 << 20;
	CHECK_EQ(mgi_prom_pressure(0, lim), 0);
	CHECK_EQ(mgi_prom_pressure(lim * 75 / 100 - 1, lim), 0);
	CHECK_EQ(mgi_prom_pressure(lim * 75 / 100, lim), 1);
	CHECK_EQ(mgi_prom_pressure(lim * 90 / 100 - 1, lim), 1);
	CHECK_EQ(mgi_prom_pressure(lim * 90 / 100, lim), 2);
	CHECK_EQ(mgi_prom_pressure(lim * 98 / 100, lim), 3);
	CHECK_EQ(mgi_prom_pressure(lim * 2, lim), 3);
	CHECK_EQ(mgi_prom_pressure(UINT64_MAX, UNLIMITED), 0);
	CHECK_EQ(mgi_prom_pressure(UINT64_MAX, UNLIMITED - 1), 3);
	CHECK_EQ(mgi_prom_pressure(5, 0), 0);
	CHECK_STR_EQ(mgi_prom_pressure_name(2), "medium");
	CHECK_STR_EQ(mgi_prom_pressure_name(9), "?");
}

static void listen_addresses(void)
{
	mgi_listen_addr_t a;
	char err[160], s[80];

	CHECK_INT_EQ(mgi_listen_parse("9100", &a, err, sizeof(err)), 0);
	mgi_listen_format(&a, s, sizeof(s));
	CHECK_STR_EQ(s, "127.0.0.1:9100");
	CHECK_INT_EQ(mgi_listen_parse("0.0.0.0:0", &a, err, sizeof(err)), 0);
	mgi_listen_format(&a, s, sizeof(s));
	CHECK_STR_EQ(s, "0.0.0.0:0");
	CHECK_INT_EQ(mgi_listen_parse("localhost:80", &a, err, sizeof(err)), 0);
	mgi_listen_format(&a, s, sizeof(s));
	CHECK_STR_EQ(s, "127.0.0.1:80");
	CHECK_INT_EQ(mgi_listen_parse("[::1]:65535", &a, err, sizeof(err)), 0);
	CHECK_INT_EQ(a.family, AF_INET6);
	mgi_listen_format(&a, s, sizeof(s));
	CHECK_STR_EQ(s, "[::1]:65535");
	static const char *const bad[] = {"", "65536", "-1", "x", "1.2.3:4", "1.2.3.4:", ":80",
					  "::1:80", "[::1]80", "[::1", "[zz]:1", "1.2.3.4:80x",
					  "example.com:80", "1.2.3.4:99999999999999999999"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		CHECK_MSG(mgi_listen_parse(bad[i], &a, err, sizeof(err)) == -EINVAL, "'%s' accepted", bad[i]);
		CHECK_MSG(err[0] != '\0', "no reason for '%s'", bad[i]);
	}
	CHECK_INT_EQ(mgi_listen_parse(NULL, &a, err, sizeof(err)), -EINVAL);
}

int main(int argc, char **argv)
{
	MGT_INIT(argc, argv);
	MGT_RUN(every_group_every_family);
	MGT_RUN(histogram_is_cumulative);
	MGT_RUN(restore_histogram_has_a_sum);
	MGT_RUN(labels_are_escaped);
	MGT_RUN(short_buffers_say_what_the_whole_needs);
	MGT_RUN(pressure_levels);
	MGT_RUN(listen_addresses);
	MGT_DONE();
}

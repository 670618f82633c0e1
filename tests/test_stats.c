/* test_stats.c - the stats table's JSON printer (src/core/proto.c): every field once, exact values, short buffers. */
#include "harness.h"
#include "proto.h"

static void every_field_once_with_its_value(void)
{
	mgi_stats_t s;
	char buf[8192], key[64];
	size_t n, i = 0;

	memset(&s, 0, sizeof(s));
	/* A distinct value per field, the largest one included. */
	for (const mgi_stats_field_t *f = mgi_stats_fields; f->name; f++, i++)
		*(uint64_t *)((char *)&s + f->offset) = i == 0 ? UINT64_MAX : i * 1000 + 7;
	s.reclaim_hist[MGI_RECLAIM_BUCKETS - 1] = 42;
	s.restore_hist[MGI_RECLAIM_BUCKETS - 1] = 43;
	s.restore_ns = 99;
	s.notify_hist[MGI_RECLAIM_BUCKETS - 1] = 44;
	s.notify_ns = 98;
	n = mgi_stats_json_fields(&s, buf, sizeof(buf));
	CHECK_EQ(n, strlen(buf));
	i = 0;
	for (const mgi_stats_field_t *f = mgi_stats_fields; f->name; f++, i++) {
		char want[96];
		snprintf(key, sizeof(key), "\"%s\": ", f->name);
		snprintf(want, sizeof(want), "%s%llu", key,
			 i == 0 ? (unsigned long long)UINT64_MAX : (unsigned long long)(i * 1000 + 7));
		const char *at = strstr(buf, want);
		CHECK_MSG(at && (at[strlen(want)] == ',' || at[strlen(want)] == '\0'), "%s missing in %s", want, buf);
		CHECK_MSG(!strstr(at + 1, key), "%s twice", key);
	}
	CHECK(strstr(buf, ", \"reclaim_stall_hist\": [0, "));
	CHECK(strstr(buf, ", 42], \"restore_fault_hist\": [0, "));
	CHECK(strstr(buf, ", 43], \"restore_fault_ns\": 99, \"notify_latency_hist\": [0, "));
	CHECK(strstr(buf, ", 44], \"notify_latency_ns\": 98"));
	CHECK(buf[n - 1] == '8');
}

static void short_buffers_say_what_the_whole_needs(void)
{
	mgi_stats_t s;
	char full[8192], part[100];

	memset(&s, 0, sizeof(s));
	size_t n = mgi_stats_json_fields(&s, full, sizeof(full));
	CHECK_EQ(mgi_stats_json_fields(&s, NULL, 0), n);
	memset(part, 'x', sizeof(part));
	CHECK_EQ(mgi_stats_json_fields(&s, part, sizeof(part)), n);
	CHECK_EQ(strlen(part), sizeof(part) - 1);
	CHECK(memcmp(part, full, sizeof(part) - 1) == 0);
	/* exactly enough */
	char *exact = malloc(n + 1);
	CHECK(exact);
	size_t m = mgi_stats_json_fields(&s, exact, n + 1);
	int same = strcmp(exact, full) == 0;
	free(exact);
	CHECK_EQ(m, n);
	CHECK(same);
}

int main(int argc, char **argv)
{
	MGT_INIT(argc, argv);
	MGT_RUN(every_field_once_with_its_value);
	MGT_RUN(short_buffers_say_what_the_whole_needs);
	MGT_DONE();
}

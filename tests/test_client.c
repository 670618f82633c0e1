/* test_client.c - libmemgrp's exported API, linked as a user would link it. */
#include <errno.h>
#include <string.h>

#include "harness.h"
#include "memgrp.h"

static void version_matches_header(void)
{
	CHECK_EQ(mg_version(), MG_VERSION);
}

static void sizes_through_the_library(void)
{
	uint64_t v = 0;
	char err[128] = "", buf[16];
	CHECK_INT_EQ(mg_parse_size("1.5G", &v, err, sizeof(err)), 0);
	CHECK_EQ(v, 3ULL << 29);
	CHECK_INT_EQ(mg_parse_size("lots", &v, err, sizeof(err)), -EINVAL);
	CHECK(strstr(err, "lots") != NULL);
	/* Only the word means no limit: a number past the counters is refused. */
	CHECK_INT_EQ(mg_parse_size("18446744073709551615", &v, err, sizeof(err)), -ERANGE);
	CHECK_INT_EQ(mg_parse_size("8E", &v, err, sizeof(err)), -ERANGE);
	CHECK_INT_EQ(mg_parse_size("max", &v, err, sizeof(err)), 0);
	CHECK_EQ(v, MG_SIZE_MAX);
	CHECK_STR_EQ(mg_format_size(MG_SIZE_MAX, buf, sizeof(buf)), "max");
}

/* No manager: a clear error, never a crash; NULL clients are refused. */
static void without_a_manager(void)
{
	int err = 0;
	CHECK(mg_connect("/nonexistent/memgrp.sock", &err) == NULL);
	CHECK_INT_EQ(err, -ENOENT);
	err = 0;
	char longpath[200];
	memset(longpath, 'a', sizeof(longpath) - 1);
	longpath[sizeof(longpath) - 1] = '\0';
	CHECK(mg_connect(longpath, &err) == NULL);
	CHECK_INT_EQ(err, -ENAMETOOLONG);
	CHECK_INT_EQ(mg_threshold_add(NULL, NULL, MG_COUNTER_MEMORY, 4096), -EINVAL);
	CHECK_INT_EQ(mg_pressure_add(NULL, NULL, MG_PRESSURE_LOW, MG_PRESSURE_LOCAL), -EINVAL);
	CHECK_INT_EQ(mg_oom_add(NULL, NULL), -EINVAL);
	CHECK_INT_EQ(mg_cooperate_add(NULL, NULL, 1), -EINVAL);
	CHECK_INT_EQ(mg_cooperate_done(NULL, 3), -EINVAL);
	CHECK_INT_EQ(mg_remove(NULL, 3), -EINVAL);
	mg_stats_t st;
	CHECK_INT_EQ(mg_stats(NULL, NULL, &st), -EINVAL);
	CHECK_INT_EQ(mg_fd(NULL), -EINVAL);
	CHECK(strlen(mg_last_error(NULL)) > 0);
	mg_close(NULL);
}

int main(int argc, char **argv)
{
	MGT_INIT(argc, argv);
	MGT_RUN(version_matches_header);
	MGT_RUN(sizes_through_the_library);
	MGT_RUN(without_a_manager);
	MGT_DONE();
}

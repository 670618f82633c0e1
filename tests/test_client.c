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
	CHECK_STR_EQ(mg_format_size(MG_SIZE_MAX, buf, sizeof(buf)), "max");
}

int main(int argc, char **argv)
{
	MGT_INIT(argc, argv);
	MGT_RUN(version_matches_header);
	MGT_RUN(sizes_through_the_library);
	MGT_DONE();
}
